"""The Timeline's aggregates (`store.timeline.timeline`) against every checkpoint read one by one.

SQL groups the checkpoints of a long run into stretches of time and keeps only those whose
verdicts changed; here each answer is checked against the plain walk over all of them, on a
synthetic run with a few hundred checkpoints (`STRETCHES` lowered so that they are grouped).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from longrun.bench.synth import SynthRun, synthesize
from longrun.scheduler.spec.keys import RATCHET
from longrun.store import audit, runs
from longrun.store import timeline as tl
from longrun.store.db import Store
from longrun.store.runs import CheckpointView

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOURS = 6.0


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SynthRun]]:
    store = Store.open(tmp_path_factory.mktemp("timeline"))
    result = synthesize(store, hours=HOURS, events=20_000, seed=3, end=END)
    yield store, result
    store.close()


def checkpoints(store: Store, run_id: str, since: datetime, until: datetime) -> list[CheckpointView]:
    return [c for c in runs.list_checkpoints(store, run_id) if since <= c.created_at < until]


def features_of(store: Store, run_id: str) -> list[str]:
    return [f["id"] for f in runs.get_run(store, run_id).spec.get("features", [])]


def test_grouped_checkpoints_are_each_in_one_stretch_and_the_last_stands_for_it(
    synth: tuple[Store, SynthRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run = synth
    monkeypatch.setattr(tl, "STRETCHES", 40)
    line = tl.timeline(store, run.run_id, now=END)
    every = checkpoints(store, run.run_id, line.start, line.end)
    assert len(every) > 200

    marks = [m for m in line.markers if m.kind == "checkpoint"]
    assert 20 <= len(marks) <= 41
    assert sum(m.data["checkpoints"] for m in marks) == len(every)
    step = (line.end - line.start) / 40
    by_id = {c.id: c for c in every}
    for mark, point in zip(marks, line.spend, strict=True):
        cp = by_id[mark.checkpoint_id]
        stretch = int((cp.created_at - line.start) / step)
        same = [c for c in every if int((c.created_at - line.start) / step) == stretch]
        assert cp.id == max(c.id for c in same)
        assert (point.ts, point.value) == (cp.created_at, cp.spent_usd)
    assert [p.value for p in line.spend] == sorted(p.value for p in line.spend)


def test_a_run_with_few_checkpoints_has_a_marker_for_each(synth: tuple[Store, SynthRun]) -> None:
    store, run = synth
    line = tl.timeline(store, run.run_id, now=END)
    every = checkpoints(store, run.run_id, line.start, line.end)
    assert len(every) <= tl.STRETCHES
    assert [m.checkpoint_id for m in line.markers if m.kind == "checkpoint"] == [c.id for c in every]
    assert [p.value for p in line.spend] == [c.spent_usd for c in every]


@pytest.mark.parametrize("stretches", [40, 3000])
def test_verdict_changes_are_those_of_every_checkpoint_against_its_parent(
    synth: tuple[Store, SynthRun], monkeypatch: pytest.MonkeyPatch, stretches: int
) -> None:
    store, run = synth
    monkeypatch.setattr(tl, "STRETCHES", stretches)
    line = tl.timeline(store, run.run_id, now=END)
    all_of_them = {c.id: c for c in runs.list_checkpoints(store, run.run_id)}
    expected = []
    for cp in checkpoints(store, run.run_id, line.start, line.end):
        before = all_of_them[cp.parent_id].features if cp.parent_id else {}
        for feature in [*features_of(store, run.run_id), RATCHET]:
            now, was = cp.features.get(feature), before.get(feature)
            if now is not None and now != was and (now == "pass" or was == "pass"):
                expected.append((cp.id, feature, "verdict_up" if now == "pass" else "verdict_down"))
    found = [
        (m.checkpoint_id, m.label.split()[0], m.kind) for m in line.markers if m.kind.startswith("verdict_")
    ]
    assert sorted(found) == sorted(expected)
    assert {k for _, _, k in found} == {"verdict_up", "verdict_down"}  # the synth regresses once


def test_features_passing_steps_where_the_count_changes(synth: tuple[Store, SynthRun]) -> None:
    store, run = synth
    line = tl.timeline(store, run.run_id, now=END)
    features = features_of(store, run.run_id)
    times = [p.ts for p in line.features]
    assert times == sorted(times)
    assert all(a.value != b.value for a, b in zip(line.features, line.features[1:], strict=False))
    for cp in checkpoints(store, run.run_id, line.start, line.end):
        passing = sum(1 for f in features if cp.features.get(f) == "pass")
        shown = [p.value for p in line.features if p.ts <= cp.created_at][-1]
        assert shown == passing, f"checkpoint {cp.id}"


def test_a_window_holds_only_its_checkpoints(
    synth: tuple[Store, SynthRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run = synth
    monkeypatch.setattr(tl, "STRETCHES", 40)
    since, until = END - timedelta(hours=4), END - timedelta(hours=2)
    line = tl.timeline(store, run.run_id, since=since, until=until, now=END)
    inside = checkpoints(store, run.run_id, since, until)
    marks = [m for m in line.markers if m.kind in ("checkpoint", "verdict_up", "verdict_down")]
    assert marks and all(since <= m.ts < until for m in marks)
    assert {m.checkpoint_id for m in marks} <= {c.id for c in inside}
    assert line.spend[-1].value == inside[-1].spent_usd


@pytest.mark.parametrize(
    ("window", "width"),
    [
        (timedelta(hours=24), 900),
        (timedelta(hours=24, microseconds=1), 900),  # a report's window ends just after its last event
        (timedelta(hours=6), 300),
        (timedelta(minutes=3), 2),
        (timedelta(seconds=5), 1),
        (timedelta(days=200), 3 * 86400),
    ],
)
def test_buckets_are_a_round_length(window: timedelta, width: int) -> None:
    assert audit.bucket_seconds(END - window, END, 96) == width


def test_a_usage_limit_warning_is_a_marker_that_says_how_much_of_the_window_is_used(
    store: Store, write_spec
) -> None:
    from longrun.scheduler.control import create_run_from_file
    from longrun.store import log

    run = create_run_from_file(store, write_spec([[{"text": "hi"}]]))
    with store.writing() as conn:
        data = {"status": "allowed_warning", "limit": "five_hour", "utilization": 0.93, "resets_at": None}
        log.append(conn, run.id, "usage_limit_warning", data)
    line = tl.timeline(store, run.id, now=datetime.now(UTC) + timedelta(minutes=1))
    [marker] = [m for m in line.markers if m.kind == "usage_limit_warning"]
    assert marker.label == "usage limit nearly reached: 93% of the five_hour window used"
