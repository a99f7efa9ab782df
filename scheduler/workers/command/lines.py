"""The lines a command writes to `LONGRUN_EVENTS_FILE`: one JSON object a line, each with a `kind`.

They are untrusted input. Each is checked against its kind's fields (unknown keys and wrong types
refused), its strings are cut to a bound, and a line that is not JSON, is too long, or is wrong
is one `command_line_refused` event naming its number and what is wrong, never a crash. However
much is written, a session reads a bounded amount (`READ_BYTES`) and records a bounded number of
lines (`MAX_LINES`); what is left over is counted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from longrun.scheduler.guards.policy import ASK_HUMAN
from longrun.scheduler.workers.base import ModelCall
from longrun.scheduler.workers.command.contract import open_written, problem_line

LINE_BYTES = 64 * 1024
"""A line longer than this is refused (and skipped to its end)."""
READ_BYTES = 64 * 1024 * 1024
"""What one session reads of the file at most; the rest is not read."""
CHUNK_BYTES = 1024 * 1024
"""What one look at the file reads at most, so a flood cannot hold the session up."""
MAX_LINES = 5_000
"""Lines recorded as events in one session; later ones are counted, not recorded."""
MAX_REFUSED = 50
"""Refused lines recorded one by one; later ones are counted."""
MAX_QUESTIONS = 5

TEXT_CHARS = 2_000
OUTPUT_CHARS = 4_000
"""How much of a tool's output goes into its event (as with the other workers)."""
INPUT_BYTES = 8_000
"""A tool call's input, as JSON, at most."""
TOKENS_AT_MOST = 10_000_000
"""Tokens of one kind that one `usage` line may report."""
DEPTH = 32
"""How deep a line's JSON may nest (what is recorded is walked, and never to Python's limit)."""

Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Tokens = Annotated[StrictInt, Field(ge=0, le=TOKENS_AT_MOST)]


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ToolCallLine(_Line):
    kind: Literal["tool_call"]
    tool: Name
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultLine(_Line):
    kind: Literal["tool_result"]
    tool: Name
    is_error: StrictBool = False
    output: StrictStr = ""


class NoteLine(_Line):
    kind: Literal["note"]
    text: StrictStr


class QuestionLine(_Line):
    kind: Literal["question"]
    question: Annotated[StrictStr, Field(min_length=1)]
    why: StrictStr = ""
    choices: Annotated[list[Annotated[StrictStr, Field(max_length=200)]], Field(max_length=20)] = Field(
        default_factory=list
    )


class UsageLine(_Line):
    kind: Literal["usage"]
    model: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    duration_ms: Annotated[StrictInt, Field(ge=0)] = 0


class ProgressLine(_Line):
    kind: Literal["progress"]
    text: StrictStr = ""
    done: Annotated[StrictInt, Field(ge=0)] | None = None
    total: Annotated[StrictInt, Field(ge=1)] | None = None


Line = ToolCallLine | ToolResultLine | NoteLine | QuestionLine | UsageLine | ProgressLine
KINDS = ("tool_call", "tool_result", "note", "question", "usage", "progress")
_LINE: TypeAdapter[Line] = TypeAdapter(Annotated[Line, Field(discriminator="kind")])


def parse_line(raw: bytes) -> Line | str:
    """One line as its model, or what is wrong with it (one line of text)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return f"not JSON ({str(exc).splitlines()[0][:120]})"
    except RecursionError:
        return f"nested deeper than {DEPTH} levels"
    if not isinstance(data, dict):
        return "expected a JSON object"
    if depth(data) > DEPTH:
        return f"nested deeper than {DEPTH} levels"
    kind = data.get("kind")
    if kind not in KINDS:
        found = "no kind" if kind is None else f"kind {json.dumps(kind)[:60]}"
        return f"{found}: expected one of {', '.join(KINDS)}"
    try:
        line = _LINE.validate_python(data)
    except ValidationError as exc:
        return f"{kind}: {problem_line(exc).removeprefix(kind + '.')}"
    if isinstance(line, ToolCallLine):
        size = len(json.dumps(line.input, ensure_ascii=False))
        if size > INPUT_BYTES:
            return f"tool_call: input is {size} bytes of JSON, more than {INPUT_BYTES}"
    if isinstance(line, ProgressLine) and None not in (line.done, line.total):
        assert line.done is not None and line.total is not None
        if line.done > line.total:
            return f"progress: done ({line.done}) is more than total ({line.total})"
    return line


def depth(value: Any) -> int:
    """How deep a JSON value nests (a scalar is 0), found without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level + 1)
            if deepest > DEPTH:
                return deepest
            todo.extend((child, level + 1) for child in children)
    return deepest


