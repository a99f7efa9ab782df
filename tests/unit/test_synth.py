"""The synthetic day (`longrun.bench.synth`): what an audit of it must find is there, and it adds up.

One small synth (2 hours, 5,000 events) is written per module and read back with plain SQL and
the store's own functions: every marker of the story, a whole hash chain, totals that are the
sums of the logged usages, sessions one after another, the same log for the same seed.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from longrun.bench.synth import MIN_EVENTS, SynthRun, synthesize
from longrun.store import integrity, runs
from longrun.store.db import Store
from longrun.store.log import canonical_json, verify_chain

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOURS = 2.0
EVENTS = 5_000
MARKERS = (
    "model_call",
    "tool_call",
    "tool_result",
    "checkpoint",
    "judge_call",
    "verdict",
    "judged",
    "approval_requested",
    "approval_decided",
    "breaker_tripped",
    "breaker_reset",
    "budget_warning",
    "usage_limit_wait",
    "rewound",
    "fork_made",
)
USAGE_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SynthRun]]:
    store = Store.open(tmp_path_factory.mktemp("synth"))
    result = synthesize(store, hours=HOURS, events=EVENTS, seed=7, end=END)
    yield store, result
    store.close()


def query(store: Store, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store.path) as conn:
        return conn.execute(sql, params).fetchall()


def kinds(store: Store, run_id: str) -> dict[str, int]:
    return dict(query(store, "SELECT kind, count(*) FROM event WHERE run_id = ? GROUP BY kind", run_id))


def test_the_run_has_every_marker_of_the_story(synth: tuple[Store, SynthRun]) -> None:
    store, result = synth
    found = kinds(store, result.run_id)
    assert [k for k in MARKERS if not found.get(k)] == []
    assert kinds(store, result.fork_run_id).get("forked") == 1
    fork = runs.get_run(store, result.fork_run_id)
    assert fork.parent_run_id == result.run_id
    assert fork.spec["worker"]["model"] != runs.get_run(store, result.run_id).spec["worker"]["model"]

    approvals = {a.kind: a for a in runs.list_approvals(store, result.run_id)}
    push = approvals["tool_call"]
    assert push.request["input"] == {"command": "git push origin HEAD"} and push.request["action"] == "ask"
    assert (push.state, bool(push.decided_by), bool(push.comment)) == ("approved", True, True)
    question = approvals["question"]
    assert question.state == "answered" and question.decided_by and question.comment
    reset = approvals["breaker_reset"]
    assert reset.state == "approved" and reset.decided_by and reset.comment
    assert all(a.state != "pending" for a in approvals.values())
    decided = {
        e[0]
        for e in query(
            store,
            "SELECT json_extract(data, '$.approval_id') FROM event "
            "WHERE run_id = ? AND kind = 'approval_decided'",
            result.run_id,
        )
    }
    assert decided == {a.id for a in approvals.values()}

    breaker = runs.breakers(store, result.run_id)["no_progress_sessions"]
    assert breaker.tripped_at is not None and breaker.state == "closed"  # reset, then the trial went well
    assert kinds(store, result.run_id).get("breaker_closed") == 1

    warning = query(
        store, "SELECT data FROM event WHERE run_id = ? AND kind = 'budget_warning'", result.run_id
    )
    data = json.loads(warning[0][0])
    assert data["cap"] == "usd" and data["spent"] >= data["warn_at"] * data["limit"]
    assert result.spent_usd < data["limit"] == result.budget_usd


def test_checkpoints_branch_at_the_rewind_and_come_every_twenty_tool_calls(
    synth: tuple[Store, SynthRun],
) -> None:
    store, result = synth
    checkpoints = runs.list_checkpoints(store, result.run_id)
    children: dict[int | None, list[int]] = {}
    for cp in checkpoints:
        children.setdefault(cp.parent_id, []).append(cp.id)
    rewound = json.loads(
        query(store, "SELECT data FROM event WHERE run_id = ? AND kind = 'rewound'", result.run_id)[0][0]
    )
    assert len(children[rewound["to"]]) == 2  # the abandoned line and the new one
    assert runs.get_checkpoint(store, rewound["from"]).reason == "before_rewind"

    # Between two checkpoints taken for the call count, in the same session, 20 tool calls ran.
    rows = query(
        store,
        "SELECT seq, session_id, kind, json_extract(data, '$.reason') FROM event WHERE run_id = ? "
        "AND kind IN ('tool_result', 'checkpoint') ORDER BY seq",
        result.run_id,
    )
    since, session, gaps = 0, None, []
    for _, sid, kind, reason in rows:
        if sid != session:
            since, session = 0, sid
        if kind == "tool_result":
            since += 1
        elif reason == "calls":
            gaps.append(since)
            since = 0
        else:
            since = 0
    assert gaps and set(gaps) == {20}


def test_the_chain_is_whole_and_every_payload_is_canonical(synth: tuple[Store, SynthRun]) -> None:
    store, result = synth
    report = verify_chain(store, result.run_id)
    assert report.ok and report.events == EVENTS == result.events
    fork = verify_chain(store, result.fork_run_id)
    assert fork.ok and fork.events == result.fork_events
    # Its rows, heads and anchors agree with its logs in full, as a real store's do.
    audit = integrity.verify_store(store)
    assert audit.all_breaks() == [], list(integrity.lines(audit))[:5]
    assert [r.notes for r in audit.runs] == [[], []]
    rows = query(store, "SELECT run_id, seq, ts, data FROM event ORDER BY run_id, seq")
    assert all(canonical_json(json.loads(data)) == data for _, _, _, data in rows)
    start, end = (END - timedelta(hours=HOURS)).isoformat(), END.isoformat()
    for run_id in (result.run_id, result.fork_run_id):
        stamps = [ts for rid, _, ts, _ in rows if rid == run_id]
        assert stamps == sorted(stamps)
        assert start <= stamps[0] and stamps[-1] <= end


def _usage_sums(store: Store, where: str, *params: Any) -> tuple[float, ...]:
    sums = ", ".join(f"coalesce(sum(json_extract(data, '$.usage.{k}')), 0)" for k in USAGE_KINDS)
    sql = f"SELECT coalesce(sum(json_extract(data, '$.usage.usd')), 0), {sums} FROM event WHERE {where}"
    return tuple(query(store, sql, *params)[0])


def test_totals_are_the_sums_of_the_logged_usages(synth: tuple[Store, SynthRun]) -> None:
    store, result = synth
    for run_id in (result.run_id, result.fork_run_id):
        run = runs.get_run(store, run_id)
        logged = _usage_sums(store, "run_id = ? AND kind IN ('model_call', 'judge_call')", run_id)
        usage = run.usage
        assert usage.usd == pytest.approx(logged[0], rel=1e-9)
        assert (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_write_tokens,
            usage.cache_read_tokens,
        ) == (logged[1:])
        assert usage.usd > 0 and all(logged[1:])
        for session in runs.list_sessions(store, run_id):
            mine = _usage_sums(
                store, "run_id = ? AND kind = 'model_call' AND session_id = ?", run_id, session.id
            )
            assert session.usage.usd == pytest.approx(mine[0], rel=1e-9)
            assert session.usage.tokens == sum(mine[1:]) > 0
        days = query(store, "SELECT day, spent_usd FROM spend_day WHERE run_id = ?", run_id)
        for day, usd in days:
            logged_day = _usage_sums(
                store,
                "run_id = ? AND kind IN ('model_call', 'judge_call') AND substr(ts, 1, 10) = ?",
                run_id,
                day,
            )
            assert usd == pytest.approx(logged_day[0], rel=1e-9)
        assert sum(usd for _, usd in days) == pytest.approx(run.spent_usd, rel=1e-9)
    # A checkpoint carries the run's spend when it was made: the logged usages before its event.
    cp = runs.list_checkpoints(store, result.run_id)[len(runs.list_checkpoints(store, result.run_id)) // 2]
    before = _usage_sums(
        store, "run_id = ? AND kind IN ('model_call', 'judge_call') AND seq < ?", result.run_id, cp.seq
    )
    assert cp.spent_usd == pytest.approx(before[0], rel=1e-9) and cp.tokens == sum(before[1:])


def test_sessions_follow_one_another_and_end_in_every_way(synth: tuple[Store, SynthRun]) -> None:
    store, result = synth
    sessions = runs.list_sessions(store, result.run_id)
    assert [s.n for s in sessions] == list(range(1, result.sessions + 1))
    assert {s.state for s in sessions} == {"ended", "timed_out", "crashed", "running"}
    assert {s.end_reason for s in sessions if s.state == "ended"} == {"finished", "approval", "rate_limited"}
    assert [s.state for s in sessions].index("running") == len(sessions) - 1
    waits = ("approval_decided", "breaker_reset", "usage_limit_wait", "rewound")
    long_gaps = []
    for before, after in zip(sessions, sessions[1:], strict=False):
        assert before.ended_at is not None and before.settled_at is not None
        assert before.started_at is not None and after.started_at is not None
        assert before.started_at < before.ended_at <= before.settled_at < after.created_at
        assert before.ended_at <= before.deadline_at + timedelta(seconds=2)
        gap = after.created_at - before.settled_at
        if gap > timedelta(seconds=40):
            marks = query(
                store,
                f"SELECT kind FROM event WHERE run_id = ? AND kind IN {waits} AND ts >= ? AND ts < ?",
                result.run_id,
                before.ended_at.isoformat(),
                after.created_at.isoformat(),
            )
            long_gaps.append((after.n, sorted({m[0] for m in marks})))
    # Sessions follow on after a cooldown, except where a person or a usage limit was waited for.
    assert [kinds_ for _, kinds_ in long_gaps] == [
        ["approval_decided"],
        ["approval_decided", "breaker_reset"],
        ["approval_decided"],
        ["usage_limit_wait"],
        ["rewound"],
    ]


def test_verdicts_go_from_failing_to_passing_with_one_regression(synth: tuple[Store, SynthRun]) -> None:
    store, result = synth
    verdicts = runs.run_verdicts(store, result.run_id)
    by_feature: dict[str, list[str]] = {}
    for v in verdicts:
        by_feature.setdefault(v.feature_id, []).append(v.status)
    passing_first = sum(1 for statuses in by_feature.values() if statuses[0] == "pass")
    passing_last = sum(1 for statuses in by_feature.values() if statuses[-1] == "pass")
    assert passing_first < passing_last < len(by_feature)
    regressed = [f for f, statuses in by_feature.items() if "pass,fail,pass" in ",".join(statuses)]
    assert len(regressed) == 1
    # The judge's rubric calls are charged: each names a feature with a rubric, at a judged checkpoint.
    judged = {r[0] for r in query(store, "SELECT checkpoint_id FROM verdict WHERE run_id = ?", result.run_id)}
    calls = query(
        store,
        "SELECT json_extract(data, '$.checkpoint_id') FROM event WHERE run_id = ? AND kind = 'judge_call'",
        result.run_id,
    )
    assert calls and {c[0] for c in calls} <= judged


def test_the_same_seed_writes_the_same_log(tmp_path: Path) -> None:
    home = tmp_path / "home"  # the workspaces' paths are under the store's home: one place for all

    def write(seed: int) -> list[tuple[Any, ...]]:
        shutil.rmtree(home, ignore_errors=True)
        store = Store.open(home)
        try:
            synthesize(store, hours=1.0, events=MIN_EVENTS, seed=seed, end=END)
            return query(store, "SELECT run_id, seq, session_id, ts, kind, data, hash FROM event ORDER BY id")
        finally:
            store.close()

    first, again, other = write(3), write(3), write(4)
    assert first == again
    assert [r[6] for r in first] != [r[6] for r in other]


def test_too_few_events_or_hours_are_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    try:
        with pytest.raises(ValueError, match="--events"):
            synthesize(store, events=MIN_EVENTS - 1, end=END)
        with pytest.raises(ValueError, match="too short"):
            synthesize(store, hours=0.2, events=MIN_EVENTS, end=END)
        assert query(store, "SELECT count(*) FROM event") == [(0,)]
    finally:
        store.close()


def test_the_benchmark_writes_a_store_and_prints_what_it_wrote(tmp_path: Path) -> None:
    home = tmp_path / "synth"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "longrun.bench",
            "synth",
            "--hours",
            "1",
            "--events",
            "2500",
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["home"] == str(home) and out["events"] == 2500 and out["seconds"] > 0
    store = Store.open(home, create=False)
    try:
        assert verify_chain(store, out["run_id"]).events == 2500
        assert runs.get_run(store, out["fork_run_id"]).parent_run_id == out["run_id"]
    finally:
        store.close()

    refused = subprocess.run(
        [sys.executable, "-m", "longrun.bench", "synth", "--events", "10", "--home", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().count("\n") == 0 and "--events" in refused.stderr
