"""What longrun and a command say to each other: files in a folder of the session's and `LONGRUN_*`
variables that name them.

The folder is made outside the workspace (so nothing of it lands in a checkpoint) and shown to
the command at the same path inside the sandbox; it is removed when the session ends. In it:
`context.md` (what the session is told), `handoff.json` (what the command leaves for the next
session), `events.jsonl` (the lines it writes as it goes, read by `lines`) and `.signals`, the
way SIGUSR1 and SIGTERM reach a command inside the sandbox (`process`).

Everything the command writes is untrusted: the handoff is checked whole, bounded, and any secret
the command was given by name is blanked out of it (`Redactor`) before it is recorded.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from longrun.scheduler.workers.base import ResumePoint, WorkerUnavailable
from longrun.scheduler.workers.command.spec import FromEnv

CONTEXT_FILE = "context.md"
HANDOFF_FILE = "handoff.json"
EVENTS_FILE = "events.jsonl"
SIGNALS_FIFO = ".signals"

HANDOFF_BYTES = 256 * 1024
"""A handoff file larger than this is refused unread."""
HANDOFF_ITEMS = 50
HANDOFF_ITEM_CHARS = 1_000
HANDOFF_NOTES_CHARS = 4_000
RETRY_AT_MOST = timedelta(days=7)
"""How far ahead a `retry_at` may be: a later one is a mistake, not a usage window."""

RECORD_ROLE = "command"
"""The `role` of the record a command's session keeps when it pauses on its questions."""

REDACTED = "[redacted: {}]"
MIN_REDACTED = 4
"""Secret values shorter than this are not looked for (they would blank ordinary words)."""


