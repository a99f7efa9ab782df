"""What the dashboard offers to do with a run, driven with Pilot: the footer shows the actions the
run's state allows and always Approvals, Help and Back, at the widths people have; the command
palette offers the same, and rewind and fork."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from driving import TWO_SESSIONS, app_for, open_checkpoint, open_run, settle
from textual.command import Command, CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Footer, Input
from textual.widgets._footer import FooterKey

from longrun.app.dashboard import LongrunApp
from longrun.app.screens.modals import AskScreen, ConfirmScreen
from longrun.app.screens.run import RunScreen
from longrun.scheduler.control import create_run_from_file
from longrun.store import log, runs
from longrun.store.db import Store

pytestmark = pytest.mark.anyio

KEPT = ("Approvals", "Help", "Back")
RUN_KEYS = ("Start", "Pause", "Stop", "Resume")

OFFERED = {
    "draft": {"Start", "Resume"},
    "running": {"Pause", "Stop"},
    "paused": {"Resume"},
    "done": {"Resume"},
    "tripped": set(),
}
"""The run keys each state allows (as `scheduler.control` checks them)."""


def _put_in(store: Store, run_id: str, state: str) -> None:
    """The run in `state` as the supervisor would leave it (a live session when running)."""
    if state == "running":
        runs.create_session(store, run_id, time_box=timedelta(minutes=5), wrap_up=timedelta(seconds=30))
        return
    with store.writing() as conn:
        if state == "tripped":
            runs.set_breaker(conn, run_id, "no_progress_sessions", "open", "3 sessions without progress")
        if state != "draft":
            runs.set_run_state(conn, run_id, state, f"{state} for the test")


def _visible(app: LongrunApp, key: FooterKey) -> bool:
    """Whether the key is on screen whole: both its ends are it, not cut or under another."""
    region = key.region
    if not region.width:
        return False
    return all(app.screen.get_widget_at(x, region.y)[0] is key for x in (region.x, region.right - 1))


def _footer(app: LongrunApp) -> dict[str, bool]:
    """The footer's keys by description, and whether each is visible."""
    return {k.description: _visible(app, k) for k in app.screen.query_one(Footer).query(FooterKey)}


async def _footer_settled(pilot: Pilot[None], app: LongrunApp) -> dict[str, bool]:
    await settle(pilot, lambda: bool(app.screen.query_one(Footer).query(FooterKey)))
    await pilot.pause()
    return _footer(app)


@pytest.mark.parametrize("state", ["done", "running", "paused", "tripped", "draft"])
async def test_the_footer_keeps_help_approvals_and_back_and_offers_what_the_state_allows(
    store: Store, write_spec: Any, state: str
) -> None:
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    _put_in(store, run.id, state)
    app = app_for(store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_run(pilot, app, run.id)
        await settle(pilot, lambda: app.rows[run.id].state == state)
        for width in (100, 120):
            await pilot.resize_terminal(width, 40)
            for tab, number in (("overview", 1), ("timeline", 6)):
                await pilot.press(str(number))
                await settle(pilot, lambda tab=tab: screen.query_one(f"#{tab}").ready)  # type: ignore[attr-defined]
                keys = await _footer_settled(pilot, app)
                where = f"{state} run, {tab} tab, {width} columns: {keys}"
                assert all(keys.get(k) for k in KEPT), where
                assert not (set(RUN_KEYS) - OFFERED[state]) & keys.keys(), where
                if width == 120 and tab == "overview":
                    assert OFFERED[state] <= {k for k, shown in keys.items() if shown}, where


async def test_the_runs_screen_footer_follows_the_highlighted_run(store: Store, write_spec: Any) -> None:
    draft = create_run_from_file(store, write_spec(TWO_SESSIONS))
    done = create_run_from_file(store, write_spec(TWO_SESSIONS, name="finished", folder="second"))
    _put_in(store, done.id, "done")
    app = app_for(store)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot, lambda: app.polled_once and {draft.id, done.id} <= app.rows.keys())
        table: Any = app.screen.query_one("#runs")
        for row_id, offered in ((draft.id, OFFERED["draft"]), (done.id, OFFERED["done"])):
            table.move_cursor(row=[k.value for k in table.rows].index(row_id))
            await settle(pilot, lambda offered=offered: offered <= _footer(app).keys())
            keys = _footer(app)
            assert not (set(RUN_KEYS) - offered) & keys.keys() and all(keys.get(k) for k in KEPT), keys


