"""The judge owns what it judges: its own tree of the checkpoint's commit, the pinned check harness,
checkpoints kept in longrun's mirror, and failures that are never silent. Real sessions, real git.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longrun.scheduler import control
from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.session import mirror
from longrun.scheduler.session import workspace as ws
from longrun.store import log, runs
from longrun.store.db import Store

CLAIM_DONE = {"done": ["everything"], "next": [], "blockers": [], "notes": "All done and tested."}
CALC_TESTS = (
    "from calc import add\n\n\n"
    "def test_small():\n    assert add(1, 1) == 2\n\n\n"
    "def test_hard():\n    assert add(2, 3) == 5\n    assert add(-1, 1) == 0\n"
)
TESTS_PASS = {"id": "tests", "description": "The tests pass.", "check": "python -m pytest -q tests"}


def _bash(command: str) -> dict:
    return {"tool": "bash", "input": {"command": command}}


def _claim() -> list[dict]:
    return [{"tool": "handoff", "input": CLAIM_DONE}, {"text": "Done: every test passes."}]


def _project(write_spec, sessions: list[list[dict]], files: dict[str, str], **kwargs) -> Path:
    spec = write_spec(sessions, **kwargs)
    for rel, text in files.items():
        path = spec.parent / "workspace" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return spec


def test_a_check_that_passes_only_in_the_live_workspace_fails_in_the_judges_tree(
    store: Store, write_spec
) -> None:
    # The implementation exists only in the live workspace: ignored by git, so no checkpoint has it.
    script = [
        [
            _bash(
                "echo calc.py >> .git/info/exclude && printf 'def add(a, b):\\n    return a + b\\n' > calc.py"
            ),
            *_claim(),
        ]
    ]
    run = create_run_from_file(
        store, _project(write_spec, script, {"tests/test_calc.py": CALC_TESTS}, features=[TESTS_PASS])
    )
    run_session_now(store, run.id)

    workspace = Path(run.workspace)
    assert (workspace / "calc.py").is_file()  # in the live tree the check would pass
    verdict = runs.latest_verdicts(store, run.id)["tests"]
    assert verdict.status == "fail", verdict.evidence
    assert "calc" in verdict.evidence["output_tail"]
    head = runs.get_checkpoint(store, runs.get_run(store, run.id).head_checkpoint_id)
    judged = verdict.evidence["judged"]
    assert judged["commit"] == head.commit and judged["tree"] == ws.tree_of(workspace, head.commit)
    assert judged["where"] == "the judge's own tree"
    assert runs.get_run(store, run.id).state != "done"
    # The judge's trees are its own, under longrun's home, and gone once judged.
    assert {p.name for p in (store.home / "judging").iterdir()} == {"python"}


def test_a_changed_runner_config_is_put_back_for_judging_and_waits_for_a_person(
    store: Store, write_spec, cli
) -> None:
    wrong = "def add(a, b):\n    return 2\n"
    script = [
        [
            _bash(
                f"printf '{wrong}' > calc.py && printf '[pytest]\\naddopts = -k \"not hard\"\\n' > pytest.ini"
            ),
            *_claim(),
        ],
    ]
    files = {"tests/test_calc.py": CALC_TESTS, "pytest.ini": "[pytest]\n"}
    run = create_run_from_file(store, _project(write_spec, script, files, features=[TESTS_PASS]))
    pinned = [e.data for e in log.read_events(store, run.id, kinds=["harness_pinned"])]
    assert len(pinned) == 1 and pinned[0]["files"]["pytest.ini"] is not None

    run_session_now(store, run.id)
    verdicts = runs.latest_verdicts(store, run.id)
    assert verdicts["tests"].status == "fail"  # judged with the pinned pytest.ini: test_hard ran
    ratchet = verdicts["ratchet"]
    assert ratchet.status == "fail"
    changed = ratchet.evidence["harness_changed"]
    assert changed["changes"] == [{"path": "pytest.ini", "how": "changed"}]
    assert '+addopts = -k "not hard"' in changed["diff"]
    assert "pytest.ini" in ratchet.evidence["judged"]["restored"]
    after = runs.get_run(store, run.id)
    assert after.state == "awaiting_approval" and "check harness changed" in (after.state_reason or "")
    [approval] = runs.list_approvals(store, run.id, state="pending")
    assert approval.kind == "ratchet" and "pytest.ini" in approval.request["harness_changed"]["diff"]

    # A person accepts the change: the harness is pinned again, at that checkpoint.
    cli("approve", str(approval.id), "--by", "reviewer", check=True)
    again = [e.data for e in log.read_events(store, run.id, kinds=["harness_pinned"])]
    assert len(again) == 2 and again[-1]["by"] == "reviewer"
    assert again[-1]["checkpoint_id"] == runs.get_run(store, run.id).head_checkpoint_id
    judged = json.loads(cli("judge", run.id, "--json", check=True).stdout)
    ratchet_now = [v for v in judged["verdicts"] if v["feature_id"] == "ratchet"][0]
    assert "harness_changed" not in ratchet_now["evidence"]


def _prune_everything() -> dict:
    return _bash(
        "git for-each-ref --format='%(refname)' refs/longrun | xargs -n1 git update-ref -d"
        " && git reflog expire --expire=now --all && git gc -q --prune=now"
    )


@pytest.mark.timeout(300)
def test_deleting_longrun_refs_and_pruning_loses_no_checkpoint_and_is_flagged(
    store: Store, write_spec, cli
) -> None:
    script = [
        [
            _bash("echo one > one.txt"),
            {"tool": "handoff", "input": {**CLAIM_DONE, "notes": "one"}},
            {"text": "1"},
        ],
        [_bash("echo two > two.txt"), _prune_everything(), *_claim()],
        [_bash("ls"), {"text": "Looked."}],
        [_bash("ls"), {"text": "Looked again."}],
    ]
    feature = {"id": "three", "description": "three.txt exists", "check": "test -f three.txt"}
    run = create_run_from_file(store, write_spec(script, features=[feature]))
    workspace = Path(run.workspace)
    run_session_now(store, run.id)
    first_session_end = runs.get_run(store, run.id).head_checkpoint_id
    run_session_now(store, run.id)

    [tamper] = [e.data for e in log.read_events(store, run.id, kinds=["tamper"])]
    assert tamper["refs"] and all(r["found"] is None for r in tamper["refs"])
    after = runs.get_run(store, run.id)
    assert after.state == "tripped" and "tamper" in (after.state_reason or "")
    assert runs.breakers(store, run.id)["tamper"].state == "open"
    assert any(a.kind == "breaker_reset" for a in runs.list_approvals(store, run.id, state="pending"))
    # The refs are back in the workspace, from longrun's mirror.
    for checkpoint in runs.list_checkpoints(store, run.id):
        assert ws.git(workspace, "rev-parse", mirror.ref_for(run.id, checkpoint.commit)) == checkpoint.commit

    # Prune again after the last checkpoint: every checkpoint is still restorable.
    for ref in ws.git(workspace, "for-each-ref", "--format=%(refname)", "refs/longrun").splitlines():
        ws.git(workspace, "update-ref", "-d", ref)
    ws.git(workspace, "reflog", "expire", "--expire=now", "--all")
    ws.git(workspace, "gc", "-q", "--prune=now")
    created = runs.list_checkpoints(store, run.id)[0]
    assert not ws.git(workspace, "cat-file", "-e", created.commit, check=False)

    [reset] = [a for a in runs.list_approvals(store, run.id, state="pending") if a.kind == "breaker_reset"]
    assert f"longrun approve {reset.id}" in (after.state_reason or "")
    cli("approve", str(reset.id), check=True)
    cli("rewind", run.id, "--to", str(created.id), "--yes", check=True)
    assert not (workspace / "one.txt").exists()
    fork = json.loads(cli("fork", run.id, "--from", str(first_session_end), "--json", check=True).stdout)
    assert (Path(fork["workspace"]) / "one.txt").read_text() == "one\n"
    cli("rewind", run.id, "--to", str(first_session_end), "--yes", check=True)
    said = json.loads(cli("resume", run.id, "--exact", "--json", check=True).stdout)
    assert said["how"].startswith("exactly where the conversation")
    run_session_now(store, run.id)
    assert (workspace / "one.txt").read_text() == "one\n" and not (workspace / "two.txt").exists()


def test_a_judge_that_cannot_judge_says_so_and_the_run_trips(
    store: Store, write_spec, cli, home: Path
) -> None:
    # The worker destroys the checkpoints everywhere it can reach (longrun's mirror too: without
    # a sandbox it can), so the run's first checkpoint, the ratchet's baseline, is gone.
    destroy = _bash(f"python -c 'import shutil; shutil.rmtree(\"{home / 'checkpoints.git'}\")'")
    script = [[_bash("echo x > x.txt"), destroy, _prune_everything(), *_claim()]]
    files = {"tests/test_calc.py": CALC_TESTS}
    unconfined = '[sandbox]\nmode = "off"\n'
    spec = _project(write_spec, script, files, features=[TESTS_PASS], extra=unconfined)
    run = create_run_from_file(store, spec)

    ran = cli("session", "run", run.id)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and "judge_error" in lines[0] and "Traceback" not in ran.stderr
    after = runs.get_run(store, run.id)
    assert after.state == "tripped" and "judging failed" in (after.state_reason or "")
    verdicts = runs.latest_verdicts(store, run.id)
    assert {v.status for v in verdicts.values()} == {"error"}
    assert "neither" in verdicts["tests"].evidence["error"]
    [failed] = [e.data for e in log.read_events(store, run.id, kinds=["judge_failed"])]
    assert failed["checkpoint_id"] == after.head_checkpoint_id
    assert control.ACTIVE_STATES and after.state not in ("running", "done")
