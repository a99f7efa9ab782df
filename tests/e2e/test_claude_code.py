"""The claude-code backend with the real Claude Code CLI (bundled with claude-agent-sdk), through
the metering proxy, against the scripted model server: no network, no key."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import write_script

from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import SpecError
from longrun.store.models import utcnow

pytest.importorskip("claude_agent_sdk")


def _spec(tmp_path: Path, sessions: list[list[dict]], worker: str = "") -> Path:
    (tmp_path / "workspace").mkdir(exist_ok=True)
    write_script(tmp_path / "script.json", sessions)
    spec = tmp_path / "longrun.toml"
    spec.write_text(
        'name = "cc"\ngoal = "Write hello.txt."\nworkspace = "workspace"\n'
        f'[worker]\nbackend = "claude-code"\nscript = "script.json"\n{worker}\n'
        '[session]\ntime_box = "3m"\nwrap_up = "20s"\n[budget]\nusd = 5.0\n'
        '[[features]]\nid = "hello"\ndescription = "hello.txt exists."\ncheck = "test -f hello.txt"\n'
    )
    return spec


@pytest.fixture(autouse=True)
def _claude_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps its state under $HOME/.claude: a fresh one per test."""
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def test_a_claude_code_session_is_metered_policed_recorded_and_judged(store: Store, tmp_path: Path) -> None:
    session = [
        {"tool": "Bash", "input": {"command": "echo hello > hello.txt"}},
        {"tool": "Bash", "input": {"command": "git push origin HEAD"}},
        {
            "tool": "mcp__longrun__handoff",
            "input": {"done": ["wrote hello.txt"], "next": ["push"], "notes": "n"},
        },
        {"text": "Wrote hello.txt; the push was refused."},
    ]
    run = create_run_from_file(store, _spec(tmp_path, [session]))
    ended = run_session_now(store, run.id)
    assert ended.state == "ended" and ended.end_reason == "finished", ended.end_reason
    calls = log.read_events(store, run.id, kinds=["model_call"])
    assert len(calls) == 4 and all(c.data["usage"]["output_tokens"] > 0 for c in calls)
    assert calls[0].data["max_tokens"] <= 128_000 and calls[0].data["tool_calls"] == ["Bash"]
    assert runs.get_session(store, ended.id).usage.usd == pytest.approx(
        sum(c.data["usage"]["usd"] for c in calls)
    )
    tool_calls = log.read_events(store, run.id, kinds=["tool_call"])
    commands = [e.data["input"]["command"] for e in tool_calls if e.data["tool"] == "bash"]
    assert commands == ["echo hello > hello.txt", "git push origin HEAD"]
    assert [e.data["tool"] for e in tool_calls] == ["bash", "bash", "handoff"]
    [handoff] = log.read_events(store, run.id, kinds=["handoff"])
    assert handoff.data == {"done": ["wrote hello.txt"], "next": ["push"], "blockers": [], "notes": "n"}
    reasons = [cp.reason for cp in runs.list_checkpoints(store, run.id)]
    assert "handoff" in reasons
    results = log.read_events(store, run.id, kinds=["tool_result"])
    assert not results[0].data["is_error"]
    assert results[1].data["is_error"] and "approval policy" in results[1].data["output"]
    result = log.read_events(store, run.id, kinds=["claude_result"])[0].data
    assert result["claude_session_id"] and result["num_turns"] >= 1
    assert result["longrun_usd"] == pytest.approx(runs.get_session(store, ended.id).usage.usd, abs=1e-6)
    claimed, ours = result["total_cost_usd"], result["longrun_usd"]
    mismatch = log.read_events(store, run.id, kinds=["price_mismatch"])
    assert bool(mismatch) == (abs(claimed - ours) > 0.01 * max(claimed, ours))
    assert runs.get_run(store, run.id).head_checkpoint_id is not None
    statuses = {
        v.feature_id: v.status
        for v in runs.verdicts_at(store, [runs.get_run(store, run.id).head_checkpoint_id])[
            runs.get_run(store, run.id).head_checkpoint_id
        ]
    }
    assert statuses == {"hello": "pass"}


