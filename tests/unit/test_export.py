"""`longrun events RUN --format jsonl|csv [--since T] [--until T]`: a run's log streamed out whole.

A synthetic day of 100,000 events (`bench.synth`) is exported through the real command line in a
subprocess and read back: every event once, in order, with the payload its hash was computed
over (the exported lines rebuild the run's hash chain), windows by time and by seq holding only
what they should, one-line errors for bad input, and a peak memory that does not grow with the
log (measured in a child process, against an export a fifth as long, and against a reader that
holds every event, which the same measure must catch).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from longrun.bench.synth import SynthRun, synthesize
from longrun.store import log
from longrun.store.db import Store
from longrun.store.log import GENESIS, canonical_json, event_hash

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVENTS = 100_000
SMALL = 20_000
COLUMNS = ["run_id", "seq", "session_id", "ts", "kind", "data"]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, SynthRun]]:
    home = tmp_path_factory.mktemp("export") / "home"
    store = Store.open(home)
    try:
        made = synthesize(store, hours=24.0, events=EVENTS, seed=11, end=END)
    finally:
        store.close()
    yield home, made


def longrun(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "longrun.app.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def export(home: Path, run_id: str, *args: str) -> str:
    proc = longrun(home, "events", run_id, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def query(home: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "longrun.db") as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def jsonl(day: tuple[Path, SynthRun]) -> list[dict[str, Any]]:
    home, made = day
    return [json.loads(line) for line in export(home, made.run_id, "--format", "jsonl").splitlines()]


def test_jsonl_holds_the_whole_log_and_rebuilds_its_hash_chain(
    day: tuple[Path, SynthRun], jsonl: list[dict[str, Any]]
) -> None:
    home, made = day
    assert len(jsonl) == EVENTS
    assert [e["seq"] for e in jsonl] == list(range(1, EVENTS + 1))
    assert all(list(e) == COLUMNS for e in jsonl)
    prev = GENESIS
    for e in jsonl:
        prev = event_hash(
            prev, e["run_id"], e["seq"], e["ts"], e["session_id"], e["kind"], canonical_json(e["data"])
        )
    assert query(home, "SELECT hash FROM event WHERE run_id = ? AND seq = ?", made.run_id, EVENTS) == [
        (prev,)
    ]
    assert {e["run_id"] for e in jsonl} == {made.run_id}  # the fork's events are its own run's


def test_csv_holds_the_same_events(day: tuple[Path, SynthRun], jsonl: list[dict[str, Any]]) -> None:
    home, made = day
    rows = list(csv.reader(io.StringIO(export(home, made.run_id, "--format", "csv"))))
    assert rows[0] == COLUMNS
    body = rows[1:]
    assert len(body) == EVENTS and body[0][1] == "1" and body[-1][1] == str(EVENTS)
    for row, e in zip(body, jsonl, strict=True):
        run_id, seq, session_id, ts, kind, data = row
        assert (run_id, int(seq), ts, kind) == (e["run_id"], e["seq"], e["ts"], e["kind"])
        assert session_id == ("" if e["session_id"] is None else str(e["session_id"]))
        assert json.loads(data) == e["data"]


def test_a_time_window_holds_that_window_and_nothing_else(day: tuple[Path, SynthRun]) -> None:
    home, made = day
    since = made.start + timedelta(hours=6)
    until = since + timedelta(hours=1, minutes=30)
    # Naive means UTC; an offset is honoured.
    naive = since.replace(tzinfo=None).isoformat(timespec="minutes")
    offset = until.astimezone(datetime.now(UTC).astimezone().tzinfo).isoformat()
    lines = export(home, made.run_id, "--format", "jsonl", "--since", naive, "--until", offset).splitlines()
    events = [json.loads(line) for line in lines]
    inside = query(
        home,
        "SELECT seq FROM event WHERE run_id = ? AND ts >= ? AND ts < ? ORDER BY seq",
        made.run_id,
        since.isoformat(timespec="microseconds"),
        until.isoformat(timespec="microseconds"),
    )
    assert len(events) > 1000
    assert [e["seq"] for e in events] == [r[0] for r in inside]
    assert all(since <= datetime.fromisoformat(e["ts"]) < until for e in events)
    # The same window with Z: the same events.
    zulu = export(
        home,
        made.run_id,
        "--format",
        "jsonl",
        "--since",
        since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--until",
        until.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert zulu.splitlines() == lines


def test_a_seq_window_and_a_mixed_one(day: tuple[Path, SynthRun]) -> None:
    home, made = day
    rows = list(
        csv.reader(
            io.StringIO(export(home, made.run_id, "--format", "csv", "--since", "500", "--until", "1500"))
        )
    )
    assert [int(r[1]) for r in rows[1:]] == list(range(501, 1501))
    at = query(home, "SELECT ts FROM event WHERE run_id = ? AND seq = 90000", made.run_id)[0][0]
    lines = export(home, made.run_id, "--format", "jsonl", "--since", at, "--until", "90010").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(90000, 90011))


def test_kinds_filter_an_export(day: tuple[Path, SynthRun]) -> None:
    home, made = day
    wanted = ("approval_decided", "rewound", "budget_warning")
    args = [arg for kind in wanted for arg in ("--kind", kind)]
    rows = list(csv.reader(io.StringIO(export(home, made.run_id, "--format", "csv", *args))))[1:]
    marks = ",".join("?" * len(wanted))
    expected = query(
        home,
        f"SELECT seq FROM event WHERE run_id = ? AND kind IN ({marks}) ORDER BY seq",
        made.run_id,
        *wanted,
    )
    assert [int(r[1]) for r in rows] == [s for (s,) in expected] and len(rows) == 5


def test_json_and_text_keep_their_output(day: tuple[Path, SynthRun]) -> None:
    home, made = day
    store = Store.open(home, create=False)
    try:
        held = [e.to_json() for e in log.read_events(store, made.run_id, since=EVENTS - 60)]
    finally:
        store.close()
    printed = export(home, made.run_id, "--json", "--since", str(EVENTS - 60))
    assert printed == json.dumps(held, indent=2, ensure_ascii=False) + "\n"
    assert export(home, made.run_id, "--json", "--since", str(EVENTS)) == "[]\n"
    text = export(home, made.run_id, "--since", str(EVENTS - 60)).splitlines()
    assert len(text) == 60 and text[-1].split()[0] == str(EVENTS)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--format", "xml"], "--format"),
        (["--format", "jsonl", "--json"], "--format"),
        (["--since", "yesterday"], "--since"),
        (["--format", "csv", "--until", "2026-13-01T00:00"], "--until"),
        (["--format", "jsonl", "--since", "-5"], "--since"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(
    day: tuple[Path, SynthRun], args: list[str], flag: str
) -> None:
    home, made = day
    proc = longrun(home, "events", made.run_id, *args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], proc.stderr


def test_a_stream_reads_in_batches_and_stops_at_its_start(store: Store) -> None:
    """Keyset paging by seq gives exactly what one query gives, whatever the batch, and events
    appended while a stream runs are not part of it."""
    from longrun.store import runs

    run_id = "r-stream"
    runs.insert_run(
        store,
        run_id=run_id,
        name="s",
        goal="g",
        spec={},
        spec_path=None,
        workspace="w",
        branch="b",
        state="draft",
    )
    for i in range(40):
        log.record(store, run_id, "tick" if i % 3 else "tock", {"i": i})
    whole = [(e.seq, e.kind) for e in log.read_events(store, run_id)]
    for batch in (1, 7, 41, 2000):
        assert [(r.seq, r.kind) for r in log.stream_rows(store, run_id, batch=batch)] == whole
        tocks = list(log.stream_events(store, run_id, kinds=["tock"], since_seq=5, until_seq=30, batch=batch))
        assert [e.seq for e in tocks] == [s for s, k in whole if k == "tock" and 5 < s <= 30]
    stream = log.stream_rows(store, run_id, batch=10)
    first = next(stream)
    log.record(store, run_id, "late", {})
    assert [first.seq, *(r.seq for r in stream)] == [s for s, _ in whole]


# --- peak memory ---------------------------------------------------------------------------------

PEAK = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
"""Run a command with its stdout to a file and print its exit code and peak RSS (the only child)."""

HOLD_ALL = """
import sys
from sqlalchemy import text
from longrun.app.cli.log import export_events
from longrun.store.db import Store
from longrun.store.log import EventRow
store = Store.open(sys.argv[1], create=False)
sql = "SELECT run_id, seq, session_id, ts, kind, data FROM event WHERE run_id = :r AND seq <= :n ORDER BY seq"
with store.reading() as conn:
    rows = conn.execute(text(sql), {"r": sys.argv[2], "n": int(sys.argv[3])}).all()
