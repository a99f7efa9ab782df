"""Sessions on Celery workers: a real Redis, a real `longrun daemon --executor celery`, two real
`longrun worker` processes, real session processes and the demo on its scripted model.

Redis is started by the test on a free loopback port, in the test's temp folder; the tests that
need it are skipped when `redis-server` is not installed (`apt-get install redis-server`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from support import wait_for

from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file
from longrun.scheduler.demo import write_demo_project
from longrun.scheduler.session.processes import process_alive
from longrun.store import log, runs
from longrun.store.db import Store

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (apt-get install redis-server)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own on a free loopback port, keeping nothing on disk."""
    import redis

    folder = tmp_path / "redis"
    folder.mkdir()
    for _ in range(5):  # another process may take the free port before Redis does
        port = free_port()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        else:
            proc.kill()
            proc.wait()
            continue
        try:
            yield url
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=30)
        return
    pytest.fail("redis-server did not start on a free port in five tries")


@pytest.fixture
def longrun(home: Path, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a long-lived `longrun` command (a daemon, a worker) with its output in a file."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"{log_name}.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "longrun.app.cli", *args],
                env={**os.environ, "LONGRUN_HOME": str(home), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def slow_demo_script(path: Path, delay: str) -> Path:
    """The demo's own script, with its first session's second model reply `delay` late, so a test
    can kill that session's worker while the session is surely in the middle of its work."""
    script = tomllib.loads((files("longrun.scheduler.endpoints.scripts") / "demo.toml").read_text())
    script["sessions"][0]["turns"][1]["delay"] = delay
    path.write_text(json.dumps(script))
    return path


@needs_redis
@pytest.mark.timeout(600)
def test_two_workers_run_the_demo_to_done_and_one_killed_mid_session_loses_nothing(
    store: Store, tmp_path: Path, redis_url: str, longrun, cli
) -> None:
    script = slow_demo_script(tmp_path / "slow-demo.json", "60s")
    run = create_run_from_file(
        store, write_demo_project(tmp_path / "demo"), ["schedule.cooldown=1s", f"worker.script={script}"]
    )
    broker = {"LONGRUN_BROKER_URL": redis_url}
    workers = {
        name: longrun("worker", "--name", f"{name}@test", log_name=name, env=broker) for name in ("w1", "w2")
    }
    longrun(
        "daemon",
        "--executor",
        "celery",
        "--max-concurrent",
        "2",
        "--lease-ttl",
        "3",
        "--tick",
        "0.3",
        "--grace",
        "5",
        log_name="daemon",
        env=broker,
    )
    control.start(store, run.id)

    def first_session_at_work() -> bool:
        return any(e.session_id is not None for e in log.read_events(store, run.id, kinds=["tool_call"]))

    wait_for(first_session_at_work, 180, "the first session's first tool call")
    first = runs.list_sessions(store, run.id)[0]
    (claim,) = log.read_events(store, run.id, kinds=["session_claimed"])
    victim = claim.data["worker"].split("@")[0]
    survivor = "w2" if victim == "w1" else "w1"
    assert first.state == "running" and first.pid is not None
    os.kill(workers[victim].pid, signal.SIGKILL)
    workers[victim].wait()
    wait_for(lambda: not process_alive(first.pid), 30, "the session to die with its worker")
    assert runs.get_session(store, first.id).state == "running"  # only its heartbeat can tell now

    def done_with_a_person_approving() -> bool:
        for approval in runs.list_approvals(store, run.id, state="pending"):  # the demo's push
            control.decide(store, approval.id, approve=True, by="test")
        return runs.get_run(store, run.id).state == "done"

    wait_for(done_with_a_person_approving, 420, "the run to finish on the worker left")

    sessions = runs.list_sessions(store, run.id)
    assert [s.n for s in sessions] == list(range(1, len(sessions) + 1)) and len(sessions) >= 2
    assert all(s.is_final for s in sessions)
    crashed = sessions[0]
    assert crashed.state == "crashed" and "heartbeat stopped" in (crashed.end_reason or "")
    ran_by = {
        e.session_id: e.data["worker"] for e in log.read_events(store, run.id, kinds=["session_claimed"])
    }
    claimed = [e.session_id for e in log.read_events(store, run.id, kinds=["session_claimed"])]
    assert sorted(claimed) == sorted(s.id for s in sessions), "a session was claimed twice, or never"
    assert ran_by[crashed.id] == f"{victim}@test"
    assert {ran_by[s.id] for s in sessions[1:]} == {f"{survivor}@test"}
    salvage = runs.get_checkpoint(store, sessions[1].from_checkpoint_id)
    assert (salvage.session_id, salvage.reason) == (crashed.id, "crashed"), "the run did not resume from it"
    assert log.verify_chain(store, run.id).ok
    verified = cli("verify", run.id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_an_unreachable_broker_or_a_wrong_executor_is_one_line(cli, home: Path) -> None:
    cli("init", check=True)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["daemon", "--executor", "celery", "--broker", closed], ["worker", "--broker", closed]):
        proc = cli(*args, timeout=60)
        assert proc.returncode == 1, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"longrun: error: cannot reach the broker at {closed}: ")
    proc = cli("daemon", "--broker", closed)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == "longrun: error: --broker is for --executor celery: local sessions need no broker"
    )
    proc = cli("daemon", env={"LONGRUN_EXECUTOR": "kubernetes"})
    assert proc.returncode == 1
    assert (
        proc.stderr.strip() == "longrun: error: LONGRUN_EXECUTOR='kubernetes': expected one of local, celery"
    )
    proc = cli("worker", "--broker", "amqp://127.0.0.1//")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("longrun: error: amqp://127.0.0.1//: expected a Redis URL")


