"""The dashboard driven with Textual's Pilot: approve, deny, answer, rewind, fork and resume as a
person would, then the store checked. Real runs, real git, real sessions through the scripted model."""

from __future__ import annotations

import gc
import io
import os
import sqlite3
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from driving import SIZE, TWO_SESSIONS, app_for, open_checkpoint, open_run, settle
from rich.console import Console
from sqlalchemy import event
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Static
from textual.widgets._footer import FooterKey

from longrun.app.dashboard import LongrunApp
from longrun.app.screens.approvals import InboxScreen
from longrun.app.screens.modals import AskScreen, ConfirmScreen, DecideScreen
from longrun.app.screens.run import RunScreen
from longrun.scheduler.control import create_run_from_file
from longrun.scheduler.session import workspace as ws
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import SessionState

pytestmark = pytest.mark.anyio

BASH_PUSH = {"tool": "bash", "input": {"command": "git push origin HEAD"}}


def _approval(store: Store, run_id: str, kind: str, request: dict[str, Any]) -> int:
    with store.writing() as conn:
        return runs.add_approval(conn, run_id, kind, request)


@pytest.fixture
def waiting_run(store: Store, write_spec: Any) -> tuple[str, int, int]:
    """A run with a paused tool call and a question, both pending."""
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    call = _approval(
        store,
        run.id,
        "tool_call",
        {"tool": "bash", "input": BASH_PUSH["input"], "reason": "pushes to a remote", "action": "ask"},
    )
    question = _approval(
        store,
        run.id,
        "question",
        {"question": "Which license?", "why": "the README needs one", "choices": ["MIT", "Apache-2.0"]},
    )
    return run.id, call, question


async def open_inbox(pilot: Pilot[None], app: LongrunApp) -> InboxScreen:
    await settle(pilot, lambda: app.polled_once and len(app.pending) >= 1)
    await pilot.press("i")
    await settle(pilot, lambda: isinstance(app.screen, InboxScreen))
    assert isinstance(app.screen, InboxScreen)
    return app.screen


async def test_approve_from_the_inbox_with_a_comment(store: Store, waiting_run: tuple[str, int, int]) -> None:
    run_id, call, _ = waiting_run
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        inbox = await open_inbox(pilot, app)
        assert inbox.current() is not None and inbox.current().id == call  # type: ignore[union-attr]
        assert "⚑ 2 waiting" in str(app.screen.query_one("#badge").render())
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, DecideScreen))
        await pilot.press(*"ok, no remote")
        await pilot.press("ctrl+s")
        await settle(
            pilot, lambda: runs.get_approval(store, call).state != "pending" and len(app.pending) == 1
        )
    decided = runs.get_approval(store, call)
    assert (decided.state, decided.decided_by, decided.comment) == ("approved", "dana", "ok, no remote")
    [event] = [e.data for e in log.read_events(store, run_id, kinds=["approval_decided"])]
    assert event["by"] == "dana" and event["state"] == "approved"


async def test_deny_then_a_second_decision_is_refused(
    store: Store, waiting_run: tuple[str, int, int]
) -> None:
    _, call, _ = waiting_run
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_inbox(pilot, app)
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, DecideScreen))
        await pilot.press(*"not now")
        await pilot.press("enter")
        await settle(
            pilot, lambda: runs.get_approval(store, call).state == "denied" and len(app.pending) == 1
        )
        await pilot.press("escape")  # cancelled modals change nothing
        await pilot.press("h")  # decided ones too: the denied one is shown, and cannot be decided again
        inbox = app.screen
        assert isinstance(inbox, InboxScreen)
        await settle(pilot, lambda: any(a.id == call for a in inbox.shown))
        table = inbox.query_one("#inbox", DataTable)
        table.move_cursor(row=[a.id for a in inbox.shown].index(call))
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, DecideScreen)
    denied = runs.get_approval(store, call)
    assert (denied.state, denied.comment) == ("denied", "not now")


async def test_answer_a_question_by_the_number_of_a_choice(
    store: Store, waiting_run: tuple[str, int, int]
) -> None:
    _, _, question = waiting_run
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        inbox = await open_inbox(pilot, app)
        await pilot.press("j")
        await settle(pilot, lambda: inbox.current() is not None and inbox.current().id == question)  # type: ignore[union-attr]
        await pilot.press("a")  # approving a question means answering it
        await settle(pilot, lambda: isinstance(app.screen, DecideScreen))
        assert app.screen.verb == "answer"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")  # an empty answer is refused
        assert isinstance(app.screen, DecideScreen)
        await pilot.press("2", "ctrl+s")
        await settle(pilot, lambda: runs.get_approval(store, question).state == "answered")
    answered = runs.get_approval(store, question)
    assert (answered.state, answered.comment, answered.decided_by) == ("answered", "Apache-2.0", "dana")


