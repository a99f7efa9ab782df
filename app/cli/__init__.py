"""The `longrun` command line.

Every error a person can cause comes out as one line on stderr and a non-zero exit, never a
traceback. Every list and show takes `--json` with stable field names.

One module per group of commands, each with a `register(commands)` that adds its parsers:
`runs` (init, run create/list/show/start/pause/stop/resume), `supervisor` (session run, daemon,
status), `limits` (budget, breaker reset), `judging` (judge, verdicts, features), `approvals`
(approvals, approve, deny, answer), `history` (rewind, fork, resume), `log` (events,
checkpoints, verify, report), `demo`, `serve` (the dashboard in a browser), `mcp` (the store as an
MCP server) and `worker` (sessions on Celery workers). A new command goes in the module of its
group; a new group is one module and one line in `GROUPS`. Commands import what they use when
they run, so `longrun --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from longrun.app.cli import (
    approvals,
    demo,
    history,
    judging,
    limits,
    log,
    mcp,
    runs,
    serve,
    supervisor,
    worker,
)
from longrun.app.cli.output import EXIT_ERROR
from longrun.app.cli.parsing import Commands, Parser
from longrun.store.errors import LongrunError

GROUPS = (runs, supervisor, worker, limits, judging, approvals, history, log, demo, serve, mcp)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the store's directory (default: $LONGRUN_HOME or the user data directory)",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON with stable field names")
    parser = Parser(
        prog="longrun", description="Supervise AI agent work that outlasts any one session.", parents=[common]
    )
    commands = Commands(
        parser.add_subparsers(dest="command", required=True, parser_class=Parser), common, json_flag
    )
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        return int(args.handler(args))
    except LongrunError as exc:
        print(f"longrun: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("longrun: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


__all__ = ["GROUPS", "build_parser", "main"]
