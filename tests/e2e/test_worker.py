"""The built-in worker against a standalone scripted server: keys, limits, layering."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import write_script

from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import SpecError

SECRET = "sk-ant-test-DO-NOT-LEAK-4f9c2e"


@pytest.fixture
def scripted_server(tmp_path: Path) -> Iterator[callable]:
    """Start `python -m longrun.scheduler.endpoints.scripted` for a script; yield its base URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(sessions: list[list[dict]]) -> str:
        script = write_script(tmp_path / f"server-script-{len(procs)}.json", sessions)
        proc = subprocess.Popen(
            [sys.executable, "-m", "longrun.scheduler.endpoints.scripted", "--script", str(script)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        return proc.stdout.readline().strip()

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _anthropic_spec(tmp_path: Path, base_url: str, budget: str = "usd = 5.0") -> Path:
    (tmp_path / "ws").mkdir(exist_ok=True)
    spec = tmp_path / "real.toml"
    spec.write_text(
        'name = "real"\ngoal = "g"\nworkspace = "ws"\n'
        f'[worker]\nbackend = "anthropic"\nbase_url = "{base_url}"\nmax_tokens = 1024\n'
        f'[session]\ntime_box = "2m"\nwrap_up = "20s"\n[budget]\n{budget}\n'
    )
    return spec


def test_the_api_key_comes_from_the_environment_and_is_never_stored_or_shown(
    store: Store, tmp_path: Path, scripted_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = scripted_server(
        [[{"tool": "bash", "input": {"command": "env; echo KEY=$ANTHROPIC_API_KEY"}}, {"text": "done"}]]
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    run = create_run_from_file(store, _anthropic_spec(tmp_path, base_url))
    session = run_session_now(store, run.id)
    assert session.state == "ended" and session.end_reason == "finished"
    output = log.read_events(store, run.id, kinds=["tool_result"])[0].data["output"]
    assert "KEY=" in output and SECRET not in output  # the agent's shell never sees it
    for path in [store.path, *store.home.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET.encode() not in (Path(run.workspace) / ".git" / "config").read_bytes()


def test_without_an_api_key_the_session_ends_saying_so(
    store: Store, tmp_path: Path, scripted_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = scripted_server([[{"text": "never asked"}]])
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(SpecError, match="needs ANTHROPIC_API_KEY"):  # refused at create already
        create_run_from_file(store, _anthropic_spec(tmp_path, base_url))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-made-while-set")
    run = create_run_from_file(store, _anthropic_spec(tmp_path, base_url))
    monkeypatch.delenv("ANTHROPIC_API_KEY")  # gone by the time the session runs
    session = run_session_now(store, run.id)
    assert session.end_reason == "error"
    ended = log.read_events(store, run.id, kinds=["session_ended"])[-1].data
    assert "ANTHROPIC_API_KEY" in ended["detail"]


def test_a_rate_limit_that_outlasts_the_retries_ends_the_session_with_its_reset_time(
    store: Store, write_spec
) -> None:
    limited = {"error": 429, "retry_after": "1s"}
    run = create_run_from_file(store, write_spec([[limited, limited, limited, {"text": "too late"}]]))
    session = run_session_now(store, run.id)
    assert session.state == "ended" and session.end_reason == "rate_limited"
    errors = log.read_events(store, run.id, kinds=["api_error"])
    assert [e.data["status"] for e in errors] == [429, 429, 429]
    assert [e.data["attempt"] for e in errors] == [1, 2, 3]
    limit = log.read_events(store, run.id, kinds=["rate_limited"])
    assert len(limit) == 1 and limit[0].data["retry_at"]


def test_a_budget_cap_is_never_crossed(store: Store, write_spec) -> None:
    turns = [
        {
            "tool": "bash",
            "input": {"command": f"echo step {i}"},
            "usage": {"input_tokens": 3000, "output_tokens": 400},
        }
        for i in range(40)
    ]
    run = create_run_from_file(store, write_spec([turns], budget="usd = 0.05"))
    session = run_session_now(store, run.id)
    assert session.end_reason == "budget"
    assert runs.get_run(store, run.id).spent_usd <= 0.05
    assert log.read_events(store, run.id, kinds=["budget_stop"])
