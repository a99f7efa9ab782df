"""What a new user hit with the CLI, each as they hit it: real subprocesses, a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.store import lease, runs
from longrun.store.db import Store


def _refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, last
    return last


def test_bad_numbers_are_refused_in_one_line_before_anything_is_written(
    store: Store, write_spec, cli
) -> None:
    run = create_run_from_file(store, write_spec([[{"text": "Nothing."}]]))
    before = len(runs.list_runs(store))
    _refused(cli("daemon", "--tick", "-1"), "--tick", "greater than 0")
    _refused(cli("daemon", "--max-concurrent", "0"), "--max-concurrent", "1 or more")
    _refused(cli("daemon", "--tick", "nan"), "--tick")
    _refused(cli("demo", "--headless", "--timeout", "-1"), "--timeout")
    _refused(cli("verdicts", run.id, "--last", "-1"), "--last")
    _refused(cli("events", run.id, "--since", "50", "--until", "10"), "--since 50 is not before --until 10")
    _refused(cli("events", run.id, "--kind", "nosuchkind"), "nosuchkind", "kinds")
    assert len(runs.list_runs(store)) == before  # the demo made no run


def test_events_name_sessions_by_their_number_in_the_run(store: Store, write_spec, cli) -> None:
    script = [[{"tool": "bash", "input": {"command": "true"}}, {"text": "Done."}]]
    first = create_run_from_file(store, write_spec(script, name="first", folder="a"))
    run_session_now(store, first.id)
    second = create_run_from_file(store, write_spec(script, name="second", folder="b"))
    session = run_session_now(store, second.id)
    assert session.id != session.n  # the store-wide id is not what a person reads
    shown = cli("events", second.id, "--kind", "tool_call", check=True).stdout
    assert f" s{session.n} " in shown and f" s{session.id} " not in shown


def test_budget_shows_tokens_whole_and_its_json_keeps_dollars_out_of_tokens(
    store: Store, write_spec, cli
) -> None:
    run = create_run_from_file(store, write_spec([[{"text": "Hi."}]], budget="usd = 5.0\ntokens = 100000"))
    run_session_now(store, run.id)
    shown = cli("budget", run.id, check=True).stdout
    tokens_row = next(line for line in shown.splitlines() if line.startswith("tokens"))
    assert "100,000" in tokens_row and ".0000" not in tokens_row
    doc = json.loads(cli("budget", run.id, "--json", check=True).stdout)
    assert "usd" not in doc["tokens"] and doc["tokens"]["tokens"] > 0 and doc["spent_usd"] > 0
    made = json.loads(cli("run", "show", run.id, "--json", check=True).stdout)
    assert "usd" not in made["tokens"]


def test_a_fork_starts_with_the_verdicts_of_the_checkpoint_it_was_forked_from(
    store: Store, write_spec, cli
) -> None:
    script = [
        [{"tool": "write", "input": {"file_path": "state.txt", "content": "ready\n"}}, {"text": "Done."}]
    ]
    feature = {"id": "state", "description": "state.txt says ready", "check": "grep -qx ready state.txt"}
    run = create_run_from_file(store, write_spec(script, features=[feature]))
    run_session_now(store, run.id)
    head = runs.get_run(store, run.id).head_checkpoint_id
    forked = json.loads(cli("fork", run.id, "--from", str(head), "--json", check=True).stdout)
    latest = runs.latest_verdicts(store, forked["id"])
    assert latest["state"].status == "pass"
    assert latest["state"].evidence["carried_from"] == {"run_id": run.id, "checkpoint_id": head}
    shown = json.loads(cli("features", forked["id"], "--json", check=True).stdout)
    assert [f["status"] for f in shown["features"]] == ["pass"]


BAD_SPEC = 'name = ""\ngoal = 3\nworkspace = "w"\n[worker]\nbackend = "nope"\n[budget]\nusd = -1\n'


def test_spec_check_and_run_create_name_every_problem_and_create_nothing(
    store: Store, tmp_path: Path, cli
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(BAD_SPEC)
    for args in (("spec", "check", str(spec)), ("run", "create", str(spec))):
        proc = cli(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        for needle in ("name:", "goal:", "worker.backend:", "budget.usd:"):
            assert any(needle in line for line in lines), (needle, lines)
        assert lines[-1] == "longrun: 4 problems in the spec" and "and 3 more" not in proc.stderr
    assert runs.list_runs(store) == []
    good = tmp_path / "good.toml"
    good.write_text(
        BAD_SPEC.replace('name = ""', 'name = "ok"')
        .replace("goal = 3", 'goal = "g"')
        .replace('"nope"', '"scripted"\nscript = "demo"')
        .replace("-1", "1")
    )
    checked = json.loads(cli("spec", "check", str(good), "--json", check=True).stdout)
    assert checked["ok"] is True and runs.list_runs(store) == []


def test_an_anthropic_run_without_a_key_is_refused_at_create_and_a_session_error_exits_non_zero(
    store: Store, tmp_path: Path, cli, write_spec
) -> None:
    spec = tmp_path / "api.toml"
    (tmp_path / "ws").mkdir()
    spec.write_text('name = "api"\ngoal = "g"\nworkspace = "ws"\n[worker]\nbackend = "anthropic"\n')
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "longrun.app.cli", "run", "create", str(spec)],
        capture_output=True,
        text=True,
        env={**env, "LONGRUN_HOME": str(store.home)},
        timeout=120,
    )
    assert _refused(proc, "ANTHROPIC_API_KEY") and runs.list_runs(store) == []

    # Made while the key was there, run without it: the session ends on an error, and says so.
    made = cli("run", "create", str(spec), "--json", env={"ANTHROPIC_API_KEY": "sk-test"}, check=True)
    run_id = json.loads(made.stdout)["id"]
    ran = subprocess.run(
        [sys.executable, "-m", "longrun.app.cli", "session", "run", run_id],
        capture_output=True,
        text=True,
        env={**env, "LONGRUN_HOME": str(store.home)},
        timeout=120,
    )
    assert _refused(ran, "ended on an error", "ANTHROPIC_API_KEY")


@pytest.mark.timeout(300)
def test_daemon_stop_lets_the_supervisor_finish_and_now_kills_it(store: Store, home: Path, cli) -> None:
    for now in (False, True):
        daemon = subprocess.Popen(
            [sys.executable, "-m", "longrun.app.cli", "daemon", "--tick", "0.2"],
            env={**os.environ, "LONGRUN_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for _ in range(600):
                held = lease.current(store)
                if held is not None and held.alive() and held.pid == daemon.pid:
                    break
                assert daemon.poll() is None, daemon.stdout.read() if daemon.stdout else ""
                subprocess.run(["sleep", "0.1"])
            else:
                pytest.fail("the supervisor never took the lease")
            stopped = cli("daemon", "stop", *(["--now"] if now else []), timeout=200)
            assert stopped.returncode == 0, stopped.stderr
            assert daemon.wait(timeout=120) is not None
            said = daemon.stdout.read() if daemon.stdout else ""
            if now:
                assert "killed the supervisor" in stopped.stdout and daemon.returncode == -9
            else:
                assert (
                    "the supervisor stopped" in stopped.stdout
                    and "stopped" in said
                    and daemon.returncode == 0
                )
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    assert "no supervisor is running" in cli("daemon", "stop", check=True).stdout


@pytest.mark.timeout(300)
def test_the_headless_demo_exits_zero_only_when_done_and_three_when_it_waits_for_a_person(cli) -> None:
    waits = cli("demo", "--headless", "--timeout", "240", timeout=300)  # no --auto-approve, no terminal
    assert waits.returncode == 3, waits.stdout + waits.stderr
    assert "the run waits for a person" in waits.stdout and "awaiting_approval" in waits.stdout