async def test_rewind_from_the_checkpoints_tab(store: Store, two_sessions: tuple[str, int, int]) -> None:
    run_id, first, head = two_sessions
    workspace = Path(runs.get_run(store, run_id).workspace)
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_checkpoint(pilot, app, run_id, first)
        await pilot.press("w")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        body = app.screen.body  # type: ignore[attr-defined]
        assert f"checkpoint #{first}" in body and "abandoned" in body
        await pilot.press("n")  # no: nothing happens
        await pilot.pause()
        assert runs.get_run(store, run_id).head_checkpoint_id == head
        await pilot.press("w")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(pilot, lambda: runs.get_run(store, run_id).head_checkpoint_id == first)
    assert (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()
    [rewound] = [e.data for e in log.read_events(store, run_id, kinds=["rewound"])]
    assert rewound["to"] == first and rewound["by"] == "dana"


async def test_fork_from_the_checkpoints_tab(store: Store, two_sessions: tuple[str, int, int]) -> None:
    run_id, first, head = two_sessions
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_checkpoint(pilot, app, run_id, first)
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press("ctrl+a", "ctrl+k", *"try-other-way", "enter")
        await settle(pilot, lambda: any(r.name == "try-other-way" for r in runs.list_runs(store)))
        child = next(r for r in runs.list_runs(store) if r.name == "try-other-way")
        await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_id == child.id)
    assert child.parent_run_id == run_id
    assert (Path(child.workspace) / "a.txt").exists() and not (Path(child.workspace) / "b.txt").exists()
    assert runs.get_run(store, run_id).head_checkpoint_id == head  # the parent is untouched
    [made] = [e.data for e in log.read_events(store, run_id, kinds=["fork_made"])]
    assert made["run_id"] == child.id and made["checkpoint_id"] == first


async def test_resume_from_an_older_checkpoint_rewinds_and_schedules_a_session(
    store: Store, two_sessions: tuple[str, int, int]
) -> None:
    run_id, first, _ = two_sessions
    workspace = Path(runs.get_run(store, run_id).workspace)
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_checkpoint(pilot, app, run_id, first)
        await pilot.press("R")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Rewind" in app.screen.body  # type: ignore[attr-defined]
        await pilot.press("y")
        await settle(pilot, lambda: runs.get_run(store, run_id).state == "scheduled")
    run = runs.get_run(store, run_id)
    assert run.head_checkpoint_id == first and run.due_at is not None
    assert ws.git(workspace, "ls-files").split() == ["a.txt"] or "b.txt" not in ws.git(workspace, "ls-files")
    [resumed] = [e.data for e in log.read_events(store, run_id, kinds=["resumed"])]
    assert resumed["by"] == "dana" and resumed["checkpoint_id"] == first


async def test_a_new_approval_rings_and_shows_a_toast(store: Store, write_spec: Any) -> None:
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    app = app_for(store)
    rang: list[bool] = []
    app.bell = lambda: rang.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once and run.id in app.rows)
        assert not rang and not app._notifications
        asked = _approval(store, run.id, "sign_off", {"checkpoint_id": 1, "features": ["a"]})
        await settle(pilot, lambda: any(a.id == asked for a in app.pending))
        titles = [n.title for n in app._notifications]
        assert rang == [True] and f"Approval {asked}" in titles
        assert "⚑ 1 waiting" in str(app.screen.query_one("#badge").render())


async def test_start_a_draft_run_and_create_one_from_a_spec_file(store: Store, write_spec: Any) -> None:
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    spec = write_spec(TWO_SESSIONS, name="second-run", folder="second")
    broken = spec.with_name("broken.toml")
    broken.write_text('name = "broken"\ngoal = [unclosed\n')
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once and run.id in app.rows)
        await pilot.press("s")
        await settle(pilot, lambda: runs.get_run(store, run.id).state == "scheduled")
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, AskScreen))
        dialog = app.screen
        problem = dialog.query_one("#problem", Static)
        # A spec that does not load keeps the dialog open, the error under the path, the path kept.
        await pilot.press(*str(missing := spec.with_name("nope.toml")), "enter")
        await settle(pilot, lambda: "nope.toml" in str(problem.render()))
        assert app.screen is dialog and "cannot read the spec" in str(problem.render())
        assert dialog.query_one("#answer").value == str(missing)  # type: ignore[attr-defined]
        await pilot.press("ctrl+a", "ctrl+k", *str(broken), "enter")
        await settle(pilot, lambda: "broken.toml" in str(problem.render()))
        assert app.screen is dialog and "not valid TOML" in str(problem.render())
        assert [r.name for r in runs.list_runs(store)] == ["test-run"]
        await pilot.press("ctrl+a", "ctrl+k", *str(spec), "enter")
        await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
        assert app.screen.run_id == next(r.id for r in runs.list_runs(store) if r.name == "second-run")
    [started] = [e.data for e in log.read_events(store, run.id, kinds=["started"])]
    assert started["by"] == "dana"


