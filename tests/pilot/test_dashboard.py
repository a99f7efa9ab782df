"""The dashboard driven with Textual's Pilot: approve, deny, answer, rewind, fork and resume as a
person would, then the store checked. Real runs, real git, real sessions through the scripted model."""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey

from longrun.app.dashboard import LongrunApp, make_app
from longrun.app.screens.approvals import InboxScreen
from longrun.app.screens.modals import AskScreen, ConfirmScreen, DecideScreen
from longrun.app.screens.run import RunScreen
from longrun.app.widgets.checkpoints import CheckpointTreeWidget
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.session import workspace as ws
from longrun.store import log, runs
from longrun.store.db import Store

SIZE = (110, 32)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


BASH_PUSH = {"tool": "bash", "input": {"command": "git push origin HEAD"}}


def _handoff(note: str) -> dict[str, Any]:
    return {"tool": "handoff", "input": {"done": [note], "next": ["more"], "blockers": [], "notes": note}}


TWO_SESSIONS = [
    [
        {"tool": "bash", "input": {"command": "echo A > a.txt && git add -A && git commit -qm 'add a'"}},
        _handoff("wrote a.txt"),
        {"text": "a done."},
    ],
    [
        {"tool": "bash", "input": {"command": "echo B > b.txt && git add -A && git commit -qm 'add b'"}},
        _handoff("wrote b.txt"),
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


@pytest.fixture
def two_sessions(store: Store, write_spec: Any) -> tuple[str, int, int]:
    """A run with two real sessions behind it: (run id, session 1's last checkpoint, the head)."""
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    run_session_now(store, run.id)
    run_session_now(store, run.id)
    first = [s for s in runs.list_sessions(store, run.id) if s.n == 1][0]
    checkpoint = [c.id for c in runs.list_checkpoints(store, run.id) if c.session_id == first.id][-1]
    return run.id, checkpoint, runs.get_run(store, run.id).head_checkpoint_id or 0


async def open_checkpoint(pilot: Pilot[None], app: LongrunApp, run_id: str, checkpoint: int) -> None:
    await settle(pilot, lambda: app.polled_once)
    app.open_run(run_id)
    await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
    await pilot.press("3")
    screen = app.screen
    await settle(pilot, lambda: screen.query_one("#checkpoints").ready)  # type: ignore[attr-defined]
    tree = screen.query_one(CheckpointTreeWidget)
    line = next(
        i for i in range(tree.last_line + 1) if (n := tree.get_node_at_line(i)) and n.data == checkpoint
    )
    tree.move_cursor_to_line(line)
    await settle(pilot, lambda: screen.query_one("#checkpoints").selected == checkpoint)  # type: ignore[attr-defined]


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
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.polled_once and run.id in app.rows)
        await pilot.press("s")
        await settle(pilot, lambda: runs.get_run(store, run.id).state == "scheduled")
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*str(tmp_missing := spec.with_name("nope.toml")), "enter")
        await settle(pilot, lambda: any("nope.toml" in str(n.message) for n in app._notifications))
        assert tmp_missing.name not in [r.name for r in runs.list_runs(store)]
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*str(spec), "enter")
        await settle(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.ready)
        assert app.screen.run_id == next(r.id for r in runs.list_runs(store) if r.name == "second-run")
    [started] = [e.data for e in log.read_events(store, run.id, kinds=["started"])]
    assert started["by"] == "dana"


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
