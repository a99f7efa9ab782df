"""The checkpoint write (`runs.add_checkpoint` on `Store.hot`): one transaction that
records the row, moves the run's head and chains the event, or leaves nothing at all."""

from __future__ import annotations

import sqlite3

import pytest

from longrun.store import anchors, log, runs
from longrun.store.db import Store
from longrun.store.errors import RunNotFound, StoreConflict, StoreReadOnly
from longrun.store.integrity import verify_store


def _run(store: Store, run_id: str = "r1") -> runs.RunView:
    return runs.insert_run(
        store,
        run_id=run_id,
        name=f"run-{run_id}",
        goal="a goal",
        spec={"name": run_id},
        spec_path=None,
        workspace=f"/nowhere/{run_id}",
        branch=f"longrun/{run_id}",
        state="running",
    )


def _counts(store: Store) -> tuple[int, int]:
    with sqlite3.connect(store.path) as db:
        return (
            db.execute("SELECT count(*) FROM checkpoint").fetchone()[0],
            db.execute("SELECT count(*) FROM event").fetchone()[0],
        )


def test_a_checkpoint_is_the_new_head_its_view_is_what_is_read_back(store: Store) -> None:
    _run(store)
    assert runs.head_commit(store, "r1") is None
    first = runs.add_checkpoint(
        store, run_id="r1", session_id=None, commit="a" * 40, reason="created", handoff=None, commits=[]
    )
    handoff = {"done": ["the parser"], "next": ["the printer"], "blockers": [], "notes": "é"}
    second = runs.add_checkpoint(
        store,
        run_id="r1",
        session_id=None,
        commit="b" * 40,
        reason="handoff",
        handoff=handoff,
        commits=[{"sha": "c" * 40, "subject": "Parse"}],
        features={"parse": "pass"},
    )
    third = runs.add_checkpoint(
        store, run_id="r1", session_id=None, commit="d" * 40, reason="calls", handoff=None, commits=[]
    )
    assert runs.get_run(store, "r1").head_checkpoint_id == third.id
    assert runs.head_commit(store, "r1") == "d" * 40
    for made in (first, second, third):
        assert runs.get_checkpoint(store, made.id) == made
    assert (second.parent_id, third.parent_id) == (first.id, second.id)
    assert second.handoff == handoff and third.features == {"parse": "pass"}  # the parent's status
    [event] = [e for e in log.read_events(store, "r1", kinds=["checkpoint"]) if e.seq == third.seq]
    assert event.data["checkpoint_id"] == third.id and event.data["features"] == {"parse": "pass"}
    assert event.ts == third.created_at
    # The head was anchored after each commit, and the whole store audits clean.
    lines = list(anchors.read(anchors.anchor_path(store.home, "r1")))
    assert lines[-1].seq == third.seq
    assert verify_store(store).ok


def test_a_checkpoint_that_fails_leaves_nothing_behind(store: Store) -> None:
    _run(store)
    before = _counts(store)
    with pytest.raises(RunNotFound):
        runs.add_checkpoint(
            store, run_id="nosuch", session_id=None, commit="a" * 40, reason="x", handoff=None, commits=[]
        )
    # A row the schema refuses half-way (a seq already taken) rolls back what came before it.
    taken = (
        "INSERT INTO event (run_id, seq, ts, kind, data, prev_hash, hash) "
        "VALUES ('r1', 1, '', '', '', '', '')"
    )
    with pytest.raises(StoreConflict):
        with store.hot() as (raw, _heads):
            log.append_raw(raw, "r1", [("note", {"text": "never kept"}, None, None)])
            raw.execute(taken)
    assert _counts(store) == before
    assert runs.get_run(store, "r1").head_checkpoint_id is None
    assert verify_store(store).ok
    # The hot connection was left with no transaction open: the next write goes through.
    runs.add_checkpoint(
        store, run_id="r1", session_id=None, commit="a" * 40, reason="x", handoff=None, commits=[]
    )
    assert _counts(store) == (before[0] + 1, before[1] + 1)


def test_a_read_only_store_refuses_a_checkpoint_before_touching_it(store: Store) -> None:
    _run(store)
    store.read_only = "a test says so"
    with pytest.raises(StoreReadOnly, match="a test says so"):
        runs.add_checkpoint(
            store, run_id="r1", session_id=None, commit="a" * 40, reason="x", handoff=None, commits=[]
        )
    store.read_only = None
    assert _counts(store)[0] == 0
