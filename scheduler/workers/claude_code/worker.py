"""One Claude Code session under longrun.

The CLI makes its own API calls, so it is pointed (`ANTHROPIC_BASE_URL`, for its process only)
at a metering proxy on loopback: each call is admitted against the caps before it leaves, and
its usage comes back as the session's `model_call` events, priced by longrun's table. Every tool
call is decided by the run's approval policy in a PreToolUse hook. With `script` set, the
upstream is the scripted model server, so a run, the demo and the tests need neither a network
nor a key.

A call the policy asks a person about (or an `ask_human` question) is not run: the session
interrupts the CLI, keeps its transcript with a checkpoint, records the approval and ends
`approval`. The next session resumes the same Claude conversation and is told the decision; an
approved call is let through once when the model makes it again, a denied one never. At
`wrap_up` the CLI is interrupted and told to hand off; just before the deadline the CLI and
every process it started are killed, so the session still ends with a checkpoint. A usage limit
(the CLI's rate-limit event or words, or a 429 with a reset the proxy saw) ends the session
`rate_limited` with `retry_at`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from longrun.scheduler.guards.policy import ASK_HUMAN
from longrun.scheduler.guards.usage_limits import reset_from_headers
from longrun.scheduler.spec.worker import WorkerSpec
from longrun.scheduler.workers.base import (
    EndReason,
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
from longrun.scheduler.workers.claude_code import NEEDS_SDK, confined, processes, sdk_installed
from longrun.scheduler.workers.claude_code.auth import cli_credentials
from longrun.scheduler.workers.claude_code.follow import Follower
from longrun.scheduler.workers.claude_code.spec import ClaudeCodeWorkerSpec
from longrun.scheduler.workers.claude_code.tools import MCP_SERVER, longrun_server, policy_view
from longrun.scheduler.workers.claude_code.transcripts import TranscriptStore, is_claude_record
from longrun.scheduler.workers.metered import report_calls
from longrun.store.errors import BudgetExhausted
from longrun.store.models import utcnow

if TYPE_CHECKING:
    from claude_agent_sdk.types import SessionStore

API = "https://api.anthropic.com"
SCRIPTED_KEY = "scripted-model-needs-no-key"

END_MARGIN = timedelta(seconds=5)
"""How long before the session's deadline the CLI is killed, so the session can still checkpoint
and say how it ended before the supervisor kills its process group."""

WATCH_SECONDS = 0.25
"""How often the session looks at the clock, the stop flag and the pause while the CLI works."""


def _decided(decision: str, reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }


@dataclass
class _Turns:
    """What the session asked of the running CLI besides its work."""

    waiting: list[dict[str, Any]] = field(default_factory=list)
    """Calls that wait for a person (none has run)."""
    notice: str | None = None
    """The wrap-up notice, to send as soon as the interrupted turn has ended."""
    interrupting: bool = False


class ClaudeCodeWorker:
    def __init__(self, spec: ClaudeCodeWorkerSpec, setup: WorkerSetup) -> None:
        self.spec = spec
        self.setup = setup

    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome:
        from longrun.scheduler.endpoints.metering import LimitHit, Metered, MeteringProxy

        server = None
        if self.spec.script is not None:
            from longrun.scheduler.endpoints.scripted import ScriptedModelServer, load_script
            from longrun.scheduler.endpoints.scripted.dialect import for_claude_code

            script = for_claude_code(load_script(self.spec.script, self.setup.spec_dir))
            server = ScriptedModelServer(script, first_session=self.setup.session_n - 1)
            upstream = server.start()
            report.event("scripted_model", {"script": self.spec.script, "base_url": upstream})
        else:
            upstream = self.spec.base_url or API
        metered: list[Metered] = []
        refused: list[BudgetExhausted] = []
        limits: list[LimitHit] = []
        ceiling = self.spec.max_tokens

        def admit(body: dict[str, Any], counted: int | None) -> dict[str, Any]:
            """The spec's `max_tokens` bounds every call, whatever the CLI asks for."""
            if int(body.get("max_tokens") or ceiling) > ceiling:
                body = {**body, "max_tokens": ceiling}
            return hooks.check_call(body, counted)

        cli_env, credentials = cli_credentials()
        if server is not None:
            cli_env["ANTHROPIC_API_KEY"], credentials = SCRIPTED_KEY, {}
        proxy = MeteringProxy(
            upstream,
            admit,
            metered.append,
            on_limit=limits.append,
            on_refused=refused.append,
            credentials=credentials,
        )
        kept = _kept_record(task.resume)
        transcripts = TranscriptStore(kept)
        turns = _Turns()
        try:
            proxy.start()
            cli_env["ANTHROPIC_BASE_URL"] = proxy.base_url
            with _cli_for(task, self.spec.cli_path, cli_env) as cli_path:
                outcome = await self._session(
                    task, hooks, report, cli_env, metered, transcripts, turns, cli_path
                )
        finally:
            proxy.stop()
            if server is not None:
                server.stop()
        report_calls(report, metered)  # what came after the CLI's last message
        report.event("proxy_usage", dict(proxy.totals))
        record = transcripts.record(turns.waiting)
        if record is not None and hooks.keep_conversation is not None:
            hooks.keep_conversation([record])
        if refused:
            return WorkerOutcome(EndReason.budget, refused[0].message)
        if limits:
            hit = limits[-1]
            report.event("rate_limited_by_api", {"status": hit.status, "message": hit.message[:300]})
            retry_at = reset_from_headers(hit.headers, utcnow())
            return WorkerOutcome(
                EndReason.rate_limited, hit.message[:300] or "the API's usage limit", retry_at
            )
        if turns.waiting and hooks.pause is not None and record is not None:
            return WorkerOutcome(EndReason.approval, hooks.pause([record], turns.waiting))
        return outcome

    async def _session(
        self,
        task: WorkerTask,
        hooks: WorkerHooks,
        report: Reporter,
        cli_env: dict[str, str],
        metered: list[Any],
        transcripts: TranscriptStore,
        turns: _Turns,
        cli_path: str | None,
    ) -> WorkerOutcome:
        from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, HookMatcher
        from claude_agent_sdk.types import PermissionResultDeny

        async def police(event: Any, tool_use_id: str | None, _context: Any) -> Any:
            """Every tool call, in every permission mode and whatever `allowed_tools` says, is
            decided here by the run's approval policy: the CLI's own permission rules never see
            a call this has not decided."""
            claude_input = dict(event.get("tool_input") or {})
            name, args = policy_view(event["tool_name"], claude_input)
            if turns.waiting:
                return _decided("deny", "not run: this session is pausing for a person's decision")
            if hooks.should_stop():
                return _decided("deny", "not run: this session is stopping")
            decision = hooks.tool_policy(name, args)
            if decision is ToolDecision.allow:
                return _decided("allow", "the run's approval policy allows it")
            if decision is ToolDecision.ask and hooks.pause is not None:
                turns.waiting.append(
                    {
                        "id": tool_use_id or f"call_{len(turns.waiting) + 1}",
                        "name": name,
                        "input": args,
                        "claude_tool": event["tool_name"],
                        "claude_input": claude_input,
                    }
                )
                if name == ASK_HUMAN:
                    said = "Your question waits for a person's answer; the next session starts with it."
                else:
                    said = (
                        "Not run yet: this call waits for a person's decision; the next session is told it."
                    )
                return _decided("deny", f"{said} This session pauses now: end your turn.")
            return _decided("deny", f"not run: the run's approval policy says {decision}")

        async def can_use_tool(_name: str, _input: dict[str, Any], _context: Any) -> Any:
            return PermissionResultDeny(message="not run: longrun's approval policy did not decide this call")

        env = cli_env | CLI_FLAGS
        options = ClaudeAgentOptions(
            cwd=str(task.workspace),
            model=self.spec.model,
            allowed_tools=list(self.spec.allowed_tools),
            disallowed_tools=list(self.spec.disallowed_tools),
            permission_mode=self.spec.permission_mode,  # type: ignore[arg-type]
            max_turns=self.spec.max_turns,
            cli_path=cli_path,
            settings=self.spec.settings,
            env=env,
            mcp_servers={MCP_SERVER: longrun_server(hooks)},
            can_use_tool=can_use_tool,
            hooks={"PreToolUse": [HookMatcher(matcher=None, hooks=[police])]},
            stderr=lambda _line: None,
            resume=transcripts.session_id,
            session_store=cast("SessionStore", transcripts),  # the protocol's optional methods are absent
        )
        prompt = task.context if task.resume is None else resume_prompt(task.resume)
        if transcripts.session_id is not None:
            report.event("claude_resume", {"claude_session_id": transcripts.session_id, "prompt": prompt})
        follower = Follower(report, hooks)
        loop = asyncio.get_running_loop()
        end_at = loop.time() + max(1.0, (task.deadline - END_MARGIN - utcnow()).total_seconds())
        before = processes.children(os.getpid())
        cli: set[int] = set()
        try:
            async with ClaudeSDKClient(options) as client:
                cli = processes.children(os.getpid()) - before
                watch = asyncio.create_task(_watch(client, hooks, turns, follower))
                try:
                    async with asyncio.timeout_at(end_at):
                        return await _converse(client, prompt, report, metered, follower, turns, hooks)
                except TimeoutError:
                    killed = processes.kill_tree(cli)
                    report.event("time_box_kill", {"processes": len(killed)})
                    return WorkerOutcome(EndReason.stopped, "the time box ran out; Claude Code was killed")
                finally:
                    watch.cancel()
            # the client's exit is typed as one that may swallow an error (it never does)
            return WorkerOutcome(EndReason.error, "Claude Code's client ended without an outcome")
        except ImportError as exc:
            raise WorkerUnavailable(f"claude-code: {exc}") from None
        finally:
            processes.kill_tree(cli)  # whatever the CLI left running


