"""`longrun mcp` as its clients meet it: a real `longrun mcp` process, driven by the `mcp` SDK's own
`Client` over stdio and over streamable HTTP, on the seeded store and on runs made for the test;
and the real Claude Code CLI, against the scripted model server, calling its tools."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import Implementation, TextResourceContents
from seed import (
    APPROVAL_BUDGET,
    APPROVAL_DECIDED,
    APPROVAL_PUSH,
    APPROVAL_QUESTION,
    CP_HEAD,
    CP_S1_END,
    OPEN_BREAKER,
    PENDING_APPROVALS,
    RUN_ACTIVE,
    RUN_DONE,
    RUN_IDS,
    RUN_PAUSED,
    RUN_STATES,
    seed_store,
)

from longrun.scheduler.session.context import next_context
from longrun.store import log, runs
from longrun.store.db import Store

LONGRUN = str(Path(sys.executable).with_name("longrun"))
CLIENT = "longrun-tests"
BY = f"mcp:{CLIENT}"
READS = {"list_runs", "get_status", "rehydrate", "list_checkpoints", "list_approvals"}
WRITES = {"answer", "record_handoff", "report_progress"}
STARTUP_S = 60.0
"""How long a `longrun mcp --http` process may take to print its URL and token (generous: the
machine may be loaded)."""


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seeded store (its home), its workspaces under a HOME of the test's own."""
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    home = tmp_path / "store"
    seed_store(home).close()
    return home


def _server_env() -> dict[str, str]:
    return {"HOME": os.environ["HOME"], "PATH": os.environ.get("PATH", "")}


@asynccontextmanager
async def over_stdio(home: Path, *flags: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=LONGRUN, args=["mcp", "--home", str(home), *flags], env=_server_env()
    )
    async with Client(params, client_info=Implementation(name=CLIENT, version="1")) as client:
        yield client


@contextmanager
def http_server(home: Path, *flags: str) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """`longrun mcp --http --port 0` as a process: the URL and the token it printed."""
    proc = subprocess.Popen(
        [LONGRUN, "mcp", "--http", "--port", "0", "--home", str(home), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **_server_env()},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    printed: dict[str, str] = {}
    try:
        while "token" not in printed:
            try:
                line = lines.get(timeout=STARTUP_S)
            except queue.Empty:
                raise AssertionError(f"longrun mcp --http printed no token: {proc.stderr}") from None
            key, _, value = line.strip().partition(": ")
            if key in ("url", "token"):
                printed[key] = value
        yield printed["url"], printed["token"], proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def over_http(url: str, token: str) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, client_info=Implementation(name=CLIENT, version="1")) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    """A tool's structured result; the test fails with the tool's words when it fails."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, f"{tool}({arguments}) failed: {text}"
    return result.structured_content


async def refusal(client: Client, tool: str, **arguments: Any) -> str:
    """The one line a tool refuses its arguments with."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) was not refused"
    [content] = result.content
    text = content.text  # type: ignore[union-attr]
    assert "\n" not in text and "Traceback" not in text and text, repr(text)
    return text


async def resource(client: Client, uri: str) -> Any:
    read = await client.read_resource(uri)
    [content] = read.contents
    assert isinstance(content, TextResourceContents) and content.mime_type == "application/json"
    return json.loads(content.text)