@dataclass(frozen=True)
class RawLine:
    number: int
    """Counted from 1, as an editor does."""
    data: bytes | None
    """None: the line was longer than `LINE_BYTES` and was skipped."""


class EventsFile:
    """Reads the lines appended to the events file since the last look, whole lines only (the last,
    unfinished one waits for its end, or for the command's end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.pending = b""
        self.number = 0
        self.skipping = False
        """Inside a line too long to keep: drop bytes until its end."""
        self.unread = False
        """`READ_BYTES` was reached: the rest of the file is left unread."""
        self.problem: str | None = None
        """Why the file is no longer read (the command made it something other than a file)."""

    def new_lines(self, final: bool = False) -> Iterator[RawLine]:
        """The lines written since the last look; `final`: the command has ended, so a last line
        without its newline is whole."""
        chunk = self._read()  # first: a file written anew drops what was pending
        data, self.pending = self.pending + chunk, b""
        while True:
            end = data.find(b"\n")
            if end < 0:
                break
            piece, data = data[:end], data[end + 1 :]
            if self.skipping:  # the end of a line already refused as too long
                self.skipping = False
                continue
            yield from self._line(piece)
        if self.skipping:
            self.skipping = not final
        elif len(data) > LINE_BYTES:
            self.number += 1
            yield RawLine(self.number, None)
            self.skipping = not final
        elif final and data:
            yield from self._line(data)
        else:
            self.pending = data

    def _line(self, piece: bytes) -> Iterator[RawLine]:
        self.number += 1
        if len(piece) > LINE_BYTES:
            yield RawLine(self.number, None)
        elif piece.strip():
            yield RawLine(self.number, piece)

    def _read(self) -> bytes:
        if self.unread or self.problem is not None:
            return b""
        fd, self.problem = open_written(self.path)
        if fd is None:
            return b""
        try:
            if os.fstat(fd).st_size < self.offset:  # written anew (`>` for `>>`): read it again
                self.offset, self.pending = 0, b""
            os.lseek(fd, self.offset, os.SEEK_SET)
            chunk = os.read(fd, min(CHUNK_BYTES, READ_BYTES - self.offset))
        except OSError:
            return b""
        finally:
            os.close(fd)
        self.offset += len(chunk)
        if self.offset >= READ_BYTES:
            self.unread = True
        return chunk


def event_data(
    line: ToolCallLine | ToolResultLine | NoteLine | ProgressLine | QuestionLine,
) -> tuple[str, dict[str, Any]]:
    """The event a (valid) line becomes, its strings cut to their bounds; a question is recorded
    as the `ask_human` call it is for the other workers."""
    if isinstance(line, ToolCallLine):
        return "tool_call", {"tool": line.tool, "input": line.input}
    if isinstance(line, ToolResultLine):
        return "tool_result", {
            "tool": line.tool,
            "is_error": line.is_error,
            "output": line.output[-OUTPUT_CHARS:],
        }
    if isinstance(line, NoteLine):
        return "note", {"text": _cut(line.text)}
    if isinstance(line, QuestionLine):
        return "tool_call", {"tool": ASK_HUMAN, "input": question_input(line)}
    data: dict[str, Any] = {"text": _cut(line.text)}
    if line.done is not None:
        data["done"] = line.done
    if line.total is not None:
        data["total"] = line.total
    return "progress", data


def question_input(line: QuestionLine) -> dict[str, Any]:
    return {"question": _cut(line.question), "why": _cut(line.why), "choices": list(line.choices)}


def model_call(line: UsageLine, model: str) -> ModelCall:
    """A `usage` line as the model call it reports (`model`: the worker's, when it names none)."""
    return ModelCall(
        model=line.model or model,
        request_id=None,
        message_id="",
        stop_reason=None,
        input_tokens=line.input_tokens,
        output_tokens=line.output_tokens,
        cache_write_tokens=line.cache_write_tokens,
        cache_read_tokens=line.cache_read_tokens,
        max_tokens=0,
        duration_ms=line.duration_ms,
        text="",
        tool_calls=[],
    )


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 3] + "..."
