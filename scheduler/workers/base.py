"""The worker interface: what every backend is handed and how it reports back.

The harness gives a worker the resume context, the workspace, a deadline and hooks (a pre-call
budget check, a tool-call policy, a stop flag, a wrap-up notice, a handoff sink); the worker
reports what happens as events. Nothing above the worker knows which backend ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from longrun.store.errors import LongrunError
from longrun.store.runs import Usage

if TYPE_CHECKING:
    from longrun.scheduler.session.sandbox import Sandbox


class WorkerUnavailable(LongrunError):
    """A backend cannot make its worker here (a key missing from the environment, a tool not
    installed); the session ends `error` with this line as the reason."""

    title = "worker"


class ToolDecision(StrEnum):
    allow = "allow"
    ask = "ask"
    deny = "deny"


class EndReason(StrEnum):
    finished = "finished"
    """The model ended its turn: it has nothing more to do this session."""
    stopped = "stopped"
    """A stop or pause was requested."""
    budget = "budget"
    """The next model call would not fit in what is left of a budget cap."""
    rate_limited = "rate_limited"
    """The API kept answering with a usage or rate limit."""
    api_error = "api_error"
    breaker = "breaker"
    """A circuit breaker tripped during the session."""
    approval = "approval"
    """The model made a call the approval policy asks a person about (or asked a question): the
    session checkpointed its conversation and paused for the decision."""
    error = "error"


@dataclass(frozen=True)
class ModelCall:
    """One model reply as the worker saw it, with the tokens it used."""

    model: str
    request_id: str | None
    message_id: str
    stop_reason: str | None
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    max_tokens: int
    duration_ms: int
    text: str
    tool_calls: list[str]


class Reporter(Protocol):
    """Where a worker writes what happens; each call is one event, committed before it returns."""

    def model_call(self, call: ModelCall) -> Usage: ...

    def event(self, kind: str, data: dict[str, Any]) -> None: ...


class CheckCall(Protocol):
    def __call__(self, body: dict[str, Any], counted: int | None = None) -> dict[str, Any]: ...


@dataclass
class WorkerHooks:
    check_call: CheckCall
    """Pre-call budget check: given the request body (and the API's count of its input tokens,
    when one was asked for), return it (maybe with a lower max_tokens) or raise `BudgetExhausted`."""
    tool_policy: Callable[[str, dict[str, Any]], ToolDecision]
    should_stop: Callable[[], bool]
    wrap_up_notice: Callable[[], str | None]
    """A notice to pass to the model once it is time to wrap up; None before then and after."""
    after_tool: Callable[[str, bool, str], None]
    """Called after each tool call (name, is_error, output): where the harness takes periodic
    checkpoints and watches for the same error coming back."""
    handoff: Callable[[dict[str, Any]], str]
    """Record the worker's handoff and checkpoint; returns a line to tell the model."""
    pause: Callable[[list[dict[str, Any]], list[dict[str, Any]]], str] | None = None
    """Called with the conversation (ending with the model's message) and the tool calls of it that
    wait for a person, before any of its calls runs: records them; returns what to say."""
    keep_conversation: Callable[[list[dict[str, Any]]], None] | None = None
    """Called once at the end with the whole conversation, so a later session can go on from it
    exactly (`longrun resume --exact`)."""
    propose_features: Callable[[list[dict[str, Any]]], str] | None = None
    """In an initializer session: record the proposed done-condition; returns a line to tell the
    model, or raises `ValueError` with what is wrong with the proposal."""


@dataclass(frozen=True)
class Decided:
    """What a person decided about one waiting tool call: run it, refuse it (with what to tell the
    model), or, for a question, the answer."""

    action: str
    """run, deny or answer."""
    text: str = ""


@dataclass(frozen=True)
class ResumePoint:
    """A conversation that paused for a person, to go on from exactly where it stopped."""

    messages: list[dict[str, Any]]
    """The history, ending with the model's message whose tool calls waited."""
    decided: dict[str, Decided]
    """By tool_use id; a call of that message not in here runs as it would have."""
    notice: str = ""
    """A line for the model with the results (who decided, when)."""


@dataclass(frozen=True)
class WorkerTask:
    """What one session asks of a worker."""

    context: str
    workspace: Path
    deadline: datetime
    model: str
    max_tokens: int
    resume: ResumePoint | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    """Where the worker's hands run (None: unconfined, as `[sandbox] mode = "off"` asks)."""
    wrap_up_at: datetime | None = None
    """When the session's wrap-up begins (`hooks.wrap_up_notice` says so then), for a worker that
    tells its process ahead of time."""


@dataclass(frozen=True)
class WorkerSetup:
    """What a backend's factory may need besides its `[worker]` table to make a session's worker."""

    run_id: str
    session_n: int
    """The session's number within its run, counted from 1."""
    spec_dir: Path | None
    """The folder of the run's spec file, for paths the spec gave relative to it."""


@dataclass(frozen=True)
class WorkerOutcome:
    reason: EndReason
    detail: str = ""
    retry_at: datetime | None = None
    """For `rate_limited`: when the provider said the limit resets."""


class Worker(Protocol):
    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome: ...
