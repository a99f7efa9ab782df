"""`ui`: how fast the dashboard paints its runs screen and opens a run, on a big store and a small one.

The issue's targets: with 1,000 runs and 1,000,000 events in the store, the runs screen paints in
under 1.5 s from launch and a run screen opens in under 300 ms.

Two stores are filled with `bigstore.fill` (the big one as asked, and a small baseline, 10 runs and
1,000 events by default), then each is measured with Textual's Pilot, headless, at 120x40:

- launch: from `make_app(store)` until the runs table (`#runs` on the runs screen) holds a row for
  every run; each launch is a fresh app; the median of `--launches`;
- open: from `app.open_run(run_id)` until the pushed run screen says `ready` (its first tab shows
  the run), for the run with the most events and the one with the fewest, `--repeat` times each,
  taking turns, back to the runs screen in between; the medians.

Waiting polls every 10 ms with `asyncio.sleep`, not `pilot.pause`: the latter first posts a
callback to every widget of the screen and waits for each, which adds to what is measured (about
a sixth of a run screen's opening, in a paired comparison). One launch on the baseline store comes
first and is not counted (it pays for what any first app of a process pays). The result has the
seconds, the targets and whether each is met, and the big store's figures over the baseline's
(`ratios`).

Layout under `--dir`: `big/longrun.db` and `small/longrun.db`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longrun.bench import bigstore
from longrun.bench.common import (
    BenchError,
    Benchmark,
    median,
    positive_int,
    progress,
    ratio,
    until,
    versions,
    work_dir,
)
from longrun.store import board
from longrun.store.db import Store

BIG_DIR = "big"
SMALL_DIR = "small"
SIZE = (120, 40)
TARGET_LAUNCH_S = 1.5
TARGET_OPEN_S = 0.3


@dataclass(frozen=True)
class Figures:
    """One store's measurements."""

    runs: int
    events: int
    fill_s: float
    launch: list[float]
    biggest: tuple[str, int, list[float]]
    smallest: tuple[str, int, list[float]]
    """(run id, its events, open times) of the run with the most events and the one with the fewest."""

    @property
    def launch_s(self) -> float:
        return median(self.launch)

    @property
    def open_biggest_s(self) -> float:
        return median(self.biggest[2])

    @property
    def open_smallest_s(self) -> float:
        return median(self.smallest[2])

    def to_json(self) -> dict[str, Any]:
        def opened(which: tuple[str, int, list[float]]) -> dict[str, Any]:
            run_id, events, samples = which
            return {
                "run_id": run_id,
                "events": events,
                "median_s": round(median(samples), 4),
                "samples_s": [round(s, 4) for s in samples],
            }

        return {
            "runs": self.runs,
            "events": self.events,
            "fill_s": round(self.fill_s, 1),
            "launch_s": round(self.launch_s, 4),
            "launch_samples_s": [round(s, 4) for s in self.launch],
            "open_run": {"biggest": opened(self.biggest), "smallest": opened(self.smallest)},
        }


# --- driving the dashboard ----------------------------------------------------------------------


def _rows_painted(app: Any, expected: int) -> bool:
    """Whether the current screen's runs table holds `expected` rows."""
    from textual.widgets import DataTable

    tables = app.screen.query("#runs")
    return bool(tables) and isinstance(tables.first(), DataTable) and tables.first().row_count >= expected


def _ready(screen: Any) -> bool:
    from textual.css.query import NoMatches

    try:
        return bool(getattr(screen, "ready", False))
    except NoMatches:  # the screen is not composed yet
        return False


async def _launch(
    store: Store, expected: int, opens: list[str], repeat: int
) -> tuple[float, dict[str, list[float]]]:
    """One launch, timed until the runs table is full; then, when `opens` names runs, open each of
    them `repeat` times, taking turns, and time each until its screen is ready."""
    from longrun.app.dashboard import make_app, settle

    started = time.perf_counter()
    settle()  # as `longrun-ui` does before its app runs
    app = make_app(store, clock=None)
    async with app.run_test(size=SIZE):
        await until(lambda: _rows_painted(app, expected), f"a runs table of {expected} rows")
        launch = time.perf_counter() - started
        times: dict[str, list[float]] = {run_id: [] for run_id in opens}
        for _ in range(repeat if opens else 0):
            for run_id in opens:
                depth = len(app.screen_stack)

                def opened(depth: int = depth) -> bool:
                    return len(app.screen_stack) > depth and _ready(app.screen)

                def back(depth: int = depth) -> bool:
                    return len(app.screen_stack) == depth

                started = time.perf_counter()
                app.open_run(run_id)
                await until(opened, f"the run screen of {run_id} ready")
                times[run_id].append(time.perf_counter() - started)
                app.pop_screen()
                await until(back, "back on the runs screen")
    return launch, times


@dataclass(frozen=True)
class Filled:
    """A filled store: where, what it holds, and how long it took."""

    home: Path
    label: str
    runs: int
    events: int
    fill_s: float
    counts: dict[str, int]
    """Events per run."""


