"""A scripted, Anthropic-compatible model server on loopback.

It answers `POST /v1/messages` (plain and streaming) and `POST /v1/messages/count_tokens`
the way the real Messages API does, but every reply comes from a script: one list of turns
per agent session. The real `anthropic` SDK, and the real agent built on it, can then run in
tests and in the demo with no network and no API key.

A request whose first user message has not been seen before opens a new conversation, which
takes the script's next session; later requests of that conversation (same first message)
take that session's next turn, retries included. Error turns are turns.

A request that asks for structured output (its body has `output_config.format`) is the rubric
judge's, not the worker's: it takes no session and moves no conversation on. It is answered
from the script's optional `judges` list, statelessly: the first entry whose `match` strings
(one string or a list; none: always) all occur in the text of the request's messages.

    [[judges]]
    match = "def reading_time"
    verdict = { verdict = "pass", confidence = 0.9, rationale = "...", criteria = [
        { criterion = "counts words", met = true, note = "..." } ] }

    [[judges]]                # no match: the default
    text = "not JSON"         # raw reply text, e.g. to test a malformed reply

An entry gives `verdict` (sent as JSON text) or `text`, with optional `stop_reason`, `usage`
and `delay`; or `error` with optional `message`, `retry_after` and `should_retry`, as turns do.
A judge request no entry matches gets `JUDGE_FALLBACK_TEXT`, which is not JSON, so the judge
reports an error verdict rather than a made-up pass.

Token usage, when a turn gives none, is a deterministic estimate (see `estimate_usage`).

    python -m longrun.scheduler.scripted --script demo --port 8765
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import signal
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from longrun.store.errors import ScriptError

FALLBACK_TEXT = "The script has nothing more for this session."
JUDGE_FALLBACK_TEXT = "The script has no judge reply for this request."
CHARS_PER_TOKEN = 4

# --- the script format -------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a duration string ("250ms", "2s", "1.5m", "1h")."""
    if isinstance(value, bool):
        raise ValueError(f'expected seconds or a duration like "2s", found {_describe(value)}')
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"expected a duration of 0 or more seconds, found {_describe(value)}")
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match[1]) * _UNIT_SECONDS[match[2]]
    raise ValueError(f'expected seconds or a duration like "2s", found {_describe(value)}')


Seconds = Annotated[float, BeforeValidator(parse_duration)]
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ToolCall(_Strict):
    """One tool call of a turn: the tool's name and its input."""

    tool: Annotated[str, Field(min_length=1)]
    input: dict[str, Any] = Field(default_factory=dict)


class UsageOverride(_Strict):
    """Token numbers a turn reports instead of the server's estimate (any subset)."""

    input_tokens: Annotated[int, Field(ge=0)] | None = None
    output_tokens: Annotated[int, Field(ge=0)] | None = None
    cache_creation_input_tokens: Annotated[int, Field(ge=0)] | None = None
    cache_read_input_tokens: Annotated[int, Field(ge=0)] | None = None


class Turn(_Strict):
    """One model reply: text, one or more tool calls (with optional text before), or an error."""

    text: Annotated[str, Field(min_length=1)] | None = None
    tool: Annotated[str, Field(min_length=1)] | None = None
    input: dict[str, Any] | None = None
    tools: Annotated[list[ToolCall], Field(min_length=1)] | None = None
    stop_reason: StopReason | None = None
    usage: UsageOverride | None = None
    delay: Seconds = 0.0
    error: Annotated[int, Field(ge=400, le=599)] | None = None
    message: Annotated[str, Field(min_length=1)] | None = None
    retry_after: Seconds | None = None
    should_retry: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = {name for name in self.model_fields_set if getattr(self, name) is not None}
        if self.tool is not None and self.tools is not None:
            raise ValueError("a turn has either tool (with input) or tools, not both")
        if self.input is not None and self.tool is None:
            raise ValueError("input goes with tool; this turn has no tool")
        if self.error is not None:
            clash = sorted(given & {"text", "tool", "input", "tools", "stop_reason", "usage"})
            if clash:
                raise ValueError(f"a turn cannot have both error and {' and '.join(clash)}")
        else:
            extra = sorted(given & {"message", "retry_after", "should_retry"})
            if extra:
                raise ValueError(f"{', '.join(extra)} only go with error; this turn has no error")
            if self.text is None and self.tool is None and self.tools is None:
                raise ValueError("a turn needs text, tool, tools or error")
        return self

    def calls(self) -> list[ToolCall]:
        """The turn's tool calls, in order (none for a text or error turn)."""
        if self.tool is not None:
            return [ToolCall(tool=self.tool, input=self.input or {})]
        return list(self.tools or [])


def _match_strings(value: object) -> object:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError(f"expected a string or an array of strings, found {_describe(value)}")


class ScriptedCriterion(_Strict):
    """One rubric criterion of a scripted verdict."""

    criterion: Annotated[str, Field(min_length=1)]
    met: bool
    note: str = ""


