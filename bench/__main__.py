"""`python -m longrun.bench NAME [options]`: run one benchmark and print its figures as one JSON object.

Each benchmark is a module of this package with a `BENCHMARK` (see `common.Benchmark`); adding
one is adding its module name to `MODULES`. Progress goes to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from longrun.bench.common import BenchError, Benchmark

MODULES = (
    "append",
    "rehydrate",
    "ui",
    "report",
    "synth",
    "timeline",
    "proxy",
    "judge",
    "sandbox",
    "supervisor",
    "start",
    "checkpoint",
    "overshoot",
)
PROG = "python -m longrun.bench"


def benchmarks() -> dict[str, Benchmark]:
    """The benchmarks by name, in the order they are listed."""
    found = [importlib.import_module(f"longrun.bench.{name}").BENCHMARK for name in MODULES]
    return {b.name: b for b in found}


def build_parser(known: dict[str, Benchmark]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run one longrun benchmark; print its JSON.")
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for bench in known.values():
        bench.configure(sub.add_parser(bench.name, help=bench.help, description=bench.help))
    return parser


def usage_line(known: dict[str, Benchmark], problem: str) -> str:
    return f"usage: {PROG} {{{','.join(known)}}} [options]: {problem} (benchmarks: {', '.join(known)})"


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    known = benchmarks()
    if not args_in or (args_in[0] not in known and args_in[0] not in ("-h", "--help")):
        problem = f"unknown benchmark {args_in[0]!r}" if args_in else "no benchmark named"
        print(usage_line(known, problem), file=sys.stderr)
        return 2
    args = build_parser(known).parse_args(args_in)
    try:
        result = known[args.benchmark].run(args)
    except BenchError as exc:
        print(f"{PROG} {args.benchmark}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
