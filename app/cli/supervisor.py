"""`longrun session run`, `longrun daemon` and `longrun status`: sessions in the foreground, the
supervisor, and what it is doing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from longrun.app.cli.output import EXIT_ERROR, open_store, print_json, print_table
from longrun.app.cli.parsing import Commands, non_negative_number, positive_int, positive_number
from longrun.store.errors import LongrunError


def cmd_session_run(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import run_session_now
    from longrun.store import runs

    store = open_store(args)
    session = run_session_now(store, args.run)
    run = runs.get_run(store, session.run_id)
    opened = {n for n, b in runs.breakers(store, run.id).items() if b.state == "open"}
    alarm = run.state == "tripped" and bool(opened & {"judge_error", "tamper"})
    if args.json:
        about = {"run_id": run.id, "run_state": run.state, "run_reason": run.state_reason}
        print_json(session.to_json() | about)
    else:
        print(
            f"session {session.n} of {run.name} ({run.id}): {session.state} ({session.end_reason}); "
            f"spent ${session.usage.usd:.4f}; run is {run.state}"
        )
    if alarm:
        print(f"longrun: run {run.name} ({run.id}) is tripped: {run.state_reason}", file=sys.stderr)
        return EXIT_ERROR
    if session.end_reason == "error":
        print(
            f"longrun: session {session.n} ended on an error: {_end_detail(store, session)}", file=sys.stderr
        )
        return EXIT_ERROR
    return 0 if session.state == "ended" else EXIT_ERROR


def _end_detail(store: Any, session: Any) -> str:
    from longrun.store import log

    ended = [
        e
        for e in log.read_events(store, session.run_id, kinds=["session_ended"])
        if e.session_id == session.id
    ]
    detail = ended[-1].data.get("detail") if ended else None
    return str(detail or "see `longrun events` for the session")


def cmd_daemon(args: argparse.Namespace) -> int:
    import signal
    from datetime import timedelta

    if args.action == "stop":
        return cmd_daemon_stop(args)

    from longrun.scheduler.supervisor.daemon import Supervisor, SupervisorConfig

    executor = _executor(args)
    store = open_store(args)
    config = SupervisorConfig(
        max_concurrent=args.max_concurrent or SupervisorConfig().max_concurrent,
        lease_ttl=timedelta(seconds=args.lease_ttl),
        tick=args.tick,
        grace=timedelta(seconds=args.grace),
    )
    where = "here"
    if executor == "celery":
        from longrun.scheduler.supervisor.celery.broker import broker_url, shown
        from longrun.scheduler.supervisor.celery.dispatcher import CeleryDispatcher

        url = broker_url(args.broker)
        dispatcher = CeleryDispatcher(url)
        dispatcher.check()
        config.dispatcher = dispatcher
        where = f"on Celery workers (`longrun worker`) through {shown(url)}"

    def announce(text: str) -> None:
        print(f"{datetime.now().astimezone().isoformat(timespec='seconds')} {text}", flush=True)

    supervisor = Supervisor(store, config, announce=announce)

    def on_signal(signum: int, _frame: object) -> None:
        announce(f"{signal.Signals(signum).name}: shutting down (sessions get {args.grace:g}s to wrap up)")
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    announce(f"store {store.path}; at most {config.max_concurrent} sessions at once, {where}")
    try:
        supervisor.serve()
    finally:
        supervisor.shutdown()
        announce("stopped")
    return 0


EXECUTORS = ("local", "celery")
EXECUTOR_ENV = "LONGRUN_EXECUTOR"


def _executor(args: argparse.Namespace) -> str:
    """Where the daemon's sessions run: `--executor`, else `$LONGRUN_EXECUTOR`, else here."""
    import os

    executor = args.executor or os.environ.get(EXECUTOR_ENV) or "local"
    if executor not in EXECUTORS:
        raise LongrunError(f"{EXECUTOR_ENV}={executor!r}: expected one of {', '.join(EXECUTORS)}")
    if args.broker is not None and executor != "celery":
        raise LongrunError("--broker is for --executor celery: local sessions need no broker")
    return executor


def cmd_daemon_stop(args: argparse.Namespace) -> int:
    """Stop the supervisor that holds the store's lease: SIGTERM and wait (its sessions wrap up and
    checkpoint), or with --now SIGKILL it and every live session's process group."""
    import signal
    import socket
    import time

    from longrun.scheduler.supervisor.dispatch import runs_remotely
    from longrun.scheduler.supervisor.launch import kill_group
    from longrun.store import lease, runs

    store = open_store(args)
    held = lease.current(store)
    if held is None or not held.alive() or held.pid is None:
        print("no supervisor is running")
        return 0
    host = held.holder.split(":")[0]
    if host != socket.gethostname():
        raise LongrunError(f"the supervisor runs on {host} (pid {held.pid}): stop it there")
    pid = held.pid
    if not _exists(pid) or not _is_longrun(pid):
        print(f"no supervisor is running (pid {pid}, which held the lease, is gone; the lease expires soon)")
        return 0
    if args.now:
        _signal(pid, signal.SIGKILL)
        for session in runs.live_sessions(store):
            if not runs_remotely(store, session):  # a worker's session goes on: the next supervisor adopts it
                kill_group(session.pid)
        print(f"killed the supervisor (pid {pid}) and its sessions; the next supervisor settles them")
        return 0
    _signal(pid, signal.SIGTERM)
    print(f"asked the supervisor (pid {pid}) to stop; its sessions wrap up and checkpoint", flush=True)
    deadline = time.monotonic() + args.timeout
    while _exists(pid):
        if time.monotonic() > deadline:
            print(
                f"longrun: error: the supervisor (pid {pid}) still runs after {args.timeout:g}s; "
                "`longrun daemon stop --now` kills it",
                file=sys.stderr,
            )
            return EXIT_ERROR
        time.sleep(0.2)
    print("the supervisor stopped")
    return 0


