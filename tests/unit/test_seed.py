"""The seeded store the dashboard's tests stand on, and the benchmark's big store: both as promised."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from seed import (
    APPROVAL_BUDGET,
    APPROVAL_DECIDED,
    APPROVAL_PUSH,
    APPROVAL_QUESTION,
    CP_ABANDONED,
    CP_FORKED,
    CP_HEAD,
    CP_S1_END,
    CP_S2_END,
    OPEN_BREAKER,
    PENDING_APPROVALS,
    RUN_ACTIVE,
    RUN_FORK,
    RUN_IDS,
    RUN_PAUSED,
    RUN_STATES,
    SEED_NOW,
    SESSION_LIVE,
    WHO,
    seed_store,
)
from sqlalchemy import text

from longrun.bench import bigstore
from longrun.store import board, integrity, log, runs
from longrun.store.db import Store
from longrun.store.models import SQLModel


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    out = {}
    with store.reading() as conn:
        for table in SQLModel.metadata.sorted_tables:
            keys = ", ".join(c.name for c in table.primary_key.columns)
            out[table.name] = [
                tuple(r) for r in conn.execute(text(f"SELECT * FROM {table.name} ORDER BY {keys}"))
            ]
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One seed for the tests that only read it."""
    root = tmp_path_factory.mktemp("seeded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root / "home"))
        store = seed_store(root / "store")
        yield store
        store.close()


def test_two_seeds_are_identical_row_for_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    first = seed_store(tmp_path / "first")
    home.rename(tmp_path / "first-home")  # the second seed writes its workspaces at the same paths
    second = seed_store(tmp_path / "second")
    try:
        a, b = _tables(first), _tables(second)
        assert a.keys() == b.keys()
        for table in a:
            assert a[table] == b[table], f"table {table} differs between two seeds"
        assert len(a["event"]) > 300
        assert {r[0] for r in a["run"]} == set(RUN_IDS)
    finally:
        first.close()
        second.close()


def test_every_run_s_chain_verifies(seeded: Store) -> None:
    for run_id in RUN_IDS:
        report = log.verify_chain(seeded, run_id)
        assert report.ok, report
        assert report.events >= 25


def test_everything_happened_before_seed_now_except_the_live_deadline(seeded: Store) -> None:
    with seeded.reading() as conn:
        newest = conn.execute(text("SELECT max(ts) FROM event")).scalar_one()
        deadline = conn.execute(text("SELECT deadline_at FROM session WHERE id = :id"), {"id": SESSION_LIVE})
        deadline_at = deadline.scalar_one()
    assert newest < SEED_NOW.isoformat()
    assert deadline_at > SEED_NOW.isoformat()
    for run_id in RUN_IDS:
        events = log.read_events(seeded, run_id)
        assert [e.ts for e in events] == sorted(e.ts for e in events)


def test_the_runs_are_in_the_states_the_tests_rely_on(seeded: Store) -> None:
    assert {r.id: r.state for r in runs.list_runs(seeded)} == RUN_STATES
    pending = runs.list_approvals(seeded, state="pending")
    assert tuple(a.id for a in pending) == PENDING_APPROVALS
    kinds = {a.id: a.kind for a in pending}
    assert kinds == {
        APPROVAL_PUSH: "tool_call",
        APPROVAL_QUESTION: "question",
        APPROVAL_BUDGET: "budget_raise",
    }
    push = runs.get_approval(seeded, APPROVAL_PUSH)
    assert push.request["input"] == {"command": "git push origin HEAD"}
    assert push.request["reason"] == "pushes to a remote"
    decided = runs.get_approval(seeded, APPROVAL_DECIDED)
    assert (decided.state, decided.decided_by) == ("approved", WHO) and decided.comment
    active = runs.get_run(seeded, RUN_ACTIVE)
    assert active.state_reason and f"longrun approve {APPROVAL_PUSH}" in active.state_reason
    assert active.head_checkpoint_id == CP_HEAD
    assert runs.breakers(seeded, RUN_PAUSED)[OPEN_BREAKER].state == "open"
    live = runs.get_session(seeded, SESSION_LIVE)
    assert (live.run_id, live.state) == (RUN_FORK, "running")
    assert runs.get_run(seeded, RUN_FORK).parent_run_id == RUN_ACTIVE


def test_the_checkpoint_tree_has_an_abandoned_branch(seeded: Store) -> None:
    main_line = [c.id for c in runs.checkpoint_ancestors(seeded, CP_HEAD, 20)]
    assert CP_S1_END in main_line and not set(CP_ABANDONED) & set(main_line)
    abandoned = runs.get_checkpoint(seeded, CP_ABANDONED[0])
    assert abandoned.parent_id == CP_S1_END
    rewound = log.latest_event(seeded, RUN_ACTIVE, "rewound")
    assert rewound is not None and rewound.data["to"] == CP_S1_END
    forked = log.latest_event(seeded, RUN_FORK, "forked")
    assert forked is not None and forked.data["parent_checkpoint_id"] == CP_S2_END
    assert forked.data["checkpoint_id"] == CP_FORKED


def test_checkpoints_are_real_commits_in_real_workspaces(seeded: Store) -> None:
    for run in runs.list_runs(seeded):
        assert run.workspace.startswith(str(Path.home()))
        for cp in runs.list_checkpoints(seeded, run.id):
            found = subprocess.run(
                ["git", "cat-file", "-e", f"{cp.commit}^{{commit}}"], cwd=run.workspace, check=False
            )
            assert found.returncode == 0, f"{run.name}: checkpoint {cp.id} names no commit"
    branch = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"],
        cwd=runs.get_run(seeded, RUN_FORK).workspace,
        capture_output=True,
        text=True,
        check=True,
    )
    assert branch.stdout.strip() == f"longrun/{RUN_FORK}"


