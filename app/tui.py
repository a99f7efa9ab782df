"""`longrun-ui`: the Textual dashboard, in a terminal or (with `longrun serve`) in a browser."""

from __future__ import annotations

import argparse
import subprocess
import sys

from longrun.scheduler.demo import DEMO_WORKERS
from longrun.store import lease
from longrun.store.db import Store
from longrun.store.errors import LongrunError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="longrun-ui", description="The longrun dashboard.")
    parser.add_argument("--home", metavar="DIR", help="the store's directory")
    parser.add_argument("--demo", action="store_true", help="start the demo run (a scripted model)")
    parser.add_argument(
        "--worker",
        choices=DEMO_WORKERS,
        default="scripted",
        help="the demo's worker: the built-in agent or the Claude Code CLI, both on the scripted model",
    )
    parser.add_argument("--no-daemon", action="store_true", help="do not start a supervisor if none runs")
    args = parser.parse_args(argv)
    try:
        store = Store.open(args.home)
        if store.read_only is not None and args.demo:
            raise LongrunError(f"{store.home}: the store is read-only ({store.read_only}): no demo can start")
        if store.read_only is not None:
            notes = [f"Read-only store ({store.read_only}): you can look, not change anything."]
        else:
            started = None if args.no_daemon else ensure_supervisor(store)
            notes = [started] if started else []
        open_run_id = None
        if args.demo:
            from longrun.scheduler.control import prepare_demo, start
            from longrun.scheduler.demo import demo_worker_missing

            missing = demo_worker_missing(args.worker)
            if missing is not None:
                raise LongrunError(missing)
            run = prepare_demo(store, [f"worker.backend={args.worker}"])
            start(store, run.id, by="longrun-ui --demo")
            open_run_id = run.id
            who = DEMO_WORKERS[args.worker].replace("scripted", "SCRIPTED")
            notes.append(f"Demo run {run.name}: {who} (no network, no key) builds a small project.")
    except LongrunError as exc:
        print(f"longrun-ui: error: {exc.message}", file=sys.stderr)
        return 1
    from longrun.app.dashboard import make_app, settle

    settle()
    make_app(store, banner=" ".join(notes) or None, open_run_id=open_run_id).run()
    return 0


def ensure_supervisor(store: Store) -> str | None:
    """Start `longrun daemon` in the background when no live supervisor holds the lease.

    The UI never schedules in its own process (every `longrun serve` tab is a process of its
    own); the daemon keeps the runs going after the UI closes.
    """
    current = lease.current(store)
    if current is not None and current.alive():
        return None
    log_path = store.home / "logs" / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "longrun.app.cli", "daemon", "--home", str(store.home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return f"Started the supervisor in the background (pid {proc.pid}); runs go on after you quit."


if __name__ == "__main__":
    sys.exit(main())