async def _converse(
    client: Any,
    prompt: str,
    report: Reporter,
    metered: list[Any],
    follower: Follower,
    turns: _Turns,
    hooks: WorkerHooks,
) -> WorkerOutcome:
    """Send the prompt, follow the CLI to the end of its turn, and send the wrap-up notice as a
    new turn when one came meanwhile."""
    prompts = [prompt]
    while prompts:
        await client.query(prompts.pop(0))
        async for message in client.receive_response():
            follower.priced += report_calls(report, metered)
            ended = follower.see(message)
            if ended is not None:
                return ended
        if turns.notice is not None and not turns.waiting and not hooks.should_stop():
            prompts.append(turns.notice)
            turns.notice = None
            follower.interrupted = False
    if turns.waiting:
        return WorkerOutcome(EndReason.approval, "waiting for a person")
    if hooks.should_stop():
        return WorkerOutcome(EndReason.stopped, "a stop was requested")
    return WorkerOutcome(EndReason.finished, "Claude Code ended its turn")


async def _watch(client: Any, hooks: WorkerHooks, turns: _Turns, follower: Follower) -> None:
    """While the CLI works: interrupt its turn when the session pauses, is asked to stop, or
    reaches its wrap-up time (then the notice follows as the next turn)."""
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        if not follower.interrupted:
            notice = hooks.wrap_up_notice()
            if notice is not None:
                turns.notice = notice
            if turns.waiting or hooks.should_stop() or notice is not None:
                follower.interrupted = True
                await client.interrupt()


