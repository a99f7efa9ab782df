"""The CLI as a person uses it: real subprocesses, one-line errors, stable JSON."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPTED = '[worker]\nbackend = "scripted"\nscript = "demo"\n'
"""A worker that needs no key (a spec without [worker] asks for the API and its key)."""


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.timeout(360)  # the whole demo: five sessions and their judging, on a loaded machine
def test_demo_runs_to_the_end_and_its_run_shows_sessions_checkpoints_and_a_whole_chain(cli) -> None:
    proc = cli("demo", "--headless", "--auto-approve", "--timeout", "240", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "the agent wants to run bash: git push origin HEAD (pushes to a remote)" in proc.stdout
    summary = proc.stdout.strip().splitlines()
    run_id = summary[0].split()[2].rstrip(":")
    assert summary[-1].startswith(f"{run_id}: done after ")
    assert "4/4 features pass" in summary[-1]

    doc = json.loads(cli("run", "show", run_id, "--json", check=True).stdout)
    for key in ("id", "name", "state", "spent_usd", "tokens", "sessions", "checkpoints", "features"):
        assert key in doc
    assert doc["id"] == run_id and doc["state"] == "done" and doc["spent_usd"] > 0
    assert len(doc["sessions"]) >= 2
    for session in doc["sessions"]:
        assert {"n", "state", "pid", "started_at", "ended_at", "spent_usd"} <= session.keys()
        assert session["state"] == "ended" and session["spent_usd"] > 0
        assert any(c["session_id"] == session["id"] for c in doc["checkpoints"])
    for checkpoint in doc["checkpoints"]:
        assert {"id", "seq", "commit", "created_at"} <= checkpoint.keys()
    assert {f["id"]: f["status"] for f in doc["features"]} == {
        "word_count": "pass",
        "top_words": "pass",
        "reading_time": "pass",
        "usage-docs": "pass",
    }
    # Done by the judge's verdicts: features went from fail to pass across checkpoints, the
    # command checks ran pytest, and the rubric was judged by the LLM judge.
    verdicts = json.loads(cli("verdicts", run_id, "--json", check=True).stdout)
    history = {f["id"]: f["history"] for f in verdicts["features"]}
    for feature in ("top_words", "usage-docs"):
        assert history[feature][0] == "fail" and history[feature][-1] == "pass", history[feature]
    top_words_fail = next(v for f in verdicts["features"] if f["id"] == "top_words" for v in f["verdicts"])
    assert "failed" in top_words_fail["evidence"]["output_tail"] and top_words_fail["judge"] == "command"
    docs = next(f for f in verdicts["features"] if f["id"] == "usage-docs")["verdicts"]
    called = [v for v in docs if "criteria" in v["evidence"]]
    assert (
        called[-1]["judge"] == "llm"
        and called[-1]["status"] == "pass"
        and called[-1]["evidence"]["confidence"] > 0
    )
    # Once passed, a checkpoint with nothing changed keeps the pass without another judge call.
    assert all(v["evidence"].get("carried_from") for v in docs[docs.index(called[-1]) + 1 :])
    assert history["ratchet"][-1] == "pass"

    # The push waited for a person: approved by the demo, then run once by the next session.
    [approval] = json.loads(cli("approvals", "--all", "--json", check=True).stdout)
    assert approval["kind"] == "tool_call" and approval["state"] == "approved"
    assert approval["decided_by"] == "demo --auto-approve" and approval["decided_at"]

    verify = cli("verify", run_id, check=True)
    assert "chain whole" in verify.stdout
    events = json.loads(cli("events", run_id, "--json", "--since", "3", check=True).stdout)
    assert events[0]["seq"] == 4
    kinds = {e["kind"] for e in events}
    assert {"model_call", "tool_call", "tool_result", "handoff", "checkpoint", "verdict", "context"} <= kinds
    listed = json.loads(cli("run", "list", "--json", check=True).stdout)
    assert [r["id"] for r in listed] == [run_id]
    checkpoints = json.loads(cli("checkpoints", run_id, "--json", check=True).stdout)
    assert [c["id"] for c in checkpoints] == [c["id"] for c in doc["checkpoints"]]


def test_demo_write_then_run_create_and_one_session(cli, tmp_path: Path) -> None:
    dest = tmp_path / "mydemo"
    proc = cli("demo", "--write", str(dest), check=True)
    spec = dest / "longrun.toml"
    assert spec.exists() and (dest / "workspace" / "tests").is_dir()
    assert "longrun run create" in proc.stdout
    created = json.loads(
        cli("run", "create", str(spec), "--set", "session.time_box=90s", "--json", check=True).stdout
    )
    assert created["state"] == "draft"
    session = json.loads(cli("session", "run", created["id"], "--json", check=True).stdout)
    assert session["n"] == 1 and session["state"] == "ended"
    show = cli("run", "show", created["id"], check=True).stdout
    assert "word_count" in show and "pass" in show
    # One session by hand does not start the run: it stays a draft until `run start`.
    assert json.loads(cli("run", "show", created["id"], "--json", check=True).stdout)["state"] == "draft"


def test_unknown_run_is_a_one_line_error(cli) -> None:
    cli("init", check=True)
    for args in (["run", "show", "nope"], ["events", "nope"], ["verify", "nope"], ["session", "run", "nope"]):
        _one_line_error(cli(*args), "nope")


def test_bad_spec_is_a_one_line_error_and_writes_nothing(cli, tmp_path: Path, home: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "x"\ngoal = "y"\nworkspace = "w"\n[budget]\nusd = "ten"\n')
    _one_line_error(cli("run", "create", str(spec)), "bad.toml", "budget.usd")
    assert not (tmp_path / "w").exists()
    assert json.loads(cli("run", "list", "--json", check=True).stdout) == []
    _one_line_error(cli("run", "create", str(tmp_path / "missing.toml")), "missing.toml")


def test_bad_override_and_unknown_model_price_are_one_line_errors(cli, tmp_path: Path) -> None:
    spec = tmp_path / "ok.toml"
    spec.write_text('name = "x"\ngoal = "y"\nworkspace = "w"\n')
    _one_line_error(cli("run", "create", str(spec), "--set", "budget.usdd=3"), "--set", "budget.usdd")
    _one_line_error(
        cli("run", "create", str(spec), "--set", "worker.model=gpt-nothing"), "worker.model", "price"
    )
    assert not (tmp_path / "w").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_workspace_is_a_one_line_error(cli, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "x"\ngoal = "y"\nworkspace = "{locked}/ws"\n' + SCRIPTED)
    try:
        _one_line_error(cli("run", "create", str(spec)), "workspace")
    finally:
        locked.chmod(stat.S_IRWXU)


def test_workspace_that_cannot_be_created_is_a_one_line_error(cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\ngoal = "y"\nworkspace = "/proc/longrun-cannot-be-here/ws"\n' + SCRIPTED)
    _one_line_error(cli("run", "create", str(spec)), "cannot create the workspace")


def test_workspace_that_is_a_file_is_a_one_line_error(cli, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "x"\ngoal = "y"\nworkspace = "{tmp_path}/afile"\n' + SCRIPTED)
    _one_line_error(cli("run", "create", str(spec)), "afile")


def test_two_runs_cannot_share_a_workspace(cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\ngoal = "y"\nworkspace = "w"\n' + SCRIPTED)
    cli("run", "create", str(spec), check=True)
    _one_line_error(cli("run", "create", str(spec)), "already the workspace")


def test_every_command_takes_home(tmp_path: Path) -> None:
    import sys

    other = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k != "LONGRUN_HOME"}
    for args in (
        ["--home", str(other), "run", "list"],
        ["run", "list", "--home", str(other)],
        ["init", "--home", str(other)],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "longrun.app.cli", *args], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
    assert (other / "longrun.db").exists()


def test_usage_errors_exit_2_without_a_traceback(cli) -> None:
    proc = cli("run", "show")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
