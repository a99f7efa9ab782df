"""Sessions end to end: real session processes, the real SDK against the scripted server, real git."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.supervisor import launch
from longrun.store import log, runs
from longrun.store.db import Store

HANDOFF_1 = {
    "done": ["wrote alpha.txt"],
    "next": ["write beta.txt next to alpha.txt"],
    "blockers": [],
    "notes": "alpha.txt holds the word ALPHA-MARKER",
}


def _two_session_script() -> list[list[dict]]:
    return [
        [
            {"tool": "write", "input": {"file_path": "alpha.txt", "content": "ALPHA-MARKER\n"}},
            {"tool": "bash", "input": {"command": "echo work-in-progress > scratch.txt"}},
            {"tool": "handoff", "input": HANDOFF_1},
            {"text": "Done for this session."},
        ],
        [
            {"tool": "bash", "input": {"command": "cat alpha.txt scratch.txt"}},
            {"tool": "write", "input": {"file_path": "beta.txt", "content": "BETA\n"}},
            {
                "tool": "handoff",
                "input": {"done": ["wrote beta.txt"], "next": [], "blockers": [], "notes": ""},
            },
            {"text": "All done."},
        ],
    ]


def test_second_session_resumes_from_the_first_ones_handoff_and_checkpoint(store: Store, write_spec) -> None:
    run = create_run_from_file(store, write_spec(_two_session_script()))

    first = run_session_now(store, run.id)
    assert first.state == "ended"
    after_first = runs.get_run(store, run.id)
    last_checkpoint = runs.get_checkpoint(store, after_first.head_checkpoint_id)
    assert last_checkpoint.session_id == first.id and last_checkpoint.reason == "session_end"

    second = run_session_now(store, run.id)
    assert second.state == "ended"
    assert second.from_checkpoint_id == last_checkpoint.id

    contexts = log.read_events(store, run.id, kinds=["context"])
    assert len(contexts) == 2
    context = contexts[1].data
    assert context["checkpoint_id"] == last_checkpoint.id
    assert context["commit"] == last_checkpoint.commit
    for line in HANDOFF_1["done"] + HANDOFF_1["next"]:
        assert line in context["text"]
    assert HANDOFF_1["notes"] in context["text"]

    # The session really started in the checkpoint's workspace, uncommitted work included.
    results = [e for e in log.read_events(store, run.id, kinds=["tool_result"]) if e.session_id == second.id]
    assert "ALPHA-MARKER" in results[0].data["output"] and "work-in-progress" in results[0].data["output"]
    workspace = Path(run.workspace)
    assert (workspace / "beta.txt").read_text() == "BETA\n"
    assert log.verify_chain(store, run.id).ok


def test_every_model_call_and_tool_call_is_an_event_with_usage(store: Store, write_spec) -> None:
    run = create_run_from_file(store, write_spec(_two_session_script()))
    session = run_session_now(store, run.id)
    events = [e for e in log.read_events(store, run.id) if e.session_id == session.id]
    kinds = [e.kind for e in events]
    assert kinds.count("model_call") == 4
    assert kinds.count("tool_call") == 3 and kinds.count("tool_result") == 3
    calls = [e.data for e in events if e.kind == "model_call"]
    for call in calls:
        usage = call["usage"]
        assert usage["input_tokens"] + usage["cache_read_tokens"] + usage["cache_write_tokens"] > 0
        assert usage["output_tokens"] > 0 and usage["usd"] > 0
    total = sum(c["usage"]["usd"] for c in calls)
    assert abs(runs.get_session(store, session.id).usage.usd - total) < 1e-9
    assert abs(runs.get_run(store, run.id).spent_usd - total) < 1e-9


def test_a_session_past_its_time_box_is_killed_and_the_next_one_resumes(store: Store, write_spec) -> None:
    script = [
        [
            {
                "tool": "write",
                "input": {"file_path": "early.txt", "content": "written before the deadline\n"},
            },
            {"text": "Thinking very slowly…", "tool": "bash", "input": {"command": "true"}, "delay": 60},
        ],
        [
            {"tool": "bash", "input": {"command": "cat early.txt"}},
            {"text": "Finished."},
        ],
    ]
    # 30 s: enough for the second session on a loaded machine; the first one's reply takes 60 s.
    run = create_run_from_file(store, write_spec(script, time_box="30s", wrap_up="5s"))
    first = run_session_now(store, run.id)
    assert first.state == "timed_out"  # killed at its deadline: the slow reply would have ended it
    assert first.pid is not None
    try:
        os.kill(first.pid, 0)
        raise AssertionError("the timed-out session's process is still alive")
    except ProcessLookupError:
        pass
    salvage = runs.get_checkpoint(store, runs.get_run(store, run.id).head_checkpoint_id)
    assert salvage.reason == "timed_out" and salvage.session_id == first.id

    second = run_session_now(store, run.id)
    assert second.state == "ended" and second.from_checkpoint_id == salvage.id
    outputs = [
        e.data["output"]
        for e in log.read_events(store, run.id, kinds=["tool_result"])
        if e.session_id == second.id
    ]
    assert "written before the deadline" in outputs[0]
    assert log.verify_chain(store, run.id).ok


def test_kill_9_of_a_session_is_recorded_as_crashed_and_the_run_goes_on(store: Store, write_spec) -> None:
    script = [
        [
            {"tool": "write", "input": {"file_path": "one.txt", "content": "1\n"}},
            {"tool": "bash", "input": {"command": "sleep 60"}},
        ],
        [{"tool": "bash", "input": {"command": "cat one.txt"}}, {"text": "ok"}],
    ]
    run = create_run_from_file(store, write_spec(script))
    launched = launch.start_session(store, runs.get_run(store, run.id))
    deadline = time.monotonic() + 60
    while not any(e.data.get("tool") == "bash" for e in log.read_events(store, run.id, kinds=["tool_call"])):
        assert time.monotonic() < deadline, "the session never reached its slow call"
        time.sleep(0.1)
    os.kill(launched.process.pid, signal.SIGKILL)
    crashed = launch.watch(store, launched)
    assert crashed.state == "crashed"
    assert "signal 9" in (crashed.end_reason or "")
    assert not _group_alive(launched.process.pid), "the crashed session's children were left running"

    report = log.verify_chain(store, run.id)
    assert report.ok, report
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (unfinished,) = db.execute("SELECT count(*) FROM session WHERE ended_at IS NULL").fetchone()
        assert unfinished == 0

    second = run_session_now(store, run.id)
    assert second.state == "ended" and second.n == 2
    assert log.verify_chain(store, run.id).ok


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies waiting for a reaper do not count)."""
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_a_crashed_session_found_later_is_reaped_before_the_next_starts(store: Store, write_spec) -> None:
    run = create_run_from_file(store, write_spec([[{"text": "nothing"}], [{"text": "still nothing"}]]))
    ghost = runs.create_session(
        store, run.id, time_box=launch.STALE_HEARTBEAT * 10, wrap_up=launch.STALE_HEARTBEAT
    )
    runs.session_started(store, ghost.id, pid=2**22 + 12345)  # no such process
    session = run_session_now(store, run.id)
    assert session.n == 2 and session.state == "ended"
    assert runs.get_session(store, ghost.id).state == "crashed"


