"""longrun's own tools for Claude Code, served as the CLI's in-process MCP server, and Claude
Code's tool names as the approval policy's rules read them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from longrun.scheduler.guards.policy import ASK_HUMAN
from longrun.scheduler.workers.base import WorkerHooks

MCP_SERVER = "longrun"
"""The in-process MCP server that serves longrun's own tools to the CLI (`mcp__longrun__handoff`)."""

TOOL_NAMES = {
    f"mcp__{MCP_SERVER}__handoff": "handoff",
    f"mcp__{MCP_SERVER}__propose_features": "propose_features",
    f"mcp__{MCP_SERVER}__{ASK_HUMAN}": ASK_HUMAN,
    "Bash": "bash",
    "Read": "read",
    "Write": "write",
    "Edit": "edit",
    "Glob": "glob",
    "Grep": "grep",
}
"""Claude Code's tools under the names the approval policy's rules use."""


def policy_view(name: str, tool_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Claude Code tool call as the approval policy reads calls: its name, and `path` for a file."""
    args = dict(tool_input)
    if "file_path" in args and "path" not in args:
        args["path"] = args["file_path"]
    return TOOL_NAMES.get(name, name), args


def _strings(value: Any) -> list[str]:
    return [str(x) for x in value] if isinstance(value, list) else []


HANDOFF_SCHEMA = {
    "type": "object",
    "properties": {
        "done": {"type": "array", "items": {"type": "string"}, "description": "What this session finished."},
        "next": {
            "type": "array",
            "items": {"type": "string"},
            "description": "What the next session should do, most important first.",
        },
        "blockers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "What stops progress and needs a person or a decision.",
        },
        "notes": {"type": "string", "description": "Anything else the next session must know."},
    },
    "required": ["done", "next"],
}

ASK_SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "description": "The question, on its own."},
        "why": {"type": "string", "description": "Why it matters: what you will do with the answer."},
        "choices": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The answers you expect, if there are a few.",
        },
    },
    "required": ["question", "why"],
}

PROPOSE_SCHEMA = {
    "type": "object",
    "properties": {
        "features": {
            "type": "array",
            "description": "The features that, all passing, mean the goal is met.",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": 'lowercase letters, digits, "-", "_" or "."'},
                    "description": {"type": "string", "description": "one sentence"},
                    "check": {"type": "string", "description": "a shell command that exits 0 when done"},
                    "rubric": {"type": "string", "description": "what a reviewer model must see"},
                },
                "required": ["id", "description"],
            },
        }
    },
    "required": ["features"],
}


def _said(text: str, *, error: bool = False) -> dict[str, Any]:
    reply: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
    if error:
        reply["is_error"] = True
    return reply


def longrun_server(hooks: WorkerHooks) -> Any:
    """The CLI's `longrun` MCP server: `handoff` always, `ask_human` when the session can pause
    for a person, `propose_features` in an initializer session."""
    from claude_agent_sdk import create_sdk_mcp_server, tool

    @tool(
        "handoff",
        "Leave the structured note the next session starts from, and checkpoint the workspace.",
        HANDOFF_SCHEMA,
    )
    async def handoff(args: dict[str, Any]) -> dict[str, Any]:
        note = {
            "done": _strings(args.get("done")),
            "next": _strings(args.get("next")),
            "blockers": _strings(args.get("blockers")),
            "notes": str(args.get("notes") or ""),
        }
        return _said(hooks.handoff(note))

    @tool(
        ASK_HUMAN,
        "Ask the person supervising this run a question, and wait for the answer. Use it instead of "
        "guessing when a decision is theirs to make or you are blocked. The session pauses until "
        "they answer; the next session starts with the answer.",
        ASK_SCHEMA,
    )
    async def ask_human(_args: dict[str, Any]) -> dict[str, Any]:
        # Never reached: the approval hook pauses the session before a question would run.
        return _said("not run: a question waits for a person's answer", error=True)

    tools = [handoff]
    if hooks.pause is not None:
        tools.append(ask_human)
    if hooks.propose_features is not None:
        tools.append(_propose_tool(tool, hooks.propose_features))
    return create_sdk_mcp_server(MCP_SERVER, tools=tools)


def _propose_tool(tool: Any, record: Callable[[list[dict[str, Any]]], str]) -> Any:
    """The initializer's `propose_features`: the done-condition a person reviews before coding."""

    @tool(
        "propose_features",
        "Propose the run's done-condition: the features that, all passing, mean the goal is met. "
        "Each has an id, a one-sentence description, and a check (a shell command run in the "
        "workspace that exits 0 when the feature is done) and/or a rubric. A person reviews it.",
        PROPOSE_SCHEMA,
    )
    async def propose_features(args: dict[str, Any]) -> dict[str, Any]:
        features = [
            {k: v for k, v in f.items() if k in ("id", "description", "check", "rubric") and v is not None}
            for f in args.get("features") or []
            if isinstance(f, dict)
        ]
        try:
            return _said(record(features))
        except ValueError as exc:
            return _said(f"the proposal was not recorded: {exc}", error=True)

    return propose_features
