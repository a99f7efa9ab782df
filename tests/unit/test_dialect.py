"""A built-in agent's script as the Claude Code CLI plays it (`for_claude_code`)."""

from __future__ import annotations

from longrun.scheduler.endpoints.scripted import load_script
from longrun.scheduler.endpoints.scripted.dialect import for_claude_code
from longrun.scheduler.endpoints.scripted.script import script_from_data


def _calls(session) -> list[list[tuple[str, str]]]:
    return [
        [(c.tool, str(c.input.get("file_path", c.input.get("command", "")))) for c in t.calls()]
        for t in session.turns
    ]


def test_names_become_claude_code_s_and_a_file_is_read_before_its_first_change() -> None:
    script = script_from_data(
        {
            "sessions": [
                {
                    "turns": [
                        {"tool": "write", "input": {"file_path": "new.py", "content": "x"}},
                        {
                            "tool": "edit",
                            "input": {"file_path": "README.md", "old_string": "a", "new_string": "b"},
                        },
                        {
                            "tool": "edit",
                            "input": {"file_path": "README.md", "old_string": "b", "new_string": "c"},
                        },
                        {"tool": "handoff", "input": {"done": [], "next": []}},
                        {"text": "done"},
                    ]
                },
                {
                    "turns": [
                        {"tool": "write", "input": {"file_path": "new.py", "content": "y"}},
                        {"text": "ok"},
                    ]
                },
            ]
        }
    )
    first, second = for_claude_code(script).sessions
    assert _calls(first) == [
        [("Write", "new.py")],  # a new file: nothing to read first
        [("Read", "README.md")],
        [("Edit", "README.md")],
        [("Edit", "README.md")],  # read once per conversation
        [("mcp__longrun__handoff", "")],
        [],
    ]
    # A later conversation overwriting a file an earlier session made reads it first.
    assert _calls(second) == [[("Read", "new.py")], [("Write", "new.py")], []]


def test_a_session_cut_short_at_a_call_is_followed_by_one_that_makes_it_again() -> None:
    script = script_from_data(
        {
            "sessions": [
                {"turns": [{"tool": "bash", "input": {"command": "git push origin HEAD"}}]},
                {"turns": [{"tool": "handoff", "input": {"done": []}}, {"text": "ok"}]},
            ]
        }
    )
    _, after = for_claude_code(script).sessions
    assert _calls(after)[:2] == [[("Bash", "git push origin HEAD")], [("mcp__longrun__handoff", "")]]


def test_names_already_claude_code_s_pass_through_and_the_demo_rewrites_cleanly() -> None:
    script = script_from_data(
        {"sessions": [{"turns": [{"tool": "Bash", "input": {"command": "ls"}}, {"text": "."}]}]}
    )
    assert _calls(for_claude_code(script).sessions[0]) == [[("Bash", "ls")], []]
    demo = for_claude_code(load_script("demo"))
    tools = {c.tool for s in demo.sessions for t in s.turns for c in t.calls()}
    assert tools == {"Read", "Write", "Edit", "Bash", "mcp__longrun__handoff"}
    assert "(for Claude Code)" in demo.source
