"""The judge end to end: real sessions, real checks, the real ratchet, real approvals.

Only the judge decides that a feature passes and that a run is done; the worker's claims, its
handoff and its copy of the done-condition never count.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.session import workspace as ws
from longrun.store import log, runs
from longrun.store.db import Store

CLAIM_DONE = {
    "done": ["everything"],
    "next": [],
    "blockers": [],
    "notes": "All features are done and tested.",
}
STATE_CHECK = {
    "id": "state",
    "description": "state.txt says ready.",
    "check": 'echo "state.txt holds: $(cat state.txt 2>/dev/null || echo nothing)"; grep -qx ready state.txt',
}


def _events(store: Store, run_id: str, kind: str) -> list[dict]:
    return [e.data for e in log.read_events(store, run_id, kinds=[kind])]


def test_a_worker_that_claims_done_while_a_check_fails_does_not_end_the_run(store: Store, write_spec) -> None:
    script = [
        [
            {"tool": "write", "input": {"file_path": "state.txt", "content": "almost\n"}},
            {"tool": "handoff", "input": CLAIM_DONE},
            {"text": "Everything is done: all features pass."},
        ],
        [{"tool": "bash", "input": {"command": "cat state.txt"}}, {"text": "Looking."}],
    ]
    run = create_run_from_file(store, write_spec(script, features=[STATE_CHECK]))

    run_session_now(store, run.id)
    after = runs.get_run(store, run.id)
    assert after.state != "done"
    verdict = runs.latest_verdicts(store, run.id)["state"]
    assert verdict.status == "fail" and verdict.judge == "command"
    assert "state.txt holds: almost" in verdict.evidence["output_tail"]

    # The next session is told the judge's verdict and its evidence, not the worker's claim.
    run_session_now(store, run.id)
    context = _events(store, run.id, "context")[-1]["text"]
    assert "[fail] state" in context
    assert "state.txt holds: almost" in context
    assert runs.get_run(store, run.id).state != "done"


def test_editing_the_copy_of_the_done_condition_passes_nothing_and_is_flagged(
    store: Store, write_spec
) -> None:
    forged = json.dumps({"features": [{"id": "state", "status": "pass"}]})
    script = [
        [
            {
                "tool": "bash",
                "input": {
                    "command": f"chmod u+w .longrun/features.json && echo '{forged}' > .longrun/features.json"
                },
            },
            {"tool": "handoff", "input": CLAIM_DONE},
            {"text": "Marked everything as passing."},
        ]
    ]
    # Unconfined, so the edit lands (in the sandbox `.longrun` is read-only): the judge does not
    # rest on the sandbox.
    unconfined = '[sandbox]\nmode = "off"\n'
    run = create_run_from_file(store, write_spec(script, features=[STATE_CHECK], extra=unconfined))
    run_session_now(store, run.id)

    assert runs.latest_verdicts(store, run.id)["state"].status == "fail"
    assert runs.get_run(store, run.id).state != "done"
    flagged = _events(store, run.id, "features_file_changed")
    assert flagged and flagged[0]["flagged"] is True and flagged[0]["change"] == "modified"
    # The copy is the worker's to read only: it is never part of a checkpoint.
    head = runs.get_checkpoint(store, runs.get_run(store, run.id).head_checkpoint_id)
    tracked = ws.git(Path(run.workspace), "ls-tree", "-r", "--name-only", head.commit)
    assert ".longrun" not in tracked


def test_the_worker_gets_a_fresh_read_only_copy_of_the_done_condition(store: Store, write_spec) -> None:
    script = [[{"tool": "bash", "input": {"command": "cat .longrun/features.json"}}, {"text": "Read it."}]]
    run = create_run_from_file(store, write_spec(script, features=[STATE_CHECK]))
    run_session_now(store, run.id)
    shown = [e for e in _events(store, run.id, "tool_result")][0]["output"]
    copy = json.loads(shown)
    assert copy["features"][0]["id"] == "state" and copy["features"][0]["status"] == "unjudged"
    written = _events(store, run.id, "features_file")[0]
    assert written["path"] == ".longrun/features.json" and len(written["sha256"]) == 64
    assert not _events(store, run.id, "features_file_changed")


def _project_with_tests(write_spec, script, **kwargs) -> Path:
    spec = write_spec(script, **kwargs)
    tests = spec.parent / "workspace" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_a.py").write_text("def test_a1():\n    assert True\n\n\ndef test_a2():\n    assert True\n")
    (tests / "test_b.py").write_text("def test_b1():\n    assert True\n")
    return spec


FEATURE_FILE = {"id": "feature", "description": "feature.txt exists.", "check": "test -f feature.txt"}


def test_deleting_a_test_file_trips_the_ratchet_and_the_run_is_not_done(
    store: Store, write_spec, cli
) -> None:
    script = [
        [
            {"tool": "bash", "input": {"command": "rm tests/test_b.py && touch feature.txt"}},
            {"tool": "handoff", "input": CLAIM_DONE},
            {"text": "Done; the failing test was in the way."},
        ]
    ]
    run = create_run_from_file(store, _project_with_tests(write_spec, script, features=[FEATURE_FILE]))
    run_session_now(store, run.id)

    after = runs.get_run(store, run.id)
    verdicts = runs.latest_verdicts(store, run.id)
    assert verdicts["feature"].status == "pass"
    ratchet = verdicts["ratchet"]
    assert ratchet.status == "fail" and ratchet.judge == "ratchet"
    assert "tests/test_b.py" in ratchet.evidence["missing_files"]
    assert after.state == "awaiting_approval" and "ratchet" in (after.state_reason or "")
    [approval] = runs.list_approvals(store, run.id, state="pending")
    assert approval.kind == "ratchet" and approval.request["missing_files"] == ["tests/test_b.py"]

    # Denied: the run goes on (and the ratchet still fails until the tests come back).
    denied = cli("deny", str(approval.id), "--comment", "restore the test", "--json", check=True)
    assert json.loads(denied.stdout)["state"] == "denied"
    assert runs.get_run(store, run.id).state == "scheduled"
    again = cli("deny", str(approval.id))
    assert again.returncode == 1 and "already denied" in again.stderr and "Traceback" not in again.stderr


def test_a_person_can_accept_fewer_tests_and_then_the_run_is_done(store: Store, write_spec, cli) -> None:
    script = [
        [
            {"tool": "bash", "input": {"command": "rm tests/test_b.py && touch feature.txt"}},
            {"text": "Done."},
        ]
    ]
    run = create_run_from_file(store, _project_with_tests(write_spec, script, features=[FEATURE_FILE]))
    run_session_now(store, run.id)
    [approval] = runs.list_approvals(store, run.id, state="pending")

    cli("approve", str(approval.id), "--by", "reviewer", "--comment", "test_b was obsolete", check=True)
    after = runs.get_run(store, run.id)
    assert after.state == "done", after.state_reason
    ratchet = runs.latest_verdicts(store, run.id)["ratchet"]
    assert ratchet.status == "pass" and ratchet.evidence["accepted_by"] == "reviewer"


def test_a_hanging_check_is_stopped_at_its_timeout_with_an_error_verdict(
    store: Store, write_spec, cli
) -> None:
    hang = {"id": "hang", "description": "never ends", "check": "sleep 60", "timeout": "1s"}
    run = create_run_from_file(store, write_spec([[{"text": "Nothing to do."}]], features=[hang]))
    judged = cli("judge", run.id, "--json", check=True, timeout=30)
    verdict = json.loads(judged.stdout)["verdicts"][0]
    assert verdict["feature_id"] == "hang" and verdict["status"] == "error"
    assert verdict["evidence"]["timeout_s"] == 1 and "stopped after 1s" in verdict["evidence"]["output_tail"]


def test_judging_an_old_checkpoint_leaves_the_workspace_alone(store: Store, write_spec, cli) -> None:
    script = [
        [{"tool": "write", "input": {"file_path": "state.txt", "content": "ready\n"}}, {"text": "Ready."}],
        [{"tool": "write", "input": {"file_path": "state.txt", "content": "broken\n"}}, {"text": "Oops."}],
    ]
    run = create_run_from_file(
        store, write_spec(script, features=[STATE_CHECK], extra="[judge.ratchet]\nenabled = false")
    )
    first = run_session_now(store, run.id)
    assert runs.get_run(store, run.id).state == "done"
    good = runs.get_run(store, run.id).head_checkpoint_id
    # A done run takes no more sessions; judging on demand still works at any checkpoint.
    judged = cli("judge", run.id, "--checkpoint", str(good), "--json", check=True)
    assert json.loads(judged.stdout)["verdicts"][0]["status"] == "pass"
    assert first.state == "ended"
    bad = cli("judge", run.id, "--checkpoint", "99999")
    assert bad.returncode == 1 and "checkpoint" in bad.stderr and "Traceback" not in bad.stderr
    worktrees = ws.git(Path(run.workspace), "worktree", "list")
    assert len(worktrees.splitlines()) == 1


def test_sign_off_waits_for_a_person_before_done(store: Store, write_spec, cli) -> None:
    script = [
        [{"tool": "write", "input": {"file_path": "state.txt", "content": "ready\n"}}, {"text": "Ready."}]
    ]
    spec = write_spec(script, features=[STATE_CHECK], extra="[approvals]\nsign_off = true")
    run = create_run_from_file(store, spec)
    run_session_now(store, run.id)
    after = runs.get_run(store, run.id)
    assert after.state == "awaiting_approval" and "sign-off" in (after.state_reason or "")
    listed = json.loads(cli("approvals", "--json", check=True).stdout)
    assert [a["kind"] for a in listed] == ["sign_off"]
    for key in (
        "id",
        "run_id",
        "kind",
        "state",
        "request",
        "requested_at",
        "decided_by",
        "decided_at",
        "comment",
    ):
        assert key in listed[0]
    cli("approve", str(listed[0]["id"]), "--comment", "looks right", check=True)
    assert runs.get_run(store, run.id).state == "done"
    assert _events(store, run.id, "run_done")[-1]["by"]


PROPOSAL = [
    {"id": "greeting", "description": "hello.txt greets the world.", "check": "grep -q hello hello.txt"},
    {
        "id": "tone",
        "description": "The greeting is friendly.",
        "rubric": "hello.txt reads as a friendly greeting.",
    },
]


def test_a_goal_without_features_starts_with_an_initializer_that_proposes_them(
    store: Store, write_spec, cli, tmp_path: Path
) -> None:
    script = [
        [
            {"tool": "bash", "input": {"command": "ls"}},
            {"tool": "propose_features", "input": {"features": [{"id": "Bad Id", "description": "x"}]}},
            {"tool": "propose_features", "input": {"features": PROPOSAL}},
            {"text": "Proposed."},
        ],
        [{"tool": "bash", "input": {"command": "cat .longrun/features.json"}}, {"text": "Starting."}],
    ]
    run = create_run_from_file(store, write_spec(script))
    session = run_session_now(store, run.id)
    assert session.end_reason == "stopped"
    first_context = _events(store, run.id, "context")[0]["text"]
    assert "propose_features" in first_context
    refused = [e for e in _events(store, run.id, "tool_result") if e["tool"] == "propose_features"][0]
    assert refused["is_error"] and "features.1.id" in refused["output"]

    after = runs.get_run(store, run.id)
    assert after.state == "awaiting_approval" and after.spec["features"] == []
    [approval] = runs.list_approvals(store, run.id, state="pending")
    assert approval.kind == "done_condition" and [f["id"] for f in approval.request["features"]] == [
        "greeting",
        "tone",
    ]
    shown = cli("features", run.id, check=True).stdout
    assert f"approval {approval.id}" in shown and "greeting" in shown

    # A person edits the proposal in an editor: saving approves it as edited.
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('The greeting is friendly.', 'The greeting is warm.'))\n"
    )
    edited = cli("features", "edit", run.id, env={"EDITOR": f"{sys.executable} {editor}"}, check=True)
    assert "2 features" in edited.stdout
    after = runs.get_run(store, run.id)
    assert [f["description"] for f in after.spec["features"]][1] == "The greeting is warm."
    assert after.state == "scheduled"
    assert runs.get_approval(store, approval.id).state == "approved"
    assert _events(store, run.id, "features_set")[0]["edited"] is True

    run_session_now(store, run.id)
    context = _events(store, run.id, "context")[-1]["text"]
    assert "greeting" in context and "The greeting is warm." in context and "propose_features" not in context


def test_a_bad_features_edit_is_one_line_and_changes_nothing(
    store: Store, write_spec, cli, tmp_path: Path
) -> None:
    run = create_run_from_file(store, write_spec([[{"text": "Hi."}]], features=[STATE_CHECK]))
    bad = tmp_path / "bad.toml"
    bad.write_text('[[features]]\nid = "x"\ndescription = "no check nor rubric"\n')
    proc = cli("features", "edit", run.id, "--file", str(bad))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "bad.toml" in proc.stderr and "features[1]" in proc.stderr
    assert [f["id"] for f in runs.get_run(store, run.id).spec["features"]] == ["state"]


def test_verdicts_json_is_a_feature_by_checkpoint_matrix(store: Store, write_spec, cli) -> None:
    script = [
        [{"tool": "write", "input": {"file_path": "state.txt", "content": "no\n"}}, {"text": "Not yet."}],
        [{"tool": "write", "input": {"file_path": "state.txt", "content": "ready\n"}}, {"text": "Ready."}],
    ]
    run = create_run_from_file(store, write_spec(script, features=[STATE_CHECK]))
    run_session_now(store, run.id)
    run_session_now(store, run.id)
    doc = json.loads(cli("verdicts", run.id, "--json", check=True).stdout)
    [state] = [f for f in doc["features"] if f["id"] == "state"]
    assert state["history"] == ["fail", "pass"] and state["latest"] == "pass"
    assert [v["checkpoint_id"] for v in state["verdicts"]] == [c["id"] for c in doc["checkpoints"]][-2:]
    assert runs.get_run(store, run.id).state == "done"
    text = cli("verdicts", run.id, check=True).stdout
    assert "FAIL" in text and "pass" in text
