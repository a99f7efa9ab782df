"""Snapshots of every screen and tab, on the seeded store with the clock frozen at `SEED_NOW`.

Update them (after reading the report of what changed) with `pytest tests/test_snapshots.py
--snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from seed import APPROVAL_PUSH, CP_S2_END, RUN_ACTIVE, SEED_NOW, seed_store
from textual.pilot import Pilot
from textual.widgets import DataTable

from longrun.app.dashboard import LongrunApp, make_app
from longrun.store.db import Store

SIZE = (100, 30)

Step = Callable[[Pilot[None]], Awaitable[None]]


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded store for the module (it is only read); HOME is its parent, so paths read `~/…`."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        seed_store(home / ".longrun")
    return home


@pytest.fixture
def app(seeded_home: Path, monkeypatch: pytest.MonkeyPatch) -> LongrunApp:
    monkeypatch.setenv("HOME", str(seeded_home))
    store = Store.open(seeded_home / ".longrun")
    app = make_app(store, lambda: SEED_NOW, poll_seconds=3600, who="ana")
    app.animation_level = "none"  # a tab's underline mid-slide on a loaded machine is not the screen
    return app


async def _until(pilot: Pilot[None], done: Callable[[], bool]) -> None:
    for _ in range(300):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if done():
            return
    raise AssertionError("the dashboard did not get there")


def _steps(*steps: Step) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        app: Any = pilot.app
        await _until(pilot, lambda: app.polled_once and bool(app.rows))
        for step in steps:
            await step(pilot)
        await pilot.app.workers.wait_for_complete()
        await _until(pilot, lambda: _tables_laid_out(pilot))
        await _settled(pilot)

    return run_before


async def _settled(pilot: Pilot[None]) -> None:
    """Wait until the screen renders the same twice across a pause: a late message (a second read
    landing, a footer refreshing its bindings) on a loaded machine would otherwise be caught
    half-way."""
    before = pilot.app.export_screenshot()
    for _ in range(100):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)
        now = pilot.app.export_screenshot()
        if now == before and _tables_laid_out(pilot):
            return
        before = now
    raise AssertionError("the dashboard kept changing")


def _tables_laid_out(pilot: Pilot[None]) -> bool:
    """A table lays out rows it was given on its next idle, which a loaded machine may not have
    reached yet: the screen is only what it will stay once every table has done so."""
    return not any(t._require_update_dimensions for t in pilot.app.screen.query(DataTable))


def keys(*pressed: str) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        await pilot.press(*pressed)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return step


def open_run(run_id: str) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        app: Any = pilot.app
        app.open_run(run_id)
        await _until(pilot, lambda: getattr(app.screen, "ready", False))

    return step


def tab(key: str, number: int) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        await pilot.press(str(number))
        await _until(pilot, lambda: pilot.app.screen.query_one(f"#{key}").ready)  # type: ignore[attr-defined]

    return step


def select_checkpoint(checkpoint: int) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        from longrun.app.widgets.checkpoints import CheckpointTreeWidget

        tree = pilot.app.screen.query_one(CheckpointTreeWidget)
        line = next(
            i for i in range(tree.last_line + 1) if (n := tree.get_node_at_line(i)) and n.data == checkpoint
        )
        tree.move_cursor_to_line(line)
        pane: Any = pilot.app.screen.query_one("#checkpoints")
        await _until(pilot, lambda: pane.selected == checkpoint)
        await pilot.pause(0.2)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return step


class TestRunsScreen:
    def test_runs_needing_a_person_come_first(self, app: LongrunApp, snap_compare: Any) -> None:
        assert snap_compare(app, terminal_size=SIZE, run_before=_steps())

    def test_help(self, app: LongrunApp, snap_compare: Any) -> None:
        assert snap_compare(app, terminal_size=SIZE, run_before=_steps(keys("question_mark")))

    def test_a_spec_that_does_not_load_keeps_the_new_run_dialog_open(
        self, app: LongrunApp, snap_compare: Any
    ) -> None:
        steps = _steps(keys("n"), keys(*"no-such-spec.toml", "enter"))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)


class TestApprovals:
    def test_inbox_shows_the_command_a_push_would_run(self, app: LongrunApp, snap_compare: Any) -> None:
        assert snap_compare(app, terminal_size=SIZE, run_before=_steps(keys("i")))

    def test_the_question_with_its_choices(self, app: LongrunApp, snap_compare: Any) -> None:
        assert snap_compare(app, terminal_size=SIZE, run_before=_steps(keys("i", "j")))

    def test_the_approve_dialog(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(keys("i"), keys("a"), keys(*"fine, the remote is a local mirror"))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)
        assert APPROVAL_PUSH  # the first pending approval is the push


class TestRunScreen:
    def test_overview(self, app: LongrunApp, snap_compare: Any) -> None:
        assert snap_compare(app, terminal_size=SIZE, run_before=_steps(open_run(RUN_ACTIVE)))

    def test_sessions(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(open_run(RUN_ACTIVE), tab("sessions", 2))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_checkpoints_tree_with_a_rewind_and_a_fork(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(open_run(RUN_ACTIVE), tab("checkpoints", 3), select_checkpoint(CP_S2_END))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_rewind_confirmation_says_what_happens(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(open_run(RUN_ACTIVE), tab("checkpoints", 3), select_checkpoint(CP_S2_END), keys("w"))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_verdicts(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(open_run(RUN_ACTIVE), tab("verdicts", 4), keys("k", "left"))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_events(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(open_run(RUN_ACTIVE), tab("events", 5))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_an_event_in_full(self, app: LongrunApp, snap_compare: Any) -> None:
        # The newest event: small enough for no scrollbar (a long one's thumb varied with the seed).
        steps = _steps(open_run(RUN_ACTIVE), tab("events", 5), keys("enter"))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_events_filtered_by_kind(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(
            open_run(RUN_ACTIVE),
            tab("events", 5),
            keys("slash", *"kind:approval_requested,approval_decided", "enter"),
        )
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)

    def test_timeline(self, app: LongrunApp, snap_compare: Any) -> None:
        steps = _steps(open_run(RUN_ACTIVE), tab("timeline", 6), keys("left", "left"))
        assert snap_compare(app, terminal_size=SIZE, run_before=steps)


@pytest.fixture(scope="module")
def synthetic_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A synthetic 24-hour run (`bench.synth`), ending at `SEED_NOW`, always the same."""
    from longrun.bench.synth import synthesize

    home = tmp_path_factory.mktemp("synth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        run = synthesize(Store.open(home / ".longrun"), hours=24, events=20_000, seed=7, end=SEED_NOW)
    return home, run.run_id


class TestTimelineOfADay:
    def test_a_synthetic_day(
        self, synthetic_home: tuple[Path, str], snap_compare: Any, monkeypatch: Any
    ) -> None:
        home, run_id = synthetic_home
        monkeypatch.setenv("HOME", str(home))
        app = make_app(Store.open(home / ".longrun"), lambda: SEED_NOW, poll_seconds=3600, who="ana")
        steps = _steps(open_run(run_id), tab("timeline", 6), keys("left", "left", "left"))
        assert snap_compare(app, terminal_size=(110, 32), run_before=steps)
