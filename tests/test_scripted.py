"""The scripted model server, driven through the real anthropic SDK, and the demo it plays."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest
from longrun.scheduler.demo import DEMO_SPEC, write_demo_project
from longrun.scheduler.scripted import (
    FALLBACK_TEXT,
    Script,
    ScriptedModelServer,
    builtin_scripts,
    load_script,
    script_from_data,
)
from longrun.store.errors import LongrunError, ScriptError

MODEL = "claude-scripted-test"


def make_script(*sessions: list[dict[str, Any]], loop: bool = False) -> Script:
    return script_from_data({"sessions": [{"loop": loop, "turns": turns} for turns in sessions]})


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedModelServer] = []

    def start(script: Script, **kwargs: Any) -> ScriptedModelServer:
        server = ScriptedModelServer(script, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client(server: ScriptedModelServer, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key="test-key", base_url=server.base_url, **kwargs)


def ask(
    sdk: anthropic.Anthropic, messages: list[dict[str, Any]] | str, **kwargs: Any
) -> anthropic.types.Message:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return sdk.messages.create(model=MODEL, max_tokens=1024, messages=messages, **kwargs)


def follow_up(
    messages: list[dict[str, Any]], reply: anthropic.types.Message, result: str = "ok"
) -> list[dict[str, Any]]:
    """The conversation after `reply`, answered with one tool result per tool call (or text)."""
    results: list[dict[str, Any]] = [
        {"type": "tool_result", "tool_use_id": block.id, "content": result}
        for block in reply.content
        if block.type == "tool_use"
    ]
    return [
        *messages,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in reply.content]},
        {"role": "user", "content": results or result},
    ]


TOOL_TURN = {"text": "Let me look around.", "tool": "bash", "input": {"command": "ls -la"}}


# --- replies through the SDK ---------------------------------------------------------------


def test_tool_call_turn_comes_back_as_tool_use_with_usage(serve: Any) -> None:
    server = serve(make_script([TOOL_TURN]))
    reply = ask(client(server), "Build it.")
    assert [block.type for block in reply.content] == ["text", "tool_use"]
    assert reply.content[0].text == "Let me look around."
    tool_use = reply.content[1]
    assert (tool_use.name, tool_use.input) == ("bash", {"command": "ls -la"})
    assert tool_use.id.startswith("toolu_")
    assert reply.stop_reason == "tool_use"
    assert reply.model == MODEL and reply.id.startswith("msg_scripted_")
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.cache_read_input_tokens == 0  # nothing is cached before the first request


def test_text_turn_ends_the_turn_and_parallel_calls_have_unique_ids(serve: Any) -> None:
    parallel = {
        "tools": [
            {"tool": "read", "input": {"file_path": "a.py"}},
            {"tool": "glob", "input": {"pattern": "*"}},
        ]
    }
    server = serve(make_script([parallel, {"text": "All done."}]))
    sdk = client(server)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Go."}]
    first = ask(sdk, messages)
    assert [(block.name, block.input) for block in first.content] == [
        ("read", {"file_path": "a.py"}),
        ("glob", {"pattern": "*"}),
    ]
    assert len({block.id for block in first.content}) == 2
    second = ask(sdk, follow_up(messages, first))
    assert second.stop_reason == "end_turn"
    assert [block.type for block in second.content] == ["text"] and second.content[0].text == "All done."


def test_later_requests_read_the_prefix_from_cache(serve: Any) -> None:
    server = serve(make_script([TOOL_TURN, TOOL_TURN]))
    sdk = client(server)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Build it. " * 50}]
    first = ask(sdk, messages, system="You are careful.")
    messages = follow_up(messages, first, result="x" * 400)
    second = ask(sdk, messages, system="You are careful.")
    counted = sdk.messages.count_tokens(
        model=MODEL, messages=messages, system="You are careful."
    ).input_tokens
    usage = second.usage
    assert usage.cache_read_input_tokens == first.usage.input_tokens  # the whole first request
    assert usage.input_tokens >= 100  # the 400-character tool result is new
    assert usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens == counted


def test_a_turn_usage_overrides_the_estimate(serve: Any) -> None:
    turn = dict(TOOL_TURN, usage={"input_tokens": 1200, "cache_read_input_tokens": 7})
    reply = ask(client(serve(make_script([turn]))), "Go.")
    assert (reply.usage.input_tokens, reply.usage.cache_read_input_tokens) == (1200, 7)
    assert reply.usage.output_tokens > 0  # not overridden: still estimated


def test_a_turn_can_set_its_stop_reason(serve: Any) -> None:
    reply = ask(client(serve(make_script([{"text": "Cut off mid", "stop_reason": "max_tokens"}]))), "Go.")
    assert reply.stop_reason == "max_tokens"


# --- which session and which turn ---------------------------------------------------------------


def test_new_conversations_take_the_next_session(serve: Any) -> None:
    script = make_script([{"text": "one-a"}, {"text": "one-b"}], [{"text": "two-a"}])
    sdk = client(serve(script))
    first_messages: list[dict[str, Any]] = [{"role": "user", "content": "session one"}]
    first = ask(sdk, first_messages)
    other = ask(sdk, "session two")
    # The agent moves its cache breakpoint; the first message is still the same conversation.
    marked = [{"type": "text", "text": "session one", "cache_control": {"type": "ephemeral"}}]
    again = ask(sdk, follow_up([{"role": "user", "content": marked}], first))
    beyond = ask(sdk, "session three")
    assert [first.content[0].text, other.content[0].text, again.content[0].text] == [
        "one-a",
        "two-a",
        "one-b",
    ]
    assert beyond.content[0].text == FALLBACK_TEXT and beyond.stop_reason == "end_turn"


def test_first_session_picks_where_a_new_server_starts(serve: Any) -> None:
    script = make_script([{"text": "first"}], [{"text": "second"}])
    reply = ask(client(serve(script, first_session=1)), "resume")
    assert reply.content[0].text == "second"


def test_loop_repeats_the_turns_and_a_plain_session_runs_out(serve: Any) -> None:
    looped = make_script([{"text": "tick"}, {"text": "tock"}], loop=True)
    plain = make_script([{"text": "tick"}])
    for script, expected in ((looped, ["tick", "tock", "tick", "tock"]), (plain, ["tick", FALLBACK_TEXT])):
        sdk = client(serve(script))
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Go."}]
        texts = []
        for _ in expected:
            reply = ask(sdk, messages)
            texts.append(reply.content[0].text)
            messages = follow_up(messages, reply, result="next")
        assert texts == expected


# --- errors and retries --------------------------------------------------------------------------


def test_rate_limit_turn_raises_with_retry_and_reset_headers(serve: Any) -> None:
    server = serve(make_script([{"error": 429, "retry_after": "30s"}]))
    before = datetime.now(UTC)
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client(server), "Go.")
    headers = caught.value.response.headers
    assert headers["retry-after"] == "30"
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        reset = datetime.fromisoformat(headers[f"anthropic-ratelimit-{name}-reset"])
        assert 29 <= (reset - before).total_seconds() <= 40


def test_sdk_retries_past_a_500_turn_and_gets_the_next_turn(serve: Any) -> None:
    server = serve(make_script([{"error": 500, "retry_after": 0.05}, {"text": "recovered"}]))
    reply = ask(client(server, max_retries=2), "Go.")
    assert reply.content[0].text == "recovered"
    assert len(server.requests) == 2


def test_should_retry_false_stops_the_sdk_retrying(serve: Any) -> None:
    server = serve(make_script([{"error": 529, "should_retry": False}, {"text": "never reached"}]))
    with pytest.raises(anthropic.OverloadedError) as caught:
        ask(client(server, max_retries=2), "Go.")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(server.requests) == 1


def test_delay_makes_a_slow_model(serve: Any) -> None:
    server = serve(make_script([{"text": "slow", "delay": "0.3s"}]))
    started = time.monotonic()
    reply = ask(client(server), "Go.")
    assert time.monotonic() - started >= 0.3
    assert reply.content[0].text == "slow"


def test_a_slow_turn_does_not_block_other_requests(serve: Any) -> None:
    server = serve(make_script([{"text": "slow", "delay": 1.5}], [{"text": "fast"}]))
    sdk = client(server)
    slow = threading.Thread(target=ask, args=(sdk, "slow one"))
    slow.start()
    while not server.requests:  # the slow request must take session 1 first
        time.sleep(0.01)
    assert ask(sdk, "fast one").content[0].text == "fast"
    assert slow.is_alive()
    slow.join()


# --- streaming, async, count_tokens ------------------------------------------------------------


def test_streaming_gives_text_and_tool_use(serve: Any) -> None:
    long_text = "Let me look around the workspace before I change anything at all."
    tool_turn = {
        "text": long_text,
        "tool": "write",
        "input": {"file_path": "a.py", "content": "print('hi')\n" * 5},
    }
    server = serve(make_script([tool_turn, {"text": "Done."}]))
    sdk = client(server)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Go."}]
    with sdk.messages.stream(model=MODEL, max_tokens=1024, messages=messages) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == long_text
    assert message.stop_reason == "tool_use"
    assert message.content[1].type == "tool_use" and message.content[1].input == tool_turn["input"]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 1
    with sdk.messages.stream(model=MODEL, max_tokens=1024, messages=follow_up(messages, message)) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Done." and final.stop_reason == "end_turn"


def test_async_client_creates_and_streams(serve: Any) -> None:
    server = serve(make_script([{"text": "async one"}], [TOOL_TURN]))

    async def run() -> tuple[anthropic.types.Message, anthropic.types.Message]:
        sdk = anthropic.AsyncAnthropic(api_key="test-key", base_url=server.base_url, max_retries=0)
        created = await sdk.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "one"}]
        )
        async with sdk.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "two"}]
        ) as stream:
            streamed = await stream.get_final_message()
        await sdk.close()
        return created, streamed

    created, streamed = asyncio.run(run())
    assert created.content[0].text == "async one"
    assert streamed.content[1].input == {"command": "ls -la"}


def test_count_tokens_estimates_four_characters_a_token(serve: Any) -> None:
    sdk = client(serve(make_script([{"text": "hi"}])))
    short = sdk.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x"}]).input_tokens
    long = sdk.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 4000}]
    ).input_tokens
    assert short > 0 and long - short == 1000


# --- scripts and their errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[sessions]\n", "loop.toml: not valid TOML"),
        (
            "[[sessions]]\n[[sessions.turns]]\ntext = 'hi'\ntol = 'bash'\n",
            "loop.toml: sessions[1].turns[1].tol: unknown key",
        ),
        (
            "[[sessions]]\n[[sessions.turns]]\ntext = 'hi'\n[[sessions.turns]]\ntext = 'a'\n"
            "[[sessions.turns]]\ntext = 'b'\n[[sessions.turns]]\ntool = 3\n",
            "loop.toml: sessions[1].turns[4].tool: expected a string, found 3",
        ),
        (
            "[[sessions]]\n[[sessions.turns]]\ntool = 'bash'\nerror = 429\n",
            "loop.toml: sessions[1].turns[1]: a turn cannot have both error and tool",
        ),
        ("[[sessions]]\nloop = true\n", "loop.toml: sessions[1].turns: is required"),
        (
            "[[sessions]]\n[[sessions.turns]]\ntext = 'hi'\ndelay = 'soon'\n",
            "loop.toml: sessions[1].turns[1].delay:",
        ),
        ("[[sessions]]\n[[sessions.turns]]\nerror = 200\n", "loop.toml: sessions[1].turns[1].error:"),
    ],
    ids=["bad-toml", "unknown-key", "wrong-type", "tool-and-error", "no-turns", "bad-duration", "bad-status"],
)
def test_bad_scripts_give_one_line_errors_with_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "loop.toml").write_text(text)
    with pytest.raises(ScriptError) as caught:
        load_script("loop.toml", base_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_unknown_builtin_name_lists_the_builtins() -> None:
    with pytest.raises(ScriptError) as caught:
        load_script("no-such-script")
    assert "no-such-script" in str(caught.value) and "demo" in str(caught.value)
    assert "demo" in builtin_scripts()


def test_json_scripts_load_and_durations_parse(tmp_path: Path) -> None:
    data = {
        "sessions": [{"turns": [{"text": "hi", "delay": "1.5m"}, {"error": 429, "retry_after": "250ms"}]}]
    }
    (tmp_path / "s.json").write_text(json.dumps(data))
    script = load_script(str(tmp_path / "s.json"))
    turns = script.sessions[0].turns
    assert (turns[0].delay, turns[1].retry_after) == (90.0, 0.25)


# --- the command ---------------------------------------------------------------------------------


def test_command_prints_its_url_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("[[sessions]]\n[[sessions.turns]]\ntext = 'from the command'\n")
    command = [sys.executable, "-m", "longrun.scheduler.scripted", "--script", "s.toml"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "the command printed no URL"
        url = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
        sdk = anthropic.Anthropic(api_key="test-key", base_url=url, max_retries=0)
        assert ask(sdk, "Go.").content[0].text == "from the command"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_exits_2_with_one_line_on_a_bad_script(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[sessions]]\n[[sessions.turns]]\ntool = 3\n")
    command = [sys.executable, "-m", "longrun.scheduler.scripted", "--script", "bad.toml"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.toml: sessions[1].turns[1].tool: expected a string" in lines[0]


# --- the demo project and the demo script -----------------------------------------------------------


def test_write_demo_project_lays_out_spec_and_workspace(tmp_path: Path) -> None:
    spec_path = write_demo_project(tmp_path / "demo", overrides={"session": {"time_box": "1m"}})
    assert spec_path == tmp_path / "demo" / "longrun.toml"
    spec = tomllib.loads(spec_path.read_text())
    assert spec["session"] == {"time_box": "1m", "wrap_up": "30s", "checkpoint_every_calls": 4}
    assert {key: value for key, value in spec.items() if key != "session"} == {
        key: value for key, value in DEMO_SPEC.items() if key != "session"
    }
    assert spec["worker"]["backend"] == "scripted" and spec["worker"]["script"] == "demo"
    workspace = tmp_path / "demo" / "workspace"
    for name in (
        "README.md",
        "tests/test_word_count.py",
        "tests/test_top_words.py",
        "tests/test_reading_time.py",
    ):
        assert (workspace / name).is_file()
    assert not (workspace / "textstats.py").exists() and not (workspace / ".git").exists()
    with pytest.raises(LongrunError, match="not empty"):
        write_demo_project(tmp_path / "demo")


def apply_file_operations(workspace: Path, turns: list[Any]) -> None:
    """Do what the agent's write and edit tools would do for these turns."""
    for turn in turns:
        for call in turn.calls():
            if call.tool == "write":
                (workspace / call.input["file_path"]).write_text(call.input["content"])
            elif call.tool == "edit":
                path = workspace / call.input["file_path"]
                text = path.read_text()
                old, new = call.input["old_string"], call.input["new_string"]
                assert text.count(old) == 1 or call.input.get("replace_all"), f"edit does not apply: {old!r}"
                path.write_text(text.replace(old, new))


