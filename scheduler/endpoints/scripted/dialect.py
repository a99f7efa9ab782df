"""A script written for the built-in agent, as the Claude Code CLI plays it.

The two agents' tools differ in three ways a script feels: their names (`bash` is `Bash`,
`handoff` is an MCP tool, `mcp__longrun__handoff`); Claude Code edits or overwrites a file only
after it has read it in the same conversation; and a call that paused for a person is made again
by Claude Code once approved (the built-in agent's supervisor runs it instead). `for_claude_code`
rewrites a script for all three, so one script, the demo's among them, plays under either worker.
Names a script already spells the Claude Code way pass through unchanged.
"""

from __future__ import annotations

from longrun.scheduler.endpoints.scripted.script import Script, ScriptSession, ToolCall, Turn, UsageOverride

MCP_TOOLS = ("handoff", "ask_human", "propose_features")
CLI_TOOLS = {"bash": "Bash", "read": "Read", "write": "Write", "edit": "Edit", "glob": "Glob", "grep": "Grep"}
READ_FIRST = ("Write", "Edit")
"""Claude Code's tools that refuse a file the conversation has not read."""
READ_USAGE = 120
"""Output tokens of a read the rewrite adds: what a short tool call costs."""


def claude_code_name(tool: str) -> str:
    if tool in MCP_TOOLS:
        return f"mcp__longrun__{tool}"
    return CLI_TOOLS.get(tool, tool)


def for_claude_code(script: Script) -> Script:
    """`script` with Claude Code's tool names, a read before each first change to a file, and each
    session that follows one cut short at a tool call (a pause) beginning with that call again."""
    sessions: list[ScriptSession] = []
    paused: Turn | None = None
    seen: set[str] = set()  # files an earlier session touched: they exist
    for session in script.sessions:
        read: set[str] = set()
        turns: list[Turn] = []
        if paused is not None:
            turns.append(paused)
        for turn in session.turns:
            calls = [ToolCall(tool=claude_code_name(c.tool), input=c.input) for c in turn.calls()]
            unread = _unread(calls, read, seen)
            if unread:
                reads = [ToolCall(tool="Read", input={"file_path": path}) for path in unread]
                turns.append(Turn(tools=reads, usage=UsageOverride(output_tokens=READ_USAGE)))
            turns.append(_with_calls(turn, calls))
        seen |= read
        last = turns[-1]
        paused = None
        if last.calls() and not session.loop:  # (a looping session never runs out at a call)
            again = "That call was decided; making it again as it was."
            paused = Turn(text=again, tools=last.calls(), usage=last.usage)
        sessions.append(session.model_copy(update={"turns": turns}))
    rewritten = script.model_copy(update={"sessions": sessions})
    rewritten._source = f"{script.source} (for Claude Code)"
    return rewritten


def _unread(calls: list[ToolCall], read: set[str], seen: set[str]) -> list[str]:
    """The existing files `calls` change that this conversation has not read or written yet (an
    edit's file exists; a write's when an earlier session touched it). They are marked read."""
    unread: list[str] = []
    for call in calls:
        path = call.input.get("file_path")
        if not isinstance(path, str):
            continue
        exists = call.tool == "Edit" or path in seen
        if call.tool in READ_FIRST and path not in read and exists:
            unread.append(path)
        if call.tool in READ_FIRST or call.tool == "Read":
            read.add(path)
    return list(dict.fromkeys(unread))


def _with_calls(turn: Turn, calls: list[ToolCall]) -> Turn:
    if not calls:
        return turn
    if turn.tool is not None:
        return turn.model_copy(update={"tool": calls[0].tool, "input": calls[0].input})
    return turn.model_copy(update={"tools": calls})