# --- the benchmark's big store ------------------------------------------------------------------

BIG_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_bigstore_fills_exactly_what_was_asked_and_passes_the_whole_audit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "big")
    try:
        run_ids = bigstore.fill(store, 12, 3000, now=BIG_NOW)
    finally:
        store.close()
    store = Store.open(tmp_path / "big", create=False)
    try:
        counts = bigstore.counts(store)
        assert (counts["run"], counts["event"]) == (12, 3000)
        events = {run_id: board.event_count(store, run_id) for run_id in run_ids}
        assert sum(events.values()) == 3000
        assert events[run_ids[0]] == max(events.values()) >= 1400
        for run_id in run_ids:
            report = log.verify_chain(store, run_id)
            assert report.ok and report.events == events[run_id], report
        # Its rows, heads and anchors agree with its logs as a real store's do.
        audit = integrity.verify_store(store)
        assert audit.all_breaks() == [], list(integrity.lines(audit))[:5]
        assert len(audit.runs) == 12
    finally:
        store.close()


def test_bigstore_runs_are_whole_runs_in_many_states(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "big")
    try:
        run_ids = bigstore.fill(store, 40, 8000, now=BIG_NOW)
        rows = {r.id: r for r in board.run_rows(store)}
        assert set(rows) == set(run_ids)
        states = {r.state for r in rows.values()}
        assert {"running", "done", "awaiting_approval", "tripped", "paused"} <= states
        for row in rows.values():
            assert (row.session is not None) == (row.state == "running")
            assert (row.pending > 0) == (row.state in ("awaiting_approval", "tripped", "paused"))
            assert bool(row.open_breakers) == (row.state == "tripped")
            if row.state == "done":
                assert row.features_passed == row.features_total == 4
            run = runs.get_run(store, row.id)
            line = runs.checkpoint_ancestors(store, run.head_checkpoint_id or 0, 1000)
            assert line and line[-1].reason == "created" and all(c.run_id == row.id for c in line)
            assert run.usage.usd > 0 and run.updated_at <= BIG_NOW
    finally:
        store.close()


def test_bigstore_is_the_same_store_for_the_same_seed(tmp_path: Path) -> None:
    stores = [Store.open(tmp_path / name) for name in ("one", "two")]
    try:
        for store in stores:
            bigstore.fill(store, 5, 600, now=BIG_NOW, workspaces=tmp_path / "workspaces")
        first, second = (_tables(s) for s in stores)
        assert len(first["event"]) == 600
        for table in first:
            assert first[table] == second[table], f"table {table} differs between two fills"
    finally:
        for store in stores:
            store.close()


def test_bigstore_refuses_too_few_events_for_its_runs(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "big")
    try:
        with pytest.raises(ValueError, match="cannot fill"):
            bigstore.fill(store, 10, 10 * bigstore.MIN_EVENTS_PER_RUN - 1)
    finally:
        store.close()
