"""`timeline`: how long the Timeline tab takes to draw a 24-hour run, small log against a large one.

Two synthetic 24-hour runs are written into one store (`bench.synth`): a small one (the
baseline, 10 k events by default) and a large one (1 M). For each, in turns, after a warm-up:

- `aggregate_s`: `store.timeline.timeline()` alone, the SQL the tab draws from;
- `draw_s`: in the real dashboard (Textual's Pilot, headless, 120×40, after `settle()` as
  `longrun-ui` does), from the key `6` on the run screen to the screen rendered with the tab's
  data on it.

The contract is the tab drawn in under 0.5 s for 1 M events; `ratio` (large / small) says how
much of that grows with the log.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    Benchmark,
    median,
    positive_int,
    progress,
    ratio,
    until,
    versions,
    work_dir,
)
from longrun.store import timeline as tl
from longrun.store.db import Store
from longrun.store.models import utcnow

STORE_DIR = "store"
TARGET_S = 0.5
SIZE = (120, 40)


def aggregate_times(store: Store, run_id: str, repeat: int) -> list[float]:
    now = utcnow()
    tl.timeline(store, run_id, now=now)  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        tl.timeline(store, run_id, now=now)
        times.append(time.perf_counter() - started)
    return times


def painted(app: Any) -> bool:
    """The screen, rendered now as the terminal would get it, shows the Timeline with its data
    (`pilot.pause` would wait for the process to go idle: until the tab underline stops sliding)."""
    return "markers" in app.export_screenshot()  # the tab's head line: "… N markers here"


async def draw_times(store: Store, run_ids: list[str], repeat: int) -> dict[str, list[float]]:
    """Open each run's screen, press 6 and wait for the Timeline tab to be drawn; `repeat` times."""
    from longrun.app.dashboard import make_app, settle
    from longrun.app.screens.run import RunScreen

    settle()  # as `longrun-ui` does before its app runs
    app = make_app(store, poll_seconds=3600)
    out: dict[str, list[float]] = {r: [] for r in run_ids}
    async with app.run_test(size=SIZE) as pilot:
        while not app.polled_once:
            await pilot.pause(0.01)
        for i in range(repeat + 1):
            for run_id in run_ids:
                app.open_run(run_id)
                while not (isinstance(app.screen, RunScreen) and app.screen.ready):
                    await pilot.pause(0.005)
                screen = app.screen
                assert isinstance(screen, RunScreen)

                def drawn(screen: RunScreen = screen) -> bool:
                    pane = screen.pane("timeline")
                    return bool(pane and pane.ready and painted(app))

                await pilot.pause()
                started = time.perf_counter()
                # As a key from the terminal; `pilot.press` would also wait for the tab underline's
                # slide, which is drawn while the tab's content already shows.
                app.simulate_key("6")
                await until(drawn, "the Timeline tab drawn", poll_s=0.002)
                if i:  # the first round warms up
                    out[run_id].append(time.perf_counter() - started)
                app.pop_screen()
                await pilot.pause()
    return out


def measure(root: Path, small: int, large: int, hours: float, repeat: int) -> dict[str, Any]:
    from longrun.bench.synth import synthesize

    store = Store.open(root / STORE_DIR)
    progress(f"writing a {hours:g}-hour run of {small:,} events (the baseline)")
    base = synthesize(store, hours=hours, events=small, seed=1)
    progress(f"writing a {hours:g}-hour run of {large:,} events")
    big = synthesize(store, hours=hours, events=large, seed=2)
    progress("timing the aggregates")
    agg = {r: aggregate_times(store, r, repeat) for r in (base.run_id, big.run_id)}
    progress("timing the tab in the dashboard")
    drawn = asyncio.run(draw_times(store, [base.run_id, big.run_id], repeat))

    def figures(run_id: str, events: int) -> dict[str, Any]:
        return {
            "events": events,
            "aggregate_s": round(median(agg[run_id]), 4),
            "draw_s": round(median(drawn[run_id]), 4),
            "draw_max_s": round(max(drawn[run_id]), 4),
        }

    small_f, large_f = figures(base.run_id, small), figures(big.run_id, large)
    return {
        "benchmark": "timeline",
        "hours": hours,
        "repeat": repeat,
        "baseline": small_f,
        "large": large_f,
        "ratio_draw": ratio(large_f["draw_s"], small_f["draw_s"]),
        "ratio_aggregate": ratio(large_f["aggregate_s"], small_f["aggregate_s"]),
        "target_draw_s": TARGET_S,
        "meets_target": large_f["draw_s"] < TARGET_S,
        "versions": versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--small", type=positive_int, default=10_000, help="events in the baseline run")
    parser.add_argument("--large", type=positive_int, default=1_000_000, help="events in the large run")
    parser.add_argument("--hours", type=float, default=24.0, help="how long each run lasted (default 24)")
    parser.add_argument("--repeat", type=positive_int, default=5, help="timed draws per run (default 5)")
    parser.add_argument("--dir", type=Path, default=None, help="keep the store here (default: a temp dir)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with work_dir(args.dir, [STORE_DIR]) as root:
        return measure(root, args.small, args.large, args.hours, args.repeat)


BENCHMARK = Benchmark(
    name="timeline",
    help="time to draw the Timeline tab of a 24-hour run, 10 k events against 1 M",
    configure=configure,
    run=run,
)
