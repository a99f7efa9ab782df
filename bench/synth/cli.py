"""The `synth` benchmark (`python -m longrun.bench synth`): its options, and a day written into a
new or given store."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from longrun.bench.common import BenchError, Benchmark, positive_int, progress, versions
from longrun.bench.synth.day import synthesize
from longrun.bench.synth.story import MIN_EVENTS
from longrun.store.db import Store


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, found {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 hour, found {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hours", type=_hours, default=24.0, help="how long the run has been going (default 24)"
    )
    parser.add_argument(
        "--events", type=positive_int, default=100_000, help="events in the run's log (default 100000)"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the store to write into (default: a new temp directory, kept and printed)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same run (default 0)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.events < MIN_EVENTS:
        raise BenchError(
            f"--events: at least {MIN_EVENTS} (twenty sessions and their judgements), found {args.events}"
        )
    home = args.home.expanduser().absolute() if args.home else Path(tempfile.mkdtemp(prefix="longrun-synth-"))
    progress(f"synth: writing {args.events:,} events of {args.hours:g} hours into {home}")
    store = Store.open(home)
    try:
        result = synthesize(store, hours=args.hours, events=args.events, seed=args.seed)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    finally:
        store.close()
    return {"home": str(home), **result.to_json(), "seed": args.seed, "versions": versions()}


BENCHMARK = Benchmark(
    name="synth",
    help="write a realistic day of autonomous work into a store (it writes; it measures only its own speed)",
    configure=configure,
    run=run,
)