class ScriptedVerdict(_Strict):
    """A verdict a judge entry replies with, in the shape the rubric judge asks for."""

    verdict: Literal["pass", "fail"]
    confidence: Annotated[float, Field(ge=0, le=1)] = 0.9
    rationale: str = "(scripted)"
    criteria: list[ScriptedCriterion] = Field(default_factory=list)


class JudgeTurn(_Strict):
    """The reply to judge requests whose messages hold every `match` string."""

    match: Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_match_strings)] = Field(
        default_factory=list
    )
    verdict: ScriptedVerdict | None = None
    text: Annotated[str, Field(min_length=1)] | None = None
    stop_reason: StopReason | None = None
    usage: UsageOverride | None = None
    delay: Seconds = 0.0
    error: Annotated[int, Field(ge=400, le=599)] | None = None
    message: Annotated[str, Field(min_length=1)] | None = None
    retry_after: Seconds | None = None
    should_retry: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = {name for name in self.model_fields_set if getattr(self, name) is not None}
        kinds = sorted(given & {"verdict", "text", "error"})
        if len(kinds) > 1:
            raise ValueError(f"a judge reply has one of verdict, text or error, not {' and '.join(kinds)}")
        if not kinds:
            raise ValueError("a judge reply needs verdict, text or error")
        if self.error is not None:
            clash = sorted(given & {"stop_reason", "usage"})
            if clash:
                raise ValueError(f"a judge reply cannot have both error and {' and '.join(clash)}")
        else:
            extra = sorted(given & {"message", "retry_after", "should_retry"})
            if extra:
                raise ValueError(f"{', '.join(extra)} only go with error; this judge reply has no error")
        return self

    def as_turn(self) -> Turn:
        """The reply as a turn, the verdict serialised to the JSON text a model would send."""
        text = self.text
        if self.verdict is not None:
            text = json.dumps(self.verdict.model_dump(), ensure_ascii=False)
        return Turn(
            text=text,
            stop_reason=self.stop_reason,
            usage=self.usage,
            delay=self.delay,
            error=self.error,
            message=self.message,
            retry_after=self.retry_after,
            should_retry=self.should_retry,
        )


class ScriptSession(_Strict):
    """What the model does in one agent session: its turns, in order."""

    loop: bool = False
    turns: Annotated[list[Turn], Field(min_length=1)]


class Script(_Strict):
    """A whole script: one `ScriptSession` per agent session of a run."""

    description: str = ""
    sessions: Annotated[list[ScriptSession], Field(min_length=1)]
    after_last: Literal["fallback", "repeat"] = "fallback"
    """What a conversation beyond the last session plays: one fallback text reply, or the last
    session again (for scripts whose last session can finish the work from any state)."""
    judges: list[JudgeTurn] = Field(default_factory=list)
    """Replies to the rubric judge's requests, the first that matches each (see the module)."""
    _source: str = PrivateAttr(default="<script>")

    @property
    def source(self) -> str:
        """Where the script came from, for messages (a file name or "<script>")."""
        return self._source


# Which model a key belongs to, found from the nearest enclosing key, to list allowed keys.
_MODEL_OF_PARENT: dict[str | None, type[BaseModel]] = {
    None: Script,
    "sessions": ScriptSession,
    "turns": Turn,
    "tools": ToolCall,
    "usage": UsageOverride,
    "judges": JudgeTurn,
    "verdict": ScriptedVerdict,
    "criteria": ScriptedCriterion,
}

_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "list_type": "expected an array",
}


def _describe(value: object) -> str:
    """A value as a person reading TOML would name it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if value is None:
        return "nothing (null)"
    return str(value)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _one_line(error: Mapping[str, Any]) -> str:
    """Turn the first pydantic error into `key.path: what is wrong`."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind = error["type"]
    found = _describe(error.get("input"))
    if kind == "extra_forbidden":
        parents = [part for part in loc[:-1] if isinstance(part, str)]
        model = _MODEL_OF_PARENT.get(parents[-1] if parents else None)
        allowed = f" (allowed: {', '.join(model.model_fields)})" if model else ""
        what = f"unknown key{allowed}"
    elif kind == "missing":
        what = "is required"
    elif kind in _EXPECTED:
        what = f"{_EXPECTED[kind]}, found {found}"
    elif kind == "literal_error":
        what = f"expected one of {error['ctx']['expected']}, found {found}"
    elif kind == "too_short":
        what = "must not be empty"
    elif kind == "value_error":
        what = str(error["ctx"]["error"])
    else:
        msg = str(error["msg"])
        what = f"{msg[:1].lower()}{msg[1:]}, found {found}"
    return f"{_key_path(loc)}: {what}" if loc else what


