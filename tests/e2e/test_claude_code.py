"""The claude-code backend with the real Claude Code CLI (bundled with claude-agent-sdk), through
the metering proxy, against the scripted model server: no network, no key."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import write_script

from longrun.scheduler import control
from longrun.scheduler.control import answer, create_run_from_file, decide, run_session_now
from longrun.scheduler.endpoints.scripted import ScriptedModelServer
from longrun.scheduler.endpoints.scripted.script import script_from_data
from longrun.scheduler.supervisor.daemon import SupervisorConfig, supervise_until_finished
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
        {"tool": "Bash", "input": {"command": "exit 3"}},
        {
            "tool": "mcp__longrun__handoff",
            "input": {"done": ["wrote hello.txt"], "next": ["push"], "notes": "n"},
        },
        {"text": "Wrote hello.txt."},
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
    assert commands == ["echo hello > hello.txt", "exit 3"]
    assert [e.data["tool"] for e in tool_calls] == ["bash", "bash", "handoff"]
    [handoff] = log.read_events(store, run.id, kinds=["handoff"])
    assert handoff.data == {"done": ["wrote hello.txt"], "next": ["push"], "blockers": [], "notes": "n"}
    reasons = [cp.reason for cp in runs.list_checkpoints(store, run.id)]
    assert "handoff" in reasons
    results = log.read_events(store, run.id, kinds=["tool_result"])
    assert not results[0].data["is_error"]
    assert results[1].data["is_error"] and "3" in results[1].data["output"]
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
    spec = _spec(tmp_path, [session], worker)
    spec.write_text(
        spec.read_text()
        + '[[approvals.rules]]\ntool = "bash"\nregex = "git push"\naction = "deny"\n'
        + '[[approvals.rules]]\ntool = "write"\noutside_workspace = true\naction = "deny"\n'
    )
    run = create_run_from_file(store, spec)
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished"
    results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    assert [r["is_error"] for r in results] == [True, True, False]
    assert all("approval policy" in r["output"] for r in results[:2])
    assert not outside.exists()
    assert (Path(run.workspace) / "hello.txt").read_text() == "inside"


PUSH = "echo pushed >> pushed.log; git push origin HEAD || true"


def _push_sessions() -> list[list[dict]]:
    return [
        [
            {"tool": "Bash", "input": {"command": "echo hello > hello.txt"}},
            {"tool": "Bash", "input": {"command": PUSH}},
            {"text": "Waiting for the push to be decided."},
        ],
        [
            {"tool": "Bash", "input": {"command": PUSH}},
            {"tool": "Bash", "input": {"command": PUSH}},
            {"text": "Done."},
        ],
    ]


def _detail(store: Store, session: runs.SessionView) -> str:
    ended = [
        e
        for e in log.read_events(store, session.run_id, kinds=["session_ended"])
        if e.session_id == session.id
    ]
    return str(ended[-1].data.get("detail", "")) if ended else ""


def _claude_ids(store: Store, run_id: str) -> list[str]:
    return [e.data["claude_session_id"] for e in log.read_events(store, run_id, kinds=["claude_result"])]


def test_an_asked_call_pauses_and_runs_exactly_once_in_the_same_claude_conversation_when_approved(
    store: Store, tmp_path: Path
) -> None:
    run = create_run_from_file(store, _spec(tmp_path, _push_sessions()))
    workspace = Path(run.workspace)
    first = run_session_now(store, run.id)
    assert first.end_reason == "approval", _detail(store, first)
    [approval] = runs.list_approvals(store, run.id, state="pending")
    assert approval.kind == "tool_call" and approval.request["input"]["command"] == PUSH
    assert not (workspace / "pushed.log").exists() and (workspace / "hello.txt").exists()
    assert runs.get_run(store, run.id).state == "awaiting_approval"

    decide(store, approval.id, approve=True, by="alice", comment="ok")
    second = run_session_now(store, run.id)
    # The approved call ran once; the model's second identical call asked again and did not run.
    assert (workspace / "pushed.log").read_text() == "pushed\n"
    assert second.end_reason == "approval"
    [again] = runs.list_approvals(store, run.id, state="pending")
    assert again.id != approval.id and again.request["input"]["command"] == PUSH
    [resumed] = log.read_events(store, run.id, kinds=["claude_resume"])
    assert resumed.session_id == second.id and "approved" in resumed.data["prompt"]
    ids = _claude_ids(store, run.id)
    assert len(ids) == 2 and ids[0] == ids[1] == resumed.data["claude_session_id"]
    assert log.verify_chain(store, run.id).ok


def test_a_denied_call_never_runs_and_the_model_is_told_why(store: Store, tmp_path: Path) -> None:
    sessions = _push_sessions()
    sessions[1] = [{"tool": "Bash", "input": {"command": "echo after > after.txt"}}, {"text": "Not pushing."}]
    run = create_run_from_file(store, _spec(tmp_path, sessions))
    run_session_now(store, run.id)
    [approval] = runs.list_approvals(store, run.id, state="pending")
    decide(store, approval.id, approve=False, by="bob", comment="no pushing from agents")
    second = run_session_now(store, run.id)
    workspace = Path(run.workspace)
    assert second.end_reason == "finished", _detail(store, second)
    assert not (workspace / "pushed.log").exists() and (workspace / "after.txt").exists()
    [resumed] = log.read_events(store, run.id, kinds=["claude_resume"])
    assert "no pushing from agents" in resumed.data["prompt"]
    ids = _claude_ids(store, run.id)
    assert len(ids) == 2 and ids[0] == ids[1]


def test_ask_human_pauses_until_answered_and_the_next_session_gets_the_answer(
    store: Store, tmp_path: Path
) -> None:
    question = {"question": "Which greeting?", "why": "it is the user's call", "choices": ["hi", "hola"]}
    sessions = [
        [{"tool": "mcp__longrun__ask_human", "input": question}, {"text": "Waiting."}],
        [{"tool": "Bash", "input": {"command": "echo hola > hello.txt"}}, {"text": "Used the answer."}],
    ]
    run = create_run_from_file(store, _spec(tmp_path, sessions))
    first = run_session_now(store, run.id)
    assert first.end_reason == "approval"
    [asked] = runs.list_approvals(store, run.id, state="pending")
    assert asked.kind == "question" and asked.request["choices"] == ["hi", "hola"]
    answer(store, asked.id, "hola", by="bob")
    second = run_session_now(store, run.id)
    assert second.end_reason == "finished"
    [resumed] = log.read_events(store, run.id, kinds=["claude_resume"])
    assert "'Which greeting?': hola" in resumed.data["prompt"]
    assert (Path(run.workspace) / "hello.txt").read_text() == "hola\n"
    assert runs.get_run(store, run.id).state == "done"


def _alive(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")
def test_the_time_box_wraps_up_then_kills_the_cli_and_everything_it_started(
    store: Store, tmp_path: Path
) -> None:
    # Claude Code's Bash refuses a standalone `sleep`, so the long command is a python one.
    marker = f"time.sleep({300 + (tmp_path.stat().st_ino % 500)})"
    command = f"python3 -c 'import time; {marker}'"
    sessions = [
        [
            {"tool": "Bash", "input": {"command": command}},
            {"tool": "mcp__longrun__handoff", "input": {"done": ["waited"], "next": ["finish"]}},
            {"tool": "Bash", "input": {"command": f"{command}; touch late.txt"}},
            {"text": "never reached"},
        ]
    ]
    spec = _spec(tmp_path, sessions)
    spec.write_text(
        spec.read_text().replace('time_box = "3m"\nwrap_up = "20s"', 'time_box = "40s"\nwrap_up = "25s"')
    )
    run = create_run_from_file(store, spec)
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "stopped" and "time box" in _detail(store, ended), _detail(store, ended)
    kinds = [e.kind for e in log.read_events(store, run.id)]
    assert kinds.index("wrap_up") < kinds.index("handoff") < kinds.index("time_box_kill")
    assert not (Path(run.workspace) / "late.txt").exists()
    assert _alive(marker) == []
    reasons = [cp.reason for cp in runs.list_checkpoints(store, run.id)]
    assert "handoff" in reasons and reasons[-1] == "session_end"


def test_a_usage_limit_s_reset_is_honoured_the_next_session_starts_after_it(
    store: Store, tmp_path: Path
) -> None:
    limited = {"error": 429, "retry_after": "4s"}
    done = [
        {"tool": "Bash", "input": {"command": "echo hello > hello.txt"}},
        {"text": "Wrote it."},
    ]
    run = create_run_from_file(store, _spec(tmp_path, [[limited, {"text": "x"}], done]))
    control.start(store, run.id)
    config = SupervisorConfig(tick=0.3, grace=timedelta(seconds=5))
    assert supervise_until_finished(store, run.id, timeout_s=120, config=config)
    assert runs.get_run(store, run.id).state == "done"
    first, second = runs.list_sessions(store, run.id)
    assert first.end_reason == "rate_limited" and second.end_reason == "finished"
    retry_at = datetime.fromisoformat(
        log.read_events(store, run.id, kinds=["rate_limited"])[0].data["retry_at"]
    )
    assert second.created_at >= retry_at
    [wait] = log.read_events(store, run.id, kinds=["usage_limit_wait"])
    assert datetime.fromisoformat(wait.data["until"]) == retry_at
    # The limit's words were never judged as progress: no verdict passed before the second session.
    passed_early = [
        v
        for v in runs.run_verdicts(store, run.id)
        if v.status == "pass" and v.created_at is not None and v.created_at < second.created_at
    ]
    assert passed_early == []


@pytest.mark.timeout(600)  # three sessions of the real CLI and three judgings
def test_the_demo_under_claude_code_ends_done_with_the_push_approved_and_a_whole_chain(cli) -> None:
    proc = cli(
        "demo", "--worker", "claude-code", "--headless", "--auto-approve", "--timeout", "400", timeout=480
    )
    assert proc.returncode == 0, proc.stderr
    assert "Claude Code on a scripted model" in proc.stdout
    assert "the agent wants to run bash: git push origin HEAD (pushes to a remote)" in proc.stdout
    summary = proc.stdout.strip().splitlines()
    run_id = summary[0].split()[2].rstrip(":")
    assert summary[-1].startswith(f"{run_id}: done after ") and "4/4 features pass" in summary[-1]
    events = json.loads(cli("events", run_id, "--json", check=True).stdout)
    # The push ran once, in the session after the approval, in the same Claude conversation.
    pushes = [e for e in events if e["kind"] == "tool_call" and "git push" in str(e["data"]["input"])]
    assert len(pushes) == 2  # asked (not run), then made again once approved
    [resumed] = [e for e in events if e["kind"] == "claude_resume"]
    paused = next(
        e for e in events if e["kind"] == "claude_result" and e["session_id"] == pushes[0]["session_id"]
    )
    assert resumed["data"]["claude_session_id"] == paused["data"]["claude_session_id"]
    # The rubric was judged by the scripted judge, not skipped for want of a key.
    verdicts = [
        e["data"] for e in events if e["kind"] == "verdict" and e["data"]["feature_id"] == "usage-docs"
    ]
    assert verdicts[-1]["status"] == "pass" and all(v["status"] != "error" for v in verdicts)
    assert "chain whole" in cli("verify", run_id, check=True).stdout


TOKENS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


@pytest.mark.timeout(600)  # four sessions of the real CLI
@settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cap=st.floats(min_value=0.02, max_value=0.4),
    share=st.one_of(st.none(), st.floats(min_value=0.2, max_value=1.0)),
    max_tokens=st.integers(min_value=300, max_value=8000),
    outputs=st.lists(st.integers(min_value=1, max_value=4000), min_size=3, max_size=10),
)
def test_randomized_caps_and_replies_no_claude_code_session_crosses_a_cap_and_the_proxy_agrees_with_the_log(
    tmp_path_factory: pytest.TempPathFactory,
    cap: float,
    share: float | None,
    max_tokens: int,
    outputs: list[int],
) -> None:
    """Random output per call (the server clamps it to the max_tokens the proxy let through),
    random caps; input usage is the server's estimate of the CLI's real requests."""
    per_session = cap * share if share is not None else None
    base = tmp_path_factory.mktemp("cc")
    store = Store.open(base / "home")
    turns = [{"tool": "Bash", "input": {"command": "true"}, "usage": {"output_tokens": o}} for o in outputs]
    (base / "ws").mkdir()
    (base / "s.json").write_text(
        json.dumps({"sessions": [{"turns": turns, "loop": True}], "after_last": "repeat"})
    )
    caps = f"usd = {cap}\n" + (f"per_session_usd = {per_session}\n" if per_session else "")
    (base / "r.toml").write_text(
        'name = "p"\ngoal = "g"\nworkspace = "ws"\n'
        f'[worker]\nbackend = "claude-code"\nscript = "s.json"\nmax_tokens = {max_tokens}\n'
        f'[session]\ntime_box = "5m"\n[budget]\n{caps}[breakers]\nmax_usd_per_hour = 1000.0\n'
    )
    run = create_run_from_file(store, base / "r.toml")
    session = run_session_now(store, run.id)
    assert session.end_reason == "budget"
    spent = runs.get_run(store, run.id).spent_usd
    assert spent <= min(cap, per_session or cap)
    calls = log.read_events(store, run.id, kinds=["model_call"])
    running = 0.0
    for call in calls:  # not one call took the total past a cap
        running += call.data["usage"]["usd"]
        assert running <= min(cap, per_session or cap) + 1e-9
    [proxy] = log.read_events(store, run.id, kinds=["proxy_usage"])
    assert proxy.data["calls"] == len(calls) and proxy.data["refused"] >= 1
    for kind in TOKENS:
        assert proxy.data[kind] == sum(c.data["usage"][kind] for c in calls)
    assert running == pytest.approx(spent, abs=1e-9)
    store.close()


SECRET = "sk-ant-test-DO-NOT-LEAK-cc-7d31a9"


def test_the_api_key_reaches_the_api_through_the_proxy_and_nowhere_else(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """The real-API path (no `script`): the CLI and its shell hold a placeholder, the proxy sends
    the key upstream, and a worker that prints its environment finds nothing to leak."""
    session = [
        {"tool": "Bash", "input": {"command": "env; echo KEY=$ANTHROPIC_API_KEY; echo T=$GITHUB_TOKEN"}},
        {
            "tool": "Bash",
            "input": {"command": "cat ~/.claude.json ~/.claude/settings.json 2>/dev/null; true"},
        },
        {"tool": "mcp__longrun__handoff", "input": {"done": ["looked around"], "next": []}},
        {"text": "Done."},
    ]
    server = ScriptedModelServer(script_from_data({"sessions": [{"turns": session}]}))
    upstream = server.start()
    try:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        monkeypatch.setenv("GITHUB_TOKEN", SECRET + "-gh")
        (tmp_path / "ws").mkdir()
        spec = tmp_path / "real.toml"
        spec.write_text(
            'name = "real"\ngoal = "g"\nworkspace = "ws"\n'
            f'[worker]\nbackend = "claude-code"\nbase_url = "{upstream}"\n'
            '[session]\ntime_box = "3m"\n[budget]\nusd = 5.0\n'
        )
        run = create_run_from_file(store, spec)
        ended = run_session_now(store, run.id)
    finally:
        server.stop()
    assert ended.end_reason == "finished"
    output = log.read_events(store, run.id, kinds=["tool_result"])[0].data["output"]
    assert "KEY=longrun-proxy-holds-this-credential" in output and "T=\n" in output + "\n"
    # The API got the real key, and only the real key, on every call.
    keys = {h.get("x-api-key") or h.get("X-Api-Key") for h in server.request_headers}
    assert keys == {SECRET}
    exported = [cli("events", run.id, "--format", f, check=True).stdout for f in ("jsonl", "csv")]
    assert exported[0] and not any(SECRET in text for text in exported)
    cli("report", run.id, "--html", str(tmp_path / "report.html"), check=True)
    for path in [store.path, *store.home.rglob("*"), *Path(run.workspace).rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file() and path.suffix not in (".sock",):
            assert SECRET.encode() not in path.read_bytes(), path


def test_resume_exact_goes_on_in_the_same_claude_conversation(store: Store, tmp_path: Path, cli) -> None:
    sessions = [
        [{"tool": "Bash", "input": {"command": "echo one > one.txt"}}, {"text": "Wrote one.txt."}],
        [{"tool": "Bash", "input": {"command": "echo two > two.txt"}}, {"text": "Wrote two.txt."}],
    ]
    run = create_run_from_file(store, _spec(tmp_path, sessions))
    first = run_session_now(store, run.id)
    said = json.loads(cli("resume", run.id, "--exact", "--json", check=True).stdout)
    assert said["how"].startswith("exactly where the conversation"), said["how"]
    run_session_now(store, run.id)
    [ended] = [e for e in log.read_events(store, run.id, kinds=["claude_result"]) if e.session_id == first.id]
    [resumed] = log.read_events(store, run.id, kinds=["claude_resume"])
    assert resumed.data["claude_session_id"] == ended.data["claude_session_id"]

    # The CLI sent the first session's conversation on: the second's requests are the longer.
    def sent(call: log.EventView) -> int:
        u = call.data["usage"]
        return u["input_tokens"] + u["cache_read_tokens"] + u["cache_write_tokens"]

    calls = log.read_events(store, run.id, kinds=["model_call"])
    assert min(sent(c) for c in calls if c.session_id != first.id) > max(
        sent(c) for c in calls if c.session_id == first.id
    )
    assert (Path(run.workspace) / "two.txt").exists()


def test_claude_codes_shell_runs_in_the_sessions_sandbox(store: Store, tmp_path: Path) -> None:
    """The CLI itself runs inside the sandbox: its Bash reaches the workspace and the metering proxy
    (through the relay, the network being off), and nothing else."""
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    session = [
        {"tool": "Bash", "input": {"command": "echo hello > hello.txt && cat hello.txt"}},
        {
            "tool": "Bash",
            "input": {"command": f"cat {home}/.ssh/id_ed25519; ls {store.home}; echo HOME=$HOME"},
        },
        {"tool": "Bash", "input": {"command": "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /"}},
        {"text": "Looked around."},
    ]
    run = create_run_from_file(store, _spec(tmp_path, [session]))
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished", ended
    results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    out = [str(r["output"]) for r in results]
    assert "hello" in out[0]
    assert "PRIVATE KEY" not in out[1] and "No such file or directory" in out[1]
    assert "longrun.db" not in out[1]
    assert "bwrap" in out[2] or "relay" in out[2] or "claude" in out[2], out[2]
    (confined,) = [e.data for e in log.read_events(store, run.id, kinds=["sandbox"])]
    assert confined["confined"] is True and confined["network"] == "off"
    assert runs.get_run(store, run.id).state == "done"  # the judge saw hello.txt in the workspace


def test_claude_code_under_a_host_allow_list_still_reaches_its_proxy_and_only_those_hosts(
    store: Store, tmp_path: Path
) -> None:
    """With `network = [hosts]` the CLI's own calls still go to the metering proxy (loopback is not
    sent to the egress proxy), and its shell is pointed at the egress proxy."""
    session = [
        {"tool": "Bash", "input": {"command": "echo hello > hello.txt; echo proxy=$HTTPS_PROXY"}},
        {"text": "Done."},
    ]
    sandbox = '\n[sandbox]\nnetwork = ["pypi.org"]\n'
    run = create_run_from_file(store, _spec(tmp_path, [session], worker=sandbox))
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished", ended
    (result,) = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    assert "proxy=http://127.0.0.1:" in str(result["output"])
    assert len(log.read_events(store, run.id, kinds=["model_call"])) == 2
    (egress,) = [e.data for e in log.read_events(store, run.id, kinds=["egress"])]
    assert egress == {"hosts": ["pypi.org"], "allowed": {}, "refused": {}}
    assert runs.get_run(store, run.id).state == "done"