async def test_enter_on_the_events_tab_shows_the_event_whole(store: Store, write_spec: Any) -> None:
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    data = {f"key_{i:02d}": f"value number {i}" for i in range(12)} | {"zz_last": "the-tail-of-it"}
    log.record(store, run.id, "note", data)
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, run.id)
        await pilot.press("5")
        events: Any = screen.query_one("#events")
        await settle(pilot, lambda: events.ready and events.events[-1].kind == "note")
        assert "the-tail-of-it" not in app.export_screenshot()  # the table's DATA column is cut
        footer = [k.description for k in screen.query_one(Footer).query(FooterKey)]
        assert "Event" in footer  # the footer says what enter does
        await pilot.press("enter")
        await settle(pilot, lambda: app.screen is not screen)
        shown = app.export_screenshot()
        assert "the-tail-of-it" in shown and "key_00" in shown and "value&#160;number&#160;11" in shown
        assert f"Event&#160;{events.events[-1].seq}&#160;·&#160;note" in shown
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is screen)
        assert screen.query_one("#tabs").active == "tab-events"  # type: ignore[attr-defined]


async def test_a_timeline_marker_opens_its_event_in_the_events_tab(
    store: Store, waiting_run: tuple[str, int, int]
) -> None:
    run_id, call, _ = waiting_run
    [asked] = [
        e
        for e in log.read_events(store, run_id, kinds=["approval_requested"])
        if e.data["approval_id"] == call
    ]
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once)
        app.open_run(run_id)
        await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
        await pilot.press("6")
        screen = app.screen
        pane: Any = screen.query_one("#timeline")
        await settle(pilot, lambda: pane.ready)
        view: Any = screen.query_one("#timeline-view")
        marked = view.visible_markers()
        assert [m.kind for m in marked].count("approval_requested") == 2
        while marked[view.selected].seq != asked.seq:
            await pilot.press("left")
        assert asked.seq is not None and str(asked.seq) in str(screen.query_one("#timeline-marker").render())
        await pilot.press("enter")
        events: Any = screen.query_one("#events")
        await settle(pilot, lambda: bool(events.events) and events.events[0].seq == asked.seq)
        assert screen.query_one("#tabs").active == "tab-events"  # type: ignore[attr-defined]


@pytest.mark.parametrize("missing", ["downloads", "home", "home-and-cwd"])
async def test_a_report_goes_to_a_folder_that_exists_and_the_toast_says_where(
    store: Store, write_spec: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """On a server there is often no ~/Downloads: the report goes to home, else the current
    directory, else the temp folder, and the toast gives the path in full."""
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    home, here, temp = tmp_path / "user", tmp_path / "here", tmp_path / "temp"
    for folder in (home, here, temp):
        folder.mkdir()
    for name in ("XDG_DOWNLOAD_DIR", "XDG_CONFIG_HOME", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)  # no desktop: nothing to open the report in
    monkeypatch.setenv("HOME", str(home if missing == "downloads" else tmp_path / "no-such-home"))
    monkeypatch.chdir(here)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    expected = {"downloads": home, "home": here, "home-and-cwd": temp}[missing]
    app = app_for(store)
    opened: list[str] = []
    app.open_url = lambda url, **_: opened.append(url)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once and run.id in app.rows)
        if missing == "home-and-cwd":
            doomed = tmp_path / "doomed"
            doomed.mkdir()
            os.chdir(doomed)
            doomed.rmdir()  # the current directory is gone
        await pilot.press("e")
        await settle(pilot, lambda: any(n.title == "Report" for n in app._notifications))
        [toast] = [n for n in app._notifications if n.title == "Report"]
    [written] = list(expected.glob("longrun-report-test-run-*.html"))
    assert "<html" in written.read_text()[:500].lower()
    assert str(written) in toast.message and toast.severity == "information" and toast.timeout >= 20
    assert "no downloads folder" in toast.message and not opened  # no browser on a server