@needs_redis
@pytest.mark.timeout(300)
def test_a_worker_asked_to_stop_lets_its_session_wrap_up_and_the_next_waits_for_a_worker(
    store: Store, write_spec, redis_url: str, longrun
) -> None:
    slow = [
        {"tool": "write", "input": {"file_path": "a.txt", "content": "a\n"}},
        {"tool": "write", "input": {"file_path": "b.txt", "content": "b\n"}, "delay": "20s"},
        {"tool": "write", "input": {"file_path": "c.txt", "content": "c\n"}, "delay": "20s"},
        {"text": "done"},
    ]
    features = [{"id": "c", "description": "c.txt is there", "check": "test -f c.txt"}]
    spec = write_spec(
        [slow, slow], features=features, extra='[schedule]\nmode = "back_to_back"\ncooldown = "1s"'
    )
    run = create_run_from_file(store, spec)
    broker = {"LONGRUN_BROKER_URL": redis_url}
    worker = longrun("worker", "--name", "w1@test", log_name="w1", env=broker)
    daemon = longrun(
        "daemon",
        "--executor",
        "celery",
        "--tick",
        "0.3",
        "--lease-ttl",
        "3",
        "--grace",
        "5",
        log_name="d",
        env=broker,
    )
    control.start(store, run.id)

    def at_work() -> bool:
        return any(e.session_id is not None for e in log.read_events(store, run.id, kinds=["tool_call"]))

    wait_for(at_work, 120, "the first session's first tool call")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0
    first = runs.list_sessions(store, run.id)[0]
    assert (first.state, first.end_reason) == ("ended", "stopped"), "the session did not wrap up"
    assert log.read_events(store, run.id, kinds=["stop_seen"]), "the session was not told to wrap up"
    assert [c.reason for c in runs.list_checkpoints(store, run.id) if c.session_id == first.id][
        -1
    ] == "session_end"

    wait_for(lambda: len(runs.list_sessions(store, run.id)) == 2, 120, "the next session to be queued")
    second = runs.list_sessions(store, run.id)[1]
    time.sleep(35)  # longer than a heartbeat may be stale: a queued session has none, and must wait
    waiting = runs.get_session(store, second.id)
    assert (waiting.state, waiting.pid) == ("starting", None), "a session no worker took was reaped"
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0
    ended = runs.get_session(store, second.id)
    assert (ended.state, ended.end_reason) == ("killed", "the supervisor shut down")
    assert log.verify_chain(store, run.id).ok


@needs_redis
@pytest.mark.timeout(300)
def test_a_worker_on_another_store_fails_the_task_and_the_supervisor_says_why(
    store: Store, write_spec, tmp_path: Path, redis_url: str, longrun, cli
) -> None:
    run = create_run_from_file(store, write_spec([[{"text": "nothing to do"}]], features=[]))
    other = tmp_path / "other-home"
    cli("--home", str(other), "init", check=True)
    broker = {"LONGRUN_BROKER_URL": redis_url}
    longrun("worker", "--home", str(other), "--name", "stray@test", log_name="stray", env=broker)
    longrun("daemon", "--executor", "celery", "--tick", "0.3", "--lease-ttl", "3", log_name="d", env=broker)
    control.start(store, run.id)
    wait_for(
        lambda: runs.list_sessions(store, run.id)[:1] != [] and runs.list_sessions(store, run.id)[0].is_final,
        120,
        "the session to end",
    )
    first = runs.list_sessions(store, run.id)[0]
    assert first.state == "crashed"
    assert (
        first.end_reason
        == f"its worker's task failed (no session with id {first.id}) before the session ended"
    )
    assert not log.read_events(store, run.id, kinds=["session_claimed"])
