"""What the CLI's messages and the proxy's record say happened in a session, as its events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from longrun.scheduler.guards.usage_limits import is_limit_text, reset_from_text
from longrun.scheduler.workers.base import EndReason, Reporter, WorkerHooks, WorkerOutcome
from longrun.scheduler.workers.claude_code.tools import TOOL_NAMES, policy_view
from longrun.store.models import utcnow

PRICE_TOLERANCE = 0.01
"""How far the CLI's own cost may be from longrun's price of the same calls before it is an event."""

RESULT_RECORD_CHARS = 4_000
"""How much of a tool's output goes into its event (the model still gets the whole of it)."""


class Follower:
    """Reads the CLI's messages one by one: records tool calls and results, the result (with the
    CLI's own cost beside longrun's price), and usage-limit news; says when one ends the session."""

    def __init__(self, report: Reporter, hooks: WorkerHooks) -> None:
        self.report = report
        self.hooks = hooks
        self.calls: dict[str, str] = {}
        self.priced = 0.0
        """What longrun's price table made of the calls so far."""
        self.claude_session_id: str | None = None
        self.interrupted = False
        """longrun interrupted the turn itself (to wrap up or to pause): its error result is expected."""

    def see(self, message: Any) -> WorkerOutcome | None:
        from claude_agent_sdk import AssistantMessage, RateLimitEvent, ResultMessage, UserMessage

        if isinstance(message, AssistantMessage):
            self._assistant(message)
        elif isinstance(message, UserMessage) and isinstance(message.content, list):
            self._results(message)
        elif isinstance(message, RateLimitEvent):
            return self._rate_limit(message)
        elif isinstance(message, ResultMessage):
            return self._result(message)
        return None

    def _assistant(self, message: Any) -> None:
        from claude_agent_sdk import ToolUseBlock

        for block in message.content:
            if isinstance(block, ToolUseBlock):
                self.calls[block.id] = block.name
                name, args = policy_view(block.name, block.input)
                self.report.event("tool_call", {"tool": name, "input": args, "claude_tool": block.name})

    def _results(self, message: Any) -> None:
        from claude_agent_sdk import ToolResultBlock

        for block in message.content:
            if isinstance(block, ToolResultBlock):
                tool = TOOL_NAMES.get(self.calls.get(block.tool_use_id, ""), "tool")
                output, is_error = _text(block.content), bool(block.is_error)
                self.report.event("tool_result", {"tool": tool, "is_error": is_error, "output": output})
                self.hooks.after_tool(tool, is_error, output)

    def _rate_limit(self, message: Any) -> WorkerOutcome | None:
        info = message.rate_limit_info
        resets = datetime.fromtimestamp(info.resets_at, UTC) if info.resets_at else None
        data = {
            "status": info.status,
            "limit": info.rate_limit_type,
            "utilization": info.utilization,
            "resets_at": resets.isoformat() if resets else None,
        }
        if info.status == "allowed_warning":
            self.report.event("usage_limit_warning", data)
        elif info.status == "rejected":
            self.report.event("usage_limit_hit", data)
            window = f" ({info.rate_limit_type})" if info.rate_limit_type else ""
            return WorkerOutcome(EndReason.rate_limited, f"Claude Code's usage limit{window} was hit", resets)
        return None

    def _result(self, message: Any) -> WorkerOutcome | None:
        self.claude_session_id = message.session_id
        self.report.event(
            "claude_result",
            {
                "claude_session_id": message.session_id,
                "subtype": message.subtype,
                "num_turns": message.num_turns,
                "total_cost_usd": message.total_cost_usd,
                "longrun_usd": round(self.priced, 6),
                "is_error": message.is_error,
            },
        )
        claimed, priced = message.total_cost_usd, self.priced
        if claimed is not None and abs(claimed - priced) > PRICE_TOLERANCE * max(claimed, priced):
            self.report.event(
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
        if message.is_error and not self.interrupted:
            return WorkerOutcome(EndReason.api_error, (said or message.subtype)[:300])
        return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content[-RESULT_RECORD_CHARS:]
    if isinstance(content, list):
        text = "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        return text[-RESULT_RECORD_CHARS:]
    return ""
