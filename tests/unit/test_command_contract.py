"""The command backend's parts on their own: its `[worker]` table and its messages, the lines a
command writes, the handoff it leaves, its output kept head and tail, and secrets blanked out of
all of it. Real files, no processes (tests/e2e/test_command_worker.py runs real commands)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from longrun.scheduler.spec.load import load_spec
from longrun.scheduler.workers.base import Decided, ResumePoint, WorkerUnavailable
from longrun.scheduler.workers.command import lines
from longrun.scheduler.workers.command.contract import (
    Redactor,
    SessionFolder,
    Times,
    context_text,
    contract_env,
    read_handoff,
    resolve_env,
)
from longrun.scheduler.workers.command.output import HEAD_BYTES, TAIL_BYTES, OutputKeeper
from longrun.scheduler.workers.command.spec import CommandWorkerSpec, FromEnv
from longrun.store.errors import SpecError

MINIMAL = 'name = "cmd"\ngoal = "g"\nworkspace = "ws"\n[worker]\nbackend = "command"\n'


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str) -> Any:
    (tmp_path / "longrun.toml").write_text(MINIMAL + worker)
    monkeypatch.chdir(tmp_path)
    return load_spec("longrun.toml")


def problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, monkeypatch, worker)
    found: list[str] = caught.value.errors  # type: ignore[attr-defined]
    assert all("\n" not in line and line.startswith("longrun.toml: worker.") for line in found), found
    return found


# --- the [worker] table ---------------------------------------------------------------------


def test_a_command_is_an_argv_array_or_a_string_run_by_sh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load(tmp_path, monkeypatch, 'command = ["python", "/opt/agent.py", "--fast"]\n').worker
    assert isinstance(spec, CommandWorkerSpec)
    assert spec.argv() == ["python", "/opt/agent.py", "--fast"] and spec.program() == "python"
    spec = load(tmp_path, monkeypatch, 'command = "./ralph.sh --once | tee log"\n').worker
    assert spec.argv() == ["/bin/sh", "-c", "./ralph.sh --once | tee log"] and spec.program() == "./ralph.sh"
    env = 'command = "x"\nenv = { MODE = "fast", GITHUB_TOKEN = { from_env = "GH" } }\n'
    spec = load(tmp_path, monkeypatch, env).worker
    assert spec.env == {"MODE": "fast", "GITHUB_TOKEN": FromEnv(from_env="GH")}
    # what is stored holds the name of the secret, never a value
    assert spec.model_dump(mode="json")["env"] == {"MODE": "fast", "GITHUB_TOKEN": {"from_env": "GH"}}


@pytest.mark.parametrize(
    ("worker", "message"),
    [
        ("", "worker.command: missing (expected an array of strings or a string:"),
        ("command = []\n", "worker.command: expected an array of strings (the argv"),
        ('command = "  "\n', "worker.command: expected an array of strings (the argv"),
        ("command = 3\n", "worker.command: expected an array of strings (the argv"),
        ('command = ["sh", 3]\n', "worker.command[2]: expected a string, found 3"),
        ('command = ["", "x"]\n', "worker.command[1]: the program to run (the first word) is empty"),
        (
            'command = "x"\nenv = { GITHUB_TOKEN = "ghp_abc" }\n',
            "worker.env.GITHUB_TOKEN: a secret is never written in a spec: give it by name from "
            'longrun\'s environment, GITHUB_TOKEN = { from_env = "GITHUB_TOKEN" }',
        ),
        (
            'command = "x"\nenv = { OPENAI = "sk-proj-abcdefghijklmnopqrstuvwx" }\n',
            "worker.env.OPENAI: a secret is never written in a spec",
        ),
        (
            'command = "x"\nenv = { LONGRUN_SESSION = "9" }\n',
            "worker.env.LONGRUN_SESSION: LONGRUN_* variables",
        ),
        (
            'command = "x"\nenv = { ANTHROPIC_BASE_URL = "http://x" }\n',
            "worker.env.ANTHROPIC_BASE_URL: ANTHROPIC_* variables are set by longrun",
        ),
        (
            'command = "x"\nenv = { KEY = { from_env = "ANTHROPIC_API_KEY" } }\n',
            "worker.env.KEY: from_env: ANTHROPIC_API_KEY stays with longrun",
        ),
        (
            'command = "x"\nenv = { "A B" = "1" }\n',
            "worker.env.\"A B\": 'A B' is not an environment variable name",
        ),
        (
            'command = "x"\nenv = { A = { from_env = "B", default = "c" } }\n',
            'worker.env.A: expected a string or { from_env = "NAME" }, found',
        ),
        (
            'command = "x"\nenv = { A = 1 }\n',
            'worker.env.A: expected a string or { from_env = "NAME" }, found 1',
        ),
        ('command = "x"\nenv = "A=1"\n', "worker.env: expected a table"),
    ],
)
def test_each_mistake_in_the_table_is_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str, message: str
) -> None:
    found = problems(tmp_path, monkeypatch, worker)
    assert found[0].startswith("longrun.toml: " + message), found


def test_the_command_key_belongs_to_the_command_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "longrun.toml").write_text(MINIMAL.replace('"command"', '"anthropic"') + 'command = "x"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match='worker.command: only used when worker.backend = "command"'):
        load_spec("longrun.toml")


def test_a_secret_comes_from_longrun_s_environment_by_name_or_the_worker_is_unavailable() -> None:
    env = {"MODE": "fast", "TOKEN": FromEnv(from_env="GH_TOKEN")}
    values, secrets = resolve_env(env, {"GH_TOKEN": "s3cret-value"})
    assert values == {"MODE": "fast", "TOKEN": "s3cret-value"} and secrets == {"TOKEN": "s3cret-value"}
    with pytest.raises(
        WorkerUnavailable, match="worker.env.TOKEN: GH_TOKEN is not set in longrun's environment"
    ):
        resolve_env(env, {})


# --- lines ----------------------------------------------------------------------------------


def test_valid_lines_become_their_events_and_strings_are_cut() -> None:
    parsed = lines.parse_line(
        json.dumps({"kind": "tool_result", "tool": "bash", "output": "x" * 9000}).encode()
    )
    assert isinstance(parsed, lines.ToolResultLine)
    kind, data = lines.event_data(parsed)
    assert kind == "tool_result" and len(data["output"]) == lines.OUTPUT_CHARS and data["is_error"] is False
    question = lines.parse_line(b'{"kind": "question", "question": "Which?", "choices": ["a", "b"]}')
    assert isinstance(question, lines.QuestionLine)
    assert lines.event_data(question) == (
        "tool_call",
        {"tool": "ask_human", "input": {"question": "Which?", "why": "", "choices": ["a", "b"]}},
    )
    usage = lines.parse_line(b'{"kind": "usage", "input_tokens": 10, "output_tokens": 5}')
    assert isinstance(usage, lines.UsageLine)
    call = lines.model_call(usage, "the-workers-model")
    assert (call.model, call.input_tokens, call.output_tokens) == ("the-workers-model", 10, 5)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{", "not JSON"),
        (b'"text"', "expected a JSON object"),
        (b'{"kind": 1}', "kind 1: expected one of tool_call, tool_result, note, question, usage, progress"),
        (b'{"kind": "note"}', "note: text: missing"),
        (b'{"kind": "note", "text": 5}', "note: text: expected a string, found 5"),
        (
            b'{"kind": "question", "question": ""}',
            'question: question: expected at least 1 character(s), found ""',
        ),
        (b'{"kind": "usage", "output_tokens": 1e9}', "usage: output_tokens: expected an integer"),
        (
            b'{"kind": "usage", "output_tokens": 100000000}',
            "usage: output_tokens: expected at most 10000000, found 100000000",
        ),
        (b'{"kind": "progress", "done": 3, "total": 2}', "progress: done (3) is more than total (2)"),
        (
            b'{"kind": "tool_call", "tool": "x", "input": {"a": "' + b"y" * 9000 + b'"}}',
            "tool_call: input is",
        ),
        (b"[" * 50_000, "nested deeper than 32 levels"),
        (
            b'{"kind": "tool_call", "tool": "x", "input": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
            "nested deeper",
        ),
    ],
)
def test_a_wrong_line_is_one_line_of_what_is_wrong(raw: bytes, problem: str) -> None:
    said = lines.parse_line(raw)
    assert isinstance(said, str) and said.startswith(problem), said
    assert "\n" not in said


def test_the_events_file_yields_whole_lines_numbered_and_skips_a_line_too_long(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b"')
    reader = lines.EventsFile(path)
    assert [(r.number, r.data) for r in reader.new_lines()] == [(1, b'{"a": 1}')]
    with path.open("ab") as out:
        out.write(b": 2}\n" + b"x" * (lines.LINE_BYTES + 10))
    assert [(r.number, r.data) for r in reader.new_lines()] == [(3, b'{"b": 2}'), (4, None)]
    with path.open("ab") as out:
        out.write(b"more of the long line\nlast without newline")
    assert list(reader.new_lines()) == []  # the rest of line 4 is dropped; line 5 is not finished
    assert [(r.number, r.data) for r in reader.new_lines(final=True)] == [(5, b"last without newline")]
    path.write_bytes(b'{"again": 1}\n')  # written anew, not appended to: read from its start
    assert [(r.number, r.data) for r in reader.new_lines()] == [(6, b'{"again": 1}')]


# --- the handoff ----------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def handoff(tmp_path: Path, content: str | bytes) -> Any:
    path = tmp_path / "handoff.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return read_handoff(path, Redactor({"T": "tok-secret-1"}), NOW)


def test_a_good_handoff_is_recorded_bounded_and_blanked(tmp_path: Path) -> None:
    read = handoff(
        tmp_path, json.dumps({"done": ["a", "b" * 5000], "next": ["n"] * 80, "notes": "token tok-secret-1"})
    )
    assert read.problem is None and read.retry_at is None
    assert read.handoff["done"][0] == "a" and len(read.handoff["done"][1]) == 1000
    assert len(read.handoff["next"]) == 50 and read.handoff["blockers"] == []
    assert read.handoff["notes"] == "token [redacted: T]"
    assert read_handoff(tmp_path / "absent.json", Redactor(), NOW).handoff is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{nope", "handoff.json is not JSON: "),
        ("[1]", "handoff.json: expected an object, found an array"),
        ('{"done": [1]}', "handoff.json: done[0]: expected a string, found 1"),
        ('{"summary": "x"}', "handoff.json: summary: unknown key"),
        ('{"retry_at": "soon"}', "handoff.json: retry_at: expected an ISO time, found 'soon'"),
        (
            '{"retry_at": "2026-03-20T00:00:00Z"}',
            "handoff.json: retry_at: 2026-03-20T00:00:00Z is more than 7 days",
        ),
        ('{"done": ' + "[" * 50_000, "handoff.json is nested too deep"),
    ],
)
def test_a_bad_handoff_is_refused_with_what_is_wrong(tmp_path: Path, content: str, problem: str) -> None:
    read = handoff(tmp_path, content)
    assert read.handoff is None and read.problem is not None and read.problem.startswith(problem), (
        read.problem
    )


def test_retry_at_without_an_offset_is_utc_and_one_already_past_is_no_wait(tmp_path: Path) -> None:
    assert handoff(tmp_path, '{"retry_at": "2026-03-01T13:00:00"}').retry_at == NOW + timedelta(hours=1)
    assert handoff(tmp_path, '{"retry_at": "2026-03-01T11:00:00+00:00"}').retry_at is None
    assert handoff(tmp_path, b"x" * 300_000).problem == "handoff.json is 300000 bytes, more than 262144"


def test_the_context_file_carries_the_answers_to_the_last_sessions_questions() -> None:
    record = {
        "role": "command",
        "questions": [{"id": "q1", "question": "Which?"}, {"id": "q2", "question": "Why?"}],
    }
    point = ResumePoint([record], {"q1": Decided("answer", "this one"), "q2": Decided("deny", "expired")})
    text = context_text("# Run", point)
    assert text.startswith("# Run\n\n## Answers") and "- 'Which?': this one" in text
    assert "- 'Why?': (no answer) expired" in text
    assert context_text("# Run", None) == "# Run"
    assert context_text("# Run", ResumePoint([{"role": "assistant"}], {})) == "# Run"


# --- output and secrets ---------------------------------------------------------------------


def test_a_flood_of_output_keeps_its_head_and_tail_and_counts_what_was_left_out() -> None:
    recorded: list[dict[str, Any]] = []
    keeper = OutputKeeper("stdout", recorded.append, Redactor().text)
    for n in range(20_000):
        keeper.feed(f"line {n}\n".encode())
    keeper.flush(final=True)
    total = sum(len(f"line {n}\n") for n in range(20_000))
    head = "".join(r["text"] for r in recorded if not r.get("last"))
    [tail] = [r for r in recorded if r.get("last")]
    assert head.startswith("line 0\nline 1\n") and len(head.encode()) == HEAD_BYTES
    assert tail["text"].endswith("line 19999\n") and len(tail["text"].encode()) == TAIL_BYTES
    assert tail["left_out_bytes"] == total - HEAD_BYTES - TAIL_BYTES
    assert keeper.last_lines() == "line 19997 | line 19998 | line 19999"


def test_short_output_is_recorded_at_line_ends_and_whole_at_the_end() -> None:
    recorded: list[dict[str, Any]] = []
    keeper = OutputKeeper("stderr", recorded.append, Redactor().text)
    keeper.feed(b"first\nsecond wi")
    keeper.flush()
    keeper.feed(b"thout end")
    keeper.flush(final=True)
    assert "".join(r["text"] for r in recorded) == "first\nsecond without end"
    assert all(not r.get("last") for r in recorded)


def test_a_secret_is_blanked_whole_and_where_a_piece_of_output_cuts_it() -> None:
    redactor = Redactor({"TOKEN": "abcdef123456", "SHORT": "ab"})
    assert redactor.text("x abcdef123456 y") == "x [redacted: TOKEN] y"
    assert redactor.text("ends with abcdef1") == "ends with [redacted: TOKEN]"
    assert redactor.text("23456 starts it") == "[redacted: TOKEN] starts it"
    assert redactor.text("ab cd") == "ab cd"  # too short to look for
    assert redactor.data({"k": ["abcdef123456"]}) == {"k": ["[redacted: TOKEN]"]}


# --- the reference ---------------------------------------------------------------------------


def test_the_readme_s_contract_names_every_variable_and_every_kind_of_line(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### The command contract")[1].split("\n## ")[0]
    now = datetime.now(UTC)
    given = contract_env(SessionFolder(tmp_path), Times(now, now), "run", 1, "model", 8)
    assert set(re.findall(r"`(LONGRUN_[A-Z_]+)`", section)) == set(given)
    rows = re.findall(r"^\| `([a-z_]+)` \|", section.split("**Event lines**")[1], flags=re.MULTILINE)
    assert sorted(row for row in rows if row != "kind") == sorted(lines.KINDS)


def test_only_the_program_and_its_script_named_outside_the_workspace_are_shown_in_the_sandbox(
    tmp_path: Path,
) -> None:
    from longrun.scheduler.workers.command.process import named_files

    workspace = tmp_path / "ws"
    workspace.mkdir()
    agent, other = tmp_path / "agent.py", tmp_path / "secret.txt"
    agent.write_text("")
    other.write_text("")
    (workspace / "local.py").write_text("")
    assert named_files(["python", str(agent), str(other)], workspace) == [agent]
    assert named_files([str(agent)], workspace) == [agent]
    assert named_files(["/bin/sh", "-c", f"cat {other}"], workspace) == []
    assert named_files(["python", str(workspace / "local.py")], workspace) == []
    assert named_files(["python", str(tmp_path / "missing.py"), "/usr/bin/env"], workspace) == []
