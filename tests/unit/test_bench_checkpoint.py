"""`python -m longrun.bench checkpoint`, small, as a real subprocess writing into a directory the
test keeps: the figures are checked against the rows actually written on both sides, never for
how fast anything was."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from longrun.bench import checkpoint as checkpoint_bench
from longrun.store import anchors, log
from longrun.store.db import DB_NAME, Store
from longrun.store.integrity import verify_store

STEPS, ROUNDS = 12, 3
HAS_LANGGRAPH = importlib.util.find_spec("langgraph.checkpoint.sqlite") is not None
HIDE_LANGGRAPH = (
    "import sys; sys.modules['langgraph'] = None; "  # as if the `bench` extra were not installed
    "from longrun.bench.__main__ import main; sys.exit(main())"
)


def result_of(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must be one JSON object, got {proc.stdout!r}"
    return json.loads(lines[0])


def bench(root: Path, *, hide_langgraph: bool = False) -> dict[str, Any]:
    options = ["checkpoint", "--steps", str(STEPS), "--rounds", str(ROUNDS), "--dir", str(root)]
    if hide_langgraph:
        return result_of([sys.executable, "-c", HIDE_LANGGRAPH, *options])
    return result_of([sys.executable, "-m", "longrun.bench", *options])


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("checkpoint")
    return bench(root), root


def test_checkpoint_reports_both_payloads_with_targets(checkpoint_run: tuple[dict[str, Any], Path]) -> None:
    result, _ = checkpoint_run
    assert result["benchmark"] == "checkpoint"
    assert (result["steps"], result["rounds"]) == (STEPS, ROUNDS)
    assert "synchronous=FULL" in result["durability"]
    assert set(result["measured"]) == {"longrun", "langgraph"}
    assert result["targets"] == {"time_ratio": 0.5, "size_ratio": 0.5}
    assert [p["payload_bytes"] for p in result["payloads"]] == [200, 2000]
    for figures in result["payloads"]:
        mine = figures["longrun"]
        assert 0 < mine["median_ms"] <= mine["p95_ms"] and mine["mean_ms"] > 0
        assert mine["bytes"] > mine["bytes_added"] > 0


@pytest.mark.skipif(
    not HAS_LANGGRAPH, reason="langgraph-checkpoint-sqlite (the bench extra) is not installed"
)
def test_checkpoint_ratios_are_against_langgraph_measured_in_the_same_run(
    checkpoint_run: tuple[dict[str, Any], Path],
) -> None:
    result, _ = checkpoint_run
    assert result["langgraph"]["installed"] is True and result["langgraph"]["version"]
    met = []
    for figures in result["payloads"]:
        mine = figures["longrun"]
        for key, prefix in (("langgraph", ""), ("langgraph_last_value", "last_value_")):
            theirs = figures[key]
            assert 0 < theirs["median_ms"] <= theirs["p95_ms"]
            assert theirs["bytes"] > theirs["bytes_added"] > 0
            assert figures[f"{prefix}time_ratio"] == pytest.approx(
                mine["median_ms"] / theirs["median_ms"], rel=1e-2
            )
            assert figures[f"{prefix}size_ratio"] == pytest.approx(mine["bytes"] / theirs["bytes"], rel=1e-2)
        assert figures["met"] == {
            "time_ratio": figures["time_ratio"] <= 0.5,
            "size_ratio": figures["size_ratio"] <= 0.5,
        }
        met.extend(figures["met"].values())
        # A full snapshot holds every payload so far; the last value only the newest.
        assert figures["langgraph"]["bytes_added"] > figures["langgraph_last_value"]["bytes_added"]
    assert result["meets_targets"] is all(met)


def test_checkpoint_writes_a_whole_chain_of_delta_checkpoints(
    checkpoint_run: tuple[dict[str, Any], Path],
) -> None:
    """Every step was a real checkpoint: a child of the one before, its handoff the payload and
    nothing more, its event on a chain that `longrun verify` finds whole, and the size reported
    is the store's."""
    result, root = checkpoint_run
    for figures in result["payloads"]:
        size = figures["payload_bytes"]
        home = root / checkpoint_bench.longrun_dir(size)
        with sqlite3.connect(home / DB_NAME) as conn:
            run_id, head = conn.execute("SELECT id, head_checkpoint_id FROM run").fetchone()
            rows = conn.execute(
                "SELECT id, parent_id, seq, handoff_json, commits_json FROM checkpoint WHERE run_id = ? "
                "ORDER BY id",
                (run_id,),
            ).fetchall()
            kinds = [
                k for (k,) in conn.execute("SELECT kind FROM event WHERE run_id = ? ORDER BY seq", (run_id,))
            ]
            pages = (
                conn.execute("PRAGMA page_count").fetchone()[0]
                * conn.execute("PRAGMA page_size").fetchone()[0]
            )
        assert len(rows) == STEPS and head == rows[-1][0]
        assert [r[1] for r in rows] == [None] + [r[0] for r in rows[:-1]]
        assert all(len(r[3].encode()) == size for r in rows)
        assert all(len(json.loads(r[4])) == 1 for r in rows)  # the commits since the parent, not before
        assert kinds.count("checkpoint") == STEPS and kinds[-1] == "checkpoint"
        assert [r[2] for r in rows] == [i + 1 for i, k in enumerate(kinds) if k == "checkpoint"]
        anchor = anchors.anchor_path(home, run_id).stat().st_size
        assert figures["longrun"]["bytes"] == pages + anchor
        store = Store.open(home, create=False)
        try:
            assert log.verify_chain(store, run_id).ok
            audit = verify_store(store)
            assert audit.ok, audit.to_json()
        finally:
            store.close()