def cli_json(home: Path, *args: str) -> Any:
    proc = subprocess.run(
        [LONGRUN, *args, "--home", str(home), "--json"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def cli_error(home: Path, *args: str) -> str:
    """The one line the CLI refuses `args` with, without its `longrun: error: ` prefix."""
    proc = subprocess.run([LONGRUN, *args, "--home", str(home)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    [line] = proc.stderr.splitlines()
    return line.removeprefix("longrun: error: ")


async def every_tool_on_the_seed(client: Client, home: Path) -> None:
    """Every tool and resource on the seeded store, the writes checked in the store and its log."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == READS | WRITES | {"decide"}

    listed = (await call(client, "list_runs"))["runs"]
    assert {r["id"]: r["state"] for r in listed} == {r: str(RUN_STATES[r]) for r in RUN_IDS}
    assert listed[0]["needs_a_person"] and not listed[-1]["needs_a_person"]

    paused = await call(client, "get_status", run="migrate-orm")  # by name, as the CLI takes it
    assert paused["id"] == RUN_PAUSED and paused["state"] == "paused" and paused["why"]
    assert paused["open_breakers"] == [OPEN_BREAKER]
    assert {b["name"]: b["state"] for b in paused["breakers"]}[OPEN_BREAKER] == "open"
    assert [a["id"] for a in paused["approvals_waiting"]] == [APPROVAL_BUDGET]
    assert paused["budget"]["caps"] == cli_json(home, "budget", RUN_PAUSED)["caps"]
    assert [f["id"] for f in paused["features"]] == [
        f["id"] for f in cli_json(home, "run", "show", RUN_PAUSED)["features"]
    ]
    assert paused["features_passing"] == sum(f["status"] == "pass" for f in paused["features"])
    assert paused["next_session"].keys() == {"at", "why", "held_until"}

    store = Store.open(home, create=False)
    try:
        active = runs.get_run(store, RUN_ACTIVE)
        told = await call(client, "rehydrate", run=RUN_ACTIVE)
        assert told["result"] == next_context(store, active)
        assert f"You resume from checkpoint {CP_HEAD} " in told["result"]
        earlier = (await call(client, "rehydrate", run=RUN_ACTIVE, checkpoint=CP_S1_END))["result"]
        assert f"You resume from checkpoint {CP_S1_END} " in earlier and earlier != told["result"]

        checkpoints = await call(client, "list_checkpoints", run=RUN_ACTIVE, limit=3)
        assert checkpoints["head_checkpoint_id"] == CP_HEAD and checkpoints["total"] == CP_HEAD
        every = cli_json(home, "checkpoints", RUN_ACTIVE)
        assert checkpoints["checkpoints"] == every[-3:]

        pending = (await call(client, "list_approvals"))["approvals"]
        assert [a["id"] for a in pending] == list(PENDING_APPROVALS)
        mine = (await call(client, "list_approvals", run=RUN_ACTIVE, include_decided=True))["approvals"]
        assert [a["id"] for a in mine] == [APPROVAL_DECIDED, APPROVAL_PUSH, APPROVAL_QUESTION]

        spec = await resource(client, f"longrun://runs/{RUN_DONE}/spec")
        assert spec["run_id"] == RUN_DONE and spec["spec"]["name"] == "docs-site"
        report = await resource(client, f"longrun://runs/{RUN_DONE}/report")
        assert report["summary"]["state"] == "done" and report["summary"]["chain"]["ok"]

        # The writes: each recorded in the store and its log with the client's name.
        denied = await call(
            client, "decide", approval=APPROVAL_PUSH, decision="deny", comment="not from here"
        )
        assert denied["state"] == "denied" and denied["decided_by"] == BY
        answered = await call(client, "answer", question=APPROVAL_QUESTION, text="short made-up sentences")
        assert answered["state"] == "answered" and answered["run"]["state"] == "scheduled"
        decisions = [e.data for e in log.read_events(store, RUN_ACTIVE, kinds=["approval_decided"])]
        assert {
            "approval_id": APPROVAL_PUSH,
            "state": "denied",
            "by": BY,
            "comment": "not from here",
        } in decisions
        assert {d["approval_id"]: d["by"] for d in decisions}[APPROVAL_QUESTION] == BY

        handoff = {"done": ["ported the models by hand"], "next": ["run the repository tests"], "notes": "n"}
        made = await call(client, "record_handoff", run=RUN_PAUSED, **handoff)
        assert made["reason"] == "handoff" and made["session_id"] is None
        assert made["handoff"] == {**handoff, "blockers": [], "by": BY}
        head = runs.get_run(store, RUN_PAUSED).head_checkpoint_id
        assert head == made["id"] and runs.get_checkpoint(store, head).handoff == made["handoff"]
        [said] = log.read_events(store, RUN_PAUSED, kinds=["handoff"])[-1:]
        assert said.data == {**made["handoff"], "checkpoint_id": made["id"]}
        assert (
            "## Handoff left outside a session" in (await call(client, "rehydrate", run=RUN_PAUSED))["result"]
        )

        noted = await call(client, "report_progress", run=RUN_DONE, note="checked the site by hand")
        [progress] = log.read_events(store, RUN_DONE, kinds=["progress"])
        assert progress.seq == noted["seq"] and progress.data == {
            "text": "checked the site by hand",
            "by": BY,
        }
    finally:
        store.close()
    verified = cli_json(home, "verify")
    assert verified["ok"], verified


@pytest.mark.timeout(300)
def test_every_tool_over_stdio_on_the_seeded_store(seeded: Path) -> None:
    async def main() -> None:
        async with over_stdio(seeded, "--allow-decisions") as client:
            await every_tool_on_the_seed(client, seeded)

    anyio.run(main)


@pytest.mark.timeout(300)
def test_every_tool_over_http_on_the_seeded_store(seeded: Path) -> None:
    with http_server(seeded, "--allow-decisions") as (url, token, _):
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")

        async def main() -> None:
            async with over_http(url, token) as client:
                await every_tool_on_the_seed(client, seeded)

        anyio.run(main)


def _made_run(cli: Any, write_spec: Any, sessions: list[list[dict[str, Any]]] | None = None) -> str:
    spec = write_spec(sessions or [[{"text": "Nothing to do."}]], features=[FEATURE])
    return str(json.loads(cli("run", "create", str(spec), "--json", check=True).stdout)["id"])


FEATURE = {"id": "hello", "description": "hello.txt exists.", "check": "test -f hello.txt"}


def _log_size(home: Path) -> dict[str, int]:
    store = Store.open(home, create=False)
    try:
        return {run.id: len(log.read_events(store, run.id)) for run in runs.list_runs(store)}
    finally:
        store.close()


@pytest.mark.timeout(300)
def test_a_bad_argument_is_refused_in_one_line_as_the_cli_says_it_and_changes_nothing(
    home: Path, cli: Any, write_spec: Any
) -> None:
    run_id = _made_run(cli, write_spec)
    before = _log_size(home)

    async def main() -> None:
        async with over_stdio(home) as client:  # no --allow-decisions
            assert {t.name for t in (await client.list_tools()).tools} == READS | WRITES
            said = await refusal(client, "decide", approval=1, decision="approve")
            assert "longrun mcp --allow-decisions" in said
            assert await refusal(client, "get_status", run="nope") == cli_error(home, "run", "show", "nope")
            assert await refusal(client, "answer", question=42, text="yes") == cli_error(
                home, "answer", "42", "yes"
            )
            assert await refusal(client, "rehydrate", run=run_id, checkpoint=999) == (
                f"no checkpoint 999 in run {run_id}"
            )
            assert await refusal(client, "answer", question="the first", text="yes") == (
                "answer: argument question: input should be a valid integer, "
                "unable to parse string as an integer"
            )
            assert (await refusal(client, "list_checkpoints", run=run_id, limit=0)).startswith(
                "list_checkpoints: argument limit: input should be greater than or equal to 1"
            )
            assert (
                await refusal(client, "record_handoff", run=run_id, done="all of it", next=[])
            ).startswith("record_handoff: argument done: input should be a valid list")
            assert await refusal(client, "record_handoff", run=run_id) == (
                "record_handoff: argument done: field required (and 1 more problem)"
            )
            assert await refusal(client, "record_handoff", run=run_id, done=[" "], next=[""]) == (
                "a handoff needs something in done, next, blockers or notes"
            )
            long = "x" * 2_001
            assert await refusal(client, "record_handoff", run=run_id, done=[long], next=[]) == (
                "handoff done item 1: at most 2,000 characters, found 2,001"
            )
            assert await refusal(client, "report_progress", run=run_id, note="  ") == (
                "a progress note needs some text"
            )
            assert await refusal(client, "no_such_tool") == "Unknown tool: no_such_tool"

    anyio.run(main)
    assert _log_size(home) == before


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def test_mcp_options_that_do_not_fit_are_usage_errors(home: Path) -> None:
    for args in (["mcp", "--port", "8123"], ["mcp", "--http", "--port", "99999"]):
        proc = subprocess.run([LONGRUN, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("longrun mcp: error:")


@pytest.mark.timeout(300)
def test_http_without_the_token_or_with_another_is_refused_and_the_token_is_kept_nowhere(
    home: Path, cli: Any, write_spec: Any
) -> None:
    run_id = _made_run(cli, write_spec)
    with http_server(home) as (url, token, proc):
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x"}},
        }
        accept = {"accept": "application/json, text/event-stream"}
        for headers in ({}, {"authorization": f"Bearer {token}x"}, {"authorization": token}):
            refused = httpx.post(url, json=hello, headers=accept | headers, timeout=60)
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.json()["error"] == "invalid_token"
        let_in = httpx.post(
            url, json=hello, headers=accept | {"authorization": f"Bearer {token}"}, timeout=60
        )
        assert let_in.status_code == 200

        async def main() -> None:
            with pytest.raises(ExceptionGroup) as given_up:
                async with over_http(url, "not-the-token") as client:
                    await client.list_tools()
            assert any(isinstance(e, MCPError) for e in _leaves(given_up.value)), given_up.value
            async with over_http(url, token) as client:
                status = await call(client, "get_status", run=run_id)
                assert status["state"] == "draft"
                await call(client, "report_progress", run=run_id, note="over http")

        anyio.run(main)
    assert proc.returncode is not None
    assert proc.stderr is not None and token not in proc.stderr.read()
    for path in home.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.timeout(300)
def test_rehydrate_gives_exactly_what_the_next_session_is_told_handoff_included(
    home: Path, cli: Any, write_spec: Any
) -> None:
    run_id = _made_run(cli, write_spec)
    store = Store.open(home, create=False)
    try:
        workspace = Path(runs.get_run(store, run_id).workspace)
    finally:
        store.close()
    (workspace / "hello.txt").write_text("hello, by hand\n")

    async def main() -> str:
        async with over_stdio(home) as client:
            await call(
                client, "record_handoff", run=run_id, done=["wrote hello.txt by hand"], next=["check it"]
            )
            return str((await call(client, "rehydrate", run=run_id))["result"])

    told = anyio.run(main)
    assert (
        "## Handoff left outside a session (by mcp:longrun-tests)\nDone:\n- wrote hello.txt by hand" in told
    )
    session = json.loads(cli("session", "run", run_id, "--json", check=True).stdout)
    store = Store.open(home, create=False)
    try:
        [context] = log.read_events(store, run_id, kinds=["context"])
        assert context.session_id == session["id"]
        assert context.data["text"] == told
        # The work done by hand was checkpointed, so the judge sees it.
        statuses = {v.feature_id: v.status for v in runs.run_verdicts(store, run_id)}
        assert statuses["hello"] == "pass"
    finally:
        store.close()


@pytest.mark.timeout(600)
def test_claude_code_with_longrun_mcp_reads_a_run_and_hands_work_off_into_it(
    home: Path, cli: Any, write_spec: Any, tmp_path: Path
) -> None:
    """The real Claude Code CLI, against the scripted model server, with `longrun mcp` as an MCP
    server of its config: the model's get_status and record_handoff calls reach the store."""
    sdk = pytest.importorskip("claude_agent_sdk")
    from longrun.scheduler.endpoints.scripted import ScriptedModelServer
    from longrun.scheduler.endpoints.scripted.script import script_from_data
    from longrun.scheduler.workers.claude_code.worker import CLI_FLAGS, SCRIPTED_KEY

    claude = Path(sdk.__file__).parent / "_bundled" / "claude"
    if not claude.is_file():
        pytest.skip("this claude-agent-sdk bundles no Claude Code CLI")
    run_id = _made_run(cli, write_spec)
    handoff = {"done": ["wrote hello.txt by hand"], "next": ["judge it"], "notes": "from Claude Code"}
    turns = [
        {"tool": "mcp__longrun__get_status", "input": {"run": run_id}},
        {"tool": "mcp__longrun__record_handoff", "input": {"run": run_id, **handoff}},
        {"text": "Handed off."},
    ]
    # Claude Code starts `longrun mcp` with its own environment; the server keeps this HOME (where
    # git finds the identity the run's workspace commits with), as a user's would be the same.
    server_entry = {"type": "stdio", "command": LONGRUN, "args": ["mcp", "--home", str(home)]}
    config = {"mcpServers": {"longrun": server_entry | {"env": {"HOME": os.environ["HOME"]}}}}
    user_home = tmp_path / "user-home"  # the CLI keeps its state under $HOME/.claude: a fresh one
    user_home.mkdir()
    with ScriptedModelServer(script_from_data({"sessions": [{"turns": turns}]})) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))},
            **CLI_FLAGS,
            "HOME": str(user_home),
            "ANTHROPIC_BASE_URL": server.base_url,
            "ANTHROPIC_API_KEY": SCRIPTED_KEY,
        }
        proc = subprocess.run(
            [
                str(claude),
                "--print",
                f"Look at run {run_id} and hand off the work I did by hand.",
                "--mcp-config",
                json.dumps(config),
                "--strict-mcp-config",
                "--allowedTools",
                "mcp__longrun__get_status,mcp__longrun__record_handoff",
                "--output-format",
                "stream-json",
                "--verbose",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
        )
        requests = list(server.requests)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [result] = [m for m in map(json.loads, proc.stdout.splitlines()) if m.get("type") == "result"]
    assert result["subtype"] == "success" and result["result"] == "Handed off.", result

    # What the model was told by each tool: the run's status, then the checkpoint it made.
    results = [
        block
        for request in requests
        for message in request.get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    said = {block["tool_use_id"]: json.dumps(block.get("content")) for block in results}
    assert len(said) == 2 and not any(block.get("is_error") for block in results), said
    status, made = said.values()
    assert f'\\"id\\": \\"{run_id}\\"' in status or f'\\"id\\":\\"{run_id}\\"' in status
    assert "draft" in status and "handoff" in made

    # The run shows the handoff: a checkpoint with it is the run's head, and the log says who.
    checkpoints = json.loads(cli("checkpoints", run_id, "--json", check=True).stdout)
    assert checkpoints[-1]["reason"] == "handoff" and checkpoints[-1]["handoff"] == {
        **handoff,
        "blockers": [],
        "by": "mcp:claude-code",
    }
    store = Store.open(home, create=False)
    try:
        assert runs.get_run(store, run_id).head_checkpoint_id == checkpoints[-1]["id"]
        [event] = log.read_events(store, run_id, kinds=["handoff"])
        assert event.data["by"].startswith("mcp:") and "claude" in event.data["by"], event.data
        assert log.verify_chain(store, run_id).ok
    finally:
        store.close()
