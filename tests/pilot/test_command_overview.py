"""A command-worker run on the dashboard: the Overview names the worker by what it runs, like any
other run's worker, after a real session of it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from driving import SIZE, app_for, open_run, settle
from rich.console import Console
from textual.widgets import Static

from longrun.app.widgets.overview import command_words, worker_line
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.workers.command import EXAMPLES
from longrun.store.db import Store

pytestmark = pytest.mark.anyio


def shown(widget: Static) -> str:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


async def test_the_overview_shows_a_command_worker_by_what_it_runs(store: Store, tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    spec = tmp_path / "longrun.toml"
    command = ["sh", str(EXAMPLES / "ralph.sh")]
    spec.write_text(
        'name = "ralph-run"\ngoal = "Make a.txt."\nworkspace = "ws"\n'
        f'[worker]\nbackend = "command"\ncommand = {json.dumps(command)}\n'
        "env = { RALPH_AGENT = 'touch \"$RALPH_FEATURE.txt\"; true' }\n"
        '[session]\ntime_box = "1m"\nwrap_up = "20s"\n'
        '[[features]]\nid = "a"\ndescription = "a.txt exists"\ncheck = "test -f a.txt"\n'
    )
    run = create_run_from_file(store, spec)
    assert run_session_now(store, run.id).end_reason == "finished"
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, run.id)
        body = screen.query_one("#overview-body", Static)
        await settle(pilot, lambda: "command · sh ralph.sh" in shown(body))
        text = shown(body)
        assert "command · sh ralph.sh · claude-sonnet-5-5" in text
        assert "worked on a" in text  # the handoff the command left
        assert "UNCONFINED" not in text


def test_the_worker_line_of_each_shape_of_command() -> None:
    assert worker_line({"backend": "scripted", "model": "m"}) == "scripted · m"
    assert worker_line(
        {"backend": "command", "model": "m", "command": ["python", "/opt/a/agent.py", "-v"]}
    ) == ("command · python agent.py … · m")
    assert command_words("./ralph.sh   --once") == "./ralph.sh --once"
    assert command_words("x" * 60) == "x" * 39 + "…"
