"""The built-in worker: the anthropic SDK's own async tool runner and agent toolset.

The SDK runs the agent loop and the file and shell tools; longrun only wraps each tool to see
and police its calls, adds a structured `handoff` tool, guards every HTTP attempt with the
pre-call budget check, and closes the stateful bash tool when the session ends (the Messages
tool runner does not).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import anthropic
from anthropic.lib.tools import ToolError, beta_async_tool
from anthropic.lib.tools._beta_functions import BetaAsyncFunctionTool, aclose_runnable_tool
from anthropic.lib.tools.agent_toolset import AgentToolContext, beta_agent_toolset_20260401
from pydantic import BaseModel

from longrun.evaluators.command import clean_env
from longrun.scheduler.guards.policy import ASK_HUMAN
from longrun.scheduler.spec.worker import WorkerSpec
from longrun.scheduler.workers.base import (
    Decided,
    EndReason,
    ModelCall,
    Reporter,
    ResumePoint,
    ToolDecision,
    Worker,
    WorkerHooks,
    WorkerOutcome,
    WorkerSetup,
    WorkerTask,
    WorkerUnavailable,
)
from longrun.scheduler.workers.sandboxed_shell import SandboxedToolContext
from longrun.store.errors import BudgetExhausted


def make_worker(spec: WorkerSpec, setup: WorkerSetup) -> Worker:
    """The `anthropic` backend: the Messages API with the key in `ANTHROPIC_API_KEY`."""
    api_key = os.environ.get("ANTHROPIC_API_KEY")
    if not api_key:
        raise WorkerUnavailable("ANTHROPIC_API_KEY is not set in the environment")
    return AnthropicWorker(base_url=spec.base_url, api_key=api_key)


SYSTEM_PROMPT = """\
You are the worker of a longrun run: a long task carried out over many time-boxed sessions.
This session starts from the context below and from the workspace (a git repository, your
working directory); nothing else survives between sessions.

- Work in small steps and commit your work to git with clear messages as you go.
- Only an external judge decides whether a feature of the done-condition passes. Your own
  claims are not verdicts, so make the checks pass for real.
- Before you stop, and at once when you are told to wrap up, call the `handoff` tool with what
  you did, what comes next, what blocks you and anything the next session must know.
- Do not edit files under .longrun/: they are longrun's read-only copies.
"""

RESULT_RECORD_BYTES = 4_000
"""How much of a tool's output goes into its event (the model still gets the whole of it)."""


def _tool_text(result: object) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        return "\n".join(
            str(b.get("text", f"[{b.get('type', 'block')}]")) if isinstance(b, dict) else str(b)
            for b in result
        )
    return str(result)


def _tail(text: str, limit: int = RESULT_RECORD_BYTES) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return "[…] " + data[-limit:].decode(errors="ignore")


def _reset_time(response: Any) -> datetime | None:
    """When a rate limit resets, from `retry-after` or the `anthropic-ratelimit-*-reset` headers."""
    if response is None:
        return None
    headers = response.headers
    now = datetime.now(UTC)
    candidates: list[datetime] = []
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            candidates.append(now + timedelta(seconds=float(retry_after)))
        except ValueError:
            try:
                candidates.append(parsedate_to_datetime(retry_after).astimezone(UTC))
            except (TypeError, ValueError):
                pass
    for name, value in headers.items():
        if name.lower().startswith("anthropic-ratelimit-") and name.lower().endswith("-reset"):
            try:
                candidates.append(datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC))
            except ValueError:
                pass
    return max(candidates) if candidates else None


