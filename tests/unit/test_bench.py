"""The benchmark suite as a person runs it: `python -m longrun.bench NAME`, one JSON object on stdout.

Each benchmark runs once per module, small, as a real subprocess writing into a directory the
test keeps, so the figures can be checked against the rows actually written. No assertion is
made on how fast anything is: only that the figures are there, positive and consistent.
"""

from __future__ import annotations

import json
import platform
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from longrun.bench import append as append_bench
from longrun.bench import judge as judge_bench
from longrun.bench import rehydrate as rehydrate_bench
from longrun.scheduler.demo import DEMO_SPEC
from longrun.scheduler.session.context import CONTEXT_TOKEN_CAP
from longrun.scheduler.spec.keys import RATCHET
from longrun.store.db import DB_NAME, Store
from longrun.store.log import verify_chain

APPEND_EVENTS = 300
SMALL, LARGE, REPEAT = 500, 5000, 5
WORK_KINDS = ("model_call", "tool_call", "tool_result")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "longrun.bench", *args], capture_output=True, text=True, timeout=120
    )


def result_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must be one JSON object, got {proc.stdout!r}"
    return json.loads(lines[0])


def run_ids(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return {name: run_id for run_id, name in conn.execute("SELECT id, name FROM run")}


def count(db: Path, sql: str, *params: Any) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def append_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("append")
    return result_of(bench("append", "--events", str(APPEND_EVENTS), "--dir", str(root))), root


@pytest.fixture(scope="module")
def rehydrate_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("rehydrate")
    proc = bench(
        "rehydrate", "--small", str(SMALL), "--large", str(LARGE), "--repeat", str(REPEAT), "--dir", str(root)
    )
    return result_of(proc), root


def assert_pair(figures: dict[str, Any]) -> None:
    longrun, plain = figures["longrun_events_per_s"], figures["sqlite3_events_per_s"]
    assert longrun > 0 and plain > 0
    assert figures["ratio"] == pytest.approx(longrun / plain, rel=1e-2)


def test_append_reports_both_paths_against_sqlite3(append_run: tuple[dict[str, Any], Path]) -> None:
    result, _ = append_run
    assert result["benchmark"] == "append"
    assert result["events"] == APPEND_EVENTS
    assert result["durability"] == "WAL, synchronous=FULL, one transaction per event"
    assert_pair(result)
    assert result["batched"]["batch"] == 100
    assert_pair(result["batched"])
    assert result["python"] == platform.python_version()
    assert result["sqlite"] == sqlite3.sqlite_version
    assert result["targets"] == {"ratio": 0.7}
    assert result["met"] == {"ratio": result["ratio"] >= 0.7}


def test_append_writes_the_events_it_reports_on_both_sides(append_run: tuple[dict[str, Any], Path]) -> None:
    _, root = append_run
    longrun_db = root / append_bench.LONGRUN_DIR / DB_NAME
    plain_db = root / append_bench.SQLITE_DIR / append_bench.SQLITE_DB
    ids = run_ids(longrun_db)
    assert run_ids(plain_db) == ids
    marks = ",".join("?" * len(WORK_KINDS))
    for name in (append_bench.SINGLE_RUN, append_bench.BATCHED_RUN):
        work = f"SELECT count(*) FROM event WHERE run_id = ? AND kind IN ({marks})"
        assert count(longrun_db, work, ids[name], *WORK_KINDS) == APPEND_EVENTS
        assert count(plain_db, "SELECT count(*) FROM event WHERE run_id = ?", ids[name]) == APPEND_EVENTS
    # The events went through the real hot path: the hash chain is whole.
    store = Store.open(root / append_bench.LONGRUN_DIR, create=False)
    try:
        for name in (append_bench.SINGLE_RUN, append_bench.BATCHED_RUN):
            assert verify_chain(store, ids[name]).ok
    finally:
        store.close()


def test_append_baseline_table_has_the_store_shape(append_run: tuple[dict[str, Any], Path]) -> None:
    _, root = append_run
    ddl = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'event' ORDER BY name"
    with (
        sqlite3.connect(root / append_bench.LONGRUN_DIR / DB_NAME) as a,
        sqlite3.connect(root / append_bench.SQLITE_DIR / append_bench.SQLITE_DB) as b,
    ):
        assert a.execute(ddl).fetchall() == b.execute(ddl).fetchall()
        assert b.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rehydrate_reports_both_runs(rehydrate_run: tuple[dict[str, Any], Path]) -> None:
    result, _ = rehydrate_run
    assert result["benchmark"] == "rehydrate"
    assert result["small"]["events"] == SMALL
    assert result["large"]["events"] == LARGE
    for size in ("small", "large"):
        figures = result[size]
        assert 0 < figures["median_ms"] <= figures["p95_ms"]
        assert figures["checkpoints"] >= 1
        assert 0 < figures["context_bytes"] <= CONTEXT_TOKEN_CAP
    assert result["large"]["checkpoints"] > result["small"]["checkpoints"]
    assert result["ratio"] == pytest.approx(
        result["large"]["median_ms"] / result["small"]["median_ms"], rel=1e-2
    )


def test_rehydrate_context_does_not_grow_with_history(rehydrate_run: tuple[dict[str, Any], Path]) -> None:
    """Same shape, ten times the history: only numbers (ids, totals) may differ in width."""
    result, _ = rehydrate_run
    assert abs(result["large"]["context_bytes"] - result["small"]["context_bytes"]) <= 40


def test_rehydrate_fills_exactly_the_history_asked(rehydrate_run: tuple[dict[str, Any], Path]) -> None:
    result, root = rehydrate_run
    db = root / rehydrate_bench.STORE_DIR / DB_NAME
    ids = run_ids(db)
    store = Store.open(root / rehydrate_bench.STORE_DIR, create=False)
    try:
        for name, size in ((rehydrate_bench.SMALL_RUN, "small"), (rehydrate_bench.LARGE_RUN, "large")):
            figures, run_id = result[size], ids[name]
            assert count(db, "SELECT count(*) FROM event WHERE run_id = ?", run_id) == figures["events"]
            assert (
                count(db, "SELECT count(*) FROM checkpoint WHERE run_id = ?", run_id)
                == figures["checkpoints"]
            )
            assert count(db, "SELECT count(*) FROM verdict WHERE run_id = ?", run_id) == figures["verdicts"]
            # Every checkpoint row points at its own checkpoint event, and the chain is whole.
            linked = (
                "SELECT count(*) FROM checkpoint c JOIN event e ON e.run_id = c.run_id AND e.seq = c.seq "
                "AND e.kind = 'checkpoint' WHERE c.run_id = ?"
            )
            assert count(db, linked, run_id) == figures["checkpoints"]
            assert verify_chain(store, run_id).ok
    finally:
        store.close()


@pytest.mark.parametrize("args", [[], ["nosuch"]], ids=["no name", "unknown name"])
def test_usage_error_lists_the_benchmarks(args: list[str]) -> None:
    proc = bench(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("usage:")
    assert "append" in lines[0] and "rehydrate" in lines[0]


def test_a_used_directory_is_refused(append_run: tuple[dict[str, Any], Path]) -> None:
    """Rows of two runs of a benchmark never mix: a --dir that holds one already is refused."""
    _, root = append_run
    before = count(root / append_bench.LONGRUN_DIR / DB_NAME, "SELECT count(*) FROM event")
    proc = bench("append", "--events", "5", "--dir", str(root))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not empty" in proc.stderr
    assert count(root / append_bench.LONGRUN_DIR / DB_NAME, "SELECT count(*) FROM event") == before


def test_rehydrate_refuses_a_history_too_short_for_its_shape(tmp_path: Path) -> None:
    proc = bench("rehydrate", "--small", "5", "--large", "5000", "--dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--small and --large must be at least" in proc.stderr
    assert not (tmp_path / rehydrate_bench.STORE_DIR).exists()


def test_proxy_compares_the_proxy_with_the_scripted_server_in_the_same_run() -> None:
    figures = result_of(bench("proxy", "--calls", "6"))
    assert figures["benchmark"] == "proxy" and figures["calls"] == 6
    assert figures["plain_direct_median_ms"] > 0 and figures["plain_proxy_median_ms"] > 0
    assert figures["first_byte_direct_median_ms"] > 0 and figures["first_byte_ratio"] > 0
    assert figures["targets"] == {"added_p95_ms": 5.0, "first_byte_ratio": 1.1}
    assert isinstance(figures["meets_targets"], bool)
    # Every call through the proxy is metered: 4 warm-up calls, then a plain and a streamed one a round.
    assert figures["metered_calls"] == 4 + 2 * 6 and figures["metered_output_tokens"] > 0


JUDGE_TIMEOUT_S = 540


@pytest.mark.timeout(600)
def test_judge_compares_judging_the_demo_with_its_checks_by_hand(tmp_path: Path) -> None:
    """The demo is run to done in the store under --dir, and its head checkpoint really judged."""
    proc = subprocess.run(
        [sys.executable, "-m", "longrun.bench", "judge", "--repeat", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=JUDGE_TIMEOUT_S,
    )
    figures = result_of(proc)
    assert figures["benchmark"] == "judge" and figures["repeat"] == 1
    features = DEMO_SPEC["features"]
    assert figures["features"] == len(features)
    assert figures["checks"] == sum(1 for f in features if f.get("check")) > 0
    assert figures["judged"] == {f["id"]: "pass" for f in features} | {RATCHET: "pass"}
    for side in ("judge", "by_hand"):
        assert 0 < figures[f"{side}_median_s"] <= figures[f"{side}_p95_s"]
    assert figures["ratio"] == pytest.approx(
        figures["judge_median_s"] / figures["by_hand_median_s"], rel=1e-2
    )
    assert figures["targets"] == {"ratio": 1.5}
    assert isinstance(figures["meets_targets"], bool)
    assert figures["sessions"] >= 1 and figures["setup_s"] > 0
    db = tmp_path / judge_bench.STORE_DIR / DB_NAME
    run_id = figures["run_id"]
    assert count(db, "SELECT count(*) FROM run WHERE id = ? AND state = 'done'", run_id) == 1
    # The warm-up and each repeat judged the head checkpoint, under the benchmark's name.
    judged = (
        "SELECT count(*) FROM event WHERE run_id = ? AND kind = 'judged' "
        "AND json_extract(data, '$.by') = ? AND json_extract(data, '$.checkpoint_id') = ?"
    )
    assert count(db, judged, run_id, judge_bench.JUDGED_BY, figures["checkpoint_id"]) == 1 + figures["repeat"]


def test_sandbox_compares_calls_and_set_ups_inside_and_outside_in_the_same_run() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    figures = result_of(bench("sandbox", "--calls", "8", "--sessions", "2"))
    assert figures["benchmark"] == "sandbox" and (figures["calls"], figures["sessions"]) == (8, 2)
    for side in ("outside", "inside"):
        assert 0 < figures[f"call_{side}_median_ms"] <= figures[f"call_{side}_p95_ms"]
        assert figures[f"setup_{side}_median_ms"] > 0
    assert figures["call_ratio"] == pytest.approx(
        figures["call_inside_median_ms"] / figures["call_outside_median_ms"], rel=1e-2
    )
    assert figures["setup_added_median_ms"] == pytest.approx(
        figures["setup_inside_median_ms"] - figures["setup_outside_median_ms"], abs=1e-2
    )
    assert figures["targets"] == {"call_ratio": 1.2, "setup_added_ms": 100.0}
    assert isinstance(figures["meets_targets"], bool) and figures["versions"]["bwrap"]
    # The sandboxes it made are gone with their cgroups.
    assert not [p for p in Path("/sys/fs/cgroup").rglob("longrun-bench-*")]


def test_supervisor_times_first_and_steady_ticks_against_the_smallest_size() -> None:
    figures = result_of(bench("supervisor", "--sizes", "6,3", "--ticks", "2"))
    assert figures["benchmark"] == "supervisor" and figures["baseline"] == "3 runs"
    assert [(s["runs"], s["jobs"]) for s in figures["sizes"]] == [(3, 3), (6, 6)]
    assert figures["sizes"][0]["ratios"] == {"first_tick_s": 1.0, "steady_tick_s": 1.0}
    assert all(s["first_tick_s"] > 0 and s["steady_tick_s"] > 0 for s in figures["sizes"])
    # Targets are for 100 and 1,000 runs: none of them applies at these sizes.
    assert figures["targets"] == {} and figures["meets_targets"] is True


def test_start_times_fires_to_the_first_event_and_call_against_a_bare_python() -> None:
    figures = result_of(bench("start", "--sessions", "2"))
    assert figures["benchmark"] == "start" and figures["sessions"] == 2
    for key in ("fire_to_started_s", "fire_to_first_call_s", "bare_python_s"):
        assert 0 < figures[key]["p50"] <= figures[key]["p95"], figures
    assert figures["fire_to_started_s"]["p95"] <= figures["fire_to_first_call_s"]["p95"]
    assert set(figures["ratios"]) == {"fire_to_started_p50_vs_bare", "fire_to_first_call_p50_vs_bare"}
    assert figures["targets"] == {"fire_to_first_call_s.p95": 1.0}
    assert figures["met"]["fire_to_first_call_s.p95"] == (figures["fire_to_first_call_s"]["p95"] <= 1.0)
