"""The supervisor's side: each session is sent to the broker as a task, for any worker to take.

`CeleryDispatcher.launch` writes a `session_queued` event (so any supervisor knows, from the
store, that the session's pid will be another machine's), then sends the task, which expires at
the session's deadline. It returns a `CeleryTask`: the supervisor watches the session through its
row (`supervisor/remote.py`), and asks the task's state only to learn that a worker's task ended
without the session recording its end (it failed, or was dropped).
"""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

from longrun.scheduler.spec.durations import format_duration
from longrun.scheduler.supervisor.celery.broker import (
    LONGEST_TIME_BOX,
    QUEUE,
    TASK_NAME,
    BrokerError,
    check_reachable,
    make_celery,
    shown,
)
from longrun.scheduler.supervisor.dispatch import QUEUED, RemoteSession
from longrun.scheduler.supervisor.launch import settle
from longrun.store import log
from longrun.store.db import Store
from longrun.store.models import SessionState
from longrun.store.runs import SessionView

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
"""A broker that is down holds a reconcile tick up for about a second, not for long."""


class CeleryTask(RemoteSession):
    """A session sent to the broker; its task's state says when a worker is done with it."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def finished(self) -> str | None:
        try:
            state = self.result.state
        except Exception:  # the result backend cannot be read this tick: ask again at the next
            return None
        if state == "SUCCESS":
            return "returned"
        if state == "FAILURE":
            return f"failed ({_error_line(self.result.result)})"
        if state == "REVOKED":
            return "was dropped (it expired in the queue, or was revoked)"
        return None


class CeleryDispatcher:
    """Sessions as Celery tasks on the broker at `url` (a Redis URL, `broker.broker_url`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = make_celery(url, states=False)
        self.states = make_celery(url)
        """Where the workers keep the tasks' states, read with one GET each."""

    def check(self) -> None:
        """Say in one line when the broker cannot be reached (before the supervisor starts)."""
        check_reachable(self.app, self.url)

    def close(self) -> None:
        self.app.close()
        self.states.close()

    def launch(self, store: Store, session: SessionView) -> CeleryTask:
        time_box = session.deadline_at - session.created_at
        if time_box > LONGEST_TIME_BOX:
            self._refuse(
                store,
                session,
                f"its time box is longer than {format_duration(LONGEST_TIME_BOX)}, the longest one queued",
            )
        task_id = str(uuid.uuid4())
        log.record(
            store,
            session.run_id,
            QUEUED,
            {"n": session.n, "executor": "celery", "task_id": task_id},
            session_id=session.id,
        )
        try:
            result = self.app.send_task(
                TASK_NAME,
                args=[session.id, session.run_id, session.n],
                task_id=task_id,
                queue=QUEUE,
                expires=session.deadline_at,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
        except Exception as exc:  # kombu and redis-py raise many kinds; each means the broker failed us
            self._refuse(store, session, f"the broker at {shown(self.url)} took no task: {_error_line(exc)}")
        return CeleryTask(self.states.AsyncResult(result.id))

    def _refuse(self, store: Store, session: SessionView, why: str) -> NoReturn:
        """End a session that could not be queued (nothing ran), and say why in one line."""
        settle(store, session, SessionState.crashed, f"it could not be queued: {why}")
        raise BrokerError(f"session {session.n} could not be queued: {why}")


def _error_line(error: object) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]
