"""Playing a script: which session and turn answers a request, the reply it makes, and its usage.

Pure of HTTP: `ScriptPlayer.reply` takes a request body and gives a `Reply`, so the rules can
be tested without a server.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from longrun.scheduler.endpoints.scripted.script import (
    CHARS_PER_TOKEN,
    FALLBACK_TEXT,
    JUDGE_FALLBACK_TEXT,
    Script,
    Turn,
)


def _chars(value: object) -> int:
    return 0 if value is None else len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def estimate_input_tokens(request: Mapping[str, Any]) -> int:
    """All input tokens of a request: compact-JSON characters of system + tools + messages, over 4."""
    return _tokens(
        _chars(request.get("system")) + _chars(request.get("tools")) + _chars(request.get("messages"))
    )


def estimate_usage(request: Mapping[str, Any], previous_total: int | None) -> dict[str, int]:
    """Input-side usage of a request, as if the client caches the conversation prefix.

    With T = `estimate_input_tokens(request)`: the first request of a conversation
    (`previous_total` None) reports all T as `input_tokens`. A later one reads the prefix it
    shares with the previous request from the cache: `cache_read_input_tokens` = P =
    min(previous T, T - 1); of the new part N = T - P, the newest message (L tokens, 1..N) is
    `input_tokens` and the rest, N - L, is `cache_creation_input_tokens`. The three always add
    up to T. Output tokens are set from the reply (`_output_tokens`).
    """
    total = estimate_input_tokens(request)
    if previous_total is None:
        return {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    prefix = max(0, min(previous_total, total - 1))
    new = total - prefix
    messages = request.get("messages") or [None]
    newest = min(max(1, _tokens(_chars(messages[-1]))), new)
    return {
        "input_tokens": newest,
        "cache_creation_input_tokens": new - newest,
        "cache_read_input_tokens": prefix,
    }


def _output_tokens(turn: Turn) -> int:
    chars = len(turn.text or "") + sum(len(call.tool) + _chars(call.input) for call in turn.calls())
    return _tokens(chars)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    "rate_limit_error": "This request would exceed the rate limit for your organization (scripted).",
    "overloaded_error": "Overloaded (scripted).",
    "api_error": "Internal server error (scripted).",
}
_RESET_HEADERS = ("requests", "tokens", "input-tokens", "output-tokens")


def _error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _conversation_key(first_message: object) -> str:
    """Hash of the first message's content, blind to cache_control and to str-vs-blocks form.

    Agents move their cache breakpoint to the newest message, so the first message carries
    cache_control only while it is the last one; that must not make a new conversation.
    """
    content = first_message.get("content") if isinstance(first_message, Mapping) else first_message
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]

    def strip(value: object) -> object:
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    canonical = json.dumps(strip(content), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _asks_for_structured_output(request: Mapping[str, Any]) -> bool:
    """Whether the request has `output_config.format`: the rubric judge's requests do."""
    config = request.get("output_config")
    return isinstance(config, Mapping) and config.get("format") is not None


def _messages_text(messages: list[Any]) -> str:
    """All the text of a request's messages (plain, text blocks, tool results), for `match`."""
    parts: list[str] = []

    def collect(content: object) -> None:
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for item in content:
                collect(item)
        elif isinstance(content, Mapping):
            if isinstance(content.get("text"), str):
                parts.append(content["text"])
            collect(content.get("content"))

    for message in messages:
        collect(message.get("content") if isinstance(message, Mapping) else message)
    return "\n".join(parts)


@dataclass
class _Conversation:
    key: str
    session: int
    served: int = 0
    previous_total: int | None = None


@dataclass
class _Pick:
    conversation: _Conversation | None  # None for a judge request, which has none
    turn: Turn
    label: str  # "session.turn", 1-based, "fallback", "judge.N" or "judge.fallback"
    stem: str  # what makes the reply's ids: the conversation's hash and the request number
    previous_total: int | None