def test_the_claude_code_table_is_checked_like_every_other(store: Store, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="permission_mode"):
        create_run_from_file(
            store, _spec(tmp_path, [[{"text": "x"}]], 'permission_mode = "bypassPermissions"')
        )
    with pytest.raises(SpecError, match='only used when worker.backend = "claude-code"'):
        spec = _spec(tmp_path, [[{"text": "x"}]])
        spec.write_text(
            spec.read_text()
            .replace('backend = "claude-code"', 'backend = "anthropic"')
            .replace('script = "script.json"', "max_turns = 3")
        )
        create_run_from_file(store, spec)


def test_a_usage_limit_with_a_reset_ends_the_session_rate_limited_without_a_retry_storm(
    store: Store, tmp_path: Path
) -> None:
    limited = {"error": 429, "retry_after": "2h"}
    run = create_run_from_file(store, _spec(tmp_path, [[limited, limited, {"text": "too soon"}]]))
    before = utcnow()
    ended = run_session_now(store, run.id)
    assert ended.state == "ended" and ended.end_reason == "rate_limited"
    [limit] = log.read_events(store, run.id, kinds=["rate_limited"])
    retry_at = datetime.fromisoformat(limit.data["retry_at"])
    assert (
        before + timedelta(hours=2) - timedelta(minutes=1)
        <= retry_at
        <= utcnow() + timedelta(hours=2, minutes=1)
    )
    assert log.read_events(store, run.id, kinds=["model_call"]) == []
    assert len(log.read_events(store, run.id, kinds=["api_error"])) == 1, (
        "the CLI retried a limit with a reset"
    )


def test_an_initializer_session_proposes_the_done_condition_through_its_mcp_tool(
    store: Store, tmp_path: Path
) -> None:
    proposal = {
        "features": [
            {"id": "hello", "description": "hello.txt exists.", "check": "test -f hello.txt"},
            {"id": "readme", "description": "The README says hello.", "rubric": "It greets the reader."},
        ]
    }
    session = [
        {
            "tool": "mcp__longrun__propose_features",
            "input": {"features": [{"id": "Bad Id", "description": "x"}]},
        },
        {"tool": "mcp__longrun__propose_features", "input": proposal},
        {"text": "Proposed two features."},
    ]
    spec = _spec(tmp_path, [session])
    spec.write_text(spec.read_text().split("[[features]]")[0])
    run = create_run_from_file(store, spec)
    ended = run_session_now(store, run.id)
    assert ended.state == "ended"
    [pending] = runs.list_approvals(store, run.id, state="pending")
    assert pending.kind == "done_condition"
    assert [f["id"] for f in pending.request["features"]] == ["hello", "readme"]
    results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    assert results[0]["is_error"] and "not recorded" in results[0]["output"]


def test_allowed_tools_and_a_lenient_mode_do_not_get_a_call_past_longrun_s_rules(
    store: Store, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    session = [
        {"tool": "Bash", "input": {"command": "git push origin HEAD"}},
        {"tool": "Write", "input": {"file_path": str(outside), "content": "escaped"}},
        {"tool": "Write", "input": {"file_path": "hello.txt", "content": "inside"}},
        {"text": "Tried."},
    ]
    worker = 'allowed_tools = ["Bash", "Write"]\npermission_mode = "acceptEdits"'
    run = create_run_from_file(store, _spec(tmp_path, [session], worker))
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished"
    results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    assert [r["is_error"] for r in results] == [True, True, False]
    assert all("approval policy" in r["output"] for r in results[:2])
    assert not outside.exists()
    assert (Path(run.workspace) / "hello.txt").read_text() == "inside"