async def _palette(pilot: Pilot[None], app: LongrunApp, query: str) -> list[str]:
    """The command palette's hits for `query` (what a person sees after typing it)."""
    if not isinstance(app.screen, CommandPalette):
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: isinstance(app.screen, CommandPalette))
    palette = app.screen
    await pilot.press("ctrl+a", "ctrl+k", *query)
    await settle(pilot, lambda: palette.query_one(Input).value == query)
    await app.workers.wait_for_complete()  # the palette's search for the whole query
    await pilot.pause()
    listed = palette.query_one(CommandList)
    options = [listed.get_option_at_index(i) for i in range(listed.option_count)]
    return [str(o.hit.text) for o in options if isinstance(o, Command)]


async def _choose(pilot: Pilot[None], app: LongrunApp, query: str, command: str) -> None:
    hits = await _palette(pilot, app, query)
    assert command in hits, hits
    listed = app.screen.query_one(CommandList)
    listed.highlighted = hits.index(command)
    await pilot.press("enter")
    await settle(pilot, lambda: not isinstance(app.screen, CommandPalette))


async def test_the_palette_offers_only_what_a_done_run_allows_and_rewinds_and_forks(
    store: Store, two_sessions: tuple[str, int, int]
) -> None:
    run_id, first, head = two_sessions
    _put_in(store, run_id, "done")
    app = app_for(store)
    async with app.run_test(size=(110, 32)) as pilot:
        await settle(pilot, lambda: app.polled_once and app.rows[run_id].state == "done")
        assert not [h for h in await _palette(pilot, app, "start") if h.startswith("Start ")]
        assert not [h for h in await _palette(pilot, app, "pause") if h.startswith("Pause ")]
        assert "Resume test-run" in await _palette(pilot, app, "resume")
        # With no checkpoint chosen: fork from the head; rewind asks which checkpoint first.
        assert "Fork test-run from its head" in await _palette(pilot, app, "fork")
        await _choose(pilot, app, "rewind", "Rewind test-run: choose the checkpoint")
        await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
        screen = app.screen
        await settle(pilot, lambda: screen.query_one("#tabs").active == "tab-checkpoints")  # type: ignore[attr-defined]
        await settle(pilot, lambda: screen.query_one("#checkpoints").ready)  # type: ignore[attr-defined]

    app = app_for(store)
    async with app.run_test(size=(110, 32)) as pilot:
        await open_checkpoint(pilot, app, run_id, first)
        await _choose(pilot, app, "rewind", f"Rewind test-run to checkpoint #{first}")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert f"checkpoint #{first}" in app.screen.body  # type: ignore[attr-defined]
        await pilot.press("y")
        await settle(pilot, lambda: runs.get_run(store, run_id).head_checkpoint_id == first)
        await settle(pilot, lambda: app.rows[run_id].state == "paused")  # a rewound done run reopens
        await _choose(pilot, app, "fork", f"Fork test-run from checkpoint #{first}")
        await settle(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press("enter")
        await settle(pilot, lambda: any(r.name == "test-run-fork" for r in runs.list_runs(store)))
    fork = next(r for r in runs.list_runs(store) if r.name == "test-run-fork")
    [made] = [e.data for e in log.read_events(store, run_id, kinds=["fork_made"])]
    assert fork.parent_run_id == run_id and made["checkpoint_id"] == first and head != first
