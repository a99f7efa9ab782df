"""`report`: how long `longrun report` takes to build the HTML of a 24-hour run, and how much memory.

The issue's targets: for a 24-hour run of 1,000,000 events, the report in under 10 s and under
500 MB. Two synthetic 24-hour runs are written into one store with `bench.synth` (the baseline,
10,000 events by default, and the large one, 1,000,000), then each report is built `--repeat`
times, the two runs taking turns, each time in a fresh child process that opens the store,
runs `app.report.build_report` (the SQL aggregates, the hash-chain check and the HTML with
plotly.js embedded) and writes the file the way the CLI does. The child reports:

- `build_s`: `build_report` alone, from the open store to the HTML text;
- `write_s`: writing it next to the target and renaming it into place;
- `peak_rss_mb`: the child's peak resident memory (its own high-water mark: see `_rss_mb`),
  interpreter and imports included, so it is what the command costs, not only what the build adds;
- `import_rss_mb`: the same before the build, to tell the two apart.

The result has the medians (and the largest peak), the targets and whether they are met, the
large run's figures over the baseline's (`ratios`), and the machine's one-minute load average
before the first build and after the last (`load_avg_1m`): other work on the machine slows the
builds down, and the figures should say so.

Layout under `--dir`: `store/longrun.db` (both runs) and `html/` (the last report of each).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    BenchError,
    Benchmark,
    median,
    positive_int,
    progress,
    ratio,
    versions,
    work_dir,
)

STORE_DIR = "store"
HTML_DIR = "html"
TARGET_S = 10.0
TARGET_MB = 500.0
CHILD_TIMEOUT_S = 600.0


def child(argv: list[str]) -> int:
    """In a fresh process: build and write one report, print its figures as JSON on stdout."""
    home, run_id, out = argv
    from longrun.app.report import build_report, write_report
    from longrun.store.db import Store

    store = Store.open(Path(home), create=False)
    before = _rss_mb()
    started = time.perf_counter()
    page = build_report(store, run_id)
    built = time.perf_counter()
    write_report(page, Path(out))
    written = time.perf_counter()
    store.close()
    figures = {
        "build_s": built - started,
        "write_s": written - built,
        "html_bytes": len(page.encode()),
        "import_rss_mb": before,
        "peak_rss_mb": _rss_mb(),
    }
    print(json.dumps(figures))
    return 0


def _load() -> float | None:
    """The machine's load average over the last minute (None where there is none): builds on a
    loaded machine take longer, and the figures say how loaded it was."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _rss_mb() -> float:
    """This process's peak resident memory so far, in MB.

    On Linux, from the kernel's high-water mark of this process image (`VmHWM`): `ru_maxrss`
    carries over from the parent through fork and exec, so a child of the benchmark (whose
    parent holds the synthetic run it wrote) would report the parent's peak. Elsewhere
    `ru_maxrss` (macOS gives bytes)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _run_child(home: Path, run_id: str, out: Path) -> dict[str, float]:
    code = "import sys; from longrun.bench.report import child; sys.exit(child(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(home), run_id, str(out)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"building the report of run {run_id} failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class Samples:
    """One run's measurements over the repeats."""

    events: int
    run_id: str
    fill_s: float
    taken: list[dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "fill_s": round(self.fill_s, 1),
            "build_s": round(self.build_s, 3),
            "build_min_s": round(min(t["build_s"] for t in self.taken), 3),
            "build_samples_s": [round(t["build_s"], 3) for t in self.taken],
            "write_s": round(median([t["write_s"] for t in self.taken]), 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "import_rss_mb": round(median([t["import_rss_mb"] for t in self.taken]), 1),
            "html_bytes": int(self.taken[-1]["html_bytes"]),
        }

    @property
    def build_s(self) -> float:
        return median([t["build_s"] for t in self.taken])

    @property
    def peak_rss_mb(self) -> float:
        return max(t["peak_rss_mb"] for t in self.taken)


def measure(root: Path, small: int, large: int, hours: float, repeat: int) -> dict[str, Any]:
    from longrun.bench.synth import synthesize
    from longrun.store.db import Store

    home = root / STORE_DIR
    store = Store.open(home)
    try:
        progress(f"report: writing a {hours:g}-hour run of {small:,} events (the baseline)")
        started = time.perf_counter()
        base = synthesize(store, hours=hours, events=small, seed=1)
        base_fill = time.perf_counter() - started
        progress(f"report: writing a {hours:g}-hour run of {large:,} events")
        started = time.perf_counter()
        big = synthesize(store, hours=hours, events=large, seed=2)
        big_fill = time.perf_counter() - started
    except ValueError as exc:  # the synthetic run cannot have the shape asked for
        raise BenchError(str(exc)) from None
    finally:
        store.close()
    (root / HTML_DIR).mkdir(parents=True, exist_ok=True)
    baseline = Samples(small, base.run_id, base_fill, [])
    figures = Samples(large, big.run_id, big_fill, [])
    load_before = _load()
    for k in range(repeat):
        order = [("baseline", baseline), ("large", figures)]
        for label, samples in order if k % 2 == 0 else order[::-1]:
            taken = _run_child(home, samples.run_id, root / HTML_DIR / f"{label}.html")
            samples.taken.append(taken)
            progress(
                f"report {k + 1}/{repeat}: {label} ({samples.events:,} events) built in "
                f"{taken['build_s']:.2f}s, peak {taken['peak_rss_mb']:.0f} MB"
            )
    load_after = _load()
    met = {"build": figures.build_s < TARGET_S, "memory": figures.peak_rss_mb < TARGET_MB}
    return {
        "benchmark": "report",
        "hours": hours,
        **figures.to_json(),
        "baseline": baseline.to_json(),
        "ratios": {
            "build": ratio(figures.build_s, baseline.build_s),
            "peak_rss": ratio(figures.peak_rss_mb, baseline.peak_rss_mb),
        },
        "targets": {"build_s": TARGET_S, "peak_rss_mb": TARGET_MB},
        "met": met,
        "meets_targets": all(met.values()),
        "repeat": repeat,
        "load_avg_1m": {"before": load_before, "after": load_after},
        **versions(),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=positive_int, default=1_000_000, help="events in the large run (default 1000000)"
    )
    parser.add_argument(
        "--baseline-events",
        type=positive_int,
        default=10_000,
        help="events in the baseline run (default 10000)",
    )
    parser.add_argument("--hours", type=float, default=24.0, help="how long each run lasted (default 24)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="reports built per run (default 3)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="write the store and the reports here and keep them (default: a temp dir, removed)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.hours <= 0:
        raise BenchError("--hours must be more than 0")
    with work_dir(args.dir, [STORE_DIR, HTML_DIR]) as root:
        return measure(root, args.baseline_events, args.events, args.hours, args.repeat)


BENCHMARK = Benchmark(
    name="report",
    help="time and memory to build the HTML report of a 24-hour run of 1 M events, against 10 k",
    configure=configure,
    run=run,
)
