"""`longrun demo`: the scripted model builds a small project, on a screen or headless."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from longrun.app.cli.output import EXIT_ERROR, EXIT_WAITING, open_store, print_json
from longrun.app.cli.parsing import Commands, positive_number
from longrun.app.cli.runs import run_document
from longrun.store.errors import LongrunError


def cmd_demo(args: argparse.Namespace) -> int:
    if args.write:
        from longrun.scheduler.demo import write_demo_project

        spec = write_demo_project(Path(args.write))
        print(f"wrote the demo spec {spec} and its workspace; run it with `longrun run create {spec}`")
        return 0
    if not args.headless:
        from longrun.app.tui import main as ui_main

        return ui_main(["--demo", "--worker", args.worker] + (["--home", args.home] if args.home else []))
    from longrun.scheduler.control import prepare_demo, start
    from longrun.scheduler.demo import DEMO_WORKERS, demo_worker_missing
    from longrun.scheduler.supervisor.daemon import supervise_until_finished
    from longrun.store import runs

    missing = demo_worker_missing(args.worker)
    if missing is not None:
        raise LongrunError(missing)
    store = open_store(args)
    run = prepare_demo(store, [f"worker.backend={args.worker}", *args.set])
    if not args.json:
        who = DEMO_WORKERS[args.worker]
        print(f"demo run {run.id}: {who} (no network, no key), workspace {run.workspace}", flush=True)
    start(store, run.id, by="demo")
    deadline = time.monotonic() + args.timeout
    while True:
        left = max(deadline - time.monotonic(), 0.0)
        finished = supervise_until_finished(store, run.id, timeout_s=left)
        final = runs.get_run(store, run.id)
        if not finished or final.state != "awaiting_approval" or not _demo_decides(store, final, args):
            break
    final = runs.get_run(store, run.id)
    doc = run_document(store, final.id)
    if args.json:
        print_json(doc)
    else:
        passed = sum(1 for f in doc["features"] if f["status"] == "pass")
        print(
            f"{final.id}: {final.state} after {len(doc['sessions'])} sessions, "
            f"{passed}/{len(doc['features'])} features pass, spent ${final.spent_usd:.4f}"
        )
    if not finished:
        print(f"longrun: error: the demo did not finish within {args.timeout:g}s", file=sys.stderr)
        return EXIT_ERROR
    if final.state in WAITING:
        if not args.json:
            print(f"the run waits for a person: {final.state_reason}")
        return EXIT_WAITING
    return 0 if final.state == "done" else EXIT_ERROR


WAITING = ("awaiting_approval", "tripped", "paused")
"""States in which the headless demo ends waiting for a person: it exits EXIT_WAITING."""


def _demo_decides(store: Any, run: Any, args: argparse.Namespace) -> bool:
    """The headless demo paused for a person: approve with --auto-approve, ask on a terminal, or
    leave it waiting (False)."""
    from longrun.scheduler.control import decide
    from longrun.scheduler.guards.policy import subject
    from longrun.store import runs
    from longrun.store.runs.requests import ToolCallRequest

    pending = [a for a in runs.list_approvals(store, run.id, state="pending") if a.kind == "tool_call"]
    if not pending:
        return False
    for approval in pending:
        asks = approval.asks
        assert isinstance(asks, ToolCallRequest)
        call = f"{asks.tool}: {subject(asks.tool, asks.input)}"
        if not args.json:
            print(f"approval {approval.id}: the agent wants to run {call} ({asks.reason})")
        if args.auto_approve:
            yes = True
        elif sys.stdin.isatty():
            try:
                yes = input("Approve it? [y/N] ").strip().lower() in ("y", "yes")
            except EOFError:
                yes = False
        else:
            return False
        decide(store, approval.id, approve=yes, by="demo --auto-approve" if args.auto_approve else None)
        if not args.json:
            print(f"approval {approval.id} {'approved' if yes else 'denied'}; the run goes on", flush=True)
    return True


def register(commands: Commands) -> None:
    from longrun.scheduler.demo import DEMO_WORKERS

    p = commands.add(
        "demo", cmd_demo, "run the demo: a scripted model builds a small project", commands.json_flag
    )
    p.add_argument("--headless", action="store_true", help="no screen: run to the end and print a summary")
    p.add_argument(
        "--auto-approve", action="store_true", help="headless: approve the calls the approval rules ask about"
    )
    p.add_argument(
        "--worker",
        choices=DEMO_WORKERS,
        default="scripted",
        help="who works: the built-in agent (default) or the Claude Code CLI, both on the scripted model",
    )
    p.add_argument(
        "--timeout", type=positive_number, default=600.0, metavar="S", help="give up after S seconds"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a demo spec key")
    p.add_argument("--write", metavar="DIR", help="only write the demo's spec and workspace into DIR")
