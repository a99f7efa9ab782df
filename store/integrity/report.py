"""What `verify` found, as one line per break for a person and as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from longrun.store import log
from longrun.store.integrity.values import plural

SHOWN_PER_KIND = 5
"""Lines `lines()` prints of one kind of break in one run and table before it says how many more."""


class BreakKind(StrEnum):
    """What `verify` found wrong."""

    event_edited = "event_edited"
    """An event's content, or its link to the event before it, does not match its hash."""
    event_missing = "event_missing"
    """A seq in the middle of the chain is gone."""
    tail_truncated = "tail_truncated"
    """The log ends before its head, or its anchor outside the store, says it does."""
    head_rewritten = "head_rewritten"
    """The run's head does not match the log's last event."""
    head_missing = "head_missing"
    """The store keeps no head for a run that has events."""
    anchor_missing = "anchor_missing"
    """The run has no anchor file beside the store."""
    anchor_mismatch = "anchor_mismatch"
    """An anchored hash is not the hash of that event in the log: its history was rewritten."""
    anchor_damaged = "anchor_damaged"
    """A line of the anchor file is not `SEQ HASH`."""
    row_changed = "row_changed"
    """A row says something other than the event that made it."""
    row_missing = "row_missing"
    """An event made a row that is not in its table."""
    row_unrecorded = "row_unrecorded"
    """A row (or a decision, or an end) that no event in the log records."""
    guard_dropped = "guard_dropped"
    """A trigger that refuses edits no code path makes is missing."""


@dataclass(frozen=True)
class FieldChange:
    field: str
    found: Any
    expected: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "found": self.found, "expected": self.expected}


@dataclass(frozen=True)
class Break:
    """One thing found wrong, said in one line (`line`), with the row and what changed."""

    kind: BreakKind
    run_id: str | None
    detail: str
    table: str | None = None
    row: int | str | None = None
    seq: int | None = None
    """The event the break is about (the one that made the row, or where the chain breaks)."""
    changes: tuple[FieldChange, ...] = ()

    @property
    def line(self) -> str:
        return f"{self.kind.value.replace('_', ' ')}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "run_id": self.run_id,
            "table": self.table,
            "row": self.row,
            "seq": self.seq,
            "changes": [c.to_json() for c in self.changes],
            "message": self.line,
        }


@dataclass(frozen=True)
class RunAudit:
    """What `verify` checked of one run and what it found."""

    run_id: str
    name: str | None
    chain: log.ChainReport
    head: tuple[int, str] | None
    anchored: int | None
    """The newest seq anchored outside the store (None: no anchor)."""
    anchor_lines: int
    rows: dict[str, int]
    """Rows checked against the log, by table."""
    breaks: list[Break]
    notes: list[str] = field(default_factory=list)
    """What could not be checked, and why."""

    @property
    def ok(self) -> bool:
        return not self.breaks

    def summary(self) -> str:
        """What was checked, in one line (for a run with no break)."""
        said = [f"chain whole: {self.chain.events} events verified"]
        if self.head is not None:
            said.append(f"head matches (event {self.head[0]}, {self.head[1][:12]}…)")
        if self.anchored is not None:
            said.append(
                f"anchored outside the store up to event {self.anchored} "
                f"({self.anchor_lines} line{'s' if self.anchor_lines != 1 else ''})"
            )
        counted = ", ".join(f"{n} {plural(table, n)}" for table, n in self.rows.items() if n)
        if counted:
            said.append(f"rows match their events: {counted}, budget and spend")
        return "; ".join(said) + ("" if not self.notes else "; " + "; ".join(self.notes))

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "ok": self.ok,
            "chain": self.chain.to_json(),
            "head": None if self.head is None else {"events": self.head[0], "hash": self.head[1]},
            "anchor": {"newest": self.anchored, "lines": self.anchor_lines},
            "rows": self.rows,
            "breaks": [b.to_json() for b in self.breaks],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class StoreAudit:
    """`verify` over some runs of a store: each run's audit and the store's own breaks."""

    runs: list[RunAudit]
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks and all(r.ok for r in self.runs)

    def all_breaks(self) -> list[Break]:
        return [*self.breaks, *(b for r in self.runs for b in r.breaks)]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "breaks": [b.to_json() for b in self.all_breaks()],
            "runs": [r.to_json() for r in self.runs],
        }


def lines(audit: StoreAudit) -> Iterator[str]:
    """The audit as a person reads it: one line per break (at most `SHOWN_PER_KIND` of a kind in
    one run and table, then how many more), and one line per run that is whole."""
    for b in audit.breaks:
        yield b.line
    for run in audit.runs:
        label = f"run {run.name} ({run.run_id})" if run.name else f"run {run.run_id}"
        if run.ok:
            yield f"{label}: {run.summary()}"
            continue
        shown: dict[tuple[BreakKind, str | None], int] = {}
        for b in run.breaks:
            key = (b.kind, b.table)
            shown[key] = shown.get(key, 0) + 1
            if shown[key] <= SHOWN_PER_KIND:
                yield f"{label}: {b.line}"
        for (kind, table), n in shown.items():
            if n > SHOWN_PER_KIND:
                more = kind.value.replace("_", " ") + (f" ({table})" if table else "")
                yield f"{label}: … and {n - SHOWN_PER_KIND} more {more} (all of them in --json)"
