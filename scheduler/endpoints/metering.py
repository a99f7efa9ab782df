"""The metering proxy: a Messages API on loopback in front of the real one, for workers that make
their own model calls (Claude Code, a command), so longrun still meters every one of them.

Each `POST /v1/messages` is handed to `admit` before it is forwarded: it returns the body (with a
lower `max_tokens` when only that fits what is left of every cap) or raises `BudgetExhausted`,
and then the request never leaves the machine: the client gets an API-shaped error that says so
and asks it not to retry. What comes back is passed through as it arrives (a stream event by
stream event), and the usage it reports is handed to `record` once the reply is whole. A 429 that
says when the limit resets is passed on with `x-should-retry: false`, so a client does not spend
minutes retrying a limit that has hours to go, and handed to `on_limit`.

Headers are forwarded as they came, authentication included, unless the proxy was given the
credentials itself (`credentials`): then whatever authentication the client sent is dropped and
the real one is set on the way out, so the client (and every shell it starts) holds only a
placeholder. The proxy writes no header anywhere.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import httpx

from longrun.scheduler.endpoints.loopback import LoopbackHTTPServer, LoopbackServer
from longrun.store.errors import BudgetExhausted
from longrun.store.runs.views import TOKEN_KINDS

Admit = Callable[[dict[str, Any], int | None], dict[str, Any]]
"""`admit(body, input_tokens)`: the body to send, or `BudgetExhausted`; `input_tokens` is what the
API counted the request's input as, until a first call was answered (then None)."""

COUNTED_FIELDS = ("model", "system", "messages", "tools", "tool_choice", "thinking", "mcp_servers")
"""What of a request `count_tokens` takes: everything that is input."""

AUTH_HEADERS = frozenset({"x-api-key", "authorization"})

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)
"""Headers that describe one connection, not the request: never forwarded either way."""


def _says_when_it_resets(name: str) -> bool:
    name = name.lower()
    return name == "retry-after" or (name.startswith("anthropic-ratelimit-") and name.endswith("reset"))


def _limit_headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower() == "retry-after" or k.lower().startswith("anthropic-ratelimit-")
    }


@dataclass
class Metered:
    """One call that went through the proxy, with what the reply said it used."""

    path: str
    model: str
    max_tokens_asked: int
    max_tokens_sent: int
    status: int
    streamed: bool
    request_id: str | None = None
    message_id: str | None = None
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    first_byte_ms: float = 0.0
    duration_ms: float = 0.0
    tool_calls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LimitHit:
    """A 429 from upstream, with the headers that say when it resets (names lowercased)."""

    status: int
    headers: dict[str, str]
    message: str


class _Usage:
    """Reads the usage out of a reply: the JSON body, or the stream's events as they pass."""

    def __init__(self, metered: Metered) -> None:
        self.metered = metered
        self._pending = b""

    def from_message(self, message: Mapping[str, Any]) -> None:
        m = self.metered
        m.message_id = message.get("id") or m.message_id
        m.stop_reason = message.get("stop_reason") or m.stop_reason
        self.from_usage(message.get("usage") or {})
        for block in message.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                m.tool_calls.append(str(block.get("name")))

    def from_usage(self, usage: Mapping[str, Any]) -> None:
        """The stream repeats and grows its counts (message_delta's are cumulative): keep the largest."""
        m = self.metered
        m.input_tokens = max(m.input_tokens, int(usage.get("input_tokens") or 0))
        m.output_tokens = max(m.output_tokens, int(usage.get("output_tokens") or 0))
        m.cache_write_tokens = max(m.cache_write_tokens, int(usage.get("cache_creation_input_tokens") or 0))
        m.cache_read_tokens = max(m.cache_read_tokens, int(usage.get("cache_read_input_tokens") or 0))

    def feed(self, chunk: bytes) -> None:
        """Server-sent events, read as they pass (an event may span chunks)."""
        self._pending += chunk
        while b"\n\n" in self._pending:
            event, self._pending = self._pending.split(b"\n\n", 1)
            for line in event.splitlines():
                if line.startswith(b"data:"):
                    self._event(line[5:].strip())

    def _event(self, data: bytes) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "message_start":
            self.from_message(payload.get("message") or {})
        elif kind == "message_delta":
            self.metered.stop_reason = (payload.get("delta") or {}).get(
                "stop_reason"
            ) or self.metered.stop_reason
            self.from_usage(payload.get("usage") or {})
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.metered.tool_calls.append(str(block.get("name")))


def _authenticated(headers: dict[str, str], credentials: Mapping[str, str]) -> dict[str, str]:
    """`headers` with the client's authentication replaced by the real one: the credential of each
    kind the client sent (all of them when it sent none), nothing of what it sent."""
    sent = {k.lower() for k in headers} & AUTH_HEADERS
    kept = {k: v for k, v in headers.items() if k.lower() not in AUTH_HEADERS}
    return kept | {k: v for k, v in credentials.items() if not sent or k.lower() in sent}


