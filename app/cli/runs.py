"""`longrun init`, `longrun spec check` and `longrun run …`: check a spec; create, list and show runs;
start, pause, stop and resume them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from longrun.app.cli.output import (
    EXIT_ERROR,
    local_time,
    open_store,
    print_json,
    print_table,
    supervisor_alive,
)
from longrun.app.cli.parsing import Commands
from longrun.store.errors import SpecError


def cmd_init(args: argparse.Namespace) -> int:
    if args.upgrade:
        return _upgrade(args)
    store = open_store(args)
    print(f"store ready: {store.path}")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from longrun.store.db import Store

    was, now, backup = Store.upgrade(args.home)
    if backup is None:
        print(f"the store is at schema {now}, this longrun's: nothing to upgrade")
    else:
        print(f"store upgraded from schema {was} to {now}; the store as it was is kept at {backup}")
    return 0


def _every_problem(error: SpecError) -> int:
    """Print each problem of a spec on its own line (the first is the message); exit 1."""
    lines = getattr(error, "errors", None) or [error.message]
    for line in lines:
        print(f"longrun: error: {line}", file=sys.stderr)
    if len(lines) > 1:
        print(f"longrun: {len(lines)} problems in the spec", file=sys.stderr)
    return EXIT_ERROR


def cmd_spec_check(args: argparse.Namespace) -> int:
    from longrun.scheduler.spec.load import load_spec

    try:
        spec = load_spec(Path(args.spec), args.set)
    except SpecError as exc:
        return _every_problem(exc)
    if args.json:
        print_json({"spec": args.spec, "ok": True, "name": spec.name, "features": len(spec.features)})
    else:
        print(f"{args.spec}: a valid spec for run {spec.name!r} ({len(spec.features)} features)")
    return 0


def cmd_run_create(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import create_run_from_file

    store = open_store(args)
    try:
        run = create_run_from_file(store, Path(args.spec), args.set)
    except SpecError as exc:
        return _every_problem(exc)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"created run {run.id} ({run.name}) on branch {run.branch} in {run.workspace}")
    return 0


def cmd_run_list(args: argparse.Namespace) -> int:
    from longrun.store import runs

    store = open_store(args)
    items = runs.list_runs(store)
    if args.json:
        print_json([r.to_json() for r in items])
        return 0
    if not items:
        print("no runs yet: create one with `longrun run create SPEC.toml` or try `longrun demo --headless`")
        return 0
    print_table(
        [
            [r.id, r.name, r.state, f"${r.spent_usd:.4f}", f"{r.usage.tokens:,}", local_time(r.updated_at)]
            for r in items
        ],
        ["ID", "NAME", "STATE", "SPENT", "TOKENS", "UPDATED"],
    )
    return 0


def run_document(store: Any, ref: str) -> dict[str, Any]:
    """`longrun run show --json`: the run with its sessions, checkpoints and features."""
    from longrun.store import runs

    run = runs.get_run(store, ref)
    verdicts = runs.latest_verdicts(store, run.id, [f["id"] for f in run.spec.get("features", [])])
    doc = run.to_json()
    doc["spec_path"] = run.spec_path
    doc["sessions"] = [s.to_json() for s in runs.list_sessions(store, run.id)]
    doc["checkpoints"] = [
        {
            "id": c.id,
            "seq": c.seq,
            "commit": c.commit,
            "created_at": c.to_json()["created_at"],
            "reason": c.reason,
            "session_id": c.session_id,
            "parent_id": c.parent_id,
            "handoff": c.handoff,
        }
        for c in runs.list_checkpoints(store, run.id)
    ]
    doc["features"] = [
        {
            "id": f["id"],
            "description": f["description"],
            "status": verdicts[f["id"]].status if f["id"] in verdicts else "unjudged",
            "checkpoint_id": verdicts[f["id"]].checkpoint_id if f["id"] in verdicts else None,
        }
        for f in run.spec.get("features", [])
    ]
    return doc


def cmd_run_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    doc = run_document(store, args.run)
    if args.json:
        print_json(doc)
        return 0
    print(
        f"{doc['name']} ({doc['id']})  {doc['state']}"
        + (f" — {doc['state_reason']}" if doc["state_reason"] else "")
    )
    print(f"workspace  {doc['workspace']}  (branch {doc['branch']})")
    tokens = doc["tokens"]
    print(
        f"spent      ${doc['spent_usd']:.4f}  ({tokens['tokens']:,} tokens: {tokens['input_tokens']:,} in, "
        f"{tokens['output_tokens']:,} out, {tokens['cache_write_tokens']:,} cache write, "
        f"{tokens['cache_read_tokens']:,} cache read)"
    )
    if doc["features"]:
        print("\nfeatures")
        print_table(
            [[f["id"], f["status"], f["description"]] for f in doc["features"]],
            ["ID", "STATUS", "DESCRIPTION"],
        )
    if doc["sessions"]:
        print("\nsessions")
        print_table(
            [
                [
                    str(s["n"]),
                    s["state"],
                    s["end_reason"] or "",
                    str(s["pid"] or ""),
                    s["started_at"] or "—",
                    s["ended_at"] or "—",
                    f"${s['spent_usd']:.4f}",
                ]
                for s in doc["sessions"]
            ],
            ["N", "STATE", "HOW", "PID", "STARTED", "ENDED", "SPENT"],
        )
    if doc["checkpoints"]:
        print("\ncheckpoints")
        print_table(
            [
                [str(c["id"]), str(c["seq"]), c["commit"][:10], c["reason"], c["created_at"]]
                for c in doc["checkpoints"]
            ],
            ["ID", "SEQ", "COMMIT", "REASON", "CREATED"],
        )
    return 0


def cmd_run_verb(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = open_store(args)
    verb = {"start": control.start, "pause": control.pause, "stop": control.stop, "resume": control.resume}
    run = verb[args.run_command](store, args.run, by=args.by)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"{run.name} ({run.id}) is {run.state}: {run.state_reason}")
        if run.state == "scheduled" and not supervisor_alive(store):
            print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def register(commands: Commands) -> None:
    p = commands.add("init", cmd_init, "create the store, or bring an older one up to date")
    p.add_argument(
        "--upgrade",
        action="store_true",
        help="bring a store made by an older longrun up to this one's schema, after keeping a copy "
        "of it in backups/",
    )
    json_flag = commands.json_flag
    spec = commands.group("spec", "check a spec file")
    p = commands.add(
        "check",
        cmd_spec_check,
        "validate a spec file and print every problem; creates nothing",
        json_flag,
        into=spec,
    )
    p.add_argument("spec", metavar="SPEC.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    run = commands.group("run", "create, list and show runs")
    p = commands.add("create", cmd_run_create, "create a run from a spec file", json_flag, into=run)
    p.add_argument("spec", metavar="SPEC.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    commands.add("list", cmd_run_list, "list runs", json_flag, into=run)
    p = commands.add(
        "show", cmd_run_show, "show a run: state, spend, sessions, checkpoints, features", json_flag, into=run
    )
    p.add_argument("run", metavar="RUN")
    for verb, text in (
        ("start", "hand a draft run to the supervisor: sessions start on its schedule"),
        ("pause", "no new session; a running one wraps up and ends with a checkpoint"),
        ("stop", "no new session; a running one is ended now (with a checkpoint)"),
        ("resume", "let a paused run go on"),
    ):
        p = commands.add(verb, cmd_run_verb, text, json_flag, into=run)
        p.add_argument("run", metavar="RUN")
        p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
