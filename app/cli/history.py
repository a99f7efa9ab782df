"""Going back: `longrun rewind`, `fork` and `resume` from a checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from longrun.app.cli.output import EXIT_ERROR, confirm, local_time, open_store, print_json, supervisor_alive
from longrun.app.cli.parsing import Commands


def _rewind_words(store: Any, ref: str, checkpoint_id: int) -> str:
    from longrun.store import runs

    run = runs.get_run(store, ref)
    cp = runs.get_checkpoint(store, checkpoint_id, run.id)
    return (
        f"rewind {run.name} ({run.id}) to checkpoint {cp.id} (commit {cp.commit[:10]}, {cp.reason}, "
        f"{local_time(cp.created_at)}):\n"
        f"  the branch {run.branch} and the files in {run.workspace} go back to that checkpoint;\n"
        "  the current state is checkpointed first and kept under refs/longrun/"
        f"{run.id}/abandoned/N; the event log keeps everything."
    )


def cmd_rewind(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import rewind

    store = open_store(args)
    if not confirm(args, _rewind_words(store, args.run, args.to)):
        return EXIT_ERROR
    run = rewind(store, args.run, args.to, by=args.by)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"{run.name} ({run.id}) is at checkpoint {run.head_checkpoint_id}; the run is {run.state}")
    return 0


def cmd_fork(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import fork

    store = open_store(args)
    run = fork(store, args.run, args.checkpoint, name=args.name, overrides=args.set, by=args.by)
    if args.json:
        print_json(run.to_json())
    else:
        print(
            f"forked {run.name} ({run.id}) from checkpoint {args.checkpoint}: workspace {run.workspace}, "
            f"branch {run.branch}; it is {run.state}: `longrun resume {run.id}` starts it"
        )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import resume_now
    from longrun.store import runs

    store = open_store(args)
    run = runs.get_run(store, args.run)
    if args.checkpoint is not None and args.checkpoint != run.head_checkpoint_id:
        words = _rewind_words(store, run.id, args.checkpoint) + "\n  then a session starts from there."
        if not confirm(args, words):
            return EXIT_ERROR
    run, how = resume_now(store, run.id, args.checkpoint, exact=args.exact, by=args.by)
    if args.json:
        print_json(run.to_json() | {"how": how})
    else:
        print(f"{run.name} ({run.id}) is {run.state}: a session starts now, {how}")
        if not supervisor_alive(store):
            print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def register(commands: Commands) -> None:
    json_flag = commands.json_flag
    p = commands.add(
        "rewind", cmd_rewind, "move a run back to a checkpoint (the current state is kept)", json_flag
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--to", type=int, required=True, metavar="C", help="the checkpoint to go back to")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = commands.add(
        "fork", cmd_fork, "a new run from a checkpoint: its own worktree, branch, budget", json_flag
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--from", dest="checkpoint", type=int, required=True, metavar="C", help="the checkpoint")
    p.add_argument("--name", metavar="N", help="the new run's name (default: the parent's, with -fork)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a spec key")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = commands.add("resume", cmd_resume, "schedule a session now, from the head or a checkpoint", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--from", dest="checkpoint", type=int, metavar="C", help="rewind to this checkpoint first")
    p.add_argument(
        "--exact",
        action="store_true",
        help="go on from the conversation of the session that made the checkpoint, when it fits the context",
    )
    p.add_argument("--yes", action="store_true", help="do not ask before a rewind")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