@pytest.mark.skipif(
    not HAS_LANGGRAPH, reason="langgraph-checkpoint-sqlite (the bench extra) is not installed"
)
def test_checkpoint_langgraph_side_holds_what_a_graph_would(
    checkpoint_run: tuple[dict[str, Any], Path],
) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    result, root = checkpoint_run
    for figures in result["payloads"]:
        size = figures["payload_bytes"]
        for accumulate, key in ((True, "langgraph"), (False, "langgraph_last_value")):
            path = root / checkpoint_bench.langgraph_db(size, accumulate)
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == STEPS
                assert conn.execute("SELECT count(*) FROM writes").fetchone()[0] == STEPS
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                pages = (
                    conn.execute("PRAGMA page_count").fetchone()[0]
                    * conn.execute("PRAGMA page_size").fetchone()[0]
                )
                saver = SqliteSaver(conn)
                latest = saver.get_tuple(
                    {"configurable": {"thread_id": checkpoint_bench.THREAD_ID, "checkpoint_ns": ""}}
                )
            assert figures[key]["bytes"] == pages
            assert latest is not None
            values = latest.checkpoint["channel_values"]
            if accumulate:
                assert [len(log.canonical_json(v).encode()) for v in values["messages"]] == [size] * STEPS
            else:
                assert values["handoff"] == checkpoint_bench.handoff(STEPS - 1, size)


def test_checkpoint_without_langgraph_says_so_and_measures_longrun(tmp_path: Path) -> None:
    result = bench(tmp_path, hide_langgraph=True)
    assert result["langgraph"]["installed"] is False
    assert "langgraph-checkpoint-sqlite" in result["langgraph"]["reason"]
    assert result["meets_targets"] is None
    for figures in result["payloads"]:
        assert figures["longrun"]["median_ms"] > 0
        assert (
            figures["langgraph"] is None
            and figures["langgraph_last_value"] is None
            and figures["met"] is None
        )
        assert {figures[f"{p}{r}_ratio"] for p in ("", "last_value_") for r in ("time", "size")} == {None}
    assert not list(tmp_path.glob("langgraph-*.db"))


def test_checkpoint_refuses_a_used_directory(checkpoint_run: tuple[dict[str, Any], Path]) -> None:
    _, root = checkpoint_run
    proc = subprocess.run(
        [sys.executable, "-m", "longrun.bench", "checkpoint", "--steps", "2", "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not empty" in proc.stderr


@pytest.mark.parametrize("size", [200, 2000])
def test_handoff_payload_is_exactly_its_size_and_varies(size: int) -> None:
    first, second = checkpoint_bench.handoff(0, size), checkpoint_bench.handoff(1, size)
    assert len(log.canonical_json(first).encode()) == size == len(log.canonical_json(second).encode())
    assert first != second