export_events([EventRow(*r) for r in rows], "jsonl")
"""
"""The export's own writer over the window fetched whole first: what streaming must not be."""


@dataclass(frozen=True)
class Peak:
    rss: int
    """Bytes."""
    output: int
    """Bytes written."""


def peak(out: Path, *command: str) -> Peak:
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, str(out), *command], capture_output=True, text=True, timeout=300
    )
    code, maxrss = proc.stdout.split()
    assert code == "0", proc.stderr
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
    return Peak(int(maxrss) * unit, os.path.getsize(out))


def test_export_memory_does_not_grow_with_the_log(day: tuple[Path, SynthRun], tmp_path: Path) -> None:
    home, made = day
    cli = [
        sys.executable,
        "-m",
        "longrun.app.cli",
        "--home",
        str(home),
        "events",
        made.run_id,
        "--format",
        "jsonl",
    ]
    small = peak(tmp_path / "small.jsonl", *cli, "--until", str(SMALL))
    whole = peak(tmp_path / "whole.jsonl", *cli)
    grown = whole.output - small.output
    assert grown > 20_000_000  # 80,000 more events: tens of megabytes more output
    # Streaming: the peak is the same for five times the log, give or take a quarter of the growth.
    assert whole.rss - small.rss < grown / 4, (small, whole)

    # The measure sees a reader that holds the events: the same two windows, fetched whole.
    held = [sys.executable, "-c", HOLD_ALL, str(home), made.run_id]
    held_small = peak(tmp_path / "held-small.jsonl", *held, str(SMALL))
    held_whole = peak(tmp_path / "held-whole.jsonl", *held, str(EVENTS))
    assert held_whole.output == whole.output and held_small.output == small.output
    assert held_whole.rss - held_small.rss > grown / 4, (held_small, held_whole)
