"""Budgets, the ledger, circuit breakers and notifications, through real sessions."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.guards.budget import CapLeft, fit_call, worst_case_usd
from longrun.scheduler.guards.pricing import Price
from longrun.scheduler.supervisor import launch
from longrun.scheduler.supervisor.daemon import SupervisorConfig, supervise_until_finished
from longrun.store import log, runs
from longrun.store.db import Store

FAST = SupervisorConfig(max_concurrent=2, tick=0.3)
EXPENSIVE = {"input_tokens": 3000, "output_tokens": 400}


def _spec(write_spec, sessions, *, budget="usd = 5.0", breakers="", notify="", features=None):
    extra = '[schedule]\nmode = "back_to_back"\ncooldown = "1s"\n'
    if breakers:
        extra += f"[breakers]\n{breakers}\n"
    if notify:
        extra += f"[notify]\n{notify}\n"
    return write_spec(sessions, budget=budget, extra=extra, features=features)


# --- budgets ------------------------------------------------------------------------------------


@given(
    left=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=4),
    input_bound=st.integers(min_value=1, max_value=300_000),
    max_tokens=st.integers(min_value=1, max_value=64_000),
    prices=st.tuples(*(st.floats(min_value=0.01, max_value=100.0) for _ in range(4))),
)
def test_a_call_that_fits_can_never_cross_a_cap(left, input_bound, max_tokens, prices) -> None:
    price = Price("m", *prices)
    caps = [CapLeft(f"c{i}", 10.0, 10.0 - room) for i, room in enumerate(left)]
    fit = fit_call(caps, price, input_bound, max_tokens)
    assert 0 <= fit.max_tokens <= max_tokens
    if fit.max_tokens > 0:
        worst = worst_case_usd(price, input_bound, fit.max_tokens)
        assert all(worst <= cap.left for cap in caps)


@pytest.mark.timeout(600)  # a guard against a hang, not a measure: eight real sessions on a busy machine
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    cap=st.floats(min_value=0.01, max_value=0.2),
    max_tokens=st.integers(min_value=300, max_value=8000),
    outputs=st.lists(st.integers(min_value=1, max_value=4000), min_size=3, max_size=12),
)
def test_randomized_scripted_sessions_never_overspend_and_resume_after_a_raise(
    tmp_path_factory, cap, max_tokens, outputs
) -> None:
    """Random output per call (the server clamps it to max_tokens, as the API does), random
    max_tokens and caps; input usage is the server's estimate of the real request size.

    A few examples, no deadline: `python -m longrun.bench overshoot` runs the same kind of
    sessions by the hundred and reports the worst spent/cap."""
    home = tmp_path_factory.mktemp("home")
    store = Store.open(home)
    base = tmp_path_factory.mktemp("spec")
    (base / "ws").mkdir()
    turns = [{"tool": "bash", "input": {"command": "true"}, "usage": {"output_tokens": o}} for o in outputs]
    (base / "s.json").write_text(
        json.dumps({"sessions": [{"turns": turns, "loop": True}], "after_last": "repeat"})
    )
    (base / "r.toml").write_text(
        'name = "p"\ngoal = "g"\nworkspace = "ws"\n'
        f'[worker]\nbackend = "scripted"\nscript = "s.json"\nmax_tokens = {max_tokens}\n'
        f"[budget]\nusd = {cap}\n[breakers]\nmax_usd_per_hour = 1000.0\n"
    )
    os.environ["LONGRUN_HOME"] = str(home)
    run = create_run_from_file(store, base / "r.toml")
    session = run_session_now(store, run.id)
    assert session.end_reason == "budget"
    assert runs.get_run(store, run.id).spent_usd <= cap
    control.set_budget(store, run.id, {"usd": cap * 2})
    second = run_session_now(store, run.id)
    assert second.end_reason == "budget" and second.n == 2
    assert runs.get_run(store, run.id).spent_usd <= cap * 2
    store.close()


def test_totals_rebuilt_from_the_log_equal_the_stored_totals_after_a_crash(store: Store, write_spec) -> None:
    turns = [{"tool": "bash", "input": {"command": "true"}, "usage": EXPENSIVE} for _ in range(3)]
    turns.append({"tool": "bash", "input": {"command": "sleep 60"}})
    run = create_run_from_file(store, _spec(write_spec, [turns]))
    launched = launch.start_session(store, runs.get_run(store, run.id))
    deadline = time.monotonic() + 60
    while len(log.read_events(store, run.id, kinds=["model_call"])) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(launched.process.pid, signal.SIGKILL)
    launch.watch(store, launched)
    calls = [e.data["usage"] for e in log.read_events(store, run.id, kinds=["model_call"])]
    rebuilt = {k: sum(c[k] for c in calls) for k in runs.TOKEN_KINDS} | {"usd": sum(c["usd"] for c in calls)}
    stored = runs.get_run(store, run.id).usage
    session = runs.list_sessions(store, run.id)[0].usage
    day = runs.day_usage(store, run.id, runs.utc_day(runs.get_run(store, run.id).created_at))
    for usage in (stored, session, day):
        assert {k: getattr(usage, k) for k in runs.TOKEN_KINDS} == {k: rebuilt[k] for k in runs.TOKEN_KINDS}
        assert abs(usage.usd - rebuilt["usd"]) < 1e-9


# --- breakers -----------------------------------------------------------------------------------


def test_the_same_failing_command_trips_same_error_repeats_and_a_reset_half_opens(
    store: Store, write_spec, cli
) -> None:
    failing = [{"tool": "bash", "input": {"command": "cat does-not-exist.txt"}} for _ in range(8)]
    run = create_run_from_file(
        store, _spec(write_spec, [failing, failing], breakers="same_error_repeats = 3")
    )
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=60, config=FAST)
    tripped = runs.get_run(store, run.id)
    assert tripped.state == "tripped" and "same_error_repeats" in (tripped.state_reason or "")
    event = log.read_events(store, run.id, kinds=["breaker_tripped"])[0].data
    assert (
        event["breaker"] == "same_error_repeats"
        and event["repeats"] == 3
        and "does-not-exist" in event["error"]
    )
    results = log.read_events(store, run.id, kinds=["tool_result"])
    assert len(results) == 3, "the session went on after the breaker opened"
    assert "same_error_repeats" in cli("run", "show", run.id, check=True).stdout
    assert runs.list_approvals(store, run.id, state="pending")[0].kind == "breaker_reset"

    wrong = cli("breaker", "reset", run.id, "no_such_breaker")
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "no breaker named 'no_such_breaker'" in wrong.stderr
    reset = cli("breaker", "reset", run.id, "same_error_repeats", "--by", "ada", check=True)
    assert "same_error_repeats" in reset.stdout and "half-open" in reset.stdout
    assert runs.breakers(store, run.id)["same_error_repeats"].state == "half_open"
    assert log.read_events(store, run.id, kinds=["breaker_reset"])[-1].data["by"] == "ada"
    assert supervise_until_finished(store, run.id, timeout_s=60, config=FAST)
    assert runs.get_run(store, run.id).state == "tripped"
    assert runs.breakers(store, run.id)["same_error_repeats"].state == "open"
    second = [
        e
        for e in log.read_events(store, run.id, kinds=["tool_result"])
        if e.session_id != results[0].session_id
    ]
    assert len(second) == 1, "a half-open breaker opens again at the first repeat"


def test_sessions_without_progress_trip_no_progress_sessions(store: Store, write_spec) -> None:
    idle = [{"tool": "bash", "input": {"command": "echo thinking"}}, {"text": "nothing done"}]
    never = [{"id": "never", "description": "never passes", "check": "test -f never.txt"}]
    run = create_run_from_file(
        store, _spec(write_spec, [idle] * 4, breakers="no_progress_sessions = 2", features=never)
    )
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=90, config=FAST)
    assert runs.get_run(store, run.id).state == "tripped"
    assert len(runs.list_sessions(store, run.id)) == 2
    trip = log.read_events(store, run.id, kinds=["breaker_tripped"])[0].data
    assert trip == {"breaker": "no_progress_sessions", "sessions_without_progress": 2, "limit": 2}


def test_failing_sessions_trip_consecutive_failures(store: Store, write_spec) -> None:
    broken = [{"error": 400, "should_retry": False}]
    run = create_run_from_file(store, _spec(write_spec, [broken] * 3, breakers="consecutive_failures = 2"))
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=90, config=FAST)
    assert runs.get_run(store, run.id).state == "tripped"
    assert [s.end_reason for s in runs.list_sessions(store, run.id)] == ["api_error", "api_error"]


def test_spend_rate_trips_max_usd_per_hour(store: Store, write_spec) -> None:
    pricey = [
        {"tool": "bash", "input": {"command": "true"}, "usage": {"input_tokens": 50_000, "output_tokens": 10}}
        for _ in range(10)
    ]
    run = create_run_from_file(store, _spec(write_spec, [pricey], breakers="max_usd_per_hour = 0.25"))
    session = run_session_now(store, run.id)
    assert session.end_reason == "breaker"
    trip = log.read_events(store, run.id, kinds=["breaker_tripped"])[0].data
    assert trip["breaker"] == "max_usd_per_hour" and trip["usd_last_hour"] > 0.25
    assert len(log.read_events(store, run.id, kinds=["model_call"])) == 3  # $0.10 a call


def test_api_errors_in_a_window_trip_api_errors(store: Store, write_spec) -> None:
    flaky = [{"error": 500}, {"error": 500}, {"tool": "bash", "input": {"command": "true"}}] * 3
    run = create_run_from_file(store, _spec(write_spec, [flaky], breakers="api_errors = 4"))
    session = run_session_now(store, run.id)
    assert session.end_reason == "breaker"
    assert len(log.read_events(store, run.id, kinds=["api_error"])) == 4


def test_a_healthy_run_keeps_its_breakers_closed(store: Store, write_spec) -> None:
    work = [
        [{"tool": "write", "input": {"file_path": f"f{i}.txt", "content": "x"}}, {"text": "ok"}]
        for i in range(2)
    ]
    work[-1].insert(0, {"tool": "write", "input": {"file_path": "done.txt", "content": "done"}})
    done = [{"id": "done", "description": "done.txt exists", "check": "test -f done.txt"}]
    run = create_run_from_file(store, _spec(write_spec, work, features=done))
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=90, config=FAST)
    assert runs.get_run(store, run.id).state == "done"
    assert runs.breakers(store, run.id) == {}
    assert not log.read_events(store, run.id, kinds=["breaker_tripped"])


# --- notifications ------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_webhook_on_loopback_gets_the_budget_warning(store: Store, write_spec) -> None:
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        turns = [{"tool": "bash", "input": {"command": "true"}, "usage": EXPENSIVE} for _ in range(30)]
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        run = create_run_from_file(
            store,
            _spec(write_spec, [turns], budget="usd = 0.1\nwarn_at = 0.5", notify=f'webhook_url = "{url}"'),
        )
        run_session_now(store, run.id)
    finally:
        server.shutdown()
    kinds = [b["kind"] for b in _Receiver.bodies]
    assert "budget_warning" in kinds and "budget_stop" in kinds
    warning = next(b for b in _Receiver.bodies if b["kind"] == "budget_warning")
    assert warning["run_id"] == run.id and warning["data"]["cap"] == "usd"
    assert log.read_events(store, run.id, kinds=["budget_warning"])


def test_a_dead_webhook_does_not_break_the_run(store: Store, write_spec) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    turns = [{"tool": "bash", "input": {"command": "true"}, "usage": EXPENSIVE} for _ in range(30)]
    run = create_run_from_file(
        store,
        _spec(
            write_spec,
            [turns],
            budget="usd = 0.1\nwarn_at = 0.5",
            notify=f'webhook_url = "http://127.0.0.1:{dead}/x"',
        ),
    )
    session = run_session_now(store, run.id)
    assert session.state == "ended" and session.end_reason == "budget"
    assert log.read_events(store, run.id, kinds=["budget_warning"])
