"""The report's one scan of a window (`store.audit.activity`) against every event read one by one.

SQL counts the window's events by bucket and kind and sums its calls' usage by bucket and by
session in one grouped pass; here the same numbers are made in Python from each event's own
row, its payload parsed by `json.loads`, on a synthetic run with calls outside any session too.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from longrun.bench.synth import SynthRun, synthesize
from longrun.store import audit, log
from longrun.store.db import DB_NAME, Store
from longrun.store.models import iso

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOURS = 6.0


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SynthRun]]:
    store = Store.open(tmp_path_factory.mktemp("audit"))
    made = synthesize(store, hours=HOURS, events=20_000, seed=5, end=END)
    usage = {"input_tokens": 7, "output_tokens": 11, "cache_write_tokens": 0, "cache_read_tokens": 3}
    for k in range(3):  # calls made outside any session, one without a usage at all
        with store.writing() as conn:
            data: dict[str, Any] = {"usage": {**usage, "usd": 0.25 * (k + 1)}} if k < 2 else {}
            log.append(conn, made.run_id, "judge_call", data, ts=END - timedelta(minutes=90 - k))
    yield store, made
    store.close()


def one_by_one(store: Store, run_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The numbers of `activity`, from every event in the window read on its own."""
    width = audit.bucket_seconds(start, end, 96)
    with sqlite3.connect(store.home / DB_NAME) as db:
        rows = db.execute(
            "SELECT julianday(ts), julianday(?), kind, session_id, data FROM event "
            "WHERE run_id = ? AND ts >= ? AND ts < ?",
            (iso(start), run_id, iso(start), iso(end)),
        ).fetchall()
    rates: dict[tuple[int, str], int] = {}
    tokens: dict[int, dict[str, int]] = {}
    usd: dict[int, list[float]] = {}
    sessions: dict[int | None, list[Any]] = {}
    for day, day0, kind, session, data in rows:
        b = int((day - day0) * 86400 / width)  # SQLite's CAST(… AS INTEGER) truncates as int() does
        rates[b, kind] = rates.get((b, kind), 0) + 1
        if kind not in audit.CALL_KINDS:
            continue
        used = json.loads(data).get("usage") or {}
        bucket = tokens.setdefault(b, dict.fromkeys(audit.TOKEN_KINDS, 0))
        mine = sessions.setdefault(session, [0, dict.fromkeys(audit.TOKEN_KINDS, 0), []])
        mine[0] += 1
        for k in audit.TOKEN_KINDS:
            bucket[k] += used.get(k, 0)
            mine[1][k] += used.get(k, 0)
        usd.setdefault(b, []).append(used.get("usd", 0.0))
        mine[2].append(used.get("usd", 0.0))
    return {
        "width": width,
        "rates": sorted((b, kind, n) for (b, kind), n in rates.items()),
        "tokens": sorted((b, kinds, math.fsum(usd[b])) for b, kinds in tokens.items()),
        "sessions": {s: (n, kinds, math.fsum(costs)) for s, (n, kinds, costs) in sessions.items()},
    }


@pytest.mark.parametrize(
    "window",
    [(0.0, 1.0), (0.25, 0.6), (0.5, 1.0)],
    ids=["the whole run", "a window starting inside a bucket", "the second half"],
)
def test_one_scan_counts_and_sums_what_every_event_read_on_its_own_does(
    synth: tuple[Store, SynthRun], window: tuple[float, float]
) -> None:
    store, made = synth
    span = audit.log_span(store, made.run_id)
    assert span.first is not None and span.last is not None
    length = span.last + timedelta(microseconds=1) - span.first
    start, end = span.first + length * window[0], span.first + length * window[1]
    got = audit.activity(store, made.run_id, start, end, 96)
    want = one_by_one(store, made.run_id, start, end)

    assert got.width == want["width"]
    assert got.rates == want["rates"]
    assert (
        sum(n for _, _, n in got.rates) == audit.log_span(store, made.run_id, since=start, until=end).events
    )
    assert [(b, kinds) for b, kinds, _ in got.tokens] == [(b, kinds) for b, kinds, _ in want["tokens"]]
    for (_, _, usd), (_, _, expected) in zip(got.tokens, want["tokens"], strict=True):
        assert usd == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert set(got.sessions) == set(want["sessions"])
    for session, used in got.sessions.items():
        calls, kinds, usd = want["sessions"][session]
        assert (used.calls, used.tokens) == (calls, kinds), session
        assert used.usd == pytest.approx(usd, rel=1e-12, abs=1e-12), session


def test_calls_outside_any_session_are_summed_apart(synth: tuple[Store, SynthRun]) -> None:
    store, made = synth
    got = audit.activity(store, made.run_id, END - timedelta(hours=2), END, 96)
    outside = got.sessions[None]
    assert outside.calls == 3
    assert outside.tokens == {
        "input_tokens": 14,
        "output_tokens": 22,
        "cache_write_tokens": 0,
        "cache_read_tokens": 6,
    }
    assert outside.usd == pytest.approx(0.75)


def test_the_spend_before_a_window_is_every_earlier_calls_cost(synth: tuple[Store, SynthRun]) -> None:
    store, made = synth
    until = END - timedelta(hours=3)
    with sqlite3.connect(store.home / DB_NAME) as db:
        costs = [
            (json.loads(d).get("usage") or {}).get("usd", 0.0)
            for (d,) in db.execute(
                "SELECT data FROM event WHERE run_id = ? AND kind IN ('model_call', 'judge_call') AND ts < ?",
                (made.run_id, iso(until)),
            )
        ]
    before = audit.call_usage(store, made.run_id, until=until)
    assert before.calls == len(costs) > 0
    assert before.usd == pytest.approx(math.fsum(costs), rel=1e-12)