def _kept_record(point: ResumePoint | None) -> dict[str, Any] | None:
    """The Claude Code conversation a resumed session goes on from (None: a fresh one)."""
    if point is None or not is_claude_record(point.messages):
        return None
    return point.messages[0]


def resume_prompt(point: ResumePoint) -> str:
    """What the resumed conversation is told first: who decided what about the calls it waited on."""
    record = _kept_record(point)
    lines = [point.notice]
    for call in record["waiting"] if record else []:
        decided = point.decided.get(call["id"])
        if decided is None:
            continue
        if decided.action == "run":
            shown = json.dumps(call.get("claude_input", call["input"]), ensure_ascii=False)
            tool = call.get("claude_tool", call["name"])
            lines.append(
                f"- Your {tool} call {shown} was approved. Make it again now, exactly as it was: "
                "the approval lets that one call run once."
            )
        elif decided.action == "answer":
            question = str(call["input"].get("question", ""))
            lines.append(f"- The answer to your question {question!r}: {decided.text}")
        else:
            lines.append(f"- {decided.text}")
    lines.append("Then go on with the work.")
    return "\n".join(line for line in lines if line)


CLI_FLAGS = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "ENABLE_TOOL_SEARCH": "false",  # longrun's tools listed, not deferred behind a search
}


@contextmanager
def _cli_for(task: WorkerTask, cli_path: str | None, cli_env: dict[str, str]) -> Iterator[str | None]:
    """The `cli_path` to give the SDK: the spec's, or with a sandbox a wrapper that runs the CLI
    inside it (and, with the network off, the relay to the proxy that is its only way out).

    Sandboxed, the CLI keeps its config in a folder made for the session (`CLAUDE_CONFIG_DIR`, set
    in `cli_env` so that the SDK looks for its transcripts there too), not in the user's: a login
    kept there is a secret the sandbox does not show."""
    sandbox = task.sandbox
    if sandbox is None:
        yield cli_path
        return
    cli = confined.real_cli(cli_path)
    if cli is None:
        raise WorkerUnavailable("no Claude Code CLI found to run in the sandbox (set worker.cli_path)")
    port = urlsplit(cli_env["ANTHROPIC_BASE_URL"]).port
    assert port is not None
    sandbox.reach(port)
    folder = Path(tempfile.mkdtemp(prefix="longrun-claude-"))
    (folder / "config").mkdir()
    cli_env["CLAUDE_CONFIG_DIR"] = str(folder / "config")
    confined.write_wrapper(folder, sandbox, cli, cli_env | CLI_FLAGS)
    try:
        yield str(folder / "claude")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_worker(spec: WorkerSpec, setup: WorkerSetup) -> Worker:
    assert isinstance(spec, ClaudeCodeWorkerSpec)
    if not sdk_installed():
        raise WorkerUnavailable(f'worker.backend = "claude-code" {NEEDS_SDK}')
    if spec.cli_path is not None and not Path(spec.cli_path).exists():
        raise WorkerUnavailable(f"worker.cli_path: {spec.cli_path} does not exist")
    return ClaudeCodeWorker(spec, setup)
