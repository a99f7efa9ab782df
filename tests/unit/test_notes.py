"""A handoff and a progress note from outside any session (`scheduler.control.notes`, what `longrun
mcp`'s record_handoff and report_progress call): the handoff checkpoints the work done by hand
through the event log, the next session is told it, and a bad one is refused in one line with
nothing written."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from longrun.scheduler import control
from longrun.scheduler.session.context import next_context
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import CheckpointNotFound, InvalidTransition
from longrun.store.models import RunState, SessionState

FEATURE = {"id": "hello", "description": "hello.txt exists.", "check": "test -f hello.txt"}


@pytest.fixture
def run(store: Store, write_spec) -> runs.RunView:
    return control.create_run_from_file(store, write_spec([[{"text": "x"}]], features=[FEATURE]))


def _events(store: Store, run_id: str) -> int:
    return len(log.read_events(store, run_id))


def test_a_handoff_checkpoints_the_work_done_by_hand_and_the_next_session_is_told_it(
    store: Store, run: runs.RunView
) -> None:
    workspace = Path(run.workspace)
    (workspace / "hello.txt").write_text("by hand\n")
    handoff = control.handoff_of([" wrote hello.txt ", ""], ["judge it"], None, " mind the newline ")
    checkpoint = control.record_handoff(store, run.id, handoff, by="mcp:someone")

    assert checkpoint.reason == "handoff" and checkpoint.session_id is None
    assert checkpoint.handoff == {
        "done": ["wrote hello.txt"],
        "next": ["judge it"],
        "blockers": [],
        "notes": "mind the newline",
        "by": "mcp:someone",
    }
    assert runs.get_run(store, run.id).head_checkpoint_id == checkpoint.id
    shown = subprocess.run(
        ["git", "show", f"{checkpoint.commit}:hello.txt"], cwd=workspace, capture_output=True, text=True
    )
    assert shown.stdout == "by hand\n"
    kinds = [e.kind for e in log.read_events(store, run.id)]
    assert kinds[-2:] == ["checkpoint", "handoff"]
    said = log.read_events(store, run.id, kinds=["handoff"])[-1].data
    assert said == {**checkpoint.handoff, "checkpoint_id": checkpoint.id}
    assert log.verify_chain(store, run.id).ok

    told = next_context(store, runs.get_run(store, run.id))
    assert (
        "## Handoff left outside a session (by mcp:someone)\nDone:\n- wrote hello.txt\nNext:\n- judge it"
        in told
    )
    assert "Notes: mind the newline" in told


@pytest.mark.parametrize(
    ("done", "next_", "notes", "said"),
    [
        ([], [], "", "a handoff needs something in done, next, blockers or notes"),
        ([" "], ["\n"], "  ", "a handoff needs something in done, next, blockers or notes"),
        (["x"] * 101, [], "", "handoff done: at most 100 items, found 101"),
        ([], ["ok", "y" * 2_001], "", "handoff next item 2: at most 2,000 characters, found 2,001"),
        (["x"], [], "z" * 8_001, "handoff notes: at most 8,000 characters, found 8,001"),
    ],
)
def test_a_handoff_that_does_not_fit_is_refused_in_one_line(
    done: list[str], next_: list[str], notes: str, said: str
) -> None:
    with pytest.raises(InvalidTransition) as refused:
        control.handoff_of(done, next_, [], notes)
    assert refused.value.message == said


def test_no_handoff_from_outside_while_a_session_works_in_the_workspace_or_is_being_judged(
    store: Store, run: runs.RunView
) -> None:
    handoff = control.handoff_of(["x"], [])
    session = runs.create_session(store, run.id, time_box=timedelta(minutes=5), wrap_up=timedelta(minutes=1))
    before = _events(store, run.id)
    with pytest.raises(InvalidTransition, match="has session 1 working in its workspace"):
        control.record_handoff(store, run.id, handoff)
    runs.end_session(store, session.id, SessionState.ended, "finished")
    with pytest.raises(InvalidTransition, match="the judge is settling session 1"):
        control.record_handoff(store, run.id, handoff)
    assert _events(store, run.id) == before + 1  # the session's end, nothing of the refused handoffs
    with store.writing() as conn:
        runs.mark_settled(conn, session.id)
        runs.set_run_state(conn, run.id, RunState.archived)
    with pytest.raises(InvalidTransition, match="is archived"):
        control.record_handoff(store, run.id, handoff)


def test_a_progress_note_is_an_event_with_who_wrote_it_and_an_empty_or_long_one_is_refused(
    store: Store, run: runs.RunView
) -> None:
    seq = control.report_progress(store, run.name, "  half of it done  ", by="mcp:someone")
    [progress] = log.read_events(store, run.id, kinds=["progress"])
    assert progress.seq == seq and progress.data == {"text": "half of it done", "by": "mcp:someone"}
    before = _events(store, run.id)
    for text, said in (("   ", "needs some text"), ("x" * 2_001, "at most 2,000 characters, found 2,001")):
        with pytest.raises(InvalidTransition, match=said):
            control.report_progress(store, run.id, text)
    assert _events(store, run.id) == before


def test_the_context_from_a_checkpoint_of_another_run_is_refused(
    store: Store, run: runs.RunView, write_spec
) -> None:
    other = control.create_run_from_file(store, write_spec([[{"text": "x"}]], name="other", folder="other"))
    assert other.head_checkpoint_id is not None and run.head_checkpoint_id is not None
    with pytest.raises(CheckpointNotFound, match=f"no checkpoint {other.head_checkpoint_id} in run {run.id}"):
        next_context(store, run, other.head_checkpoint_id)
    assert next_context(store, run, run.head_checkpoint_id) == next_context(store, run)


class _Arguments(BaseModel):
    approval: int
    decision: str


def test_a_tool_error_is_one_line_a_longrun_error_as_it_is_an_argument_by_its_name() -> None:
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError

    from longrun.app.mcp.server import one_line_error

    def failed(cause: BaseException, unexpected: bool = False) -> ToolError:
        error = (UnexpectedToolError if unexpected else ToolError)("Error executing tool decide")
        error.__cause__ = cause
        return error

    assert one_line_error("decide", failed(InvalidTransition("approval 2 was already denied"), True)) == (
        "approval 2 was already denied"
    )
    with pytest.raises(ValidationError) as invalid:
        _Arguments.model_validate({"approval": "two"})
    assert one_line_error("decide", failed(invalid.value)) == (
        "decide: argument approval: input should be a valid integer, unable to parse string as an integer "
        "(and 1 more problem)"
    )
    assert one_line_error("decide", failed(RuntimeError("a bug"), True)) is None
    assert one_line_error("nope", ToolError("Unknown tool: nope")) == "Unknown tool: nope"
