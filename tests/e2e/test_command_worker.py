"""The command backend with real commands: shell scripts and the shipped Python agent (the real
anthropic SDK, through the real metering proxy, against the scripted model server), in the real
sandbox, judged by the real judge, supervised by the real supervisor."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from longrun.scheduler import control
from longrun.scheduler.control import answer, create_run_from_file, run_session_now
from longrun.scheduler.session.sandbox import SandboxUnavailable, require_bwrap
from longrun.scheduler.supervisor.daemon import SupervisorConfig, supervise_until_finished
from longrun.scheduler.workers.command import EXAMPLES
from longrun.store import log, runs
from longrun.store.db import Store

FAST = SupervisorConfig(max_concurrent=2, tick=0.3, grace=timedelta(seconds=5))
AGENT = ["python", str(EXAMPLES / "agent.py")]
RALPH = ["sh", str(EXAMPLES / "ralph.sh")]


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    try:
        require_bwrap()
    except SandboxUnavailable as exc:
        pytest.skip(exc.message)


def _toml(value: Any) -> str:
    return json.dumps(value)


def spec(
    tmp_path: Path,
    command: str | list[str],
    *,
    features: dict[str, str] | None = None,
    worker: str = "",
    extra: str = "",
    time_box: str = "1m",
    wrap_up: str = "20s",
    budget: str = "usd = 5.0",
) -> Path:
    """A spec of the command backend; `features` maps an id to its check."""
    (tmp_path / "workspace").mkdir(parents=True, exist_ok=True)
    text = (
        'name = "cmd"\ngoal = "Do what the command does."\nworkspace = "workspace"\n'
        f'[worker]\nbackend = "command"\ncommand = {_toml(command)}\n{worker}\n'
        f'[session]\ntime_box = "{time_box}"\nwrap_up = "{wrap_up}"\n[budget]\n{budget}\n{extra}\n'
    )
    for feature, check in (features or {}).items():
        text += f'[[features]]\nid = "{feature}"\ndescription = "{feature}"\ncheck = {_toml(check)}\n'
    path = tmp_path / "longrun.toml"
    path.write_text(text)
    return path


def kinds(store: Store, run_id: str) -> list[str]:
    return [e.kind for e in log.read_events(store, run_id)]


def data(store: Store, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in log.read_events(store, run_id, kinds=[kind])]


def detail(store: Store, session: runs.SessionView) -> str:
    ended = [
        e
        for e in log.read_events(store, session.run_id, kinds=["session_ended"])
        if e.session_id == session.id
    ]
    return str(ended[-1].data.get("detail", "")) if ended else ""


def output(store: Store, run_id: str, stream: str = "stdout") -> str:
    return "".join(d["text"] for d in data(store, run_id, "command_output") if d["stream"] == stream)


# --- the examples ---------------------------------------------------------------------------


def test_the_ralph_example_takes_one_failing_feature_a_session_until_the_judge_says_done(
    store: Store, tmp_path: Path
) -> None:
    agent = 'echo made > "$RALPH_FEATURE.txt"; true'  # the agent: makes the feature it is given
    path = spec(
        tmp_path,
        RALPH,
        worker=f"env = {{ RALPH_AGENT = {_toml(agent)} }}",
        features={"alpha": "test -f alpha.txt", "beta": "test -f beta.txt"},
    )
    run = create_run_from_file(store, path)
    first = run_session_now(store, run.id)
    assert first.end_reason == "finished", detail(store, first)
    assert runs.get_run(store, run.id).state != "done"
    second = run_session_now(store, run.id)
    assert second.end_reason == "finished", detail(store, second)
    assert runs.get_run(store, run.id).state == "done"
    progress = [d["text"] for d in data(store, run.id, "progress")]
    assert progress == ["working on alpha", "working on beta"]
    handoffs = data(store, run.id, "handoff")
    assert [h["done"] for h in handoffs] == [["worked on alpha"], ["worked on beta"]]
    assert [d["confined"] for d in data(store, run.id, "sandbox")] == [True, True]
    subjects = [c["subject"] for cp in runs.list_checkpoints(store, run.id) for c in cp.commits]
    assert "ralph: alpha" in subjects and "ralph: beta" in subjects


def test_the_python_agent_on_the_scripted_model_is_done_and_its_spend_is_the_proxys_record(
    store: Store, tmp_path: Path
) -> None:
    path = spec(
        tmp_path,
        AGENT,
        worker=f"script = {_toml(str(EXAMPLES / 'agent-script.toml'))}",
        features={"hello": "grep -q Hello hello.txt"},
    )
    run = create_run_from_file(store, path)
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished", detail(store, ended)
    assert runs.get_run(store, run.id).state == "done"
    calls = data(store, run.id, "model_call")
    assert [c["tool_calls"] for c in calls] == [["write"], ["bash"], ["handoff"], []]
    [proxy] = data(store, run.id, "proxy_usage")
    assert proxy["calls"] == len(calls) and proxy["refused"] == 0
    for kind in ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"):
        assert proxy[kind] == sum(c["usage"][kind] for c in calls)
    spent = runs.get_run(store, run.id).spent_usd
    assert spent > 0 and spent == pytest.approx(sum(c["usage"]["usd"] for c in calls), abs=1e-9)
    assert [d["tool"] for d in data(store, run.id, "tool_call")] == ["write", "bash", "handoff"]
    [handoff] = data(store, run.id, "handoff")
    assert handoff["done"] == ["wrote hello.txt"]


def test_the_python_agent_never_crosses_a_cap_and_the_run_waits_for_a_raise(
    store: Store, tmp_path: Path
) -> None:
    turn = {"tool": "bash", "input": {"command": "true"}, "usage": {"output_tokens": 2500}}
    script = tmp_path / "looping.json"
    script.write_text(json.dumps({"sessions": [{"turns": [turn], "loop": True}], "after_last": "repeat"}))
    cap = 0.2
    path = spec(
        tmp_path,
        AGENT,
        worker=f"script = {_toml(str(script))}\nmax_tokens = 3000",
        budget=f"usd = {cap}",
        extra="[breakers]\nmax_usd_per_hour = 1000.0\n",
    )
    run = create_run_from_file(store, path)
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=120, config=FAST)
    [session] = runs.list_sessions(store, run.id)
    assert session.end_reason == "budget", detail(store, session)
    assert "budget.usd" in detail(store, session)
    calls = data(store, run.id, "model_call")
    running = 0.0
    for call in calls:  # not one call took the total past the cap
        running += call["usage"]["usd"]
        assert running <= cap + 1e-9
    assert runs.get_run(store, run.id).spent_usd == pytest.approx(running, abs=1e-9)
    [proxy] = data(store, run.id, "proxy_usage")
    assert proxy["calls"] == len(calls) >= 2 and proxy["refused"] >= 1
    assert proxy["output_tokens"] == sum(c["usage"]["output_tokens"] for c in calls)
    after = runs.get_run(store, run.id)
    assert after.state == "awaiting_approval"
    assert [a.kind for a in runs.list_approvals(store, run.id, state="pending")] == ["budget_raise"]


# --- the time box, limits, questions --------------------------------------------------------


def _alive(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[:2] == [b"sleep", mark.encode()]:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")
def test_a_command_that_overruns_its_time_box_is_told_then_killed_whole_and_the_session_checkpoints(
    store: Store, tmp_path: Path
) -> None:
    mark = str(40_000 + tmp_path.stat().st_ino % 10_000)
    command = (
        """handoff='{"done": ["half"], "next": ["the rest"]}'\n"""
        """trap 'printf "%s" "$handoff" > "$LONGRUN_HANDOFF_FILE"' USR1\n"""
        "trap '' TERM\n"  # it ignores SIGTERM, and so does all it starts
        f"sleep {mark} &\nsetsid sleep {mark} &\n"
        "while true; do sleep 0.1; done\n"
    )
    path = spec(tmp_path, command, time_box="30s", wrap_up="15s")
    run = create_run_from_file(store, path)
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "stopped" and "time box" in detail(store, ended), detail(store, ended)
    seen = kinds(store, run.id)
    signals = [d["signal"] for d in data(store, run.id, "command_signal")]
    assert signals == ["SIGUSR1", "SIGTERM"]
    assert seen.index("wrap_up") < seen.index("command_signal") < seen.index("command_killed")
    assert data(store, run.id, "command_killed")[0]["processes"] >= 3
    [handoff] = data(store, run.id, "handoff")
    assert handoff["done"] == ["half"]
    reasons = [cp.reason for cp in runs.list_checkpoints(store, run.id)]
    assert "handoff" in reasons and reasons[-1] == "session_end"
    assert _alive(mark) == []


def test_a_command_without_a_sandbox_has_what_it_left_running_killed_with_its_group(
    store: Store, tmp_path: Path
) -> None:
    mark = str(50_000 + tmp_path.stat().st_ino % 10_000)
    path = spec(tmp_path, f"sleep {mark} & echo started", extra='[sandbox]\nmode = "off"\n')
    run = create_run_from_file(store, path)
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished"
    assert data(store, run.id, "sandbox")[0]["confined"] is False
    assert "started" in output(store, run.id)
    assert _alive(mark) == []


RETRY_LATER = (
    'if [ "$LONGRUN_SESSION" = 1 ]; then\n'
    "  python -c 'import datetime as d, json, os; t = d.datetime.now(d.UTC) + d.timedelta(seconds=4); "
    'handoff = {"notes": "limited", "retry_at": t.isoformat()}; '
    'json.dump(handoff, open(os.environ["LONGRUN_HANDOFF_FILE"], "w"))\'\n'
    "  exit 75\n"
    "fi\n"
    "echo ok > ok.txt\n"
)


def test_exit_75_with_retry_at_holds_the_next_session_until_then(store: Store, tmp_path: Path) -> None:
    path = spec(tmp_path, RETRY_LATER, features={"ok": "test -f ok.txt"}, extra='[sandbox]\nmode = "off"\n')
    run = create_run_from_file(store, path)
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=120, config=FAST)
    assert runs.get_run(store, run.id).state == "done"
    first, second = runs.list_sessions(store, run.id)
    assert first.end_reason == "rate_limited" and second.end_reason == "finished"
    [limit] = data(store, run.id, "rate_limited")
    retry_at = datetime.fromisoformat(limit["retry_at"])
    assert "exited 75" in limit["detail"]
    assert second.created_at >= retry_at
    [wait] = data(store, run.id, "usage_limit_wait")
    assert datetime.fromisoformat(wait["until"]) == retry_at
    assert data(store, run.id, "handoff")[0]["notes"] == "limited"


ASKS = (
    'if [ "$LONGRUN_SESSION" = 1 ]; then\n'
    '  echo \'{"kind": "question", "question": "Which greeting?", "why": "it is your call", '
    '"choices": ["hi", "hola"]}\' >> "$LONGRUN_EVENTS_FILE"\n'
    "  exit 0\n"
    "fi\n"
    'sed -n "s/^- \'Which greeting?\': //p" "$LONGRUN_CONTEXT_FILE" > hello.txt\n'
)


def test_a_question_pauses_the_run_and_the_answer_reaches_the_next_sessions_context(
    store: Store, tmp_path: Path
) -> None:
    run = create_run_from_file(store, spec(tmp_path, ASKS, features={"hola": "grep -qx hola hello.txt"}))
    first = run_session_now(store, run.id)
    assert first.end_reason == "approval", detail(store, first)
    assert runs.get_run(store, run.id).state == "awaiting_approval"
    [asked] = runs.list_approvals(store, run.id, state="pending")
    assert asked.kind == "question" and asked.request["choices"] == ["hi", "hola"]
    assert asked.request["question"] == "Which greeting?"
    answer(store, asked.id, "hola", by="bob")
    second = run_session_now(store, run.id)
    assert second.end_reason == "finished", detail(store, second)
    assert (Path(run.workspace) / "hello.txt").read_text() == "hola\n"
    assert runs.get_run(store, run.id).state == "done"
    [resumed] = data(store, run.id, "conversation_resumed")
    assert list(resumed["results"].values()) == [{"action": "answer", "text": "hola"}]


# --- untrusted input ------------------------------------------------------------------------

BAD_LINES = [
    "not json",
    "[1, 2]",
    '{"kind": "dance"}',
    '{"text": "no kind"}',
    '{"kind": "tool_result", "tool": "bash", "is_error": "yes"}',
    '{"kind": "tool_call", "tool": "bash", "input": {}, "extra": 1}',
    '{"kind": "usage", "input_tokens": -5}',
]


def test_malformed_lines_and_a_malformed_handoff_are_events_never_a_crash(
    store: Store, tmp_path: Path
) -> None:
    writes = "".join(f'echo {json.dumps(line)} >> "$LONGRUN_EVENTS_FILE"\n' for line in BAD_LINES)
    command = (
        writes
        + 'python -c "print(\'x\' * 70000)" >> "$LONGRUN_EVENTS_FILE"\n'
        + 'echo \'{"kind": "note", "text": "still read"}\' >> "$LONGRUN_EVENTS_FILE"\n'
        + 'printf \'{"kind": "progress", "done": 1, "total": 2}\' >> "$LONGRUN_EVENTS_FILE"\n'
        + 'echo \'{"done": "not a list"}\' > "$LONGRUN_HANDOFF_FILE"\n'
    )
    run = create_run_from_file(store, spec(tmp_path, command))
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished", detail(store, ended)
    refused = data(store, run.id, "command_line_refused")
    assert [r["line"] for r in refused] == list(range(1, len(BAD_LINES) + 2))
    problems = [r["problem"] for r in refused]
    assert problems[0].startswith("not JSON") and problems[1] == "expected a JSON object"
    assert problems[2].startswith('kind "dance": expected one of tool_call')
    assert problems[3].startswith("no kind")
    assert problems[4] == 'tool_result: is_error: expected true or false, found "yes"'
    assert problems[5] == "tool_call: extra: unknown key"
    assert problems[6].startswith("usage: input_tokens:")
    assert problems[7] == "longer than 65536 bytes"
    assert all("\n" not in p for p in problems)
    assert data(store, run.id, "note") == [{"text": "still read"}]
    assert data(store, run.id, "progress") == [{"text": "", "done": 1, "total": 2}]  # no newline at the end
    assert data(store, run.id, "tool_result") == [] and data(store, run.id, "model_call") == []
    [bad] = data(store, run.id, "handoff_refused")
    assert bad["problem"] == 'handoff.json: done: expected an array, found "not a list"'
    assert data(store, run.id, "handoff") == []


def test_usage_lines_are_priced_and_a_spent_cap_stops_the_command_and_the_run(
    store: Store, tmp_path: Path
) -> None:
    usage = '{"kind": "usage", "model": "other-provider-model", "input_tokens": 1000, "output_tokens": 3000}'
    write = f"echo '{usage}' >> \"$LONGRUN_EVENTS_FILE\"\n"
    command = f"{write}sleep 1\n{write}sleep 60\n"
    run = create_run_from_file(store, spec(tmp_path, command, budget="usd = 0.06"))
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=120, config=FAST)
    [session] = runs.list_sessions(store, run.id)
    assert session.end_reason == "budget", detail(store, session)
    calls = data(store, run.id, "model_call")
    assert [c["model"] for c in calls] == ["other-provider-model"] * 2
    assert all(c["usage"]["output_tokens"] == 3000 and c["usage"]["usd"] > 0 for c in calls)
    assert runs.get_run(store, run.id).spent_usd == pytest.approx(sum(c["usage"]["usd"] for c in calls))
    assert {"signal": "SIGTERM", "why": "budget"} in data(store, run.id, "command_signal")
    assert runs.get_run(store, run.id).state == "awaiting_approval"
    assert [a.kind for a in runs.list_approvals(store, run.id, state="pending")] == ["budget_raise"]
    # A session that starts with the cap spent does not run the command at all.
    again = run_session_now(store, run.id)
    assert again.end_reason == "budget"
    assert len(data(store, run.id, "command_started")) == 1


def test_repeated_failing_tool_results_trip_the_same_error_breaker(store: Store, tmp_path: Path) -> None:
    failing = (
        '{"kind": "tool_result", "tool": "bash", "is_error": true, "output": "cat: x.txt: No such file"}'
    )
    command = (
        f"for i in 1 2 3 4; do echo '{failing}' >> \"$LONGRUN_EVENTS_FILE\"; sleep 0.3; done\nsleep 60\n"
    )
    path = spec(tmp_path, command, extra="[breakers]\nsame_error_repeats = 3\n")
    run = create_run_from_file(store, path)
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=120, config=FAST)
    tripped = runs.get_run(store, run.id)
    assert tripped.state == "tripped" and "same_error_repeats" in (tripped.state_reason or "")
    [breaker] = data(store, run.id, "breaker_tripped")
    assert breaker["repeats"] == 3 and "No such file" in breaker["error"]
    [session] = runs.list_sessions(store, run.id)
    assert session.end_reason == "breaker"
    assert {"signal": "SIGTERM", "why": "stop"} in data(store, run.id, "command_signal")
    assert [a.kind for a in runs.list_approvals(store, run.id, state="pending")] == ["breaker_reset"]


SECRET = "sk-ant-command-test-DO-NOT-LEAK-4f2a"
TOKEN = "gh-token-value-DO-NOT-LEAK-91b7"


def test_the_command_runs_in_the_sandbox_and_reaches_no_home_no_store_and_no_key(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "user"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    outside = tmp_path / "outside.txt"
    command = (
        f"cat {home}/.ssh/id_ed25519\n"
        'echo "key=[$ANTHROPIC_API_KEY]"\n'
        "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c sk-ant\n"
        f"ls {store.home}\n"
        'echo "token=[$MY_TOKEN]"\n'
        f"echo escaped > {outside}\n"
        f'echo \'{{"kind": "note", "text": "\'$MY_TOKEN\'"}}\' >> "$LONGRUN_EVENTS_FILE"\n'
    )
    path = spec(tmp_path, command, worker='env = { MY_TOKEN = { from_env = "MY_TOKEN" }, MODE = "fast" }')
    run = create_run_from_file(store, path)
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "finished", detail(store, ended)
    out, err = output(store, run.id), output(store, run.id, "stderr")
    assert "PRIVATE KEY" not in out and "No such file or directory" in err
    assert "key=[longrun-proxy-holds-this-credential]" in out
    assert "\n0\n" in out  # no process inside holds the key
    assert "longrun.db" not in out
    assert "token=[[redacted: MY_TOKEN]]" in out
    assert data(store, run.id, "note") == [{"text": "[redacted: MY_TOKEN]"}]
    assert not outside.exists()
    assert data(store, run.id, "sandbox")[0]["confined"] is True
    for where in [store.home, Path(run.workspace)]:
        for file in where.rglob("*"):
            if file.is_file() and file.suffix != ".sock":
                content = file.read_bytes()
                assert SECRET.encode() not in content and TOKEN.encode() not in content, file
    assert os.environ["MY_TOKEN"] == TOKEN  # the test's own environment still has it


def test_the_contract_files_pointed_at_the_users_files_are_never_read_or_written(
    store: Store, tmp_path: Path
) -> None:
    """The folder of the contract is the command's to write, and longrun reads and writes it from
    outside the sandbox: a name in it turned into a link to one of the user's files must not make
    longrun read that file into the store, or write a signal into it."""
    secret = tmp_path / "secret.json"
    secret.write_text('{"done": ["TOP SECRET LINE"]}\n')
    victim = tmp_path / "victim.txt"
    victim.write_text("ORIGINAL CONTENT\n")
    usage = '{"kind": "usage", "input_tokens": 1000, "output_tokens": 9000}'
    hijack = (
        'fifo="$(dirname "$LONGRUN_EVENTS_FILE")/.signals"\n'
        f'ln -s {secret} "$LONGRUN_HANDOFF_FILE"\n'
        f'rm "$fifo" && ln -s {victim} "$fifo"\n'
        f"echo '{usage}' >> \"$LONGRUN_EVENTS_FILE\"\n"  # spends the cap: longrun will send SIGTERM
        "sleep 60\n"
    )
    run = create_run_from_file(store, spec(tmp_path / "signals", hijack, budget="usd = 0.05"))
    ended = run_session_now(store, run.id)
    assert ended.end_reason == "budget", detail(store, ended)
    assert victim.read_text() == "ORIGINAL CONTENT\n"
    assert {"signal": "SIGTERM", "why": "budget"} in data(store, run.id, "command_signal")
    assert data(store, run.id, "command_killed")  # SIGTERM never reached it: SIGKILL did
    assert data(store, run.id, "handoff") == []
    [refused] = data(store, run.id, "handoff_refused")
    assert refused["problem"] == "handoff.json is a symbolic link: not read"

    linked = f'rm "$LONGRUN_EVENTS_FILE" && ln -s {secret} "$LONGRUN_EVENTS_FILE"\n'
    other = create_run_from_file(store, spec(tmp_path / "events", linked))
    assert run_session_now(store, other.id).end_reason == "finished"
    assert data(store, other.id, "events_file_refused") == [
        {"problem": "events.jsonl is a symbolic link: not read"}
    ]
    for each in (run.id, other.id):
        assert "TOP SECRET" not in json.dumps([e.data for e in log.read_events(store, each)])


@pytest.mark.parametrize(
    ("command", "sandbox", "reason"),
    [
        (
            "echo working; echo 'E   assert 2 == 3' >&2; exit 3",
            "on",
            "the command exited 3: E   assert 2 == 3",
        ),
        (
            ["no-such-program-9f3"],
            "on",
            "the command exited 127: longrun: cannot run no-such-program-9f3: No such",
        ),
        (
            ["no-such-program-9f3"],
            "off",
            "the command exited 127: longrun: cannot run no-such-program-9f3: No such",
        ),
        ("kill -SEGV $$", "off", "the command exited 139 (SIGSEGV)"),
    ],
    ids=["exit-3", "not-found-sandboxed", "not-found", "signal"],
)
def test_a_failing_command_ends_the_session_error_with_its_last_words_and_the_run_pauses(
    store: Store, tmp_path: Path, command: str | list[str], sandbox: str, reason: str
) -> None:
    run = create_run_from_file(store, spec(tmp_path, command, extra=f'[sandbox]\nmode = "{sandbox}"\n'))
    control.start(store, run.id)
    assert supervise_until_finished(store, run.id, timeout_s=120, config=FAST)
    [session] = runs.list_sessions(store, run.id)
    assert session.end_reason == "error"
    assert detail(store, session).startswith(reason), detail(store, session)
    assert "\n" not in detail(store, session) and "Traceback" not in detail(store, session)
    assert runs.get_run(store, run.id).state == "paused"
