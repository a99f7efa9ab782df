"""Editing a store behind its back, with plain sqlite3, as someone holding the file would: the
tamper tests' hands (`tests/unit/test_integrity.py`, `tests/e2e/test_tamper.py`).

Every edit drops the store's triggers first and puts them back after, so that what `verify`
finds is the edit itself (leaving the triggers gone is an edit of its own: `drop_triggers`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from longrun.store import log

Tamper = Callable[[Path], None]


def edit(home: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement on the store's file with its triggers out of the way."""
    edits(home, [(sql, params)])


def edits(home: Path, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    with closing(sqlite3.connect(home / "longrun.db", isolation_level=None)) as db:
        triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        db.execute("BEGIN IMMEDIATE")
        for name, _ in triggers:
            db.execute(f"DROP TRIGGER {name}")
        for sql, params in statements:
            db.execute(sql, params)
        for _, sql in triggers:
            db.execute(sql)
        db.execute("COMMIT")


def query(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(home / "longrun.db")) as db:
        return db.execute(sql, params).fetchall()


def last_seq(home: Path, run_id: str) -> int:
    return int(query(home, "SELECT max(seq) FROM event WHERE run_id = ?", (run_id,))[0][0])


def delete_tail(run_id: str, n: int) -> Tamper:
    """Delete the run's last `n` events."""

    def tamper(home: Path) -> None:
        edit(home, "DELETE FROM event WHERE run_id = ? AND seq > ?", (run_id, last_seq(home, run_id) - n))

    return tamper


def delete_all_events(run_id: str) -> Tamper:
    def tamper(home: Path) -> None:
        edit(home, "DELETE FROM event WHERE run_id = ?", (run_id,))

    return tamper


def delete_tail_and_rewrite_head(run_id: str, n: int) -> Tamper:
    """Delete the last `n` events and set the run's head to the new last one, so that the log
    and its head agree (only the anchor outside the database still knows)."""

    def tamper(home: Path) -> None:
        keep = last_seq(home, run_id) - n
        (digest,) = query(home, "SELECT hash FROM event WHERE run_id = ? AND seq = ?", (run_id, keep))[0]
        edits(
            home,
            [
                ("DELETE FROM event WHERE run_id = ? AND seq > ?", (run_id, keep)),
                ("UPDATE chain_head SET events = ?, hash = ? WHERE run_id = ?", (keep, digest, run_id)),
            ],
        )

    return tamper


def rewrite_history(run_id: str, seq: int, change: Callable[[dict[str, Any]], None]) -> Tamper:
    """Change event `seq`'s payload and recompute every hash from there on, and the head: a chain
    that proves itself, whose anchor outside the database no longer matches it."""

    def tamper(home: Path) -> None:
        rows = query(
            home,
            "SELECT seq, session_id, ts, kind, data FROM event WHERE run_id = ? AND seq >= ? ORDER BY seq",
            (run_id, seq),
        )
        (prev,) = query(home, "SELECT prev_hash FROM event WHERE run_id = ? AND seq = ?", (run_id, seq))[0]
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for s, session_id, ts, kind, data in rows:
            if s == seq:
                payload = json.loads(data)
                change(payload)
                data = log.canonical_json(payload)
            digest = log.event_hash(prev, run_id, s, ts, session_id, kind, data)
            statements.append(
                (
                    "UPDATE event SET data = ?, prev_hash = ?, hash = ? WHERE run_id = ? AND seq = ?",
                    (data, prev, digest, run_id, s),
                )
            )
            prev = digest
        statements.append(("UPDATE chain_head SET hash = ? WHERE run_id = ?", (prev, run_id)))
        edits(home, statements)

    return tamper


def set_column(table: str, column: str, value: Any, where: str, params: tuple[Any, ...]) -> Tamper:
    def tamper(home: Path) -> None:
        edit(home, f'UPDATE {table} SET "{column}" = ? WHERE {where}', (value, *params))

    return tamper


def run_sql(sql: str, params: tuple[Any, ...] = ()) -> Tamper:
    def tamper(home: Path) -> None:
        edit(home, sql, params)

    return tamper


def drop_triggers(*names: str) -> Tamper:
    def tamper(home: Path) -> None:
        with closing(sqlite3.connect(home / "longrun.db", isolation_level=None)) as db:
            for name in names:
                db.execute(f"DROP TRIGGER {name}")

    return tamper


def remove_anchor(run_id: str) -> Tamper:
    def tamper(home: Path) -> None:
        from longrun.store.anchors import anchor_path

        anchor_path(home, run_id).unlink()

    return tamper