@dataclass(frozen=True)
class SessionFolder:
    """The session's folder of contract files."""

    path: Path

    @classmethod
    def make(cls) -> SessionFolder:
        return cls(Path(tempfile.mkdtemp(prefix="longrun-command-")))

    @property
    def context(self) -> Path:
        return self.path / CONTEXT_FILE

    @property
    def handoff(self) -> Path:
        return self.path / HANDOFF_FILE

    @property
    def events(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def signals(self) -> Path:
        return self.path / SIGNALS_FIFO

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def resolve_env(
    env: Mapping[str, str | FromEnv], environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The spec's `env` as values, and of them the secrets (those given `from_env`), by name;
    a `from_env` variable missing from longrun's environment is a `WorkerUnavailable`."""
    values: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for name, given in env.items():
        if isinstance(given, str):
            values[name] = given
            continue
        value = environ.get(given.from_env)
        if value is None:
            raise WorkerUnavailable(
                f"worker.env.{name}: {given.from_env} is not set in longrun's environment"
            )
        values[name] = secrets[name] = value
    return values, secrets


@dataclass(frozen=True)
class Times:
    """When the command is told to wrap up and when it must have ended."""

    wrap_up_at: datetime
    deadline: datetime
    """SIGKILL then, at the latest (SIGTERM comes a few seconds before)."""


def contract_env(
    folder: SessionFolder, times: Times, run_id: str, session_n: int, model: str, max_tokens: int
) -> dict[str, str]:
    """The `LONGRUN_*` variables of the contract (the README's reference lists them)."""
    return {
        "LONGRUN_CONTEXT_FILE": str(folder.context),
        "LONGRUN_HANDOFF_FILE": str(folder.handoff),
        "LONGRUN_EVENTS_FILE": str(folder.events),
        "LONGRUN_WRAP_UP_AT": _iso(times.wrap_up_at),
        "LONGRUN_DEADLINE": _iso(times.deadline),
        "LONGRUN_RUN_ID": run_id,
        "LONGRUN_SESSION": str(session_n),
        "LONGRUN_MODEL": model,
        "LONGRUN_MAX_TOKENS": str(max_tokens),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def context_text(context: str, resume: ResumePoint | None) -> str:
    """What `context.md` says: the resume context, and the answers to the questions the last
    session paused on, when this session goes on from them."""
    if resume is None or not resume.messages or resume.messages[0].get("role") != RECORD_ROLE:
        return context
    lines = ["", "", "## Answers to the questions the last session asked"]
    for question in resume.messages[0].get("questions") or []:
        decided = resume.decided.get(str(question.get("id")))
        if decided is None:
            continue
        asked = str(question.get("question", ""))
        said = decided.text if decided.action == "answer" else f"(no answer) {decided.text}"
        lines.append(f"- {asked!r}: {said}")
    return context + "\n".join(lines) + "\n"


class _Handoff(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    done: list[StrictStr] = Field(default_factory=list)
    next: list[StrictStr] = Field(default_factory=list)
    blockers: list[StrictStr] = Field(default_factory=list)
    notes: StrictStr = ""
    retry_at: StrictStr | None = None


@dataclass(frozen=True)
class HandoffRead:
    """What the handoff file said: the handoff to record, a `retry_at`, or what is wrong with it."""

    handoff: dict[str, Any] | None = None
    retry_at: datetime | None = None
    problem: str | None = None


def open_written(path: Path) -> tuple[int | None, str | None]:
    """Open a file the command wrote, for reading: (its descriptor, or None; what is wrong, if
    anything). Never through a symbolic link and only a regular file: the command may point a name
    in its folder at one of the user's files, which this process, outside the sandbox, would
    otherwise read. A file that is not there is (None, None)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, f"{path.name} is a symbolic link: not read"
        return None, f"{path.name} cannot be read ({exc.strerror})"
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None, f"{path.name} is not a regular file: not read"
    return fd, None


def read_handoff(path: Path, redactor: Redactor, now: datetime) -> HandoffRead:
    """Read and check the command's handoff; a file that is not there is no handoff."""
    fd, problem = open_written(path)
    if fd is None:
        return HandoffRead(problem=problem)
    try:
        size = os.fstat(fd).st_size
        raw = b"" if size > HANDOFF_BYTES else os.read(fd, HANDOFF_BYTES + 1)
    except OSError as exc:
        return HandoffRead(problem=f"handoff.json cannot be read ({exc.strerror})")
    finally:
        os.close(fd)
    if size > HANDOFF_BYTES or len(raw) > HANDOFF_BYTES:
        return HandoffRead(problem=f"handoff.json is {max(size, len(raw))} bytes, more than {HANDOFF_BYTES}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return HandoffRead(problem=f"handoff.json is not JSON: {_first_line(str(exc))}")
    except RecursionError:
        return HandoffRead(problem="handoff.json is nested too deep")
    if not isinstance(data, dict):
        return HandoffRead(problem=f"handoff.json: expected an object, found {_json_kind(data)}")
    try:
        given = _Handoff.model_validate(data)
    except ValidationError as exc:
        return HandoffRead(problem=f"handoff.json: {problem_line(exc)}")
    retry_at: datetime | None = None
    if given.retry_at is not None:
        try:
            retry_at = datetime.fromisoformat(given.retry_at)
        except ValueError:
            return HandoffRead(
                problem=f"handoff.json: retry_at: expected an ISO time, found {given.retry_at!r}"
            )
        retry_at = retry_at.replace(tzinfo=UTC) if retry_at.tzinfo is None else retry_at.astimezone(UTC)
        if retry_at > now + RETRY_AT_MOST:
            return HandoffRead(problem=f"handoff.json: retry_at: {given.retry_at} is more than 7 days away")
        if retry_at <= now:
            retry_at = None  # already past: nothing to wait for
    handoff = {
        "done": [_cut(item, HANDOFF_ITEM_CHARS) for item in given.done[:HANDOFF_ITEMS]],
        "next": [_cut(item, HANDOFF_ITEM_CHARS) for item in given.next[:HANDOFF_ITEMS]],
        "blockers": [_cut(item, HANDOFF_ITEM_CHARS) for item in given.blockers[:HANDOFF_ITEMS]],
        "notes": _cut(given.notes, HANDOFF_NOTES_CHARS),
    }
    return HandoffRead(handoff=redactor.data(handoff), retry_at=retry_at)


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "list_type": "expected an array",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "float_type": "expected a number",
}


_BOUNDS = {
    "greater_than_equal": "expected at least {ge}",
    "less_than_equal": "expected at most {le}",
    "string_too_short": "expected at least {min_length} character(s)",
    "string_too_long": "expected at most {max_length} character(s)",
    "too_short": "expected at least {min_length} item(s)",
    "too_long": "expected at most {max_length} item(s)",
}


def problem_line(exc: ValidationError) -> str:
    """The first problem of a validation as `key.path: what is wrong` (keys as JSON names them)."""
    error = exc.errors(include_url=False)[0]
    loc = "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in error["loc"]).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        what = "unknown key"
    elif kind == "missing":
        what = "missing"
    elif kind in _EXPECTED:
        what = f"{_EXPECTED[kind]}, found {_shown(error.get('input'))}"
    elif kind in _BOUNDS:
        what = f"{_BOUNDS[kind].format(**(error.get('ctx') or {}))}, found {_shown(error.get('input'))}"
    else:
        msg = _first_line(str(error["msg"]))
        what = f"{msg[:1].lower()}{msg[1:]}, found {_shown(error.get('input'))}"
    return f"{loc}: {what}" if loc else what


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return _shown(value)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Redactor:
    """Blanks the secrets a command was given (by name, from longrun's environment) out of
    whatever it writes, before that is recorded: a secret's value never reaches the store."""

    secrets: dict[str, str] = field(default_factory=dict)

    def text(self, text: str) -> str:
        """`text` with every secret replaced, and a secret's start or end cut off at either edge
        of it (a piece of output may end inside one)."""
        for name, value in self.secrets.items():
            if len(value) < MIN_REDACTED:
                continue
            marker = REDACTED.format(name)
            text = text.replace(value, marker)
            for k in range(len(value) - 1, MIN_REDACTED - 1, -1):
                if text.endswith(value[:k]):
                    text = text[:-k] + marker
                    break
            for k in range(len(value) - 1, MIN_REDACTED - 1, -1):
                if text.startswith(value[-k:]):
                    text = marker + text[k:]
                    break
        return text

    def data(self, value: Any) -> Any:
        """A JSON value with every string (keys too) passed through `text`."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        return value