class AnthropicWorker:
    """Runs one session with the SDK's tool runner against the Messages API at `base_url` (None:
    the SDK's own default)."""

    def __init__(self, *, base_url: str | None, api_key: str, max_retries: int = 2) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.max_retries = max_retries

    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome:
        client = anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=self.max_retries,
            middleware=[_budget_guard(hooks, report)],
        )
        ctx: AgentToolContext
        if task.sandbox is not None:
            ctx = SandboxedToolContext(
                workdir=str(task.workspace),
                env=task.sandbox.env,
                read_only_roots=list(task.sandbox.read_only),
                sandbox=task.sandbox,
            )
        else:
            ctx = AgentToolContext(workdir=str(task.workspace), env=_scrubbed_env())
        sdk_tools = beta_agent_toolset_20260401(ctx)
        own = [_handoff_tool(hooks)]
        if hooks.propose_features is not None:
            own.append(_propose_features_tool(hooks.propose_features))
        if hooks.pause is not None:
            own.append(_ask_human_tool())
        tools = [_observed(tool, hooks, report) for tool in [*sdk_tools, *own]]
        messages: list[Any] = [{"role": "user", "content": task.context}]
        if task.resume is not None:
            messages = await _resumed(task.resume, {t.name: t for t in tools})
        runner = client.beta.messages.tool_runner(
            model=task.model,
            max_tokens=task.max_tokens,
            system=SYSTEM_PROMPT,
            messages=messages,
            tools=tools,
            cache_control={"type": "ephemeral"},
            thread=False,
        )
        last: Any = None
        try:
            started = time.monotonic()
            async for message in runner:
                last = message
                report.model_call(_model_call(message, task.max_tokens, started))
                if hooks.should_stop():
                    return WorkerOutcome(EndReason.stopped, "a stop was requested")
                calls = [b for b in message.content if b.type == "tool_use"]
                waiting = [b for b in calls if hooks.tool_policy(b.name, dict(b.input)) is ToolDecision.ask]
                if waiting and hooks.pause is not None:
                    # Before any call of this message runs: keep the conversation, and stop.
                    history = [*_history(runner), message.to_param()]
                    detail = hooks.pause(_plain(history), [_plain(b.to_dict()) for b in waiting])
                    return WorkerOutcome(EndReason.approval, detail)
                started = time.monotonic()
            return WorkerOutcome(EndReason.finished, "the model ended its turn")
        except BudgetExhausted as exc:
            return WorkerOutcome(EndReason.budget, exc.message)
        except anthropic.RateLimitError as exc:
            reset = _reset_time(exc.response)
            return WorkerOutcome(EndReason.rate_limited, _api_message(exc), retry_at=reset)
        except anthropic.APIStatusError as exc:
            return WorkerOutcome(EndReason.api_error, f"HTTP {exc.status_code}: {_api_message(exc)}")
        except anthropic.APIConnectionError as exc:
            return WorkerOutcome(EndReason.api_error, f"cannot reach the model API: {exc}")
        finally:
            if hooks.keep_conversation is not None:
                hooks.keep_conversation(_final_history(runner, last))
            await runner.close()
            for tool in sdk_tools:
                await aclose_runnable_tool(tool)
            await client.close()


def _budget_guard(hooks: WorkerHooks, report: Reporter) -> Any:
    """The SDK middleware around every HTTP attempt: the pre-call budget check (which may lower
    `max_tokens` or refuse), and an `api_error` event for every answer of 400 or more."""

    async def guard(request: Any, call_next: Any) -> Any:
        body = request.json
        if request.method.lower() == "post" and isinstance(body, dict) and "max_tokens" in body:
            checked = hooks.check_call(body)
            if checked is not body:
                request = request.copy(body=checked)
        response = await call_next(request)
        if response.status_code >= 400:
            reset = _reset_time(response)
            report.event(
                "api_error",
                {
                    "status": response.status_code,
                    "attempt": request.retries_taken + 1,
                    "reset_at": reset.isoformat() if reset else None,
                },
            )
        return response

    return guard


def _model_call(message: Any, max_tokens: int, started: float) -> ModelCall:
    usage = message.usage
    return ModelCall(
        model=message.model,
        request_id=getattr(message, "_request_id", None),
        message_id=message.id,
        stop_reason=message.stop_reason,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        max_tokens=max_tokens,
        duration_ms=int((time.monotonic() - started) * 1000),
        text="\n".join(b.text for b in message.content if b.type == "text"),
        tool_calls=[b.name for b in message.content if b.type == "tool_use"],
    )


def _final_history(runner: Any, last: Any) -> list[Any]:
    """The whole conversation when the loop stopped, the reply in hand included."""
    history = _plain(_history(runner))
    reply = _plain(last) if last is not None else None
    if reply is not None and (not history or history[-1] != reply):
        history.append(reply)
    return history


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return str((error.get("message") if isinstance(error, dict) else None) or exc.message)


def _scrubbed_env() -> dict[str, str]:
    """The agent's shell environment: ours, without credentials, with longrun's Python first on PATH."""
    return clean_env()


def _observed(
    tool: BetaAsyncFunctionTool[Any], hooks: WorkerHooks, report: Reporter
) -> BetaAsyncFunctionTool[Any]:
    """The SDK tool with the same name and schema, its calls policed and recorded as events."""

    async def call(**kwargs: Any) -> Any:
        if hooks.should_stop():
            raise ToolError("not run: this session is stopping")
        decision = hooks.tool_policy(tool.name, kwargs)
        report.event("tool_call", {"tool": tool.name, "input": kwargs, "decision": str(decision)})
        started = time.monotonic()

        def finished(is_error: bool, output: str) -> None:
            report.event(
                "tool_result",
                {
                    "tool": tool.name,
                    "is_error": is_error,
                    "output": _tail(output),
                    "duration_ms": int((time.monotonic() - started) * 1000),
                },
            )
            hooks.after_tool(tool.name, is_error, output)

        if decision is not ToolDecision.allow:
            finished(True, f"{decision} by policy")
            raise ToolError(f"not run: the call was refused by the run's approval policy ({decision})")
        try:
            result = await tool.call(kwargs)
        except ToolError as exc:
            output = _tool_text(exc.content)
            finished(True, output)
            raise ToolError(_with_notice(output, hooks)) from None
        except Exception as exc:  # the SDK would turn it into an error result; record it first
            finished(True, f"{type(exc).__name__}: {exc}")
            raise
        finished(False, _tool_text(result))
        notice = hooks.wrap_up_notice()
        if notice and isinstance(result, str):
            return f"{result}\n\n{notice}"
        if notice and isinstance(result, list):
            return [*result, {"type": "text", "text": notice}]
        return result

    call.__name__ = tool.name
    return BetaAsyncFunctionTool(
        call, name=tool.name, description=tool.description, input_schema=tool.input_schema
    )