@dataclass
class Reply:
    """What the server sends for one request: a status, headers, and a JSON body or SSE events."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0


class ScriptPlayer:
    """The server's state without the HTTP: which conversation is at which turn of which session."""

    def __init__(self, script: Script, first_session: int = 0) -> None:
        if first_session < 0:
            raise ValueError("first_session is 0 or more")
        self.script = script
        self._next_session = first_session
        self._conversations: dict[str, _Conversation] = {}
        self._lock = threading.Lock()

    def _take_turn(self, messages: list[Any]) -> _Pick:
        """The conversation of `messages` and its next turn (a fallback when there is none)."""
        key = _conversation_key(messages[0])
        with self._lock:
            conversation = self._conversations.get(key)
            if conversation is None:
                conversation = _Conversation(key=key, session=self._next_session)
                self._conversations[key] = conversation
                self._next_session += 1
            number = conversation.served
            conversation.served += 1
            previous = conversation.previous_total
        stem = f"{key[:12]}_{number + 1:04d}"
        pick = _Pick(conversation, Turn(text=FALLBACK_TEXT), "fallback", stem, previous)
        index_of_session = conversation.session
        if index_of_session >= len(self.script.sessions):
            if self.script.after_last != "repeat":
                return pick
            index_of_session = len(self.script.sessions) - 1
        session = self.script.sessions[index_of_session]
        index = number % len(session.turns) if session.loop else number
        if index < len(session.turns):
            pick.turn = session.turns[index]
            pick.label = f"{index_of_session + 1}.{index + 1}"
        return pick

    def _take_judge(self, messages: list[Any]) -> _Pick:
        """The first judge reply whose match strings all occur in `messages` (a fallback when none)."""
        text = _messages_text(messages)
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        stem = f"judge_{digest[:12]}"
        for number, judge in enumerate(self.script.judges, start=1):
            if all(needle in text for needle in judge.match):
                return _Pick(None, judge.as_turn(), f"judge.{number}", stem, None)
        return _Pick(None, Turn(text=JUDGE_FALLBACK_TEXT), "judge.fallback", stem, None)

    def answer_message(self, request: Mapping[str, Any]) -> Reply:
        """The reply to one `POST /v1/messages` body."""
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_reply(400, "messages: at least one message is required")
        if _asks_for_structured_output(request):
            pick = self._take_judge(messages)
        else:
            pick = self._take_turn(messages)
        turn, stem = pick.turn, pick.stem
        request_id = f"req_scripted_{stem}"
        if turn.error is not None:
            reply = error_reply(turn.error, turn.message, retry_after=turn.retry_after, request_id=request_id)
            if turn.should_retry is not None:
                reply.headers["x-should-retry"] = "true" if turn.should_retry else "false"
        else:
            usage = estimate_usage(request, pick.previous_total)
            if pick.conversation is not None:
                with self._lock:
                    pick.conversation.previous_total = sum(usage.values())
            usage["output_tokens"] = _output_tokens(turn)
            if turn.usage is not None:
                usage.update(turn.usage.model_dump(exclude_none=True))
            limit = request.get("max_tokens")
            if isinstance(limit, int) and usage["output_tokens"] > limit:
                # As the API does: a reply never has more output than max_tokens allowed.
                usage["output_tokens"] = limit
            message = self._message(request, turn, stem, usage)
            reply = Reply(200, {"request-id": request_id, "content-type": "application/json"}, body=message)
            if request.get("stream") is True:
                reply.body = None
                reply.events = list(_stream_events(message))
                reply.headers["content-type"] = "text/event-stream; charset=utf-8"
                reply.headers["cache-control"] = "no-cache"
        reply.headers["x-longrun-scripted-turn"] = pick.label
        reply.delay = turn.delay
        return reply

    @staticmethod
    def _message(request: Mapping[str, Any], turn: Turn, stem: str, usage: dict[str, int]) -> dict[str, Any]:
        # Ids are deterministic (conversation hash and request number, in `stem`) yet unique.
        content: list[dict[str, Any]] = []
        if turn.text is not None:
            content.append({"type": "text", "text": turn.text})
        for number, call in enumerate(turn.calls(), start=1):
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_scripted_{stem}_{number}",
                    "name": call.tool,
                    "input": call.input,
                }
            )
        stop_reason = turn.stop_reason or ("tool_use" if turn.calls() else "end_turn")
        return {
            "id": f"msg_scripted_{stem}",
            "type": "message",
            "role": "assistant",
            "model": str(request.get("model") or "claude-scripted"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
            },
        }


def error_reply(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
) -> Reply:
    """An API error: the error JSON, `request-id`, and retry/reset headers when asked."""
    kind = _error_type(status)
    request_id = request_id or "req_scripted_error"
    body = {
        "type": "error",
        "error": {
            "type": kind,
            "message": message or _ERROR_MESSAGES.get(kind, f"Error {status} (scripted)."),
        },
        "request_id": request_id,
    }
    headers = {"request-id": request_id, "content-type": "application/json"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
        if status == 429:
            reset = datetime.now(UTC) + timedelta(seconds=math.ceil(retry_after))
            stamp = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
            for name in _RESET_HEADERS:
                headers[f"anthropic-ratelimit-{name}-reset"] = stamp
    return Reply(status, headers, body=body)


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of a streamed `message`, in the API's order, with a few deltas a block."""
    usage = message["usage"]
    start = dict(
        message, content=[], stop_reason=None, stop_sequence=None, usage=dict(usage, output_tokens=1)
    )
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in re.findall(r"(?:\S+\s*){1,4}|\s+", block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": dict(block, input={}),
                },
            )
            for piece in ["", *_chunks(json.dumps(block["input"], ensure_ascii=False), 24)]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}
