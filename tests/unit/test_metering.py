"""The metering proxy between a worker's own API client and the API: the real anthropic SDK calls
the proxy, the proxy calls the scripted model server, all on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import pytest

from longrun.scheduler.endpoints.metering import LimitHit, Metered, MeteringProxy
from longrun.scheduler.endpoints.scripted import ScriptedModelServer, script_from_data
from longrun.store.errors import BudgetExhausted

KEY = "sk-ant-test-metering-NEVER-KEPT-77"


def _server(turns: list[dict[str, Any]]) -> ScriptedModelServer:
    return ScriptedModelServer(script_from_data({"sessions": [{"turns": turns}]}))


class Tap:
    """What the proxy handed on: every metered call, every limit, every refusal."""

    def __init__(self, cap_tokens: int | None = None) -> None:
        self.cap_tokens = cap_tokens
        self.calls: list[Metered] = []
        self.limits: list[LimitHit] = []
        self.refused: list[BudgetExhausted] = []
        self.counted: list[int | None] = []

    def admit(self, body: dict[str, Any], counted: int | None = None) -> dict[str, Any]:
        self.counted.append(counted)
        if self.cap_tokens is None or body["max_tokens"] <= self.cap_tokens:
            return body
        if self.cap_tokens < 16:
            raise BudgetExhausted("budget.tokens would be crossed by the next call", cap="tokens")
        return body | {"max_tokens": self.cap_tokens}


@pytest.fixture
def proxied() -> Iterator[Any]:
    opened: list[Any] = []

    def open_(
        turns: list[dict[str, Any]], tap: Tap, retries: int = 0
    ) -> tuple[ScriptedModelServer, anthropic.Anthropic]:
        server = _server(turns)
        upstream = server.start()
        proxy = MeteringProxy(
            upstream, tap.admit, tap.calls.append, on_limit=tap.limits.append, on_refused=tap.refused.append
        )
        opened.extend([proxy, server])
        client = anthropic.Anthropic(base_url=proxy.start(), api_key=KEY, max_retries=retries)
        return server, client

    yield open_
    for thing in opened:
        thing.stop()


def _ask(client: anthropic.Anthropic, max_tokens: int = 4096) -> anthropic.types.Message:
    return client.messages.create(
        model="claude-sonnet-5-5", max_tokens=max_tokens, messages=[{"role": "user", "content": "go"}]
    )


def test_a_plain_call_passes_through_and_its_usage_is_recorded(proxied: Any) -> None:
    tap = Tap()
    server, client = proxied([{"text": "hello", "usage": {"input_tokens": 120, "output_tokens": 7}}], tap)
    reply = _ask(client)
    assert reply.content[0].text == "hello"  # type: ignore[union-attr]
    [call] = tap.calls
    assert (call.input_tokens, call.output_tokens) == (reply.usage.input_tokens, reply.usage.output_tokens)
    assert call.message_id == reply.id and call.status == 200 and not call.streamed
    assert server.requests[0]["max_tokens"] == 4096


def test_until_a_call_is_answered_the_api_counts_its_input_for_the_budget_check(proxied: Any) -> None:
    tap = Tap()
    server, client = proxied([{"text": "one"}, {"text": "two"}], tap)
    _ask(client)
    _ask(client)
    # The scripted server counts as it bills (about four characters a token); the first call's
    # count is that estimate, and the second is bounded by the first's reported usage instead.
    assert tap.counted[0] == tap.calls[0].input_tokens and tap.counted[1:] == [None]
    assert len(server.requests) == 2  # count_tokens is not a model call


def test_a_stream_arrives_event_by_event_and_its_usage_is_the_final_message_s(proxied: Any) -> None:
    tap = Tap()
    turns = [
        {"tool": "bash", "input": {"command": "ls"}, "usage": {"input_tokens": 300, "output_tokens": 40}}
    ]
    _, client = proxied(turns, tap)
    with client.messages.stream(
        model="claude-sonnet-5-5", max_tokens=2048, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_delta" in kinds and kinds[-1] == "message_stop"
    [call] = tap.calls
    assert call.streamed and call.stop_reason == final.stop_reason == "tool_use"
    assert (call.input_tokens, call.output_tokens) == (final.usage.input_tokens, final.usage.output_tokens)
    assert call.tool_calls == ["bash"] and call.first_byte_ms <= call.duration_ms


def test_a_call_that_only_fits_smaller_is_sent_smaller(proxied: Any) -> None:
    tap = Tap(cap_tokens=500)
    server, client = proxied([{"text": "short"}], tap)
    with client.messages.stream(
        model="claude-sonnet-5-5", max_tokens=128_000, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        stream.get_final_message()
    assert server.requests[0]["max_tokens"] == 500
    assert (tap.calls[0].max_tokens_asked, tap.calls[0].max_tokens_sent) == (128_000, 500)


def test_a_call_that_does_not_fit_never_leaves_and_the_client_is_told_not_to_retry(proxied: Any) -> None:
    tap = Tap(cap_tokens=0)
    server, client = proxied([{"text": "never sent"}], tap)
    with pytest.raises(anthropic.BadRequestError) as refused:
        _ask(client)
    assert "budget.tokens would be crossed" in str(refused.value)
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert server.requests == [] and tap.calls == [] and len(tap.refused) == 1


def test_a_rate_limit_with_a_reset_stops_the_client_s_retries(proxied: Any) -> None:
    tap = Tap()
    server, client = proxied(
        [{"error": 429, "retry_after": "2h"}, {"text": "after the reset"}], tap, retries=2
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        _ask(client)
    assert limited.value.response.headers["x-should-retry"] == "false"
    assert len(server.requests) == 1, "the SDK retried a limit that resets in two hours"
    [hit] = tap.limits
    assert hit.status == 429 and hit.headers["retry-after"] == "7200"
    assert hit.headers["anthropic-ratelimit-requests-reset"] and "rate" in hit.message.lower()
    assert tap.calls[0].status == 429 and tap.calls[0].output_tokens == 0


class _Echo(BaseHTTPRequestHandler):
    """An upstream that answers with the headers it was sent."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        _Echo.seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        body = json.dumps(
            {
                "id": "msg_echo",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-5-5",
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_authentication_is_forwarded_and_kept_nowhere() -> None:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    tap = Tap()
    proxy = MeteringProxy(f"http://127.0.0.1:{upstream.server_port}", tap.admit, tap.calls.append)
    try:
        client = anthropic.Anthropic(base_url=proxy.start(), api_key=KEY, max_retries=0)
        _ask(client)
        client = anthropic.Anthropic(
            base_url=proxy.base_url, auth_token="oauth-token-NEVER-KEPT", max_retries=0
        )
        _ask(client)
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
    calls = [seen for seen in _Echo.seen if seen["path"] == "/v1/messages"]
    sent = [seen.get("x-api-key") or seen.get("authorization", "") for seen in calls]
    assert KEY in sent[0] and sent[1] == "Bearer oauth-token-NEVER-KEPT"
    assert calls[0]["accept-encoding"] == "identity"
    # The first call's input was counted with the same authentication, and nothing else was sent.
    [count] = [seen for seen in _Echo.seen if seen["path"] != "/v1/messages"]
    assert count["path"] == "/v1/messages/count_tokens"
    assert KEY in (count.get("x-api-key") or count.get("authorization", ""))
    kept = repr(vars(proxy)) + repr(tap.calls)
    assert KEY not in kept and "NEVER-KEPT" not in kept
