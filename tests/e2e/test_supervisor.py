"""The supervisor: lease, restarts, kill -9, two daemons, schedules, usage-limit waits, queueing.

Daemons are real `longrun daemon` processes (or the real Supervisor in this process), sessions
are real processes, and the model is the scripted server behind the real SDK.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.triggers.interval import IntervalTrigger
from support import wait_for

from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file
from longrun.scheduler.spec.load import parse_spec
from longrun.scheduler.supervisor.daemon import Supervisor, SupervisorConfig, fire, supervise_until_finished
from longrun.scheduler.supervisor.planning import next_after_session, periodic_trigger, window_end
from longrun.store import lease, log, runs
from longrun.store.db import Store

FAST = SupervisorConfig(
    max_concurrent=2, lease_ttl=timedelta(seconds=3), tick=0.3, grace=timedelta(seconds=5)
)
DONE_FEATURE = [
    {"id": "finished", "description": "the last session left done.txt", "check": "test -f done.txt"}
]


def _sessions(n: int, *, slow_session: int | None = None, slow: str = "sleep 30") -> list[list[dict]]:
    """`n` short sessions; the last one writes done.txt (so the judge passes the run after it)."""
    out = []
    for i in range(1, n + 1):
        turns: list[dict] = [{"tool": "write", "input": {"file_path": f"s{i}.txt", "content": f"{i}\n"}}]
        if i == slow_session:
            turns.append({"tool": "bash", "input": {"command": slow}})
        if i == n:
            turns.append({"tool": "write", "input": {"file_path": "done.txt", "content": "done\n"}})
        turns.append(
            {"tool": "handoff", "input": {"done": [f"s{i}"], "next": [], "blockers": [], "notes": ""}}
        )
        turns.append({"text": f"session {i} over"})
        out.append(turns)
    return out


def _spec(
    write_spec, sessions: list[list[dict]], schedule: str = 'mode = "back_to_back"\ncooldown = "1s"', **kw
):
    return write_spec(sessions, features=DONE_FEATURE, extra=f"[schedule]\n{schedule}\n", **kw)


@pytest.fixture
def daemons(home: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "longrun.app.cli",
                "daemon",
                "--lease-ttl",
                "3",
                "--tick",
                "0.3",
                "--grace",
                "5",
                *extra,
            ],
            env={**os.environ, "LONGRUN_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _state(store: Store, run_id: str) -> str:
    return runs.get_run(store, run_id).state


def _assert_whole_history(store: Store, run_id: str) -> list[runs.SessionView]:
    sessions = runs.list_sessions(store, run_id)
    numbers = [s.n for s in sessions]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    created = [e.data["n"] for e in log.read_events(store, run_id, kinds=["session_created"])]
    assert created == numbers, "a session number was used twice or a session was lost"
    assert all(s.is_final for s in sessions)
    assert log.verify_chain(store, run_id).ok
    return sessions


# --- the lease -----------------------------------------------------------------------------------


def test_the_lease_is_taken_by_compare_and_set_and_taken_over_after_expiry(store: Store) -> None:
    now = datetime.now(UTC)
    ttl = timedelta(seconds=10)
    assert lease.acquire(store, "a", ttl, now)
    assert not lease.acquire(store, "b", ttl, now + timedelta(seconds=5))
    assert lease.acquire(store, "a", ttl, now + timedelta(seconds=5))  # renewal
    assert not lease.acquire(store, "b", ttl, now + timedelta(seconds=14))
    assert lease.acquire(store, "b", ttl, now + timedelta(seconds=16))  # a let it expire
    assert not lease.acquire(store, "a", ttl, now + timedelta(seconds=17))
    assert lease.current(store).holder == "b"
    lease.release(store, "b")
    assert lease.acquire(store, "a", ttl)


def test_two_daemons_on_one_store_only_one_fires_sessions(store: Store, write_spec, daemons) -> None:
    run = create_run_from_file(store, _spec(write_spec, _sessions(3)))
    first, second = daemons(), daemons()
    control.start(store, run.id)
    wait_for(lambda: _state(store, run.id) == "done", 120, "the run to finish")
    for proc in (first, second):
        proc.send_signal(signal.SIGTERM)
    outputs = [proc.communicate(timeout=30)[0] for proc in (first, second)]
    assert sum("supervising as" in out for out in outputs) == 1, outputs
    assert sum("waiting: the lease is held" in out for out in outputs) == 1, outputs
    sessions = _assert_whole_history(store, run.id)
    assert len(sessions) == 3


def test_a_daemon_restarted_mid_run_loses_and_duplicates_nothing(store: Store, write_spec, daemons) -> None:
    run = create_run_from_file(store, _spec(write_spec, _sessions(3, slow_session=2, slow="sleep 3")))
    daemon = daemons()
    control.start(store, run.id)
    wait_for(lambda: any(s.n == 2 for s in runs.list_sessions(store, run.id)), 60, "session 2 to start")
    daemon.send_signal(signal.SIGTERM)
    out = daemon.communicate(timeout=60)[0]
    assert "shutting down" in out and "stopped" in out
    second = runs.list_sessions(store, run.id)[1]
    assert second.is_final, "a clean shutdown left a session running"
    assert lease.current(store) is not None and not lease.current(store).alive()  # released at once
    daemons()
    wait_for(lambda: _state(store, run.id) == "done", 120, "the run to finish after the restart")
    sessions = _assert_whole_history(store, run.id)
    assert len(sessions) >= 3


def test_kill_9_of_daemon_and_session_then_a_new_daemon_finishes_the_run(
    store: Store, write_spec, daemons
) -> None:
    run = create_run_from_file(store, _spec(write_spec, _sessions(2, slow_session=1)))
    daemon = daemons()
    control.start(store, run.id)

    def slow_call_running() -> bool:
        return any(e.data.get("tool") == "bash" for e in log.read_events(store, run.id, kinds=["tool_call"]))

    wait_for(slow_call_running, 60, "session 1's slow call")
    victim = runs.list_sessions(store, run.id)[0]
    os.kill(daemon.pid, signal.SIGKILL)
    os.killpg(victim.pid, signal.SIGKILL)
    daemon.wait()
    assert runs.get_session(store, victim.id).state == "running"  # nobody knows yet

    started = time.monotonic()
    replacement = daemons()
    wait_for(lambda: _state(store, run.id) == "done", 120, "the new daemon to finish the run")
    assert time.monotonic() - started >= 1.0, "the lease was taken before it expired"
    crashed = runs.get_session(store, victim.id)
    assert crashed.state == "crashed"
    sessions = _assert_whole_history(store, run.id)
    assert [s.state for s in sessions] == ["crashed", "ended"]
    resumed = sessions[1]
    salvage = runs.get_checkpoint(store, resumed.from_checkpoint_id)
    assert salvage.session_id == victim.id and salvage.reason == "crashed"
    replacement.send_signal(signal.SIGTERM)
    replacement.wait(timeout=30)


# --- schedules, with the clock in our hands ---------------------------------------------------


def _schedule(text: str):
    spec = parse_spec(
        f'name = "s"\ngoal = "g"\nworkspace = "w"\n[schedule]\n{text}\n', source="t", base_dir=Path("/")
    )
    return spec.schedule


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_back_to_back_starts_the_next_session_after_the_cooldown() -> None:
    schedule = _schedule('mode = "back_to_back"\ncooldown = "45s"')
    assert periodic_trigger(schedule) is None
    at, reason = next_after_session(schedule, T0, None)
    assert at == T0 + timedelta(seconds=45) and "cooldown" in reason


def test_interval_fires_every_period_from_not_before_until_not_after() -> None:
    schedule = _schedule(
        'mode = "interval"\nevery = "2h"\nnot_before = 2026-12-01T12:00:00Z\nnot_after = 2026-12-01T17:00:00Z'
    )
    trigger = periodic_trigger(schedule)
    fires, previous, now = [], None, T0 - timedelta(hours=1)
    while (nxt := trigger.get_next_fire_time(previous, now)) is not None:
        fires.append(nxt)
        previous, now = nxt, nxt
    assert fires == [T0, T0 + timedelta(hours=2), T0 + timedelta(hours=4)]
    assert next_after_session(schedule, T0, None) is None  # the interval decides, not the session's end


def test_cron_fires_on_its_crontab_and_a_window_bounds_the_sessions() -> None:
    schedule = _schedule('mode = "cron"\ncron = "0 22 * * *"\nwindow = "2h"\ncooldown = "1m"')
    trigger = periodic_trigger(schedule)
    local = datetime(2026, 12, 1, 21, 0).astimezone()
    first = trigger.get_next_fire_time(None, local)
    assert (first.hour, first.minute) == (22, 0)
    end = window_end(schedule, first)
    assert end == first + timedelta(hours=2)
    # Inside the window another session follows after the cooldown; near its end none does.
    at, reason = next_after_session(schedule, first + timedelta(minutes=30), end)
    assert at == first + timedelta(minutes=31) and "window" in reason
    assert next_after_session(schedule, end - timedelta(seconds=30), end) is None


def test_a_session_deadline_never_runs_past_the_window(store: Store, write_spec) -> None:
    run = create_run_from_file(store, write_spec([[{"text": "x"}]], time_box="1h", wrap_up="5m"))
    now = datetime.now(UTC)
    session = runs.create_session(
        store,
        run.id,
        time_box=timedelta(hours=1),
        wrap_up=timedelta(minutes=5),
        now=now,
        not_after=now + timedelta(minutes=10),
    )
    assert session.deadline_at == now + timedelta(minutes=10)
    assert session.wrap_up_at == session.deadline_at - timedelta(minutes=2)


def test_misfires_after_downtime_coalesce_into_one_session_and_jobs_survive_restarts(store: Store) -> None:
    executed, missed = [], []
    supervisor = Supervisor(store, FAST)
    scheduler = supervisor._make_scheduler()
    scheduler.add_listener(lambda e: executed.append(e.job_id), EVENT_JOB_EXECUTED)
    scheduler.add_listener(lambda e: missed.append(e.job_id), EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
    scheduler.add_job(
        fire,
        IntervalTrigger(minutes=1, start_date=three_hours_ago),
        args=("nobody", "test"),
        id="r:schedule",
        next_run_time=three_hours_ago,
    )
    scheduler.resume()
    wait_for(lambda: bool(executed), 10, "the overdue job to run")
    time.sleep(0.5)
    scheduler.shutdown()
    assert executed == ["r:schedule"] and missed == []  # 180 missed fires, one run

    again = Supervisor(store, FAST)._make_scheduler()
    again.start(paused=True)
    job = again.get_job("r:schedule")
    assert job is not None and job.next_run_time > datetime.now(UTC)
    again.shutdown()


# --- in-process supervisor: usage limits, queueing, interval skips ------------------------------


def test_a_429_with_a_reset_time_schedules_the_next_session_at_the_reset_not_before(
    store: Store, write_spec
) -> None:
    limited = {"error": 429, "retry_after": "4s"}
    sessions = [[limited, limited, limited], *_sessions(1)]
    run = create_run_from_file(store, _spec(write_spec, sessions))
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=90, config=FAST)
    assert _state(store, run.id) == "done"
    first, second = _assert_whole_history(store, run.id)
    assert first.end_reason == "rate_limited"
    retry_at = datetime.fromisoformat(
        log.read_events(store, run.id, kinds=["rate_limited"])[0].data["retry_at"]
    )
    assert second.created_at >= retry_at
    wait = log.read_events(store, run.id, kinds=["usage_limit_wait"])
    assert len(wait) == 1 and datetime.fromisoformat(wait[0].data["until"]) == retry_at


def test_resume_after_limit_false_pauses_the_run_instead(store: Store, write_spec) -> None:
    limited = {"error": 429, "retry_after": "2s"}
    spec = _spec(
        write_spec,
        [[limited, limited, limited], *_sessions(1)],
        schedule='mode = "back_to_back"\ncooldown = "1s"\nresume_after_limit = false',
    )
    run = create_run_from_file(store, spec)
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=60, config=FAST)
    final = runs.get_run(store, run.id)
    assert final.state == "paused" and "resume_after_limit = false" in (final.state_reason or "")
    assert len(runs.list_sessions(store, run.id)) == 1


def test_max_concurrent_queues_runs_and_never_overlaps_two_sessions_of_one_run(
    store: Store, write_spec
) -> None:
    slow = _sessions(1, slow_session=1, slow="sleep 2")
    a = create_run_from_file(store, _spec(write_spec, slow, name="a", folder="a"))
    b = create_run_from_file(store, _spec(write_spec, slow, name="b", folder="b"))
    for run in (a, b):
        control.start(store, run.id)
    supervisor = Supervisor(
        store, SupervisorConfig(max_concurrent=1, lease_ttl=timedelta(seconds=3), tick=0.3)
    )
    queued: list[str] = []

    def both_done() -> bool:
        for r in (a, b):
            reason = runs.get_run(store, r.id).next_reason or ""
            if reason.startswith("queued"):
                queued.append(r.id)
        return all(_state(store, r.id) == "done" for r in (a, b))

    try:
        supervisor.serve(until=both_done)
    finally:
        supervisor.shutdown()
    spans = sorted((s.started_at, s.ended_at) for r in (a, b) for s in runs.list_sessions(store, r.id))
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0], "two sessions ran at once with max_concurrent = 1"
    assert queued, "the second run never said it was queued"


def test_control_verbs_validate_the_state_and_write_events(store: Store, write_spec) -> None:
    from longrun.store.errors import InvalidTransition

    run = create_run_from_file(store, _spec(write_spec, _sessions(1)))
    with pytest.raises(InvalidTransition, match="is draft"):
        control.pause(store, run.id)
    control.start(store, run.id, by="ada")
    with pytest.raises(InvalidTransition, match="is scheduled"):
        control.start(store, run.id)
    control.pause(store, run.id, by="ada")
    assert _state(store, run.id) == "paused"
    control.resume(store, run.id, by="bob")
    control.stop(store, run.id, by="bob")
    kinds = [(e.kind, e.data.get("by")) for e in log.read_events(store, run.id) if "by" in e.data]
    kinds = [k for k in kinds if k[0] != "harness_pinned"]
    assert kinds == [("started", "ada"), ("paused", "ada"), ("resumed", "bob"), ("stopped", "bob")]


@pytest.mark.timeout(300)
def test_kill_9_of_daemon_and_sessions_at_random_points_still_ends_done(
    store: Store, home: Path, daemons, tmp_path: Path
) -> None:
    """The demo, with its daemon (and, mostly, its running session) killed -9 three times."""
    import random

    from longrun.scheduler.demo import write_demo_project

    rng = random.Random(20261121)
    run = create_run_from_file(store, write_demo_project(tmp_path / "demo"), ["schedule.cooldown=1s"])
    control.start(store, run.id)
    daemon = daemons()
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 5.0))
        if _state(store, run.id) == "done":
            break
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
        for s in runs.live_sessions(store):
            if s.pid and rng.random() < 0.8:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(s.pid, signal.SIGKILL)
        daemon = daemons()

    def done_with_a_person_approving() -> bool:
        for approval in runs.list_approvals(store, run.id, state="pending"):  # the demo's push
            control.decide(store, approval.id, approve=True, by="chaos")
        return _state(store, run.id) == "done"

    wait_for(done_with_a_person_approving, 200, "the run to finish after the kills")
    _assert_whole_history(store, run.id)


def test_a_budget_stop_waits_for_a_raise_then_goes_on_to_the_new_cap(store: Store, write_spec) -> None:
    turns = [
        {
            "tool": "bash",
            "input": {"command": f"echo {i}"},
            "usage": {"input_tokens": 3000, "output_tokens": 400},
        }
        for i in range(40)
    ]
    run = create_run_from_file(store, _spec(write_spec, [turns, turns], budget="usd = 0.04"))
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=60, config=FAST)
    stopped = runs.get_run(store, run.id)
    assert stopped.state == "awaiting_approval" and "budget.usd" in (stopped.state_reason or "")
    assert stopped.spent_usd <= 0.04
    (approval,) = runs.list_approvals(store, run.id, state="pending")
    assert approval.kind == "budget_raise" and approval.request["cap"] == "usd"
    assert len(runs.list_sessions(store, run.id)) == 1, "the supervisor kept starting sessions"

    control.set_budget(store, run.id, {"usd": 0.20}, by="ada", comment="worth it")
    assert _state(store, run.id) == "scheduled"
    decided = runs.list_approvals(store, run.id)[0]
    assert (decided.state, decided.decided_by, decided.comment) == ("approved", "ada", "worth it")
    assert supervise_until_finished(store, run.id, timeout_s=60, config=FAST)
    final = runs.get_run(store, run.id)
    assert final.state == "awaiting_approval" and 0.04 < final.spent_usd <= 0.20
    assert len(runs.list_sessions(store, run.id)) == 2