def _with_notice(output: str, hooks: WorkerHooks) -> str:
    notice = hooks.wrap_up_notice()
    return f"{output}\n\n{notice}" if notice else output


def _handoff_tool(hooks: WorkerHooks) -> BetaAsyncFunctionTool[Any]:
    @beta_async_tool(name="handoff")
    async def handoff(
        done: list[str], next: list[str], blockers: list[str] | None = None, notes: str = ""
    ) -> str:
        """Leave the structured note the next session starts from, and checkpoint the workspace.

        Args:
            done: What this session finished (one item per line of work).
            next: What the next session should do, most important first.
            blockers: What stops progress and needs a person or a decision.
            notes: Anything else the next session must know (gotchas, state of half-done work).
        """
        return hooks.handoff({"done": done, "next": next, "blockers": blockers or [], "notes": notes})

    return handoff


class ProposedFeature(BaseModel):
    """One feature of a proposed done-condition."""

    id: str
    description: str
    check: str | None = None
    rubric: str | None = None


def _propose_features_tool(record: Callable[[list[dict[str, Any]]], str]) -> BetaAsyncFunctionTool[Any]:
    @beta_async_tool(name="propose_features")
    async def propose_features(features: list[ProposedFeature]) -> str:
        """Propose the run's done-condition: the features that, all passing, mean the goal is met.

        A person reviews the list before any coding session starts.

        Args:
            features: Each with an `id` (lowercase letters, digits, "-", "_" or "."), a one-sentence
                `description`, and a `check` (a shell command run in the workspace that exits 0 when
                the feature is done) and/or a `rubric` (what a reviewer model must see to pass it).
        """
        try:
            return record([f.model_dump(exclude_none=True) for f in features])
        except ValueError as exc:
            raise ToolError(f"the proposal was not recorded: {exc}") from None

    return propose_features


def _history(runner: Any) -> list[Any]:
    """The conversation the runner sent last (without the reply in hand), read through its public
    `set_messages_params`, which hands the current params to a function and keeps what it returns."""
    seen: dict[str, list[Any]] = {}

    def keep(params: Any) -> Any:
        seen["messages"] = list(params["messages"])
        return params

    runner.set_messages_params(keep)
    return seen["messages"]


def _plain(value: Any) -> Any:
    """Messages as plain JSON data (the SDK may hold some as models)."""
    if hasattr(value, "to_param"):
        value = value.to_param()
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def _resumed(point: ResumePoint, tools: dict[str, BetaAsyncFunctionTool[Any]]) -> list[Any]:
    """The paused conversation with the results of its waiting message's calls: each runs now as
    a person decided (exactly that call, once), is refused with their words, or gets the answer."""
    last = point.messages[-1]
    if last.get("role") != "assistant" or not any(
        isinstance(b, dict) and b.get("type") == "tool_use" for b in last.get("content", [])
    ):
        return [*point.messages, {"role": "user", "content": [{"type": "text", "text": point.notice}]}]
    results: list[dict[str, Any]] = []
    for block in last.get("content", []):
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        decided = point.decided.get(block["id"], Decided("run"))
        content: Any
        if decided.action == "run":
            tool = tools.get(block["name"])
            if tool is None:
                content, is_error = f"Error: tool {block['name']!r} is not available", True
            else:
                try:
                    content, is_error = await tool.call(block.get("input") or {}), False
                except ToolError as exc:
                    content, is_error = _tool_text(exc.content), True
                except Exception as exc:  # as the SDK's runner would: the model sees the error
                    content, is_error = f"{type(exc).__name__}: {exc}", True
        else:
            content, is_error = decided.text, decided.action == "deny"
        results.append(
            {"type": "tool_result", "tool_use_id": block["id"], "content": content, "is_error": is_error}
        )
    if point.notice:
        results.append({"type": "text", "text": point.notice})
    return [*point.messages, {"role": "user", "content": results}]


def _ask_human_tool() -> BetaAsyncFunctionTool[Any]:
    @beta_async_tool(name=ASK_HUMAN)
    async def ask_human(question: str, why: str, choices: list[str] | None = None) -> str:
        """Ask the person supervising this run a question, and wait for the answer.

        Use it instead of guessing when a decision is theirs to make or you are blocked. The session
        pauses until they answer; the answer comes back as this tool's result.

        Args:
            question: The question, on its own.
            why: Why it matters: what you will do with the answer.
            choices: The answers you expect, if there are a few.
        """
        raise ToolError("not run: a question waits for a person's answer")  # the harness pauses first

    return ask_human
