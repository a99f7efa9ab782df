"""`longrun verify` over the whole store: each way of tampering with a copy of the seeded store is
found and named (the table, the row and the field), and a store nobody touched verifies clean.

Also: the head moves in the append's own transaction and is anchored outside the database after
the commit; an anchor that lags the log is fine, one ahead of it is a cut tail; the triggers
refuse the edits no code path makes and let through the ones code makes; an older store is
brought up to schema 3 and verifies.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import read_only
import tampering
from seed import APPROVAL_DECIDED, APPROVAL_PUSH, CP_HEAD, RUN_ACTIVE, RUN_DONE, RUN_IDS, seed_store

from longrun.scheduler.control.limits import set_budget
from longrun.scheduler.spec.run import RunSpec
from longrun.store import anchors, integrity, log, runs
from longrun.store.db import Store
from longrun.store.errors import StoreConflict, StoreVersionError
from longrun.store.guards import GUARDS
from longrun.store.integrity import BreakKind
from longrun.store.models import SCHEMA_VERSION, SessionState
from longrun.store.runs import VerdictView


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded store per module, closed; each test tampers with a copy of it."""
    root = tmp_path_factory.mktemp("seeded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root / "home"))
        seed_store(root / "store").close()
    return root / "store"


@pytest.fixture
def copied(seeded_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "store"
    shutil.copytree(seeded_home, home)
    return home


def audit_of(home: Path) -> integrity.StoreAudit:
    store = Store.open(home, create=False)
    try:
        return integrity.verify_store(store)
    finally:
        store.close()


def of_kind(audit: integrity.StoreAudit, kind: BreakKind) -> list[integrity.Break]:
    return [b for b in audit.all_breaks() if b.kind == kind]


def changed_fields(b: integrity.Break) -> dict[str, Any]:
    return {c.field: c.found for c in b.changes}


def test_the_seeded_store_verifies_clean(copied: Path, cli) -> None:
    audit = audit_of(copied)
    assert audit.ok, [b.line for b in audit.all_breaks()]
    assert sorted(r.run_id for r in audit.runs) == sorted(RUN_IDS)
    active = next(r for r in audit.runs if r.run_id == RUN_ACTIVE)
    assert active.rows["checkpoint"] == 9 and active.rows["approval"] == 3 and active.rows["session"] == 3
    assert active.head is not None and active.head[0] == active.anchored == active.chain.events
    proc = cli("--home", str(copied), "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == len(RUN_IDS)
    assert all(
        "chain whole" in line and "rows match their events" in line for line in proc.stdout.splitlines()
    )


# --- each tamper, and what verify calls it --------------------------------------------------------

SESSION_3 = f"run_id = '{RUN_ACTIVE}' AND n = 3"
LAST_VERDICT = f"id = (SELECT max(id) FROM verdict WHERE run_id = '{RUN_ACTIVE}')"

CASES: list[tuple[str, tampering.Tamper, BreakKind, str | None, dict[str, Any]]] = [
    # (name, tamper, the break it must cause, its table, fields it must name with what they now say)
    ("delete the last event", tampering.delete_tail(RUN_ACTIVE, 1), BreakKind.tail_truncated, "event", {}),
    (
        "delete the last 20 events",
        tampering.delete_tail(RUN_ACTIVE, 20),
        BreakKind.tail_truncated,
        "event",
        {},
    ),
    (
        "delete all of a run's events",
        tampering.delete_all_events(RUN_DONE),
        BreakKind.tail_truncated,
        "event",
        {},
    ),
    (
        "delete the last 20 events and rewrite the head to match",
        tampering.delete_tail_and_rewrite_head(RUN_ACTIVE, 20),
        BreakKind.tail_truncated,
        "event",
        {},
    ),
    (
        "rewrite an approval's decision in the log and every hash after it",
        tampering.rewrite_history(RUN_ACTIVE, 49, lambda d: d.update(by="mallory")),
        BreakKind.anchor_mismatch,
        "event",
        {},
    ),
    (
        "edit an event",
        tampering.run_sql(f"UPDATE event SET data = '{{}}' WHERE run_id = '{RUN_ACTIVE}' AND seq = 60"),
        BreakKind.event_edited,
        "event",
        {},
    ),
    (
        "delete an event in the middle",
        tampering.run_sql(f"DELETE FROM event WHERE run_id = '{RUN_ACTIVE}' AND seq = 60"),
        BreakKind.event_missing,
        "event",
        {},
    ),
    (
        "rewrite the head's hash",
        tampering.set_column("chain_head", "hash", "0" * 64, "run_id = ?", (RUN_ACTIVE,)),
        BreakKind.head_rewritten,
        "chain_head",
        {"hash": "0" * 64},
    ),
    (
        "change who decided an approval",
        tampering.set_column("approval", "decided_by", "mallory", "id = ?", (APPROVAL_DECIDED,)),
        BreakKind.row_changed,
        "approval",
        {"decided_by": "mallory"},
    ),
    (
        "put a decided approval back to pending",
        tampering.run_sql(
            "UPDATE approval SET state = 'pending', decided_by = NULL, decided_at = NULL, comment = NULL "
            "WHERE id = ?",
            (APPROVAL_DECIDED,),
        ),
        BreakKind.row_changed,
        "approval",
        {"state": "pending", "decided_by": None},
    ),
    (
        "decide a pending approval in the table only",
        tampering.run_sql(
            "UPDATE approval SET state = 'approved', decided_by = 'mallory', decided_at = requested_at "
            "WHERE id = ?",
            (APPROVAL_PUSH,),
        ),
        BreakKind.row_unrecorded,
        "approval",
        {},
    ),
    (
        "change a checkpoint's commit",
        tampering.set_column("checkpoint", "commit", "f" * 40, "id = ?", (CP_HEAD,)),
        BreakKind.row_changed,
        "checkpoint",
        {"commit": "f" * 40},
    ),
    (
        "change a checkpoint's spend",
        tampering.set_column("checkpoint", "spent_usd", 0.0001, "id = ?", (CP_HEAD,)),
        BreakKind.row_changed,
        "checkpoint",
        {"spent_usd": 0.0001},
    ),
    (
        "change a checkpoint's handoff",
        tampering.set_column("checkpoint", "handoff_json", '{"done":[]}', "id = ?", (CP_HEAD - 2,)),
        BreakKind.row_changed,
        "checkpoint",
        {"handoff_json": "sha256:" + str(log.text_digest('{"done":[]}'))},
    ),
    (
        "change a verdict's status",
        tampering.run_sql(
            "UPDATE verdict SET status = CASE status WHEN 'pass' THEN 'fail' ELSE 'pass' END "
            f"WHERE {LAST_VERDICT}"
        ),
        BreakKind.row_changed,
        "verdict",
        {},
    ),
    (
        "delete a verdict",
        tampering.run_sql(f"DELETE FROM verdict WHERE {LAST_VERDICT}"),
        BreakKind.row_missing,
        "verdict",
        {},
    ),
    (
        "change how a session ended",
        tampering.run_sql(f"UPDATE session SET state = 'crashed', end_reason = 'killed' WHERE {SESSION_3}"),
        BreakKind.row_changed,
        "session",
        {"state": "crashed", "end_reason": "killed"},
    ),
    (
        "stretch a session's time box",
        tampering.run_sql(
            f"UPDATE session SET deadline_at = '2030-01-01T00:00:00.000000+00:00' WHERE {SESSION_3}"
        ),
        BreakKind.row_changed,
        "session",
        {"deadline_at": "2030-01-01T00:00:00.000000+00:00"},
    ),
    (
        "raise a run's budget in its spec only",
        tampering.run_sql(
            "UPDATE run SET spec_json = json_set(spec_json, '$.budget.usd', 1000) WHERE id = ?", (RUN_ACTIVE,)
        ),
        BreakKind.row_changed,
        "run",
        {"budget.usd": 1000},
    ),
    (
        "halve a run's spend",
        tampering.run_sql("UPDATE run SET spent_usd = spent_usd / 2 WHERE id = ?", (RUN_ACTIVE,)),
        BreakKind.row_changed,
        "run",
        {},
    ),
    (
        "move a run's head checkpoint",
        tampering.set_column("run", "head_checkpoint_id", CP_HEAD - 3, "id = ?", (RUN_ACTIVE,)),
        BreakKind.row_changed,
        "run",
        {"head_checkpoint_id": CP_HEAD - 3},
    ),
    (
        "delete a run's row",
        tampering.run_sql("DELETE FROM run WHERE id = ?", (RUN_DONE,)),
        BreakKind.row_missing,
        "run",
        {},
    ),
    ("remove a run's anchor", tampering.remove_anchor(RUN_ACTIVE), BreakKind.anchor_missing, "anchor", {}),
    (
        "drop the triggers",
        tampering.drop_triggers("approval_fixed", "event_append_only_delete"),
        BreakKind.guard_dropped,
        "sqlite_master",
        {},
    ),
]


@pytest.mark.parametrize(
    ("tamper", "kind", "table", "fields"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_verify_names_each_tamper(
    copied: Path, tamper: tampering.Tamper, kind: BreakKind, table: str | None, fields: dict[str, Any]
) -> None:
    assert audit_of(copied).ok
    tamper(copied)
    audit = audit_of(copied)
    found = [b for b in of_kind(audit, kind) if b.table == table]
    assert found, f"expected a {kind} break in {table}; found: {[b.line for b in audit.all_breaks()]}"
    if fields:
        assert any(fields.items() <= changed_fields(b).items() for b in found), [b.line for b in found]
    for b in found:
        assert "\n" not in b.line and b.line.startswith(kind.value.replace("_", " ") + ":")


def test_a_cut_tail_names_the_events_gone(copied: Path) -> None:
    events = tampering.last_seq(copied, RUN_ACTIVE)
    tampering.delete_tail(RUN_ACTIVE, 20)(copied)
    (cut,) = of_kind(audit_of(copied), BreakKind.tail_truncated)
    assert f"the log has {events - 20}" in cut.line and f"events {events - 19}–{events} are gone" in cut.line


def test_a_tail_cut_with_its_head_is_found_by_the_anchor_alone(copied: Path) -> None:
    tampering.delete_tail_and_rewrite_head(RUN_ACTIVE, 20)(copied)
    audit = audit_of(copied)
    assert not of_kind(audit, BreakKind.head_rewritten)  # the head agrees with the cut log
    (cut,) = of_kind(audit, BreakKind.tail_truncated)
    assert "the anchor outside the store says" in cut.line and "its head was rewritten to match" in cut.line


def test_a_decision_put_back_to_pending_says_what_the_log_decided(copied: Path) -> None:
    tampering.run_sql(
        "UPDATE approval SET state = 'pending', decided_by = NULL, decided_at = NULL, comment = NULL "
        "WHERE id = ?",
        (APPROVAL_DECIDED,),
    )(copied)
    (b,) = of_kind(audit_of(copied), BreakKind.row_changed)
    assert b.row == APPROVAL_DECIDED and "is pending again" in b.line and "approved by 'ana'" in b.line


def test_verify_in_the_cli_prints_one_line_per_break_and_json(copied: Path, cli) -> None:
    tampering.set_column("approval", "decided_by", "mallory", "id = ?", (APPROVAL_DECIDED,))(copied)
    tampering.delete_tail(RUN_DONE, 3)(copied)
    proc = cli("--home", str(copied), "verify")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    bad = [line for line in proc.stdout.splitlines() if "chain whole" not in line]
    assert len(bad) == 2, proc.stdout
    assert any("row changed: approval 1 (tool_call): decided_by 'mallory'" in line for line in bad)
    assert any(f"run docs-site ({RUN_DONE}): tail truncated:" in line for line in bad)
    one = cli("--home", str(copied), "verify", RUN_ACTIVE, "--json")
    assert one.returncode == 1
    document = json.loads(one.stdout)
    assert document["ok"] is False and [r["run_id"] for r in document["runs"]] == [RUN_ACTIVE]
    (b,) = document["breaks"]
    assert (b["kind"], b["table"], b["row"]) == ("row_changed", "approval", APPROVAL_DECIDED)
    assert b["changes"] == [{"field": "decided_by", "found": "mallory", "expected": "ana"}]


# --- the head and the anchor ----------------------------------------------------------------------


def _run(store: Store, run_id: str = "r1") -> runs.RunView:
    return runs.insert_run(
        store,
        run_id=run_id,
        name=run_id,
        goal="a goal",
        spec=RunSpec.model_validate(
            {"name": run_id, "goal": "a goal", "workspace": f"/nowhere/{run_id}", "budget": {"usd": 5.0}}
        ).model_dump(mode="json"),
        spec_path=None,
        workspace=f"/nowhere/{run_id}",
        branch=f"longrun/{run_id}",
        state="scheduled",
    )


def _head(store: Store, run_id: str) -> tuple[int, str] | None:
    with closing(sqlite3.connect(store.path)) as db:
        row = db.execute("SELECT events, hash FROM chain_head WHERE run_id = ?", (run_id,)).fetchone()
    return (row[0], row[1]) if row else None


def _anchored(store: Store, run_id: str) -> list[tuple[int | None, str]]:
    return [(a.seq, a.hash) for a in anchors.read(anchors.anchor_path(store.home, run_id))]


def test_the_head_moves_with_each_append_and_is_anchored_after_the_commit(store: Store) -> None:
    _run(store)
    log.record(store, "r1", "note", {"i": 1})
    with store.writing() as conn:
        log.append_many(conn, "r1", [("note", {"i": i}, None, None) for i in range(2, 5)])
    last = log.read_events(store, "r1")[-1]
    with closing(sqlite3.connect(store.path)) as db:
        last_hash = db.execute(
            "SELECT hash FROM event WHERE run_id = 'r1' AND seq = ?", (last.seq,)
        ).fetchone()[0]
    assert _head(store, "r1") == (5, last_hash)
    assert [seq for seq, _ in _anchored(store, "r1")] == [1, 2, 5]  # one line per committed transaction
    with pytest.raises(RuntimeError), store.writing() as conn:
        log.append(conn, "r1", "note", {"i": "rolled back"})
        raise RuntimeError("the transaction fails after the append")
    assert _head(store, "r1") == (5, last_hash)
    assert [seq for seq, _ in _anchored(store, "r1")] == [
        1,
        2,
        5,
    ]  # nothing anchored for what never committed


def test_an_anchor_behind_the_log_is_accepted_one_ahead_or_not_in_it_is_not(store: Store) -> None:
    _run(store)
    for i in range(5):
        log.record(store, "r1", "note", {"i": i})
    path = anchors.anchor_path(store.home, "r1")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + b"4 " + b"a" * 30)  # a crash: the last lines lost, one torn
    clean = integrity.verify_run(store, "r1")
    assert clean.ok and clean.anchored == 3, [b.line for b in clean.breaks]
    with path.open("ab") as f:
        f.write(b"\nnot a head\n9 " + b"b" * 64 + b"\n")
    ahead = integrity.verify_run(store, "r1")
    assert {b.kind for b in ahead.breaks} == {BreakKind.tail_truncated, BreakKind.anchor_damaged}
    path.write_bytes(b"".join(lines[:3]) + b"2 " + b"c" * 64 + b"\n")
    rewritten = integrity.verify_run(store, "r1")
    assert [(b.kind, b.seq) for b in rewritten.breaks] == [(BreakKind.anchor_mismatch, 2)]


def test_after_a_torn_anchor_line_the_next_head_starts_a_line_of_its_own(home: Path) -> None:
    store = Store.open(home)
    _run(store)
    log.record(store, "r1", "note", {})
    store.close()
    path = anchors.anchor_path(home, "r1")
    path.write_bytes(path.read_bytes() + b"3 " + b"d" * 20)  # a crash while a line was written
    store = Store.open(home)
    try:
        log.record(store, "r1", "note", {})
        assert [a.seq for a in anchors.read(path)] == [1, 2, 3]
        assert integrity.verify_run(store, "r1").ok
    finally:
        store.close()


def test_heads_are_recorded_for_a_log_written_around_append(store: Store) -> None:
    _run(store)
    rows = log.chain_rows("r1", 1, _event_hash(store, "r1", 1), [("bulk", {}, None, None)] * 3)
    with closing(sqlite3.connect(store.path)) as db:
        db.executemany(
            "INSERT INTO event (run_id, seq, session_id, ts, kind, data, prev_hash, hash) "
            "VALUES (:run_id, :seq, :session_id, :ts, :kind, :data, :prev_hash, :hash)",
            rows,
        )
        db.commit()
    assert [b.kind for b in integrity.verify_run(store, "r1").breaks] == [BreakKind.head_rewritten]
    assert log.record_heads(store) == {"r1": (4, rows[-1]["hash"])}
    assert integrity.verify_run(store, "r1").ok


def _event_hash(store: Store, run_id: str, seq: int) -> str:
    with closing(sqlite3.connect(store.path)) as db:
        return str(
            db.execute("SELECT hash FROM event WHERE run_id = ? AND seq = ?", (run_id, seq)).fetchone()[0]
        )


# --- the rows as code writes them ------------------------------------------------------------------


def test_every_store_write_verifies_clean_and_a_raised_budget_is_checked(store: Store) -> None:
    _run(store)
    session = runs.create_session(store, "r1", time_box=timedelta(minutes=5), wrap_up=timedelta(minutes=1))
    runs.session_started(store, session.id, 4242)
    with store.writing() as conn:
        log.append(
            conn,
            "r1",
            "model_call",
            {"usage": {"input_tokens": 10, "output_tokens": 5, "usd": 0.25}},
            session_id=session.id,
        )
        runs.add_usage(conn, "r1", session.id, runs.Usage(10, 5, 0, 0, 0.25))
    cp = runs.add_checkpoint(
        store,
        run_id="r1",
        session_id=session.id,
        commit="a" * 40,
        reason="handoff",
        handoff={"done": ["x"]},
        commits=[{"sha": "a" * 40, "subject": "x"}],
    )
    runs.add_verdicts(store, "r1", cp.id, [VerdictView("f1", cp.id, "command", "pass", {"exit": 0})])
    with store.writing() as conn:
        asked = runs.add_approval(conn, "r1", "budget_raise", {"cap": "usd"}, session.id)
        runs.issue_token(conn, asked)
    runs.end_session(store, session.id, SessionState.ended, "approval")
    runs.heartbeat(store, session.id)  # a late heartbeat after the end is a write code makes
    with store.writing() as conn:
        runs.mark_settled(conn, session.id)
    set_budget(store, "r1", {"usd": 9.0}, by="ana", comment="more")
    audit = integrity.verify_run(store, "r1")
    assert audit.ok, [b.line for b in audit.breaks]
    assert audit.rows == {"run": 1, "session": 1, "checkpoint": 1, "verdict": 1, "approval": 1}
    assert runs.get_approval(store, asked).decided_by == "ana"
    tampering.run_sql("UPDATE run SET spec_json = json_set(spec_json, '$.budget.usd', 5.0) WHERE id = 'r1'")(
        store.home
    )
    (b,) = integrity.verify_run(store, "r1").breaks
    assert b.kind == BreakKind.row_changed and changed_fields(b) == {"budget.usd": 5.0}
    assert b.changes[0].expected == 9.0


REFUSED = [
    ("a checkpoint's commit", "UPDATE checkpoint SET \"commit\" = 'b' WHERE id = 1"),
    ("a checkpoint's spend", "UPDATE checkpoint SET spent_usd = 0 WHERE id = 1"),
    ("a verdict's status", "UPDATE verdict SET status = 'fail'"),
    ("a decided approval", "UPDATE approval SET decided_by = 'mallory'"),
    ("a decided approval back to pending", "UPDATE approval SET state = 'pending'"),
    ("a session's end", "UPDATE session SET state = 'crashed'"),
    ("a session's time box", "UPDATE session SET deadline_at = '2030-01-01'"),
    ("a run's name", "UPDATE run SET name = 'other'"),
    ("a run's spend, down", "UPDATE run SET spent_usd = 0"),
    ("a chain head, back", "UPDATE chain_head SET events = 1"),
    ("a chain head", "DELETE FROM chain_head"),
    ("a run", "DELETE FROM run"),
    ("an approval", "DELETE FROM approval"),
    ("a checkpoint", "DELETE FROM checkpoint"),
]


@pytest.fixture
def decided_store(store: Store) -> Iterator[Store]:
    """A run with a session that ended, a checkpoint with a verdict and a decided approval."""
    _run(store)
    session = runs.create_session(store, "r1", time_box=timedelta(minutes=5), wrap_up=timedelta(minutes=1))
    with store.writing() as conn:
        runs.add_usage(conn, "r1", session.id, runs.Usage(1, 1, 0, 0, 0.5))
        log.append(
            conn,
            "r1",
            "model_call",
            {"usage": {"input_tokens": 1, "output_tokens": 1, "usd": 0.5}},
            session_id=session.id,
        )
    cp = runs.add_checkpoint(
        store, run_id="r1", session_id=session.id, commit="a" * 40, reason="handoff", handoff=None, commits=[]
    )
    runs.add_verdicts(store, "r1", cp.id, [VerdictView("f1", cp.id, "command", "pass", {})])
    with store.writing() as conn:
        approval = runs.add_approval(conn, "r1", "tool_call", {"tool": "bash"}, session.id)
        runs.decide_approval(conn, approval, "approved", "ana", None)
    runs.end_session(store, session.id, SessionState.ended, "finished")
    yield store


@pytest.mark.parametrize("sql", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_the_triggers_refuse_what_no_code_path_does(decided_store: Store, sql: str) -> None:
    with pytest.raises(StoreConflict, match="refused"):
        with decided_store.writing() as conn:
            conn.exec_driver_sql(sql)
    assert integrity.verify_run(decided_store, "r1").ok


def test_the_triggers_let_through_what_code_does(decided_store: Store) -> None:
    cp = runs.list_checkpoints(decided_store, "r1")[0]
    runs.add_verdicts(decided_store, "r1", cp.id, [VerdictView("f1", cp.id, "command", "fail", {"again": 1})])
    assert runs.get_checkpoint(decided_store, cp.id).features == {"f1": "fail"}
    with decided_store.writing() as conn:
        pending = runs.add_approval(conn, "r1", "question", {"question": "?"})
        runs.issue_token(conn, pending)
        assert runs.decide_approval(conn, pending, "answered", "ana", "yes")
        assert not runs.decide_approval(
            conn, pending, "denied", "bob", None
        )  # refused by code, not by a trigger
    assert integrity.verify_run(decided_store, "r1").ok


# --- an older store ------------------------------------------------------------------------------

SCHEMA_3_KEYS = {
    "run_created": ("budget",),
    "checkpoint": ("spent_usd", "tokens", "features", "handoff_sha256", "commits_sha256"),
    "verdict": ("verdict_id",),
}


def _as_schema_2(home: Path) -> None:
    """Turn a store into what schema 2 wrote: no heads, no anchors, only the event log's two
    triggers, events without the fields schema 3 added (the chains recomputed), and rows stamped
    a moment before their events, as an older longrun did."""
    with closing(sqlite3.connect(home / "longrun.db", isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DROP TABLE chain_head")
        for (run_id,) in db.execute("SELECT id FROM run").fetchall():
            prev = log.GENESIS
            for seq, session_id, ts, kind, data in db.execute(
                "SELECT seq, session_id, ts, kind, data FROM event WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall():
                payload = json.loads(data)
                for key in SCHEMA_3_KEYS.get(kind, ()):
                    payload.pop(key, None)
                text = log.canonical_json(payload)
                digest = log.event_hash(prev, run_id, seq, ts, session_id, kind, text)
                db.execute(
                    "UPDATE event SET data = ?, prev_hash = ?, hash = ? WHERE run_id = ? AND seq = ?",
                    (text, prev, digest, run_id, seq),
                )
                prev = digest
        db.execute(
            "UPDATE approval SET decided_at = "
            "strftime('%Y-%m-%dT%H:%M:%f000+00:00', decided_at, '-0.2 seconds') WHERE decided_at IS NOT NULL"
        )
        for name, sql in GUARDS:
            if name.startswith("event_"):
                db.execute(sql)
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        db.execute("DROP TABLE alembic_version")  # made before the history was kept in Alembic
        db.execute("COMMIT")
    shutil.rmtree(home / anchors.ANCHORS_DIR)


def _as_schema_1(home: Path) -> None:
    """Schema 2 less the conversation table, which schema 1 did not have."""
    _as_schema_2(home)
    with closing(sqlite3.connect(home / "longrun.db", isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("DROP TABLE conversation")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        db.execute("COMMIT")


def _schema_of(db_path: Path) -> str:
    with closing(sqlite3.connect(db_path)) as db:
        return str(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def test_an_older_store_is_not_opened_until_it_is_upgraded(copied: Path, cli: Any) -> None:
    _as_schema_2(copied)
    with pytest.raises(
        StoreVersionError, match=r"at schema 2, and this longrun needs 3: run `longrun init --upgrade`"
    ):
        Store.open(copied)
    proc = cli("--home", str(copied), "run", "list")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"longrun: error: {copied / 'longrun.db'}: at schema 2, and this longrun needs 3: run `longrun init "
        "--upgrade` to bring it up to date (it backs the store up first)"
    ]
    assert _schema_of(copied / "longrun.db") == "2"  # opening it changed nothing


@pytest.mark.parametrize("older", [_as_schema_1, _as_schema_2], ids=["schema-1", "schema-2"])
def test_init_upgrade_keeps_a_copy_then_brings_an_older_store_to_schema_3(
    copied: Path, older: Any, cli: Any
) -> None:
    older(copied)
    was = _schema_of(copied / "longrun.db")
    proc = cli("--home", str(copied), "init", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    [backup] = (copied / "backups").iterdir()
    assert (
        proc.stdout.strip()
        == f"store upgraded from schema {was} to 3; the store as it was is kept at {backup}"
    )
    assert _schema_of(backup) == was
    assert tampering.query(copied, "SELECT version_num FROM alembic_version") == [("0003",)]
    again = cli("--home", str(copied), "init", "--upgrade")
    assert again.stdout.strip() == "the store is at schema 3, this longrun's: nothing to upgrade"
    assert len(list((copied / "backups").iterdir())) == 1
    assert cli("--home", str(copied), "verify").returncode == 0


def test_an_older_store_is_brought_up_to_schema_3_and_verifies(copied: Path) -> None:
    _as_schema_2(copied)
    Store.upgrade(copied)
    store = Store.open(copied)
    try:
        assert store.schema == SCHEMA_VERSION == 3
        with closing(sqlite3.connect(store.path)) as db:
            triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            heads = dict(db.execute("SELECT run_id, events FROM chain_head").fetchall())
            lasts = dict(db.execute("SELECT run_id, max(seq) FROM event GROUP BY run_id").fetchall())
        assert triggers == {name for name, _ in GUARDS}
        assert heads == lasts
        assert sorted(anchors.anchored_runs(copied)) == sorted(RUN_IDS)
        audit = integrity.verify_store(store)
        assert audit.ok, [b.line for b in audit.all_breaks()]
        assert any("made before schema 3" in note for r in audit.runs for note in r.notes)
        log.record(store, RUN_ACTIVE, "note", {"after": "the upgrade"})
        assert integrity.verify_run(store, RUN_ACTIVE).ok
    finally:
        store.close()
    tampering.delete_tail(RUN_ACTIVE, 2)(copied)
    assert [b.kind for b in of_kind(audit_of(copied), BreakKind.tail_truncated)] == [BreakKind.tail_truncated]


def test_a_store_in_use_verifies_clean_while_it_is_written(store: Store, home: Path) -> None:
    """Each audit reads one snapshot (and only the anchor lines written before it), so a writer
    appending meanwhile (events, checkpoints, calls) never shows as a break."""
    _run(store)
    session = runs.create_session(store, "r1", time_box=timedelta(minutes=5), wrap_up=timedelta(minutes=1))
    writer = Store.open(home)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(400):
                if stop.is_set():
                    return
                with writer.writing() as conn:
                    log.append(
                        conn,
                        "r1",
                        "model_call",
                        {"usage": {"input_tokens": 1, "usd": 0.01}},
                        session_id=session.id,
                    )
                    runs.add_usage(conn, "r1", session.id, runs.Usage(1, 0, 0, 0, 0.01))
                if i % 25 == 0:
                    runs.add_checkpoint(
                        writer,
                        run_id="r1",
                        session_id=session.id,
                        commit=f"{i:040x}",
                        reason="handoff",
                        handoff=None,
                        commits=[],
                    )
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    audits = []
    try:
        while thread.is_alive() and len(audits) < 200:
            audits.append(integrity.verify_run(store, "r1"))
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert not failures
    assert len(audits) > 1 and len({a.chain.events for a in audits}) > 1  # it did run beside the writer
    assert [b.line for a in audits for b in a.breaks] == []
    assert integrity.verify_run(store, "r1").ok


def test_an_older_store_read_only_is_read_and_verified_without_its_head(copied: Path) -> None:
    """A store at schema 2 that cannot be written is not brought up to date; it still reads, and
    `verify` checks its chain and rows and says what it could not check."""
    _as_schema_2(copied)
    with read_only.read_only_cli(copied, "filesystem") as (_, cli_ro):
        proc = cli_ro("verify", RUN_ACTIVE)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "chain whole" in proc.stdout and "head not checked: the store is at schema 2" in proc.stdout
        assert cli_ro("run", "list").returncode == 0
    assert tampering.query(copied, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