def fill_store(home: Path, runs: int, events: int, label: str) -> Filled:
    store = Store.open(home)
    try:
        progress(f"ui: filling the {label} store: {runs:,} runs, {events:,} events")
        started = time.perf_counter()
        run_ids = bigstore.fill(store, runs, events, progress=progress)
        fill_s = time.perf_counter() - started
        counts = {run_id: board.event_count(store, run_id) for run_id in run_ids}
    finally:
        store.close()
    return Filled(home, label, runs, events, fill_s, counts)


def measure_store(filled: Filled, launches: int, repeat: int) -> Figures:
    """Launch the dashboard on a filled store `launches` times; in the last, open the biggest and
    the smallest run `repeat` times each."""
    counts = filled.counts
    biggest = max(counts, key=lambda r: counts[r])
    smallest = min(counts, key=lambda r: counts[r])
    store = Store.open(filled.home, create=False)
    try:
        samples: list[float] = []
        opened: dict[str, list[float]] = {}
        for k in range(launches):
            opens = [biggest, smallest] if k == launches - 1 else []
            launch, times = asyncio.run(_launch(store, filled.runs, opens, repeat))
            samples.append(launch)
            opened |= times
            progress(f"ui: {filled.label} launch {k + 1}/{launches}: runs screen painted in {launch:.3f}s")
    finally:
        store.close()
    progress(
        f"ui: {filled.label} run screen: {median(opened[biggest]):.3f}s for {counts[biggest]:,} events, "
        f"{median(opened[smallest]):.3f}s for {counts[smallest]:,}"
    )
    return Figures(
        filled.runs,
        filled.events,
        filled.fill_s,
        samples,
        (biggest, counts[biggest], opened[biggest]),
        (smallest, counts[smallest], opened[smallest]),
    )


def _warm_up(filled: Filled) -> None:
    """One launch that is not counted: the first app of a process pays for more than the store."""
    store = Store.open(filled.home, create=False)
    try:
        asyncio.run(_launch(store, filled.runs, [], 0))
    finally:
        store.close()


def measure(
    root: Path, big: tuple[int, int], small: tuple[int, int], launches: int, repeat: int
) -> dict[str, Any]:
    """Fill the baseline and the big store under `root`, then measure the dashboard on each."""
    baseline_store = fill_store(root / SMALL_DIR, *small, label="baseline")
    big_store = fill_store(root / BIG_DIR, *big, label="big")
    _warm_up(baseline_store)
    baseline = measure_store(baseline_store, launches, repeat)
    figures = measure_store(big_store, launches, repeat)
    met = {
        "launch": figures.launch_s < TARGET_LAUNCH_S,
        "open_biggest": figures.open_biggest_s < TARGET_OPEN_S,
        "open_smallest": figures.open_smallest_s < TARGET_OPEN_S,
    }
    return {
        "benchmark": "ui",
        "size": list(SIZE),
        **figures.to_json(),
        "baseline": baseline.to_json(),
        "ratios": {
            "launch": ratio(figures.launch_s, baseline.launch_s),
            "open_biggest": ratio(figures.open_biggest_s, baseline.open_biggest_s),
            "open_smallest": ratio(figures.open_smallest_s, baseline.open_smallest_s),
        },
        "targets": {"launch_s": TARGET_LAUNCH_S, "open_run_s": TARGET_OPEN_S},
        "met": met,
        "meets_targets": all(met.values()),
        "launches": launches,
        "repeat": repeat,
        **versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs", type=positive_int, default=1000, help="runs in the big store (default 1000)"
    )
    parser.add_argument(
        "--events", type=positive_int, default=1_000_000, help="events in the big store (default 1000000)"
    )
    parser.add_argument(
        "--baseline-runs", type=positive_int, default=10, help="runs in the baseline store (default 10)"
    )
    parser.add_argument(
        "--baseline-events",
        type=positive_int,
        default=1000,
        help="events in the baseline store (default 1000)",
    )
    parser.add_argument(
        "--launches", type=positive_int, default=3, help="launches timed per store (default 3)"
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=5, help="times each run screen is opened (default 5)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the stores here and keep them (default: a temp dir, removed)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    least = bigstore.MIN_EVENTS_PER_RUN
    for runs, events, which in (
        (args.runs, args.events, "--events"),
        (args.baseline_runs, args.baseline_events, "--baseline-events"),
    ):
        if events < runs * least:
            raise BenchError(f"{which} must be at least {least} per run ({runs * least} for {runs} runs)")
    with work_dir(args.dir, [BIG_DIR, SMALL_DIR]) as root:
        return measure(
            root,
            (args.runs, args.events),
            (args.baseline_runs, args.baseline_events),
            args.launches,
            args.repeat,
        )


BENCHMARK = Benchmark(
    name="ui",
    help="time for the dashboard to paint the runs screen and open a run, on a big store",
    configure=configure,
    run=run,
)
