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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, ToolUseBlock

from longrun.scheduler.demo import DEMO_SPEC, write_demo_project
from longrun.scheduler.endpoints.scripted import (
    FALLBACK_TEXT,
    JUDGE_FALLBACK_TEXT,
    Script,
    ScriptedModelServer,
    Turn,
    builtin_scripts,
    load_script,
    script_from_data,
)
from longrun.store.errors import LongrunError, ScriptError

MODEL = "claude-scripted-test"
TOOL_TURN = {"text": "Let me look around.", "tool": "bash", "input": {"command": "ls -la"}}

Serve = Callable[..., ScriptedModelServer]


def make_script(*sessions: list[dict[str, Any]], loop: bool = False) -> Script:
    return script_from_data({"sessions": [{"loop": loop, "turns": turns} for turns in sessions]})


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start servers for a test and stop them all after it."""
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


def ask(sdk: anthropic.Anthropic, messages: list[Any] | str, **kwargs: Any) -> Message:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return sdk.messages.create(model=MODEL, max_tokens=1024, messages=messages, **kwargs)


def text_of(reply: Message) -> str:
    return "".join(block.text for block in reply.content if block.type == "text")


def tool_uses(reply: Message) -> list[ToolUseBlock]:
    return [block for block in reply.content if isinstance(block, ToolUseBlock)]


def follow_up(messages: list[Any], reply: Message, result: str = "ok") -> list[Any]:
    """The conversation after `reply`, answered with one tool result per tool call (or text)."""
    results = [
        {"type": "tool_result", "tool_use_id": call.id, "content": result} for call in tool_uses(reply)
    ]
    return [
        *messages,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in reply.content]},
        {"role": "user", "content": results or result},
    ]


# --- replies through the SDK ---------------------------------------------------------------


def test_tool_call_turn_comes_back_as_tool_use_with_usage(serve: Serve) -> None:
    reply = ask(client(serve(make_script([TOOL_TURN]))), "Build it.")
    assert [block.type for block in reply.content] == ["text", "tool_use"]
    assert text_of(reply) == "Let me look around."
    [call] = tool_uses(reply)
    assert (call.name, call.input) == ("bash", {"command": "ls -la"})
    assert call.id.startswith("toolu_")
    assert reply.stop_reason == "tool_use"
    assert reply.model == MODEL and reply.id.startswith("msg_scripted_")
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.cache_read_input_tokens == 0  # nothing is cached before the first request


def test_text_turn_ends_the_turn_and_parallel_calls_have_unique_ids(serve: Serve) -> None:
    calls = [{"tool": "read", "input": {"file_path": "a.py"}}, {"tool": "glob", "input": {"pattern": "*"}}]
    sdk = client(serve(make_script([{"tools": calls}, {"text": "All done."}])))
    messages: list[Any] = [{"role": "user", "content": "Go."}]
    first = ask(sdk, messages)
    assert [(call.name, call.input) for call in tool_uses(first)] == [
        ("read", {"file_path": "a.py"}),
        ("glob", {"pattern": "*"}),
    ]
    assert len({call.id for call in tool_uses(first)}) == 2
    second = ask(sdk, follow_up(messages, first))
    assert second.stop_reason == "end_turn"
    assert [block.type for block in second.content] == ["text"] and text_of(second) == "All done."


def test_later_requests_read_the_prefix_from_cache(serve: Serve) -> None:
    sdk = client(serve(make_script([TOOL_TURN, TOOL_TURN])))
    system = "You are careful."
    messages: list[Any] = [{"role": "user", "content": "Build it. " * 50}]
    first = ask(sdk, messages, system=system)
    messages = follow_up(messages, first, result="x" * 400)
    second = ask(sdk, messages, system=system)
    counted = sdk.messages.count_tokens(model=MODEL, messages=messages, system=system).input_tokens
    usage = second.usage
    assert usage.cache_read_input_tokens == first.usage.input_tokens  # the whole first request
    assert usage.input_tokens >= 100  # the 400-character tool result is new
    total = (
        usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    )
    assert total == counted


def test_a_turn_usage_overrides_the_estimate(serve: Serve) -> None:
    turn = dict(TOOL_TURN, usage={"input_tokens": 1200, "cache_read_input_tokens": 7})
    reply = ask(client(serve(make_script([turn]))), "Go.")
    assert (reply.usage.input_tokens, reply.usage.cache_read_input_tokens) == (1200, 7)
    assert reply.usage.output_tokens > 0  # not overridden: still estimated


def test_a_turn_can_set_its_stop_reason(serve: Serve) -> None:
    reply = ask(client(serve(make_script([{"text": "Cut off mid", "stop_reason": "max_tokens"}]))), "Go.")
    assert reply.stop_reason == "max_tokens"


# --- which session and which turn ---------------------------------------------------------------


def test_new_conversations_take_the_next_session(serve: Serve) -> None:
    sdk = client(serve(make_script([{"text": "one-a"}, {"text": "one-b"}], [{"text": "two-a"}])))
    first = ask(sdk, "session one")
    other = ask(sdk, "session two")
    # The agent moves its cache breakpoint; the first message is still the same conversation.
    marked = [{"type": "text", "text": "session one", "cache_control": {"type": "ephemeral"}}]
    again = ask(sdk, follow_up([{"role": "user", "content": marked}], first))
    beyond = ask(sdk, "session three")
    assert [text_of(first), text_of(other), text_of(again)] == ["one-a", "two-a", "one-b"]
    assert text_of(beyond) == FALLBACK_TEXT and beyond.stop_reason == "end_turn"


def test_first_session_picks_where_a_new_server_starts(serve: Serve) -> None:
    script = make_script([{"text": "first"}], [{"text": "second"}])
    assert text_of(ask(client(serve(script, first_session=1)), "resume")) == "second"


def test_loop_repeats_the_turns_and_a_plain_session_runs_out(serve: Serve) -> None:
    looped = make_script([{"text": "tick"}, {"text": "tock"}], loop=True)
    plain = make_script([{"text": "tick"}])
    for script, expected in ((looped, ["tick", "tock", "tick", "tock"]), (plain, ["tick", FALLBACK_TEXT])):
        sdk = client(serve(script))
        messages: list[Any] = [{"role": "user", "content": "Go."}]
        texts = []
        for _ in expected:
            reply = ask(sdk, messages)
            texts.append(text_of(reply))
            messages = follow_up(messages, reply, result="next")
        assert texts == expected


# --- errors and retries --------------------------------------------------------------------------


def test_rate_limit_turn_raises_with_retry_and_reset_headers(serve: Serve) -> None:
    server = serve(make_script([{"error": 429, "retry_after": "30s"}]))
    before = datetime.now(UTC)
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client(server), "Go.")
    headers = caught.value.response.headers
    assert headers["retry-after"] == "30"
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        reset = datetime.fromisoformat(headers[f"anthropic-ratelimit-{name}-reset"])
        assert 29 <= (reset - before).total_seconds() <= 40


def test_sdk_retries_past_a_500_turn_and_gets_the_next_turn(serve: Serve) -> None:
    server = serve(make_script([{"error": 500, "retry_after": 0.05}, {"text": "recovered"}]))
    assert text_of(ask(client(server, max_retries=2), "Go.")) == "recovered"
    assert len(server.requests) == 2


def test_should_retry_false_stops_the_sdk_retrying(serve: Serve) -> None:
    server = serve(make_script([{"error": 529, "should_retry": False}, {"text": "never reached"}]))
    with pytest.raises(anthropic.OverloadedError) as caught:
        ask(client(server, max_retries=2), "Go.")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(server.requests) == 1


def test_delay_makes_a_slow_model(serve: Serve) -> None:
    server = serve(make_script([{"text": "slow", "delay": "0.3s"}]))
    started = time.monotonic()
    reply = ask(client(server), "Go.")
    assert time.monotonic() - started >= 0.3
    assert text_of(reply) == "slow"


def test_a_slow_turn_does_not_block_other_requests(serve: Serve) -> None:
    server = serve(make_script([{"text": "slow", "delay": 1.5}], [{"text": "fast"}]))
    sdk = client(server)
    slow = threading.Thread(target=ask, args=(sdk, "slow one"))
    slow.start()
    while not server.requests:  # the slow request must take session 1 first
        time.sleep(0.01)
    assert text_of(ask(sdk, "fast one")) == "fast"
    assert slow.is_alive()
    slow.join()


# --- streaming, async, count_tokens ------------------------------------------------------------


def test_streaming_gives_text_and_tool_use(serve: Serve) -> None:
    long_text = "Let me look around the workspace before I change anything at all."
    write = {"file_path": "a.py", "content": "print('hi')\n" * 5}
    sdk = client(
        serve(make_script([{"text": long_text, "tool": "write", "input": write}, {"text": "Done."}]))
    )
    messages: list[Any] = [{"role": "user", "content": "Go."}]
    with sdk.messages.stream(model=MODEL, max_tokens=1024, messages=messages) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == long_text
    assert message.stop_reason == "tool_use"
    assert [(call.name, call.input) for call in tool_uses(message)] == [("write", write)]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 1
    with sdk.messages.stream(model=MODEL, max_tokens=1024, messages=follow_up(messages, message)) as stream:
        final = stream.get_final_message()
    assert text_of(final) == "Done." and final.stop_reason == "end_turn"


def test_async_client_creates_and_streams(serve: Serve) -> None:
    server = serve(make_script([{"text": "async one"}], [TOOL_TURN]))

    async def run() -> tuple[Message, Message]:
        sdk = anthropic.AsyncAnthropic(api_key="test-key", base_url=server.base_url, max_retries=0)
        one: list[Any] = [{"role": "user", "content": "one"}]
        created = await sdk.messages.create(model=MODEL, max_tokens=64, messages=one)
        two: list[Any] = [{"role": "user", "content": "two"}]
        async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=two) as stream:
            streamed = await stream.get_final_message()
        await sdk.close()
        return created, streamed

    created, streamed = asyncio.run(run())
    assert text_of(created) == "async one"
    assert [call.input for call in tool_uses(streamed)] == [{"command": "ls -la"}]


def test_count_tokens_estimates_four_characters_a_token(serve: Serve) -> None:
    sdk = client(serve(make_script([{"text": "hi"}])))

    def count(content: str) -> int:
        return sdk.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": content}]
        ).input_tokens

    assert count("x") > 0 and count("x" * 4001) - count("x") == 1000


# --- judge requests ------------------------------------------------------------------------------

STRUCTURED = {"format": {"type": "json_schema", "schema": {"type": "object"}}}


def test_judge_requests_take_the_first_matching_judge_reply_and_stream(serve: Serve) -> None:
    judges = [
        {"match": ["alpha", "beta"], "verdict": {"verdict": "pass", "rationale": "both are there"}},
        {"match": "alpha", "text": "only alpha", "usage": {"output_tokens": 77}},
    ]
    script = script_from_data({"sessions": [{"turns": [{"text": "worker"}]}], "judges": judges})
    sdk = client(serve(script))

    def judge(content: str) -> tuple[str, Message]:
        messages: list[Any] = [{"role": "user", "content": content}]
        raw = sdk.messages.with_raw_response.create(
            model=MODEL, max_tokens=256, messages=messages, output_config=STRUCTURED
        )
        return raw.headers["x-longrun-scripted-turn"], raw.parse()

    label, both = judge("beta then alpha")
    assert label == "judge.1"
    verdict = {"verdict": "pass", "confidence": 0.9, "rationale": "both are there", "criteria": []}
    assert json.loads(text_of(both)) == verdict
    label, alpha = judge("alpha alone")
    assert (label, text_of(alpha), alpha.usage.output_tokens) == ("judge.2", "only alpha", 77)
    label, neither = judge("gamma")
    assert (label, text_of(neither)) == ("judge.fallback", JUDGE_FALLBACK_TEXT)
    messages: list[Any] = [{"role": "user", "content": "beta then alpha"}]
    with sdk.messages.stream(
        model=MODEL, max_tokens=256, messages=messages, output_config=STRUCTURED
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and json.loads(text_of(final)) == verdict
    assert text_of(ask(sdk, "beta then alpha")) == "worker"  # the same text, unstructured: a worker turn


# --- scripts and their errors ----------------------------------------------------------------------

ONE_TURN = "[[sessions]]\n[[sessions.turns]]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[sessions]\n", "loop.toml: not valid TOML"),
        (ONE_TURN + "text = 'hi'\ntol = 'bash'\n", "loop.toml: sessions[1].turns[1].tol: unknown key"),
        (
            ONE_TURN
            + "text = 'hi'\n"
            + "[[sessions.turns]]\ntext = 'more'\n" * 2
            + "[[sessions.turns]]\ntool = 3\n",
            "loop.toml: sessions[1].turns[4].tool: expected a string, found 3",
        ),
        (
            ONE_TURN + "tool = 'bash'\nerror = 429\n",
            "loop.toml: sessions[1].turns[1]: a turn cannot have both",
        ),
        ("[[sessions]]\nloop = true\n", "loop.toml: sessions[1].turns: is required"),
        (ONE_TURN + "text = 'hi'\ndelay = 'soon'\n", "loop.toml: sessions[1].turns[1].delay:"),
        (ONE_TURN + "error = 200\n", "loop.toml: sessions[1].turns[1].error:"),
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
    turns = [{"text": "hi", "delay": "1.5m"}, {"error": 429, "retry_after": "250ms"}]
    (tmp_path / "s.json").write_text(json.dumps({"sessions": [{"turns": turns}]}))
    loaded = load_script(str(tmp_path / "s.json")).sessions[0].turns
    assert (loaded[0].delay, loaded[1].retry_after) == (90.0, 0.25)


# --- the command ---------------------------------------------------------------------------------


def test_command_prints_its_url_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(ONE_TURN + "text = 'from the command'\n")
    command = [sys.executable, "-m", "longrun.scheduler.endpoints.scripted", "--script", "s.toml"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout.fileno()], [], [], 20)
        assert ready, "the command printed no URL"
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        sdk = anthropic.Anthropic(api_key="test-key", base_url=url, max_retries=0)
        assert text_of(ask(sdk, "Go.")) == "from the command"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_exits_2_with_one_line_on_a_bad_script(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(ONE_TURN + "tool = 3\n")
    command = [sys.executable, "-m", "longrun.scheduler.endpoints.scripted", "--script", "bad.toml"]
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
    assert spec == dict(DEMO_SPEC, session=spec["session"])
    assert spec["worker"]["backend"] == "scripted" and spec["worker"]["script"] == "demo"
    workspace = tmp_path / "demo" / "workspace"
    for feature in ("word_count", "top_words", "reading_time"):
        assert (workspace / "tests" / f"test_{feature}.py").is_file()
    assert (workspace / "README.md").is_file()
    assert not (workspace / "textstats.py").exists() and not (workspace / ".git").exists()
    with pytest.raises(LongrunError, match="not empty"):
        write_demo_project(tmp_path / "demo")


def apply_file_operations(workspace: Path, turns: list[Turn]) -> None:
    """Do what the agent's write and edit tools would do for these turns."""
    for turn in turns:
        for call in turn.calls():
            path = workspace / str(call.input.get("file_path"))
            if call.tool == "write":
                path.write_text(call.input["content"])
            elif call.tool == "edit":
                text, old, new = path.read_text(), call.input["old_string"], call.input["new_string"]
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
    assert len(script.sessions) == 4 and script.after_last == "repeat"
    assert 0 < sum(turn.delay for turn in script.sessions[0].turns + script.sessions[1].turns) <= 5
    workspace = write_demo_project(tmp_path / "demo").parent / "workspace"
    first, second, after_push, _ = script.sessions

    apply_file_operations(workspace, first.turns)
    assert feature_results(workspace) == {"word_count": True, "top_words": False, "reading_time": False}
    handoff = next(call for turn in first.turns for call in turn.calls() if call.tool == "handoff")
    assert handoff.input["done"] == ["word_count"]

    apply_file_operations(workspace, second.turns)
    assert feature_results(workspace) == {"word_count": True, "top_words": True, "reading_time": True}
    for session in (first, second):
        commands = [call.input.get("command", "") for turn in session.turns for call in turn.calls()]
        assert any("git commit" in command for command in commands)
    assert first.turns[-1].text and not first.turns[-1].calls()  # it ends in text
    # Session 2 ends on a push, which the default approval rules ask about; session 3 goes on
    # from that call's result and hands off.
    assert second.turns[-1].calls()[0].input["command"].startswith("git push")
    assert [call.tool for turn in after_push.turns for call in turn.calls()] == ["handoff"]
    assert after_push.turns[-1].text and not after_push.turns[-1].calls()


def test_the_demo_scripts_recovery_session_finishes_from_any_state(tmp_path: Path) -> None:
    """Session 3 (and every later one) finishes the work even when earlier sessions were lost."""
    recovery = load_script("demo").sessions[-1]
    for lost in (0, 1):  # nothing was written, or only session 1's work survived
        workspace = write_demo_project(tmp_path / f"demo{lost}").parent / "workspace"
        if lost:
            apply_file_operations(workspace, load_script("demo").sessions[0].turns)
        apply_file_operations(workspace, recovery.turns)
        assert feature_results(workspace) == {"word_count": True, "top_words": True, "reading_time": True}


def test_after_last_repeat_plays_the_last_session_again() -> None:
    script = script_from_data(
        {"after_last": "repeat", "sessions": [{"turns": [{"text": "one"}]}, {"turns": [{"text": "last"}]}]}
    )
    with ScriptedModelServer(script, first_session=5) as server:
        client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
        reply = client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "a new conversation"}]
        )
    assert reply.content[0].text == "last"