def test_checkpoints_leave_the_agents_own_git_history_alone(store: Store, write_spec) -> None:
    script = [
        [
            {"tool": "write", "input": {"file_path": "a.py", "content": "A = 1\n"}},
            {"tool": "bash", "input": {"command": "git add a.py && git commit -q -m 'Add a.py'"}},
            {"tool": "write", "input": {"file_path": "b.py", "content": "B = 2\n"}},
            {
                "tool": "handoff",
                "input": {"done": ["a.py"], "next": ["commit b.py"], "blockers": [], "notes": ""},
            },
            {"tool": "bash", "input": {"command": "git add b.py && git commit -q -m 'Add b.py'"}},
            {"text": "bye"},
        ]
    ]
    run = create_run_from_file(store, write_spec(script))
    run_session_now(store, run.id)
    workspace = Path(run.workspace)
    subjects = ws.git(workspace, "log", "--format=%s", run.branch).splitlines()
    assert subjects[:2] == ["Add b.py", "Add a.py"]
    assert not any(s.startswith("longrun: checkpoint") for s in subjects)
    results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    assert not any(r["is_error"] for r in results), results
    handoff_cp = next(c for c in runs.list_checkpoints(store, run.id) if c.reason == "handoff")
    assert [c["subject"] for c in handoff_cp.commits] == ["Add a.py"]
    assert ws.git(workspace, "show", f"{handoff_cp.commit}:b.py") == "B = 2"


def test_the_worker_is_told_to_wrap_up_when_wrap_up_is_left(store: Store, write_spec) -> None:
    script = [
        [
            {"tool": "bash", "input": {"command": "sleep 5"}},
            {
                "tool": "handoff",
                "input": {"done": ["slept"], "next": [], "blockers": [], "notes": "told to wrap up"},
            },
            {"text": "Wrapped up."},
        ]
    ]
    run = create_run_from_file(store, write_spec(script, time_box="30s", wrap_up="27s"))
    session = run_session_now(store, run.id)
    assert session.state == "ended"
    kinds = [e.kind for e in log.read_events(store, run.id) if e.session_id == session.id]
    wrap = kinds.index("wrap_up")
    assert kinds[wrap - 1] == "tool_result" and "handoff" in kinds[wrap:]
    notice = log.read_events(store, run.id, kinds=["wrap_up"])[0].data
    assert 0 < notice["seconds_left"] <= 27


def test_checkpoints_are_taken_every_n_tool_calls(store: Store, write_spec) -> None:
    turns = [{"tool": "bash", "input": {"command": f"echo {i} > f{i}.txt"}} for i in range(5)]
    spec = write_spec([[*turns, {"text": "done"}]])
    spec.write_text(spec.read_text().replace("checkpoint_every_calls = 50", "checkpoint_every_calls = 2"))
    run = create_run_from_file(store, spec)
    run_session_now(store, run.id)
    reasons = [c.reason for c in runs.list_checkpoints(store, run.id)]
    assert reasons == ["created", "calls", "calls", "session_end"]
    second = runs.list_checkpoints(store, run.id)[2]
    files = ws.git(Path(run.workspace), "ls-tree", "--name-only", second.commit).split()
    assert {"f0.txt", "f1.txt", "f2.txt", "f3.txt"} <= set(files) and "f4.txt" not in files
