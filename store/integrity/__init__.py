"""The whole-store audit behind `longrun verify`: the chain, its head, its anchor, and every row a
person relies on checked against the events that made it.

A run's log proves itself (`log.verify_chain`), but not that it is all there, nor that the
tables beside it say what it says. So the audit also checks, for each run:

- the head (`chain_head`, kept in the same transaction as every append) against the log's last
  event: a log that lost its tail no longer reaches its head;
- the anchor outside the database (`store.anchors`) against the log: every anchored hash must be
  the hash of that event, and the log must reach the newest anchored seq (it may be ahead of it:
  the anchor is written after the commit), so a tail cut together with its head is found too;
- every row against its events, on the same pass over the log: the run (its name, workspace,
  branch, parent, budget, spend and head checkpoint), its sessions (time box, start and end,
  spend), checkpoints (commit, reason, parent, session, spend and tokens, handoff and commits,
  feature status), verdicts (all of them) and approvals (the request and the decision: who,
  what, when and why). An event with no row, a row with no event and a field that differs are
  each a break;
- and, once per store, that the triggers refusing the edits no code path makes are all there.

Rows made before schema 3 carry their times a moment before their events' (`TIME_LEEWAY`), and
their events lack a few of the fields checked; what cannot be checked is said in `notes`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from longrun.store import anchors, log
from longrun.store.db import Store
from longrun.store.guards import GUARDS
from longrun.store.integrity.heads import Anchor, check_head_and_anchor
from longrun.store.integrity.report import Break, BreakKind, FieldChange, RunAudit, StoreAudit, lines
from longrun.store.integrity.rows import Rows
from longrun.store.integrity.said import Said
from longrun.store.integrity.values import has_table, raw_of

__all__ = [
    "Break",
    "BreakKind",
    "FieldChange",
    "RunAudit",
    "StoreAudit",
    "guard_breaks",
    "known_runs",
    "lines",
    "verify_run",
    "verify_store",
]


def verify_store(store: Store, run_ids: Iterable[str] | None = None) -> StoreAudit:
    """Audit the given runs (by default every run the store knows of: its run rows, heads,
    anchors and logs, so that a run whose row was deleted is still found), and the guards."""
    ids = sorted(set(run_ids)) if run_ids is not None else known_runs(store)
    return StoreAudit([verify_run(store, run_id) for run_id in ids], guard_breaks(store))


def known_runs(store: Store) -> list[str]:
    """Every run id the store holds a trace of."""
    found: set[str] = set()
    with store.reading() as conn:
        raw = raw_of(conn)
        found.update(r[0] for r in raw.execute("SELECT id FROM run"))
        found.update(r[0] for r in raw.execute("SELECT DISTINCT run_id FROM event"))
        if has_table(raw, "chain_head"):
            found.update(r[0] for r in raw.execute("SELECT run_id FROM chain_head"))
    found.update(anchors.anchored_runs(store.home))
    return sorted(found)


def guard_breaks(store: Store) -> list[Break]:
    """The guard triggers missing from the store (for a store not yet at schema 3, only the
    event log's own two are expected)."""
    with store.reading() as conn:
        have = {r[0] for r in raw_of(conn).execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    expected = [name for name, _ in GUARDS]
    if store.schema < 3:
        expected = [n for n in expected if n.startswith("event_")]
    gone = [n for n in expected if n not in have]
    if not gone:
        return []
    return [
        Break(
            BreakKind.guard_dropped,
            None,
            f"the store's trigger{'s' if len(gone) > 1 else ''} {', '.join(gone)} "
            f"{'are' if len(gone) > 1 else 'is'} gone: someone edited the file around them",
            table="sqlite_master",
        )
    ]


# --- one run --------------------------------------------------------------------------------------


def verify_run(store: Store, run_id: str) -> RunAudit:
    """Audit one run: its chain, head, anchor and rows (see the module's docstring).

    Everything is read in one read transaction, so a store in use verifies as it stood at one
    moment; the anchor is measured before that moment begins (a line is written after its
    commit, so every line read then is of a commit the snapshot holds)."""
    path = anchors.anchor_path(store.home, run_id)
    anchor_bytes = path.stat().st_size if path.exists() else None
    seen = Said(run_id)
    breaks: list[Break] = []
    notes: list[str] = []
    with store.reading() as conn:
        raw = raw_of(conn)
        chain = log.verify_chain(store, run_id, observe=seen, conn=conn)
        if not chain.ok:
            kind = BreakKind.event_missing if "missing" in (chain.reason or "") else BreakKind.event_edited
            breaks.append(
                Break(
                    kind,
                    run_id,
                    f"chain broken at event {chain.broken_at}: {chain.reason}",
                    "event",
                    seq=chain.broken_at,
                )
            )
        last = raw.execute(
            "SELECT seq, hash FROM event WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        ).fetchone()
        has_heads = has_table(raw, "chain_head")
        head_row = (
            raw.execute(
                "SELECT events, hash, exact_from FROM chain_head WHERE run_id = ?", (run_id,)
            ).fetchone()
            if has_heads
            else None
        )
        log_last = (int(last[0]), str(last[1])) if last else (0, log.GENESIS)
        head = (int(head_row[0]), str(head_row[1])) if head_row else None
        if not has_heads:
            notes.append(
                f"head not checked: the store is at schema {store.schema} and read-only "
                "(open it once where it can be written to bring it up to date)"
            )
        anchor = Anchor(path, anchor_bytes)
        anchored, anchor_lines = check_head_and_anchor(
            raw, run_id, log_last, head, has_heads, anchor, breaks, notes
        )
        exact_from = int(head_row[2]) if head_row else (1 if has_heads else math.inf)
        rows = Rows(run_id, seen, exact_from, breaks)
        name = rows.check_all(raw)
    notes.extend(seen.notes())
    return RunAudit(run_id, name, chain, head, anchored, anchor_lines, rows.counted, breaks, notes)