def feature_results(workspace: Path) -> dict[str, bool]:
    """Run each feature's test file as the judge would; True where it passes."""
    # Plugins of this virtualenv (Textual snapshots, hypothesis) only slow the start-up down.
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    processes = {
        feature: subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/test_{feature}.py"],
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for feature in ("word_count", "top_words", "reading_time")
    }
    return {feature: process.wait(timeout=60) == 0 for feature, process in processes.items()}


def test_demo_script_builds_textstats_in_two_sessions(tmp_path: Path) -> None:
    script = load_script("demo")
    assert len(script.sessions) == 2
    delays = sum(turn.delay for session in script.sessions for turn in session.turns)
    assert 0 < delays <= 5
    workspace = write_demo_project(tmp_path / "demo").parent / "workspace"
    first, second = script.sessions

    apply_file_operations(workspace, first.turns)
    assert feature_results(workspace) == {"word_count": True, "top_words": False, "reading_time": False}
    handoff = next(call for turn in first.turns for call in turn.calls() if call.tool == "handoff")
    assert handoff.input["done"] == ["word_count"]

    apply_file_operations(workspace, second.turns)
    assert feature_results(workspace) == {"word_count": True, "top_words": True, "reading_time": True}
    for session in (first, second):
        assert session.turns[-1].text and not session.turns[-1].calls()  # each session ends in text
        assert any(
            "git commit" in call.input.get("command", "") for turn in session.turns for call in turn.calls()
        )