def refusal_body(message: str) -> dict[str, Any]:
    """The API's error shape, for a call the proxy refuses."""
    return {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": "req_longrun_budget",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHTTPServer
    server_version = "longrun-metering"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the request line would be fine, but nothing of a request is written anywhere

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self._forward(self.rfile.read(length))

    def _forward(self, raw: bytes | None) -> None:
        owner: MeteringProxy = self.server.owner
        path = urlsplit(self.path).path.rstrip("/")
        metered: Metered | None = None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "accept-encoding")}
        headers["accept-encoding"] = "identity"  # the usage is read from the reply as it passes
        if owner.credentials:
            headers = _authenticated(headers, owner.credentials)
        if raw is not None and path == "/v1/messages":
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if isinstance(body, dict):
                asked = int(body.get("max_tokens") or 0)
                try:
                    body = owner.admit(body, owner._count_first(body, headers))
                except BudgetExhausted as exc:
                    owner._refused(exc)
                    self._send_json(400, refusal_body(f"longrun: {exc.message}"), {"x-should-retry": "false"})
                    return
                metered = Metered(
                    path=path,
                    model=str(body.get("model") or ""),
                    max_tokens_asked=asked,
                    max_tokens_sent=int(body.get("max_tokens") or 0),
                    status=0,
                    streamed=body.get("stream") is True,
                )
                raw = json.dumps(body, ensure_ascii=False).encode()
        started = time.perf_counter()
        try:
            with owner._client.stream(
                self.command, owner.upstream + self.path, content=raw, headers=headers
            ) as reply:
                self._relay(reply, metered, started)
        except httpx.HTTPError as exc:
            self._send_json(
                502,
                {
                    "type": "error",
                    "error": {"type": "api_error", "message": f"upstream: {type(exc).__name__}"},
                },
                {},
            )

    def _relay(self, reply: httpx.Response, metered: Metered | None, started: float) -> None:
        owner: MeteringProxy = self.server.owner
        out = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}}
        limit = reply.status_code == 429 and any(_says_when_it_resets(h) for h in reply.headers)
        if limit:
            out["x-should-retry"] = "false"
        self.close_connection = True
        usage = _Usage(metered) if metered is not None else None
        chunks: list[bytes] = []
        try:
            self.send_response(reply.status_code)
            for name, value in out.items():
                self.send_header(name, value)
            self.send_header("connection", "close")
            self.end_headers()
            first = True
            for chunk in reply.iter_raw():
                if first and metered is not None:
                    metered.first_byte_ms = (time.perf_counter() - started) * 1000
                    first = False
                self.wfile.write(chunk)
                self.wfile.flush()
                if usage is not None and metered is not None and metered.streamed:
                    usage.feed(chunk)
                elif usage is not None or limit:
                    chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up; what upstream used so far is still recorded below
        whole = b"".join(chunks)
        if limit:
            owner._limit(LimitHit(reply.status_code, _limit_headers(reply.headers), _error_message(whole)))
        if metered is not None and usage is not None:
            metered.status = reply.status_code
            metered.request_id = reply.headers.get("request-id")
            metered.duration_ms = (time.perf_counter() - started) * 1000
            if not metered.streamed and reply.status_code == 200:
                try:
                    usage.from_message(json.loads(whole))
                except ValueError:
                    pass
            owner._record(metered)

    def _send_json(self, status: int, body: dict[str, Any], headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return ""
    return str(error.get("message") or "") if isinstance(error, dict) else ""


TOTALS = ("calls", "failed", "refused", *TOKEN_KINDS)


class MeteringProxy(LoopbackServer):
    """A Messages API on loopback that meters every call on its way to `upstream`.

    `admit(body)` decides each call before it is sent (see the module's docstring); `record` gets
    each call's `Metered` once its reply is whole, `on_limit` each rate limit with a reset, and
    `on_refused` each call `admit` refused. All of them run on the request's thread.
    `credentials` (header to value, e.g. `x-api-key`) replace the client's own authentication.
    """

    HANDLER = _Handler
    NAME = "metering-proxy"

    def __init__(
        self,
        upstream: str,
        admit: Admit,
        record: Callable[[Metered], None],
        *,
        on_limit: Callable[[LimitHit], None] | None = None,
        on_refused: Callable[[BudgetExhausted], None] | None = None,
        credentials: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        timeout_s: float = 600.0,
    ) -> None:
        super().__init__(host)
        self.upstream = upstream.rstrip("/")
        self.admit = admit
        self._on_record = record
        self._on_limit = on_limit
        self._on_refused = on_refused
        self.credentials = dict(credentials or {})
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._lock = threading.Lock()
        self.totals: dict[str, int] = dict.fromkeys(TOTALS, 0)
        """What the proxy itself counted over its life: answered calls, refused ones and tokens, kept
        apart from the records it hands on, so the two can be compared (`proxy_usage`)."""

    def _stopped(self) -> None:
        self._client.close()

    def _count_first(self, body: dict[str, Any], headers: dict[str, str]) -> int | None:
        """The API's own count of the input (`count_tokens`, which is free) of a call made before
        any call was answered: a bound from the request's size alone takes a CLI's long system
        prompt and tool list at a token a byte, three times what it is; after an answer the
        reported usage bounds the next call. None then, or when the count fails."""
        with self._lock:
            if self.totals["calls"]:
                return None
        asked = {k: body[k] for k in COUNTED_FIELDS if k in body}
        try:
            reply = self._client.post(
                self.upstream + "/v1/messages/count_tokens", json=asked, headers=headers, timeout=30
            )
            tokens = reply.json().get("input_tokens") if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return tokens if isinstance(tokens, int) and tokens > 0 else None

    def _record(self, metered: Metered) -> None:
        with self._lock:
            if metered.status == 200:
                self.totals["calls"] += 1
                for name in TOKEN_KINDS:
                    self.totals[name] += getattr(metered, name)
            else:
                self.totals["failed"] += 1
            self._on_record(metered)

    def _limit(self, hit: LimitHit) -> None:
        if self._on_limit is not None:
            with self._lock:
                self._on_limit(hit)

    def _refused(self, exc: BudgetExhausted) -> None:
        with self._lock:
            self.totals["refused"] += 1
            if self._on_refused is not None:
                self._on_refused(exc)
