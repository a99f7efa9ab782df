"""The script format: sessions of turns, judge replies, and loading a script by name or path.

Every problem in a script is one `ScriptError` line naming the file and the key.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

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


SCRIPTS_PACKAGE = "longrun.scheduler.endpoints.scripts"


def builtin_scripts() -> list[str]:
    """Names of the scripts that ship with longrun (`scheduler/endpoints/scripts/<name>.toml`)."""
    folder = resources.files(SCRIPTS_PACKAGE)
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
        text = resources.files(SCRIPTS_PACKAGE).joinpath(f"{ref}.toml").read_text("utf-8")
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
