"""`longrun worker`: a worker that runs sessions for a supervisor started with
`longrun daemon --executor celery`, on this machine or another.
"""

from __future__ import annotations

import argparse

from longrun.app.cli.output import open_store
from longrun.app.cli.parsing import Commands

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def cmd_worker(args: argparse.Namespace) -> int:
    import os
    import socket

    from longrun.scheduler.supervisor.celery.broker import broker_url
    from longrun.scheduler.supervisor.celery.worker import serve, worker_name

    name = worker_name(args.name, os.getpid(), socket.gethostname())
    url = broker_url(args.broker)
    store = open_store(args, create=False)
    home = store.home
    store.close()
    return serve(home, url, name, loglevel=args.loglevel, announce=lambda text: print(text, flush=True))


def register(commands: Commands) -> None:
    p = commands.add(
        "worker",
        cmd_worker,
        "a Celery worker that runs sessions for `longrun daemon --executor celery`, one at a time",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="the broker, a Redis URL (default: $LONGRUN_BROKER_URL, else redis://127.0.0.1:6379/0)",
    )
    p.add_argument(
        "--name", metavar="NAME", help="the worker's name, NAME or NAME@HOST (default: longrun-PID@HOST)"
    )
    p.add_argument(
        "--loglevel",
        choices=LOG_LEVELS,
        default="INFO",
        type=str.upper,
        help="how much it logs (default INFO)",
    )
