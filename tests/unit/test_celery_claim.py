"""Sessions on Celery workers, the parts that need no broker: the claim that keeps a session from
running twice, the task refusing a delivery it cannot claim, and the supervisor's watch over a
session that runs elsewhere. A real store and real workspaces; the task is Celery's own, run in
this process (`apply`), and no session process starts."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from longrun.scheduler.control import create_run_from_file
from longrun.scheduler.supervisor.celery.broker import (
    NEEDS_CELERY,
    BrokerError,
    broker_url,
    make_celery,
    shown,
)
from longrun.scheduler.supervisor.celery.task import WrongStore, run_queued
from longrun.scheduler.supervisor.celery.worker import register_task, worker_name
from longrun.scheduler.supervisor.dispatch import QUEUED, RemoteSession, runs_remotely
from longrun.scheduler.supervisor.remote import watch_remote
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import SessionState, utcnow
from longrun.store.runs import RunView, SessionView

TURNS = [[{"text": "nothing to do"}]]


@pytest.fixture
def run(store: Store, write_spec) -> RunView:
    return create_run_from_file(store, write_spec(TURNS))


def queued(store: Store, run: RunView, **kw) -> SessionView:
    """A session as the Celery dispatcher leaves it: created, and queued for a worker."""
    session = runs.create_session(
        store, run.id, time_box=timedelta(minutes=2), wrap_up=timedelta(seconds=20), **kw
    )
    log.record(store, run.id, QUEUED, {"n": session.n, "task_id": "t"}, session_id=session.id)
    return session


def deliver(home: Path, session: SessionView, worker: str = "w2@host"):
    return run_queued(
        home, session.id, session.run_id, session.n, worker=worker, task_id="t", redelivered=True
    )


def claims(store: Store, run: RunView) -> list[str]:
    return [e.data["worker"] for e in log.read_events(store, run.id, kinds=["session_claimed"])]


def test_a_session_is_claimed_once_whoever_asks_second(store: Store, run: RunView) -> None:
    session = queued(store, run)
    first = runs.claim_session(store, session.id, 101, {"worker": "w1@host"})
    assert first is not None and first.pid == 101 and first.heartbeat_at is not None
    assert runs.claim_session(store, session.id, 202, {"worker": "w2@host"}) is None
    assert runs.get_session(store, session.id).pid == 101
    assert claims(store, run) == ["w1@host"]


def test_a_redelivered_task_for_a_session_another_worker_runs_does_nothing(
    store: Store, home: Path, run: RunView
) -> None:
    session = queued(store, run)
    runs.claim_session(store, session.id, 101, {"worker": "w1@host"})
    outcome = deliver(home, session)
    assert not outcome.ran
    assert "another worker has claimed it" in outcome.summary
    after = runs.get_session(store, session.id)
    assert (after.state, after.pid) == ("starting", 101)
    assert claims(store, run) == ["w1@host"]


def test_a_redelivered_task_for_a_session_that_ended_does_nothing(
    store: Store, home: Path, run: RunView
) -> None:
    session = queued(store, run)
    runs.end_session(store, session.id, SessionState.crashed, "its heartbeat stopped")
    events = len(log.read_events(store, run.id))
    outcome = deliver(home, session)
    assert not outcome.ran
    assert "it already ended (crashed: its heartbeat stopped)" in outcome.summary
    assert len(log.read_events(store, run.id)) == events, "a refused delivery wrote to the log"
    assert runs.get_session(store, session.id).state == "crashed"


def test_a_task_that_comes_after_the_wrap_up_time_is_refused(store: Store, home: Path, run: RunView) -> None:
    session = queued(store, run, now=utcnow() - timedelta(minutes=1, seconds=50))
    outcome = deliver(home, session)
    assert not outcome.ran and "no time to work" in outcome.summary
    assert claims(store, run) == []


def test_a_task_for_another_store_fails_and_claims_nothing(store: Store, home: Path, run: RunView) -> None:
    session = queued(store, run)
    with pytest.raises(WrongStore, match="this worker serves another store"):
        run_queued(home, session.id, "elsewhere", session.n, worker="w1@host", task_id="t", redelivered=False)
    assert claims(store, run) == []


def test_the_celery_task_ignores_a_delivery_it_cannot_claim(store: Store, home: Path, run: RunView) -> None:
    """Celery's own task, run in this process: a refused delivery leaves no task state behind, so
    the supervisor does not take it for the end of the delivery that runs the session."""
    session = queued(store, run)
    runs.claim_session(store, session.id, 101, {"worker": "w1@host"})
    task = register_task(make_celery("redis://127.0.0.1:1/0"), home)
    result = task.apply(args=[session.id, session.run_id, session.n], task_id="t")
    assert result.state == "IGNORED"
    assert claims(store, run) == ["w1@host"]


class Finished(RemoteSession):
    def __init__(self, why: str | None) -> None:
        self.why = why

    def finished(self) -> str | None:
        return self.why


def test_a_queued_session_waits_for_a_worker_without_a_heartbeat_until_its_deadline(
    store: Store, run: RunView
) -> None:
    session = queued(store, run)
    assert runs_remotely(store, session)
    watch_remote(store, session, Finished(None), utcnow() + timedelta(minutes=1))
    assert runs.get_session(store, session.id).state == "starting", "a queued session was reaped"
    watch_remote(store, session, Finished(None), session.deadline_at)
    ended = runs.get_session(store, session.id)
    assert (ended.state, ended.end_reason) == ("timed_out", "no worker took it before its deadline")


def test_a_claimed_session_whose_heartbeat_stopped_is_crashed_and_its_pid_left_alone(
    store: Store, run: RunView
) -> None:
    session = queued(store, run)
    claimed = runs.claim_session(store, session.id, 1, {"worker": "w1@host"})  # pid 1: never signalled
    assert claimed is not None
    watch_remote(store, claimed, None, utcnow() + timedelta(seconds=10))
    assert runs.get_session(store, session.id).state == "starting"
    watch_remote(store, claimed, None, utcnow() + timedelta(seconds=31))
    ended = runs.get_session(store, session.id)
    assert ended.state == "crashed" and "heartbeat stopped" in (ended.end_reason or "")
    (checkpoint,) = [c for c in runs.list_checkpoints(store, run.id) if c.session_id == session.id]
    assert checkpoint.reason == "crashed", "the work the session left was not checkpointed"


def test_a_task_that_failed_before_the_session_ended_crashes_it(store: Store, run: RunView) -> None:
    session = queued(store, run)
    watch_remote(store, session, Finished("failed (no longrun store here)"), utcnow())
    ended = runs.get_session(store, session.id)
    assert ended.state == "crashed"
    assert ended.end_reason == "its worker's task failed (no longrun store here) before the session ended"


def test_a_session_started_here_is_not_taken_for_one_elsewhere(store: Store, run: RunView) -> None:
    here = runs.create_session(store, run.id, time_box=timedelta(minutes=2), wrap_up=timedelta(seconds=20))
    assert not runs_remotely(store, here)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("http://127.0.0.1:6379/0", "expected a Redis URL"),
        ("redis://", "expected a Redis URL"),
        ("redis://127.0.0.1:port/0", "the port is not a number"),
    ],
)
def test_a_broker_url_that_is_not_redis_is_one_line(given: str, problem: str) -> None:
    with pytest.raises(BrokerError, match=problem):
        broker_url(given)


def test_the_broker_url_comes_from_the_environment_and_its_password_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LONGRUN_BROKER_URL", "redis://:s3cret@10.0.0.5:6380/2")
    assert broker_url() == "redis://:s3cret@10.0.0.5:6380/2"
    assert shown(broker_url()) == "redis://:***@10.0.0.5:6380/2"
    monkeypatch.delenv("LONGRUN_BROKER_URL")
    assert broker_url() == "redis://127.0.0.1:6379/0"


def test_worker_names() -> None:
    assert worker_name(None, 42, "box") == "longrun-42@box"
    assert worker_name("w1", 42, "box") == "w1@box"
    assert worker_name("w1@other", 42, "box") == "w1@other"
    with pytest.raises(BrokerError, match="worker name"):
        worker_name("w 1", 42, "box")


def test_a_session_the_broker_does_not_take_ends_at_once_with_why(store: Store, run: RunView) -> None:
    import socket

    from longrun.scheduler.supervisor.celery.dispatcher import CeleryDispatcher

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    session = runs.create_session(store, run.id, time_box=timedelta(minutes=2), wrap_up=timedelta(seconds=20))
    dispatcher = CeleryDispatcher(closed)
    try:
        with pytest.raises(
            BrokerError, match=f"session 1 could not be queued: the broker at {closed} took no task"
        ):
            dispatcher.launch(store, session)
    finally:
        dispatcher.close()
    ended = runs.get_session(store, session.id)
    assert ended.state == "crashed" and (ended.end_reason or "").startswith("it could not be queued: ")


WITHOUT_CELERY = """
import sys
sys.modules["celery"] = None  # as if the celery extra were not installed
from longrun.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["worker"], ["daemon", "--executor", "celery"]])
def test_without_the_celery_extra_the_commands_say_how_to_install_it(home: Path, command: list[str]) -> None:
    Store.open(home).close()
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_CELERY, "--home", str(home), *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"longrun: error: {NEEDS_CELERY}"]
    assert 'pip install "longrun[celery]"' in NEEDS_CELERY
