"""The Celery app both sides share: which broker, and the settings a session hours long needs.

A session is one long task, so the broker's usual rules for short tasks do not fit:

- `task_acks_late`: the message is acknowledged when the session has ended, not when a worker
  takes it, so a worker that dies with it leaves it with the broker, not lost;
- `worker_prefetch_multiplier = 1` and one process per worker (the solo pool): a worker holds
  the one session it runs and no other message, which would wait behind it for hours;
- the broker's visibility timeout (`VISIBILITY_TIMEOUT`): Redis hands an unacknowledged message
  to another worker once it has been out that long, so it is set beyond any time box a
  dispatcher accepts; otherwise a session still running would be delivered a second time;
- `task_reject_on_worker_lost = False`: a session whose worker was lost is not put back on the
  queue to run again. The supervisor sees its heartbeat stop, records it `crashed`, and the run
  goes on from its checkpoint with a new session. A delivery that comes back anyway (after the
  visibility timeout) is refused by the claim on the session's row (`task.py`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from longrun.store.errors import LongrunError

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
BROKER_ENV = "LONGRUN_BROKER_URL"
TASK_NAME = "longrun.session"
QUEUE = "longrun.sessions"
VISIBILITY_TIMEOUT = timedelta(days=2)
"""How long a message may be out with a worker before Redis hands it to another: longer than any
time box `CeleryDispatcher` accepts (`LONGEST_TIME_BOX`), with room for the wait in the queue."""
LONGEST_TIME_BOX = timedelta(days=1)
SCHEMES = ("redis", "rediss")

NEEDS_CELERY = 'sessions on Celery workers need Celery and its Redis client: pip install "longrun[celery]"'


class BrokerError(LongrunError):
    """The broker's address is wrong, or the broker cannot be reached."""

    title = "broker"


def broker_url(given: str | None = None) -> str:
    """The broker's URL: the one given, else `$LONGRUN_BROKER_URL`, else Redis on this machine."""
    url = given or os.environ.get(BROKER_ENV) or DEFAULT_BROKER
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise BrokerError(
            f"{shown(url)}: expected a Redis URL such as {DEFAULT_BROKER} (redis:// or rediss://)"
        )
    try:
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise BrokerError(f"{shown(url)}: the port is not a number") from None
    return url


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def make_celery(url: str, *, states: bool = True) -> Any:
    """A Celery app on the broker at `url`, which also keeps the tasks' states (so the supervisor
    hears when a worker's task failed). With `states=False` it has no result backend: an app that
    only sends tasks, and so does not subscribe to each one's result, which it never waits for."""
    try:
        from celery import Celery
    except ImportError:
        raise LongrunError(NEEDS_CELERY) from None

    app = Celery("longrun", broker=url, backend=url if states else None, set_as_current=False)
    seconds = int(VISIBILITY_TIMEOUT.total_seconds())
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_track_started=True,
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=VISIBILITY_TIMEOUT,
        broker_transport_options={"visibility_timeout": seconds},
        result_backend_transport_options={"visibility_timeout": seconds},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        redis_socket_connect_timeout=5,
        redis_socket_timeout=10,
        worker_hijack_root_logger=True,
        worker_send_task_events=False,
    )
    return app


def check_reachable(app: Any, url: str) -> None:
    """Connect to the broker once, or say in one line why not."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=5)
    except Exception as exc:  # kombu and redis-py raise many kinds; each means the same here
        raise BrokerError(f"cannot reach the broker at {shown(url)}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
