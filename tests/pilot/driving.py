"""What the Pilot tests share: the scripted sessions, the app on a test store, and waiting until
the dashboard gets somewhere (never a sleep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from longrun.app.dashboard import LongrunApp, make_app
from longrun.app.screens.run import RunScreen
from longrun.app.widgets.checkpoints import CheckpointTreeWidget
from longrun.store.db import Store

SIZE = (110, 32)


def handoff(note: str) -> dict[str, Any]:
    return {"tool": "handoff", "input": {"done": [note], "next": ["more"], "blockers": [], "notes": note}}


TWO_SESSIONS = [
    [
        {"tool": "bash", "input": {"command": "echo A > a.txt && git add -A && git commit -qm 'add a'"}},
        handoff("wrote a.txt"),
        {"text": "a done."},
    ],
    [
        {"tool": "bash", "input": {"command": "echo B > b.txt && git add -A && git commit -qm 'add b'"}},
        handoff("wrote b.txt"),
        {"text": "b done."},
    ],
    [{"tool": "bash", "input": {"command": "ls"}}, {"text": "Looked."}],
]


async def settle(pilot: Pilot[None], until: Callable[[], bool], rounds: int = 200) -> None:
    """Let workers finish and messages land until `until()` holds (a bounded number of rounds)."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if until():
            return
    raise AssertionError("the dashboard did not get there")


def app_for(store: Store) -> LongrunApp:
    return make_app(store, poll_seconds=0.2, who="dana")


async def open_run(pilot: Pilot[None], app: LongrunApp, run_id: str) -> RunScreen:
    """The run's screen, its Overview shown."""
    await settle(pilot, lambda: app.polled_once and run_id in app.rows)
    app.open_run(run_id)
    await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
    assert isinstance(app.screen, RunScreen)
    return app.screen


async def open_checkpoint(pilot: Pilot[None], app: LongrunApp, run_id: str, checkpoint: int) -> None:
    """The run's Checkpoints tab with `checkpoint` selected in the tree."""
    screen = await open_run(pilot, app, run_id)
    await pilot.press("3")
    await settle(pilot, lambda: screen.query_one("#checkpoints").ready)  # type: ignore[attr-defined]
    tree = screen.query_one(CheckpointTreeWidget)
    line = next(
        i for i in range(tree.last_line + 1) if (n := tree.get_node_at_line(i)) and n.data == checkpoint
    )
    tree.move_cursor_to_line(line)
    await settle(pilot, lambda: screen.query_one("#checkpoints").selected == checkpoint)  # type: ignore[attr-defined]
