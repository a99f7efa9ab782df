"""`longrun worker`: a Celery worker that runs the sessions of one store, one at a time.

It is Celery's own worker with the solo pool: the task runs on the worker's main thread, which
starts the session's process as its child (so the session dies with the worker, `task.py`) and
takes no other message until the session has ended and its message is acknowledged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from longrun.scheduler.supervisor.celery.broker import (
    QUEUE,
    TASK_NAME,
    BrokerError,
    check_reachable,
    make_celery,
    shown,
)
from longrun.scheduler.supervisor.celery.task import run_queued

NAME = re.compile(r"[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?")


def worker_name(given: str | None, pid: int, host: str) -> str:
    """The worker's node name: `NAME@HOST` (the host is added when only a name is given); by
    default `longrun-PID@HOST`, so two workers on one machine never share one."""
    name = given or f"longrun-{pid}"
    if not NAME.fullmatch(name):
        raise BrokerError(
            f"worker name {name!r}: use letters, digits, '.', '_' and '-', as NAME or NAME@HOST"
        )
    return name if "@" in name else f"{name}@{host}"


def register_task(app: Any, home: Path) -> Any:
    """The session task, bound to the store in `home`. A delivery that cannot claim its session
    (a duplicate, or one for a session that ended) is ignored: it changes no task state, so the
    supervisor does not take it for the end of the delivery that runs the session."""
    from celery.exceptions import Ignore
    from celery.utils.log import get_task_logger
    from celery.worker import state

    def stopping() -> bool:
        """Whether the worker was asked to stop (its flags hold an exit code, 0 included)."""
        return any(
            flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate)
        )

    logger = get_task_logger(TASK_NAME)

    @app.task(name=TASK_NAME, bind=True)
    def run_session(task: Any, session_id: int, run_id: str, n: int) -> str:
        request = task.request
        outcome = run_queued(
            home,
            session_id,
            run_id,
            n,
            worker=request.hostname,
            task_id=request.id,
            redelivered=bool((request.delivery_info or {}).get("redelivered")),
            stopping=stopping,
        )
        if not outcome.ran:
            logger.warning(outcome.summary)
            raise Ignore()
        logger.info(outcome.summary)
        return outcome.summary

    return run_session


def serve(
    home: Path, url: str, name: str, *, loglevel: str = "INFO", announce: Callable[[str], None] = print
) -> int:
    """Run the worker until it is stopped. SIGTERM (or ctrl-c) tells the session it runs to wrap up,
    and the worker exits once the session has checkpointed and ended."""
    app = make_celery(url)
    register_task(app, home)
    check_reachable(app, url)
    announce(
        f"worker {name}: sessions of the store in {home}, from the broker at {shown(url)}, one at a time"
    )
    worker = app.Worker(
        hostname=name,
        pool="solo",
        concurrency=1,
        queues=[QUEUE],
        loglevel=loglevel,
        quiet=True,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
