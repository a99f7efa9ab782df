"""Where the rows go: events in big `executemany` batches on the store's own connection, committed
every so often, and the few other rows once the log is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from longrun.bench.common import (
    APPROVAL_INSERT,
    BREAKER_INSERT,
    CHECKPOINT_INSERT,
    EVENT_INSERT,
    SESSION_INSERT,
    VERDICT_INSERT,
    Totals,
    progress,
)
from longrun.store import log
from longrun.store.db import Store

EVENTS_PER_INSERT = 20_000
EVENTS_PER_COMMIT = 250_000

_RUN_FINISH = (
    "UPDATE run SET state = ?, state_reason = ?, updated_at = ?, head_checkpoint_id = ?, next_reason = ?, "
    "spent_usd = ?, input_tokens = ?, output_tokens = ?, cache_write_tokens = ?, cache_read_tokens = ? "
    "WHERE id = ?"
)
_CONVERSATION_INSERT = (
    "INSERT INTO conversation (id, run_id, session_id, checkpoint_id, reason, messages_json, created_at, "
    "resumed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SPEND_DAY_INSERT = (
    "INSERT INTO spend_day (run_id, day, spent_usd, input_tokens, output_tokens, cache_write_tokens, "
    "cache_read_tokens) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class Sink:
    """Where rows go: `executemany` on the store's own sqlite3 connection, committed every
    `EVENTS_PER_COMMIT` events so that no one transaction holds the whole log."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer: list[tuple[Any, ...]] = []
        self.uncommitted = 0
        self.written = 0
        self._tx: Any = None
        self.cursor: Any = None

    def __enter__(self) -> Sink:
        self._open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.flush(commit=False)
        self._close(kind, exc, tb)
        if exc is None:  # the events went in around `log.append`: keep and anchor the heads as it would
            log.record_heads(self.store)

    def _open(self) -> None:
        self._tx = self.store.writing()
        conn = self._tx.__enter__()
        self.cursor = conn.connection.driver_connection.cursor()

    def _close(self, kind: Any = None, exc: Any = None, tb: Any = None) -> None:
        self.cursor.close()
        tx, self._tx = self._tx, None
        tx.__exit__(kind, exc, tb)

    def event(self, row: tuple[Any, ...]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= EVENTS_PER_INSERT:
            self.flush(commit=True)

    def flush(self, *, commit: bool) -> None:
        if self.buffer:
            self.cursor.executemany(EVENT_INSERT, self.buffer)
            self.written += len(self.buffer)
            self.uncommitted += len(self.buffer)
            self.buffer = []
        if commit and self.uncommitted >= EVENTS_PER_COMMIT:
            self._close()
            self._open()
            self.uncommitted = 0
            progress(f"synth: {self.written:,} events written")

    def rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.cursor.executemany(sql, rows)


@dataclass
class Ids:
    """The next id of each table whose ids the store would hand out (chosen here, up front)."""

    session: int
    checkpoint: int
    approval: int
    conversation: int

    def take(self, table: str) -> int:
        value = getattr(self, table)
        setattr(self, table, value + 1)
        return int(value)


@dataclass
class Rows:
    """Every row but the events, kept until the log is written (they are few)."""

    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoints: dict[int, list[Any]] = field(default_factory=dict)
    verdicts: list[tuple[Any, ...]] = field(default_factory=list)
    approvals: dict[int, list[Any]] = field(default_factory=dict)
    conversations: dict[int, list[Any]] = field(default_factory=dict)
    breakers: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    spend_days: dict[tuple[str, str], Totals] = field(default_factory=dict)
    finished_runs: list[tuple[Any, ...]] = field(default_factory=list)

    def write(self, sink: Sink) -> None:
        sink.rows(SESSION_INSERT, self.sessions)
        sink.rows(CHECKPOINT_INSERT, [tuple(r) for r in self.checkpoints.values()])
        sink.rows(VERDICT_INSERT, self.verdicts)
        sink.rows(APPROVAL_INSERT, [tuple(r) for r in self.approvals.values()])
        sink.rows(_CONVERSATION_INSERT, [tuple(r) for r in self.conversations.values()])
        sink.rows(BREAKER_INSERT, [tuple(r) for r in self.breakers.values()])
        sink.rows(
            _SPEND_DAY_INSERT, [(run, day, *totals.row()) for (run, day), totals in self.spend_days.items()]
        )
        sink.rows(_RUN_FINISH, self.finished_runs)


def stamp(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")
