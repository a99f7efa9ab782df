"""Messages the dashboard's workers post back to the event loop (results of store reads and actions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from longrun.store.board import Changes
from longrun.store.lease import LeaseView
from longrun.store.runs import ApprovalView


@dataclass
class Polled(Message):
    """What changed in the store since the last poll, and what waits for a person."""

    changes: Changes
    supervisor: LeaseView | None
    pending: list[ApprovalView]
    live_sessions: int
    error: str | None = None
    """Why the store could not be read this time (the last read stays on screen)."""
    judging: dict[str, int] = field(default_factory=dict)
    """Run id → the number of its session that has ended and waits for the judge's settling."""


@dataclass
class ActionDone(Message):
    """An action through `scheduler.control` finished: what to tell the person, and how it went."""

    said: str
    ok: bool = True
    run_id: str | None = None


@dataclass
class Loaded(Message):
    """A pane's data, read in a worker; `what` names the pane, `data` is its read model."""

    what: str
    data: Any = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
