"""The `claude-code` backend: Claude Code (the CLI bundled with `claude-agent-sdk`) does the work,
longrun meters, polices and records it.

The CLI makes its own API calls, so it is pointed (`ANTHROPIC_BASE_URL`, for its process only)
at a metering proxy on loopback: each call is admitted against the caps before it leaves, and
its usage comes back as the session's `model_call` events, priced by longrun's table. Every tool
call goes through the run's approval policy (the SDK's permission callback) and is recorded with
its result. With `script` set, the upstream is the scripted model server, so a run, the demo and
the tests need neither a network nor a key.

longrun's `handoff` (and `propose_features` in an initializer) are in-process MCP tools of the
CLI's. A usage limit with a reset (the CLI's words, or a 429 the proxy saw) ends the session
`rate_limited` with `retry_at`.

Not yet here (issue 15): pausing for a person on an `ask` decision (it is refused, with the
reason, for now), `ask_human`, and an exact resume of the Claude session.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import StrictInt, StrictStr, ValidationInfo, field_validator

from longrun.scheduler.guards.usage_limits import is_limit_text, reset_from_headers, reset_from_text
from longrun.scheduler.spec.keys import spec_key
from longrun.scheduler.spec.worker import WorkerSpec, script_ref
from longrun.scheduler.workers.base import (
    EndReason,
    ModelCall,
    Reporter,
    ToolDecision,
    Worker,
    WorkerHooks,
    WorkerOutcome,
    WorkerSetup,
    WorkerTask,
    WorkerUnavailable,
)
from longrun.store.errors import BudgetExhausted
from longrun.store.models import utcnow

API = "https://api.anthropic.com"
SCRIPTED_KEY = "scripted-model-needs-no-key"
PERMISSION_MODES = ("default", "acceptEdits", "plan", "dontAsk")
"""The CLI's modes a supervised session may run in (never one that skips the permission check)."""

PRICE_TOLERANCE = 0.01
"""How far the CLI's own cost may be from longrun's price of the same calls before it is an event."""

MCP_SERVER = "longrun"
"""The in-process MCP server that serves longrun's own tools to the CLI (`mcp__longrun__handoff`)."""

TOOL_NAMES = {
    f"mcp__{MCP_SERVER}__handoff": "handoff",
    f"mcp__{MCP_SERVER}__propose_features": "propose_features",
    "Bash": "bash",
    "Read": "read",
    "Write": "write",
    "Edit": "edit",
    "Glob": "glob",
    "Grep": "grep",
}
"""Claude Code's tools under the names the approval policy's rules use."""


class ClaudeCodeWorkerSpec(WorkerSpec):
    """`[worker]` with `backend = "claude-code"`."""

    allowed_tools: list[StrictStr] = spec_key(
        factory=list, kind="a list of strings", meaning="Claude Code tools the session may use without asking"
    )
    disallowed_tools: list[StrictStr] = spec_key(
        factory=list, kind="a list of strings", meaning="Claude Code tools the session may never use"
    )
    permission_mode: StrictStr = spec_key(
        "default",
        kind="a string",
        expected="one of " + ", ".join(f'"{m}"' for m in PERMISSION_MODES),
        meaning="Claude Code's permission mode (longrun's approval policy applies in every mode)",
        pattern="^(" + "|".join(PERMISSION_MODES) + ")$",
    )
    max_turns: StrictInt | None = spec_key(
        None, kind="an integer", expected="an integer of at least 1", meaning="agent turns per session", ge=1
    )
    cli_path: StrictStr | None = spec_key(
        None, kind="a string", meaning="a `claude` of your own instead of the one bundled with the SDK"
    )
    settings: StrictStr | None = spec_key(
        None, kind="a string", meaning="Claude Code settings (a path or JSON), passed through"
    )
    script: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="serve this scripted model to the CLI instead of the API (tests and the demo)",
    )

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return script_ref(value, info)


def _decided(decision: str, reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }


