"""Human in the loop: tool calls that wait for a person, questions, decisions, expiry, tokens.

Real sessions through the scripted server and the real SDK, the real supervisor, a real store.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.guards.policy import DEFAULT_RULES, decide
from longrun.scheduler.supervisor.daemon import SupervisorConfig, supervise_until_finished
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition

PUSH = "echo pushed >> pushed.log && git push origin main 2>&1 || true"
AFTER = {"id": "after", "description": "after.txt exists.", "check": "test -f after.txt"}


def _push_script() -> list[list[dict]]:
    return [
        [
            {"tool": "bash", "input": {"command": "echo before > before.txt"}},
            {"text": "Now I push.", "tool": "bash", "input": {"command": PUSH}},
            {"text": "Pushed (never reached: the session pauses before the push)."},
        ],
        [
            {"tool": "bash", "input": {"command": "echo after > after.txt"}},
            {"text": "Done."},
        ],
    ]


def _events(store: Store, run_id: str, kind: str) -> list[dict]:
    return [e.data for e in log.read_events(store, run_id, kinds=[kind])]


def _config() -> SupervisorConfig:
    return SupervisorConfig(tick=0.3, grace=timedelta(seconds=5))


def test_an_asked_call_pauses_the_run_and_runs_exactly_once_when_approved(
    store: Store, write_spec, cli
) -> None:
    run = create_run_from_file(store, write_spec(_push_script(), features=[AFTER]))
    workspace = Path(run.workspace)
    control.start(store, run.id, by="test")
    assert supervise_until_finished(store, run.id, timeout_s=90, config=_config())

    waiting = runs.get_run(store, run.id)
    assert waiting.state == "awaiting_approval" and "longrun approve" in (waiting.state_reason or "")
    [approval] = runs.list_approvals(store, run.id, state="pending")
    assert approval.kind == "tool_call" and approval.request["tool"] == "bash"
    assert (
        approval.request["input"] == {"command": PUSH} and approval.request["reason"] == "pushes to a remote"
    )
    assert not (workspace / "pushed.log").exists()  # not run: the session paused before it
    assert (workspace / "before.txt").exists()
    sessions = runs.list_sessions(store, run.id)
    assert [s.end_reason for s in sessions] == ["approval"]

    # A supervisor restarted while the approval is pending changes nothing.
    assert supervise_until_finished(store, run.id, timeout_s=60, config=_config())
    assert len(runs.list_sessions(store, run.id)) == 1
    assert runs.get_run(store, run.id).state == "awaiting_approval"

    listed = json.loads(cli("approvals", "--json", check=True).stdout)
    assert [a["id"] for a in listed] == [approval.id]
    cli("approve", str(approval.id), "--by", "alice", "--comment", "ok to push", check=True)
    assert runs.get_run(store, run.id).state == "scheduled"
    assert supervise_until_finished(store, run.id, timeout_s=90, config=_config())

    assert runs.get_run(store, run.id).state == "done"
    assert (workspace / "pushed.log").read_text() == "pushed\n"  # exactly once
    resumed = _events(store, run.id, "conversation_resumed")
    assert len(resumed) == 1 and resumed[0]["approvals"] == [approval.id]
    # The second session went on from the same conversation: its first call was the approved one.
    second = runs.list_sessions(store, run.id)[1]
    calls = [e.data for e in log.read_events(store, run.id, kinds=["tool_call"]) if e.session_id == second.id]
    assert calls[0]["input"] == {"command": PUSH} and calls[1]["input"]["command"] == "echo after > after.txt"
    decided = _events(store, run.id, "approval_decided")
    assert decided == [
        {"approval_id": approval.id, "state": "approved", "by": "alice", "comment": "ok to push"}
    ]
    assert log.verify_chain(store, run.id).ok


def test_a_denied_call_never_runs_and_the_model_is_told_why(store: Store, write_spec, cli) -> None:
    run = create_run_from_file(store, write_spec(_push_script(), features=[AFTER]))
    run_session_now(store, run.id)
    [approval] = runs.list_approvals(store, run.id, state="pending")
    cli("deny", str(approval.id), "--comment", "no pushing from agents", check=True)
    again = cli("approve", str(approval.id))
    assert again.returncode == 1 and "already denied" in again.stderr

    run_session_now(store, run.id)
    workspace = Path(run.workspace)
    assert not (workspace / "pushed.log").exists() and (workspace / "after.txt").exists()
    second = runs.list_sessions(store, run.id)[1]
    calls = [e.data for e in log.read_events(store, run.id, kinds=["tool_call"]) if e.session_id == second.id]
    assert all(c["input"].get("command") != PUSH for c in calls)
    # What the model was sent: the refusal with the person's words, as the call's result.
    [resumed] = _events(store, run.id, "conversation_resumed")
    [result] = resumed["results"].values()
    assert result["action"] == "deny" and "no pushing from agents" in result["text"]
    assert "denied by" in resumed["notice"]
    assert runs.get_run(store, run.id).state == "done"


def test_a_question_pauses_until_it_is_answered_and_the_answer_goes_on(store: Store, write_spec, cli) -> None:
    script = [
        [
            {
                "tool": "ask_human",
                "input": {
                    "question": "Which greeting?",
                    "why": "it is the user's call",
                    "choices": ["hi", "hello"],
                },
            },
            {"text": "Waiting."},
        ],
        [{"tool": "bash", "input": {"command": "echo after > after.txt"}}, {"text": "Used the answer."}],
    ]
    run = create_run_from_file(store, write_spec(script, features=[AFTER]))
    run_session_now(store, run.id)
    after = runs.get_run(store, run.id)
    assert after.state == "awaiting_approval" and "Which greeting?" in (after.state_reason or "")
    [question] = runs.list_approvals(store, run.id, state="pending")
    assert question.kind == "question" and question.request["choices"] == ["hi", "hello"]
    refused = cli("approve", str(question.id))
    assert refused.returncode == 1 and "longrun answer" in refused.stderr

    cli("answer", str(question.id), "hello", "--by", "bob", check=True)
    assert runs.get_approval(store, question.id).state == "answered"
    run_session_now(store, run.id)
    assert runs.get_run(store, run.id).state == "done"
    decided = _events(store, run.id, "approval_decided")[-1]
    assert decided["state"] == "answered" and decided["comment"] == "hello" and decided["by"] == "bob"


def test_an_expired_approval_takes_its_expiry_action(store: Store, write_spec) -> None:
    rule = '[[approvals.rules]]\ntool = "bash"\nregex = "git push"\naction = "ask"\nexpires_after = "1s"\n'
    run = create_run_from_file(store, write_spec(_push_script(), features=[AFTER], extra=rule))
    run_session_now(store, run.id)
    [approval] = runs.list_approvals(store, run.id, state="pending")
    assert approval.request["rule"]["expires_after"] == "1s"
    import time

    time.sleep(1.2)
    [expired] = control.expire_approvals(store)
    assert expired.id == approval.id
    assert runs.get_approval(store, approval.id).state == "expired"
    assert runs.get_run(store, run.id).state == "scheduled"
    assert _events(store, run.id, "approval_expired") == [{"approval_id": approval.id, "action": "deny"}]
    run_session_now(store, run.id)
    assert not (Path(run.workspace) / "pushed.log").exists()


def test_a_token_decides_its_approval_once_and_nothing_else(store: Store, write_spec) -> None:
    run = create_run_from_file(store, write_spec(_push_script(), features=[AFTER]))
    run_session_now(store, run.id)
    [approval] = runs.list_approvals(store, run.id, state="pending")
    with store.writing() as conn:
        token = runs.issue_token(conn, approval.id)
    with pytest.raises(InvalidTransition):
        control.decide_by_token(store, token + "x", approve=True)
    decided = control.decide_by_token(store, token, approve=True)
    assert decided.id == approval.id and decided.state == "approved"
    with pytest.raises(InvalidTransition):
        control.decide_by_token(store, token, approve=True)
    # Only the hash was stored, and it is gone once used.
    with store.reading() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM approval").all()
    assert all(row[0] is None or token not in row[0] for row in stored)


def test_the_default_rules_ask_before_what_is_destructive_or_outward(tmp_path: Path) -> None:
    ask = {
        ("bash", "git push --force origin main"),
        ("bash", "rm -rf /var/data"),
        ("bash", "rm -rf ../sibling"),
        ("bash", "npm publish"),
        ("bash", "twine upload dist/*"),
        ("bash", "curl https://example.com"),
    }
    allow = {("bash", "rm -rf build"), ("bash", "python -m pytest -q"), ("bash", "git commit -m x")}
    for tool, command in ask:
        assert decide(DEFAULT_RULES, tool, {"command": command}, tmp_path).action == "ask", command
    for tool, command in allow:
        assert decide(DEFAULT_RULES, tool, {"command": command}, tmp_path).action == "allow", command
    assert decide(DEFAULT_RULES, "write", {"file_path": "/etc/hosts"}, tmp_path).action == "ask"
    assert decide(DEFAULT_RULES, "write", {"file_path": "src/app.py"}, tmp_path).action == "allow"