def script_from_data(data: object, source: str = "<script>") -> Script:
    """Validate parsed TOML/JSON data as a script; errors are one-line `ScriptError`s."""
    if not isinstance(data, Mapping):
        raise ScriptError(f"{source}: expected a table at the top, found {_describe(data)}")
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ScriptError(f"{source}: {_one_line(errors[0])}{more}") from None
    script._source = source
    return script


def builtin_scripts() -> list[str]:
    """Names of the scripts that ship with longrun (`scheduler/scripts/<name>.toml`)."""
    folder = resources.files("longrun.scheduler.scripts")
    return sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))


def load_script(ref: str, base_dir: Path | None = None) -> Script:
    """Load a built-in script by name, or a .toml/.json script file (relative to `base_dir`)."""
    looks_like_path = ref.endswith((".toml", ".json")) or "/" in ref or "\\" in ref
    if not looks_like_path:
        if ref not in builtin_scripts():
            names = ", ".join(builtin_scripts()) or "none"
            raise ScriptError(
                f"no built-in script named {ref!r} (built-in: {names}); or give a .toml/.json path"
            )
        text = resources.files("longrun.scheduler.scripts").joinpath(f"{ref}.toml").read_text("utf-8")
        return _parse(text, "toml", f"{ref}.toml")
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.suffix not in (".toml", ".json"):
        raise ScriptError(f"{ref}: a script file ends in .toml or .json")
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ScriptError(f"{ref}: no such script file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{ref}: cannot read the script ({exc})") from None
    return _parse(text, path.suffix[1:], ref)


def _parse(text: str, kind: str, source: str) -> Script:
    try:
        data = tomllib.loads(text) if kind == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScriptError(f"{source}: not valid {kind.upper()}: {exc}") from None
    return script_from_data(data, source)


# --- token usage ---------------------------------------------------------------------------


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


# --- playing the script ----------------------------------------------------------------------

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


# --- HTTP -------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    player: ScriptPlayer
    owner: ScriptedModelServer


class _Handler(BaseHTTPRequestHandler):
    """One request; each runs in its own thread, so a slow turn blocks nobody else."""

    # One request per connection: after stop() no kept-alive connection can reach a handler.
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "longrun-scripted"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._send(error_reply(404, f"Not found: {self.path} (scripted model server)"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            self._send(error_reply(404, f"Not found: {path} (scripted model server)"))
            return
        try:
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError):
            self._send(error_reply(400, "The request body is not valid JSON."))
            return
        if not isinstance(request, dict):
            self._send(error_reply(400, "The request body must be a JSON object."))
            return
        if path.endswith("count_tokens"):
            body = {"input_tokens": estimate_input_tokens(request)}
            self._send(
                Reply(200, {"request-id": "req_scripted_count", "content-type": "application/json"}, body)
            )
            return
        self.server.owner._record(request)
        reply = self.server.player.answer_message(request)
        if reply.delay and self.server.owner._stopping.wait(reply.delay):
            return  # stopped while a slow turn waited: answer nothing, like a dropped connection
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.close_connection = True
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("connection", "close")
            if reply.body is not None:
                payload = json.dumps(reply.body, ensure_ascii=False).encode()
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.end_headers()
            for event, data in reply.events:
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a time box, a cancelled task): nothing to tell it


class ScriptedModelServer:
    """An Anthropic-compatible Messages API on loopback that plays `script`.

    `first_session` is the (0-based) script session the first new conversation takes, so a
    server started for a resumed run can carry on where the last one stopped.
    """

    def __init__(
        self, script: Script, *, first_session: int = 0, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self._player = ScriptPlayer(script, first_session)
        self._host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT`, to pass as the SDK's `base_url`; the server must be started."""
        if self._httpd is None:
            raise RuntimeError("the scripted model server is not started")
        return f"http://{self._host}:{self._httpd.server_port}"

    def start(self) -> str:
        """Bind (a free port when 0), serve in a daemon thread, and return the base URL."""
        if self._httpd is not None:
            return self.base_url
        self._stopping.clear()
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.player = self._player
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-model-server",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port; turns still waiting out a delay answer nothing."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve a script until SIGTERM or SIGINT; print the base URL as the first line."""
    parser = argparse.ArgumentParser(
        prog="python -m longrun.scheduler.scripted",
        description="Serve an Anthropic-compatible Messages API on loopback that plays a script.",
    )
    parser.add_argument(
        "--script", required=True, help=f"a built-in name ({', '.join(builtin_scripts())}) or a path"
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--first-session", type=int, default=0, help="0-based script session to start at")
    args = parser.parse_args(argv)
    if args.first_session < 0:
        print("scripted: --first-session is 0 or more", file=sys.stderr)
        return 2
    try:
        script = load_script(args.script, base_dir=Path.cwd())
    except ScriptError as exc:
        print(f"scripted: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ScriptedModelServer(script, first_session=args.first_session, port=args.port)
    try:
        url = server.start()
    except OSError as exc:
        print(f"scripted: cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