def policy_view(name: str, tool_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Claude Code tool call as the approval policy reads calls: its name, and `path` for a file."""
    args = dict(tool_input)
    if "file_path" in args and "path" not in args:
        args["path"] = args["file_path"]
    return TOOL_NAMES.get(name, name), args


class ClaudeCodeWorker:
    def __init__(self, spec: ClaudeCodeWorkerSpec, setup: WorkerSetup) -> None:
        self.spec = spec
        self.setup = setup

    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome:
        from longrun.scheduler.endpoints.metering import LimitHit, Metered, MeteringProxy

        server = None
        if self.spec.script is not None:
            from longrun.scheduler.endpoints.scripted import ScriptedModelServer, load_script

            script = load_script(self.spec.script, self.setup.spec_dir)
            server = ScriptedModelServer(script, first_session=self.setup.session_n - 1)
            upstream = server.start()
            report.event("scripted_model", {"script": self.spec.script, "base_url": upstream})
        else:
            upstream = self.spec.base_url or API
        metered: list[Metered] = []
        refused: list[BudgetExhausted] = []
        limits: list[LimitHit] = []
        proxy = MeteringProxy(
            upstream, hooks.check_call, metered.append, on_limit=limits.append, on_refused=refused.append
        )
        try:
            proxy.start()
            outcome = await self._session(task, hooks, report, proxy.base_url, metered)
        finally:
            proxy.stop()
            if server is not None:
                server.stop()
        _report_calls(report, metered)  # what came after the CLI's last message
        if refused:
            return WorkerOutcome(EndReason.budget, refused[0].message)
        if limits:
            hit = limits[-1]
            report.event("rate_limited_by_api", {"status": hit.status, "message": hit.message[:300]})
            retry_at = reset_from_headers(hit.headers, utcnow())
            return WorkerOutcome(
                EndReason.rate_limited, hit.message[:300] or "the API's usage limit", retry_at
            )
        return outcome

    async def _session(
        self, task: WorkerTask, hooks: WorkerHooks, report: Reporter, base_url: str, metered: list[Any]
    ) -> WorkerOutcome:
        from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, HookMatcher, create_sdk_mcp_server
        from claude_agent_sdk.types import PermissionResultDeny

        async def police(event: Any, _tool_use_id: str | None, _context: Any) -> Any:
            """Every tool call, in every permission mode and whatever `allowed_tools` says, is
            decided here by the run's approval policy: the CLI's own permission rules never see
            a call this has not decided."""
            if hooks.should_stop():
                return _decided("deny", "not run: this session is stopping")
            decision = hooks.tool_policy(
                *policy_view(event["tool_name"], dict(event.get("tool_input") or {}))
            )
            if decision is ToolDecision.allow:
                return _decided("allow", "the run's approval policy allows it")
            return _decided("deny", f"not run: the run's approval policy says {decision}")

        async def can_use_tool(_name: str, _input: dict[str, Any], _context: Any) -> Any:
            return PermissionResultDeny(message="not run: longrun's approval policy did not decide this call")

        env = {
            "ANTHROPIC_BASE_URL": base_url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "ENABLE_TOOL_SEARCH": "false",  # longrun's tools listed, not deferred behind a search
        }
        if self.spec.script is not None:
            env["ANTHROPIC_API_KEY"] = SCRIPTED_KEY
        options = ClaudeAgentOptions(
            cwd=str(task.workspace),
            model=self.spec.model,
            allowed_tools=list(self.spec.allowed_tools),
            disallowed_tools=list(self.spec.disallowed_tools),
            permission_mode=self.spec.permission_mode,  # type: ignore[arg-type]
            max_turns=self.spec.max_turns,
            cli_path=self.spec.cli_path,
            settings=self.spec.settings,
            env=env,
            mcp_servers={MCP_SERVER: create_sdk_mcp_server(MCP_SERVER, tools=_longrun_tools(hooks))},
            can_use_tool=can_use_tool,
            hooks={"PreToolUse": [HookMatcher(matcher=None, hooks=[police])]},
            stderr=lambda _line: None,
        )
        calls: dict[str, str] = {}
        priced = 0.0
        seconds = max(1.0, (task.deadline - utcnow()).total_seconds())
        try:
            async with asyncio.timeout(seconds), ClaudeSDKClient(options) as client:
                await client.query(task.context)
                async for message in client.receive_response():
                    priced += _report_calls(report, metered)
                    ended = _follow(message, calls, report, hooks, priced)
                    if ended is not None:
                        return ended
        except TimeoutError:
            return WorkerOutcome(EndReason.stopped, "the time box ran out")
        except ImportError as exc:
            raise WorkerUnavailable(f"claude-code: {exc}") from None
        return WorkerOutcome(EndReason.finished, "Claude Code ended its turn")


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


def _handoff_tool(hooks: WorkerHooks) -> Any:
    """longrun's `handoff`, as the built-in worker has it: the note the next session starts from,
    and a checkpoint of the workspace."""
    from claude_agent_sdk import tool

    @tool(
        "handoff",
        "Leave the structured note the next session starts from, and checkpoint the workspace.",
        HANDOFF_SCHEMA,
    )
    async def handoff(args: dict[str, Any]) -> dict[str, Any]:
        note = {
            "done": [str(x) for x in args.get("done") or []],
            "next": [str(x) for x in args.get("next") or []],
            "blockers": [str(x) for x in args.get("blockers") or []],
            "notes": str(args.get("notes") or ""),
        }
        return {"content": [{"type": "text", "text": hooks.handoff(note)}]}

    return handoff


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


def _longrun_tools(hooks: WorkerHooks) -> list[Any]:
    """longrun's own tools for the CLI: `handoff` always, `propose_features` in an initializer."""
    tools = [_handoff_tool(hooks)]
    if hooks.propose_features is not None:
        tools.append(_propose_tool(hooks.propose_features))
    return tools


def _propose_tool(record: Any) -> Any:
    """The initializer's `propose_features`: the done-condition a person reviews before coding."""
    from claude_agent_sdk import tool

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
            said = record(features)
        except ValueError as exc:
            return {
                "content": [{"type": "text", "text": f"the proposal was not recorded: {exc}"}],
                "is_error": True,
            }
        return {"content": [{"type": "text", "text": said}]}

    return propose_features


def _follow(
    message: Any, calls: dict[str, str], report: Reporter, hooks: WorkerHooks, priced: float
) -> WorkerOutcome | None:
    """Record what one message of the CLI's says happened; the outcome when it ends the session.

    `priced` is what longrun's price table made of the calls so far, set beside the CLI's own
    `total_cost_usd` when the result comes (a difference over 1 % is an event: a stale table)."""
    from claude_agent_sdk import AssistantMessage, ResultMessage, ToolResultBlock, ToolUseBlock, UserMessage

    if isinstance(message, AssistantMessage):
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                calls[block.id] = block.name
                name, args = policy_view(block.name, block.input)
                report.event("tool_call", {"tool": name, "input": args, "claude_tool": block.name})
    elif isinstance(message, UserMessage) and isinstance(message.content, list):
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                tool = TOOL_NAMES.get(calls.get(block.tool_use_id, ""), "tool")
                output, is_error = _text(block.content), bool(block.is_error)
                report.event("tool_result", {"tool": tool, "is_error": is_error, "output": output})
                hooks.after_tool(tool, is_error, output)
    elif isinstance(message, ResultMessage):
        report.event(
            "claude_result",
            {
                "claude_session_id": message.session_id,
                "subtype": message.subtype,
                "num_turns": message.num_turns,
                "total_cost_usd": message.total_cost_usd,
                "longrun_usd": round(priced, 6),
                "is_error": message.is_error,
            },
        )
        claimed = message.total_cost_usd
        if claimed is not None and abs(claimed - priced) > PRICE_TOLERANCE * max(claimed, priced):
            report.event(
                "price_mismatch",
                {
                    "claude_usd": claimed,
                    "longrun_usd": round(priced, 6),
                    "difference_pct": round(100 * abs(claimed - priced) / max(claimed, priced), 2),
                },
            )
        said = message.result or ""
        if is_limit_text(said):
            return WorkerOutcome(EndReason.rate_limited, said[:300], reset_from_text(said, utcnow()))
        if message.is_error:
            return WorkerOutcome(EndReason.api_error, (said or message.subtype)[:300])
    return None


def _report_calls(report: Reporter, metered: list[Any]) -> float:
    """The calls the proxy metered since the last look, as `model_call` events (and `api_error`
    ones for calls the API refused), in order; returns what they cost by longrun's prices."""
    usd = 0.0
    while metered:
        m = metered.pop(0)
        if m.status != 200:
            report.event(
                "api_error", {"status": m.status, "request_id": m.request_id, "via": "metering proxy"}
            )
            continue
        usage = report.model_call(
            ModelCall(
                model=m.model,
                request_id=m.request_id,
                message_id=m.message_id or "",
                stop_reason=m.stop_reason,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
                cache_write_tokens=m.cache_write_tokens,
                cache_read_tokens=m.cache_read_tokens,
                max_tokens=m.max_tokens_sent,
                duration_ms=int(m.duration_ms),
                text="",
                tool_calls=list(m.tool_calls),
            )
        )
        usd += usage.usd
    return usd


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content[-4000:]
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))[-4000:]
    return ""


def make_worker(spec: WorkerSpec, setup: WorkerSetup) -> Worker:
    assert isinstance(spec, ClaudeCodeWorkerSpec)
    try:
        import claude_agent_sdk  # noqa: F401
    except ImportError:
        raise WorkerUnavailable(
            'worker.backend = "claude-code" needs Claude Code: pip install "longrun[claude-code]"'
        ) from None
    if spec.cli_path is not None and not Path(spec.cli_path).exists():
        raise WorkerUnavailable(f"worker.cli_path: {spec.cli_path} does not exist")
    return ClaudeCodeWorker(spec, setup)
