"""Rewind, fork and resume from any checkpoint: real git, real sessions, nothing lost."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.session import workspace as ws
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition


def _handoff(note: str) -> dict:
    return {"tool": "handoff", "input": {"done": [note], "next": ["more"], "blockers": [], "notes": note}}


SCRIPT = [
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


def _end_checkpoint(store: Store, run_id: str, n: int) -> int:
    session = [s for s in runs.list_sessions(store, run_id) if s.n == n][0]
    return [c.id for c in runs.list_checkpoints(store, run_id) if c.session_id == session.id][-1]


def test_rewind_then_resume_goes_on_from_the_old_checkpoint_and_keeps_the_abandoned_line(
    store: Store, write_spec, cli
) -> None:
    run = create_run_from_file(store, write_spec(SCRIPT))
    workspace = Path(run.workspace)
    run_session_now(store, run.id)
    run_session_now(store, run.id)
    first = _end_checkpoint(store, run.id, 1)
    b_commit = ws.head(workspace)

    refused = cli("rewind", run.id, "--to", str(first))
    assert refused.returncode == 1 and "--yes" in refused.stderr and "Traceback" not in refused.stderr
    cli("rewind", run.id, "--to", str(first), "--yes", "--by", "carol", check=True)

    after = runs.get_run(store, run.id)
    assert after.head_checkpoint_id == first
    assert (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()
    assert ws.head(workspace) == ws.git(
        workspace, "rev-parse", f"{runs.get_checkpoint(store, first).commit}^"
    )
    abandoned = ws.git(
        workspace, "for-each-ref", "--format=%(refname) %(objectname)", f"refs/longrun/{run.id}/abandoned/"
    )
    ref, sha = abandoned.splitlines()[0].split()
    assert ref == f"refs/longrun/{run.id}/abandoned/1"
    assert "b.txt" in ws.git(workspace, "ls-tree", "--name-only", sha)
    assert ws.git(workspace, "merge-base", "--is-ancestor", b_commit, sha, check=False) == ""
    [rewound] = [e.data for e in log.read_events(store, run.id, kinds=["rewound"])]
    assert rewound["to"] == first and rewound["by"] == "carol" and rewound["abandoned_ref"] == ref

    third = run_session_now(store, run.id)
    assert third.from_checkpoint_id == first
    context = [e.data for e in log.read_events(store, run.id, kinds=["context"])][-1]
    assert (
        context["checkpoint_id"] == first
        and "wrote a.txt" in context["text"]
        and "wrote b.txt" not in context["text"]
    )
    # The new checkpoint hangs off the old one: the rewind is a branch in the checkpoint tree.
    newest = runs.get_checkpoint(store, runs.get_run(store, run.id).head_checkpoint_id)
    chain = [c.id for c in runs.checkpoint_ancestors(store, newest.id, 50)]
    assert first in chain and _end_checkpoint(store, run.id, 2) not in chain
    assert log.verify_chain(store, run.id).ok


def test_rewind_is_refused_while_a_session_runs(store: Store, write_spec) -> None:
    run = create_run_from_file(store, write_spec(SCRIPT))
    first = runs.get_run(store, run.id).head_checkpoint_id
    runs.create_session(store, run.id, time_box=timedelta(minutes=1), wrap_up=timedelta(seconds=10))
    with pytest.raises(InvalidTransition, match="session 1 running"):
        control.rewind(store, run.id, first)


def test_a_fork_goes_on_on_its_own_and_leaves_the_parent_alone(store: Store, write_spec, cli) -> None:
    parent = create_run_from_file(store, write_spec(SCRIPT))
    run_session_now(store, parent.id)
    run_session_now(store, parent.id)
    first = _end_checkpoint(store, parent.id, 1)
    parent_head = runs.get_run(store, parent.id).head_checkpoint_id

    made = cli(
        "fork",
        parent.id,
        "--from",
        str(first),
        "--name",
        "try-b",
        "--set",
        "budget.usd=1.5",
        "--json",
        check=True,
    )
    child = runs.get_run(store, json.loads(made.stdout)["id"])
    assert child.parent_run_id == parent.id and child.name == "try-b" and child.spec["budget"]["usd"] == 1.5
    assert child.spec["features"] == parent.spec["features"]
    assert child.branch != parent.branch and child.workspace != parent.workspace
    child_ws = Path(child.workspace)
    assert (child_ws / "a.txt").exists() and not (child_ws / "b.txt").exists()

    cli("resume", child.id, check=True)
    assert runs.get_run(store, child.id).state == "scheduled"
    run_session_now(store, child.id)
    assert runs.list_sessions(store, child.id)[0].from_checkpoint_id == child.head_checkpoint_id
    assert (child_ws / "a.txt").read_text() == "A\n"
    # The parent is untouched: same head, same files, its own sessions only.
    assert runs.get_run(store, parent.id).head_checkpoint_id == parent_head
    assert (Path(parent.workspace) / "b.txt").exists()
    assert len(runs.list_sessions(store, parent.id)) == 2
    # And it goes on by itself, from its own head, while the fork keeps its own state.
    third = run_session_now(store, parent.id)
    assert third.from_checkpoint_id == parent_head
    assert not (child_ws / "b.txt").exists() and runs.get_run(store, child.id).spent_usd > 0
    assert runs.get_run(store, child.id).spent_usd != runs.get_run(store, parent.id).spent_usd
    assert [e.data["run_id"] for e in log.read_events(store, parent.id, kinds=["fork_made"])] == [child.id]
    assert log.verify_chain(store, parent.id).ok and log.verify_chain(store, child.id).ok


def test_resume_exact_goes_on_from_the_kept_conversation(store: Store, write_spec, cli) -> None:
    run = create_run_from_file(store, write_spec(SCRIPT))
    run_session_now(store, run.id)
    first = _end_checkpoint(store, run.id, 1)
    kept = runs.conversation_of(store, run.id, first)
    assert kept is not None and kept.reason == "session_end"
    assert kept.messages[0]["role"] == "user" and kept.messages[-1]["role"] == "assistant"

    said = json.loads(cli("resume", run.id, "--exact", "--json", check=True).stdout)
    assert said["state"] == "scheduled" and said["how"].startswith("exactly where the conversation")
    second = run_session_now(store, run.id)
    [resumed] = [e.data for e in log.read_events(store, run.id, kinds=["conversation_resumed"])]
    assert resumed["exact"] is True and resumed["messages"] == len(kept.messages)
    # The model was sent the first session's whole conversation, then went on.
    calls = [
        e.data for e in log.read_events(store, run.id, kinds=["model_call"]) if e.session_id == second.id
    ]
    first_calls = [
        e.data for e in log.read_events(store, run.id, kinds=["model_call"]) if e.session_id != second.id
    ]
    assert calls[0]["usage"]["input_tokens"] + calls[0]["usage"]["cache_read_tokens"] > max(
        c["usage"]["input_tokens"] for c in first_calls
    )

    # Without a kept conversation (the run's first checkpoint), it says so and uses the context.
    other = create_run_from_file(store, write_spec(SCRIPT, name="other", folder="other"))
    said = json.loads(cli("resume", other.id, "--exact", "--json", check=True).stdout)
    assert "no conversation was kept" in said["how"]