async def test_the_judge_settling_a_session_is_said_not_a_running_session(
    store: Store, write_spec: Any
) -> None:
    """Between a session's end and the judge's settling, the run is `running` and its reason still
    says `session 1 running`: the runs screen and the Overview say it is being judged."""
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    session = runs.create_session(store, run.id, time_box=timedelta(minutes=5), wrap_up=timedelta(seconds=30))
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once and app.rows[run.id].session is not None)
        detail = app.screen.query_one("#run-detail", Static)
        assert "session 1 running" in str(detail.render())
        runs.end_session(store, session.id, SessionState.ended, "the worker handed off")
        await settle(pilot, lambda: "judging session 1" in str(detail.render()))
        assert "session 1 running" not in str(detail.render())
        assert "#1 judging" in str(app.screen.query_one("#runs", DataTable).get_row_at(0))
        screen = await open_run(pilot, app, run.id)
        head = screen.query_one("#overview-head", Static)
        assert "running: judging session 1" in str(head.render())
        with store.writing() as conn:  # the supervisor's settling
            runs.mark_settled(conn, session.id)
            log.append(conn, run.id, "session_judged", {"n": 1, "progress": False}, session_id=session.id)
            runs.set_run_state(conn, run.id, "scheduled", "session 1 ended")
        await settle(pilot, lambda: "judging" not in str(head.render()))
        assert "scheduled: session 1 ended" in str(head.render())


async def test_closed_run_screens_and_old_footer_keys_are_let_go(
    store: Store, waiting_run: tuple[str, int, int]
) -> None:
    run_id, _, _ = waiting_run
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once)
        for _ in range(4):
            app.open_run(run_id)
            await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
            await pilot.press("5")  # another tab: the footer shows other keys
            await pilot.press("q")
            await settle(pilot, lambda: not isinstance(app.screen, RunScreen))
        app.tidy()
        gc.collect()
        assert not [s for s in gc.get_objects() if isinstance(s, RunScreen)]
        assert len(getattr(app, "__watchers")["title"]) == 1  # the runs screen's header, no other
        footer = app.screen.query_one(Footer)
        assert len(getattr(footer, "__watchers")["compact"]) <= len(footer.query(FooterKey))


@pytest.mark.parametrize(
    "fault",
    [sqlite3.OperationalError("disk I/O error"), RuntimeError("a bug in a read")],
    ids=["database-error", "any-other-error"],
)
async def test_a_failing_read_is_said_and_the_dashboard_recovers(
    store: Store, write_spec: Any, fault: Exception
) -> None:
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    failing = threading.Event()

    def inject(*_args: Any) -> None:
        if failing.is_set():
            raise fault

    event.listen(store.engine, "before_cursor_execute", inject)
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once and run.id in app.rows)
        failing.set()
        await settle(pilot, lambda: app.poll_error is not None)
        said = str(app.screen.query_one("#supervisor").render())
        assert "cannot read the store" in said and str(fault) in said
        assert "Cannot read the store" in [n.title for n in app._notifications]
        failing.clear()
        second = create_run_from_file(store, write_spec(TWO_SESSIONS, name="second-run", folder="second"))
        await settle(pilot, lambda: app.poll_error is None and second.id in app.rows)
        assert any("readable again" in n.message for n in app._notifications)
        assert "cannot read the store" not in str(app.screen.query_one("#supervisor").render())
    event.remove(store.engine, "before_cursor_execute", inject)


def shown(widget: Static) -> str:
    """What a widget shows, as plain text (its renderable may be a group of tables)."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


async def test_the_overview_says_plainly_when_a_session_ran_unconfined(store: Store, write_spec: Any) -> None:
    run = create_run_from_file(store, write_spec(TWO_SESSIONS, extra='[sandbox]\nmode = "off"\n'))
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, run.id)
        body = screen.query_one("#overview-body", Static)
        await settle(pilot, lambda: "UNCONFINED" in shown(body))
        assert 'UNCONFINED: [sandbox] mode = "off"' in shown(body)
        session = runs.create_session(
            store, run.id, time_box=timedelta(minutes=5), wrap_up=timedelta(seconds=30)
        )
        why = "the claude-code worker does not run in longrun's sandbox yet"
        log.record(
            store, run.id, "sandbox", {"mode": "on", "confined": False, "why": why}, session_id=session.id
        )
        await settle(pilot, lambda: why in shown(body))
        limits = "cgroup v1: 64 MiB, 16 processes, 1 CPU minutes for the whole session"
        confined = {"mode": "on", "confined": True, "network": "off", "limits": limits, "env": []}
        log.record(store, run.id, "sandbox", confined, session_id=session.id)
        await settle(pilot, lambda: "confined · network off" in shown(body))
        assert "UNCONFINED" not in shown(body) and limits in shown(body)