def _signal(pid: int, signum: int) -> None:
    import os

    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise LongrunError(
            f"not allowed to signal the supervisor (pid {pid}): it runs as another user"
        ) from None


def _is_longrun(pid: int) -> bool:
    """Whether the process is a longrun supervisor (a pid left in a stale lease may be reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"longrun" in cmdline.read()
    except OSError:
        return True  # no /proc here: trust the lease


def _exists(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a process that has exited but is not yet reaped by its parent (a zombie) is gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _until(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "—"
    seconds = int((ts - now).total_seconds())
    if seconds <= 0:
        return "now"
    if seconds < 120:
        return f"in {seconds}s"
    if seconds < 7200:
        return f"in {seconds // 60}m"
    return f"in {seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def status_document(store: Any) -> dict[str, Any]:
    """`longrun status --json`: who supervises, and for each active run what runs and what comes next."""
    from longrun.store import lease, runs
    from longrun.store.models import iso, utcnow

    now = utcnow()
    current = lease.current(store)
    live = {s.run_id: s for s in runs.live_sessions(store)}
    items = []
    for run in runs.list_runs(store):
        if run.state in ("done", "archived", "draft", "failed"):
            continue
        session = live.get(run.id)
        items.append(
            {
                "id": run.id,
                "name": run.name,
                "state": run.state,
                "reason": run.state_reason,
                "session": None
                if session is None
                else {
                    "n": session.n,
                    "state": session.state,
                    "pid": session.pid,
                    "deadline_at": iso(session.deadline_at),
                    "seconds_left": max(int((session.deadline_at - now).total_seconds()), 0),
                },
                "next_session_at": iso(run.next_session_at) if run.next_session_at else None,
                "next_reason": run.next_reason,
                "spent_usd": round(run.spent_usd, 6),
            }
        )
    return {"supervisor": current.to_json(now) if current else None, "runs": items}


def cmd_status(args: argparse.Namespace) -> int:
    from longrun.store.models import utcnow

    store = open_store(args)
    doc = status_document(store)
    if args.json:
        print_json(doc)
        return 0
    sup = doc["supervisor"]
    if sup and sup["alive"]:
        print(
            f"supervisor: running (pid {sup['pid']}, {sup['holder']}), last heartbeat {sup['heartbeat_at']}"
        )
    else:
        print("supervisor: not running (start it with `longrun daemon`)")
    if not doc["runs"]:
        print("no active runs")
        return 0
    now = utcnow()
    rows = []
    for r in doc["runs"]:
        s = r["session"]
        running = f"session {s['n']} ({s['seconds_left']}s left)" if s else "—"
        at = datetime.fromisoformat(r["next_session_at"]) if r["next_session_at"] else None
        nxt = f"{_until(at, now)} ({r['next_reason']})" if at else (r["next_reason"] or "—")
        rows.append([r["id"], r["name"], r["state"], running, nxt])
    print_table(rows, ["ID", "NAME", "STATE", "RUNNING", "NEXT SESSION"])
    return 0


def register(commands: Commands) -> None:
    session = commands.group("session", "run sessions")
    p = commands.add(
        "run",
        cmd_session_run,
        "run one session of RUN now, in the foreground",
        commands.json_flag,
        into=session,
    )
    p.add_argument("run", metavar="RUN")
    p = commands.add(
        "daemon",
        cmd_daemon,
        "the supervisor: fires sessions on schedule until SIGTERM/SIGINT; `daemon stop` stops a running one",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["stop"],
        help="stop: stop the running supervisor (it lets sessions checkpoint)",
    )
    p.add_argument("--now", action="store_true", help="stop: kill the supervisor and its sessions at once")
    p.add_argument(
        "--timeout", type=positive_number, default=120.0, metavar="S", help="stop: wait at most S seconds"
    )
    p.add_argument(
        "--max-concurrent",
        type=positive_int,
        metavar="N",
        help="sessions at once (default: the CPUs; with --executor celery, give the number of workers)",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="where sessions run: local processes here, or celery: `longrun worker` processes "
        "(default: $LONGRUN_EXECUTOR, else local)",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="with --executor celery: the broker, a Redis URL "
        "(default: $LONGRUN_BROKER_URL, else redis://127.0.0.1:6379/0)",
    )
    p.add_argument(
        "--lease-ttl", type=positive_number, default=20.0, metavar="S", help="lease lifetime (default 20)"
    )
    p.add_argument("--tick", type=positive_number, default=1.0, metavar="S", help="reconcile every S seconds")
    p.add_argument(
        "--grace", type=non_negative_number, default=30.0, metavar="S", help="wrap-up time at shutdown"
    )
    commands.add(
        "status",
        cmd_status,
        "the supervisor and each active run: what runs, what comes next and why",
        commands.json_flag,
    )
