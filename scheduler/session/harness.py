"""The session harness: `python -m longrun.scheduler.session SESSION_ID`.

A stateless process: it loads everything from the store, puts the workspace at the session's
starting checkpoint, builds the resume context, runs the worker with its hooks, writes every
event as it happens, keeps a heartbeat, checkpoints on handoff, every N tool calls, every M
minutes and at its end, and records how it ended. The supervisor (or `longrun session run`)
kills its whole process group at the deadline; anything it had written stays written.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from longrun.scheduler.guards import policy
from longrun.scheduler.guards.breakers import SameErrorWatch, Trip, threshold
from longrun.scheduler.guards.budget import Spent, caps_left, crossed_warnings, fit_call
from longrun.scheduler.guards.pricing import PriceTable, prices_for
from longrun.scheduler.judging.features import FEATURES_FILE, features_document, write_features_file
from longrun.scheduler.session import mirror
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.session.checkpoints import take_checkpoint
from longrun.scheduler.session.context import build_resume_context, context_digest, load_resume_inputs
from longrun.scheduler.session.resume import resume_point
from longrun.scheduler.session.sandbox import Sandbox, home_dirs
from longrun.scheduler.spec.durations import format_duration
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.supervisor.notify import Notifier
from longrun.scheduler.workers.base import (
    EndReason,
    ModelCall,
    ToolDecision,
    WorkerHooks,
    WorkerOutcome,
    WorkerSetup,
    WorkerTask,
)
from longrun.scheduler.workers.registry import backend_of
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import BudgetExhausted, LongrunError
from longrun.store.models import SessionState, utcnow
from longrun.store.runs import CheckpointView, RunView, SessionView, Usage

HEARTBEAT_SECONDS = 2.0
API_OVERHEAD_TOKENS = 1024
"""Tokens the API may add to a request by itself (the tool-use system prompt), for the first bound."""


class Harness:
    """One session's bookkeeping around a worker: events, checkpoints, heartbeat and hooks."""

    def __init__(self, store: Store, session: SessionView, run: RunView, spec: RunSpec, prices: PriceTable):
        self.store = store
        self.session = session
        self.run = run
        self.spec = spec
        self.workspace = Path(run.workspace)
        price = prices.find(spec.worker.model)
        if price is None:
            raise LongrunError(f"no price for model {spec.worker.model!r} (add it to pricing.toml)")
        self.price = price
        self.notifier = Notifier(spec.notify.webhook_url)
        self.budget_cap: str | None = None
        """The cap that ended the session, when one did."""
        self.tripped: Trip | None = None
        self.same_errors = SameErrorWatch()
        self.half_open = {name for name, b in runs.breakers(store, run.id).items() if b.state == "half_open"}
        self.stop_requested = False
        self.wrap_up_sent = False
        self.calls_since_checkpoint = 0
        self.last_checkpoint_at = utcnow()
        self.final_conversation: list[dict[str, Any]] | None = None
        self.rules = policy.rules_of(spec)
        self.approved: set[tuple[str, str]] = set()
        """Calls a person approved, as (tool, canonical input): each runs once without asking again."""
        self.last_input_bound: tuple[int, int] | None = None
        """(input tokens the last reply reported in all, bytes of the request that produced it)."""

    # --- events -----------------------------------------------------------------------------

    def event(self, kind: str, data: dict[str, Any]) -> None:
        log.record(self.store, self.run.id, kind, data, session_id=self.session.id)
        if kind == "api_error":
            window = self.spec.breakers.api_errors_window
            count = runs.count_events_since(self.store, self.run.id, "api_error", utcnow() - window)
            if count >= threshold(self.spec.breakers.api_errors, "api_errors" in self.half_open):
                self.trip(
                    Trip(
                        "api_errors",
                        {
                            "errors": count,
                            "limit": self.spec.breakers.api_errors,
                            "window": format_duration(window),
                        },
                    )
                )

    def sandbox_breached(self, why: str) -> None:
        """A sandbox limit was hit (called from the sandbox's watching thread): end the session at
        its next step; what ran inside is already killed."""
        self.stop_requested = True

    def trip(self, trip: Trip) -> None:
        """Open a breaker: record it, notify, and end the session at its next step."""
        if self.tripped is not None:
            return
        self.tripped = trip
        self.stop_requested = True
        with self.store.writing() as conn:
            runs.set_breaker(conn, self.run.id, trip.name, "open", trip.reason)
            log.append(
                conn,
                self.run.id,
                "breaker_tripped",
                {"breaker": trip.name, **trip.numbers},
                session_id=self.session.id,
            )
        numbers = {"breaker": trip.name, **trip.numbers}
        self.notifier.send("breaker_tripped", self.run.id, self.run.name, numbers)

    def model_call(self, call: ModelCall) -> Usage:
        usage = self.price.usage(
            call.input_tokens, call.output_tokens, call.cache_write_tokens, call.cache_read_tokens
        )
        data = {
            "model": call.model,
            "request_id": call.request_id,
            "message_id": call.message_id,
            "stop_reason": call.stop_reason,
            "max_tokens": call.max_tokens,
            "duration_ms": call.duration_ms,
            "text": call.text[:2000],
            "tool_calls": call.tool_calls,
            "usage": usage.to_json(),
        }
        before = caps_left(self.spec.budget, self.spent())
        with self.store.writing() as conn:
            log.append(conn, self.run.id, "model_call", data, session_id=self.session.id)
            runs.add_usage(conn, self.run.id, self.session.id, usage)
        rate_cap = self.spec.breakers.max_usd_per_hour
        if rate_cap is not None:
            hour = runs.spent_since(self.store, self.run.id, utcnow() - timedelta(hours=1))
            if hour > rate_cap:
                self.trip(Trip("max_usd_per_hour", {"usd_last_hour": round(hour, 6), "limit": rate_cap}))
        for cap in crossed_warnings(
            before, caps_left(self.spec.budget, self.spent()), self.spec.budget.warn_at
        ):
            numbers = {
                "cap": cap.name,
                "limit": cap.limit,
                "spent": round(cap.spent, 6),
                "warn_at": self.spec.budget.warn_at,
            }
            self.event("budget_warning", numbers)
            self.notifier.send("budget_warning", self.run.id, self.run.name, numbers)
        if self.last_input_bound is not None:
            self.last_input_bound = (
                call.input_tokens + call.cache_write_tokens + call.cache_read_tokens,
                self.last_input_bound[1],
            )
        return usage

    # --- hooks ------------------------------------------------------------------------------

    def spent(self) -> Spent:
        run = runs.get_run(self.store, self.run.id)
        session = runs.get_session(self.store, self.session.id)
        return Spent(
            run.usage, session.usage, runs.day_usage(self.store, self.run.id, runs.utc_day(utcnow()))
        )

    def check_call(self, body: dict[str, Any], counted: int | None = None) -> dict[str, Any]:
        """Refuse or shrink a call whose worst case does not fit in what is left of every cap.
        `counted`: the API's own count of the call's input tokens, when the caller asked it."""
        size = len(log.canonical_json({k: body.get(k) for k in ("system", "messages", "tools")}).encode())
        if self.last_input_bound and size >= self.last_input_bound[1]:
            input_bound = self.last_input_bound[0] + (size - self.last_input_bound[1])
        elif counted is not None:
            input_bound = min(counted + API_OVERHEAD_TOKENS, size + API_OVERHEAD_TOKENS)
        else:
            # A token is never shorter than a byte; the margin covers what the API adds itself.
            input_bound = size + API_OVERHEAD_TOKENS
        self.last_input_bound = (input_bound, size)
        max_tokens = int(body["max_tokens"])
        fit = fit_call(caps_left(self.spec.budget, self.spent()), self.price, input_bound, max_tokens)
        if fit.max_tokens >= max_tokens:
            return body
        cap = fit.binding
        assert cap is not None
        numbers = {
            "cap": cap.name,
            "limit": cap.limit,
            "spent": round(cap.spent, 6),
            "input_bound": input_bound,
        }
        if not fit.useful:
            self.event("budget_stop", numbers | {"max_tokens": max_tokens})
            self.notifier.send("budget_stop", self.run.id, self.run.name, numbers)
            self.budget_cap = cap.name
            raise BudgetExhausted(
                f"the next model call would not fit in what is left of budget.{cap.name} "
                f"({cap.spent:.4f} of {cap.limit:g} spent)",
                cap=cap.name,
            )
        self.event("max_tokens_lowered", numbers | {"from": max_tokens, "to": fit.max_tokens})
        return {**body, "max_tokens": fit.max_tokens}

    def tool_policy(self, tool: str, args: dict[str, Any]) -> ToolDecision:
        """What the run's approval rules say about a call; a call a person approved runs, once."""
        key = (tool, log.canonical_json(args))
        if key in self.approved:
            self.approved.remove(key)
            return ToolDecision.allow
        return ToolDecision(policy.decide(self.rules, tool, args, self.workspace).action)

    def pause(self, history: list[dict[str, Any]], waiting: list[dict[str, Any]]) -> str:
        """The model made calls that wait for a person: checkpoint, keep the conversation exactly,
        ask for each, and end the session. Nothing of that message has run."""
        cp = self.checkpoint("approval", None)
        asked: list[str] = []
        tokens: dict[int, str] = {}
        with self.store.writing() as conn:
            conversation = runs.add_conversation(
                conn, self.run.id, self.session.id, cp.id, "approval", history
            )
            for call in waiting:
                args = dict(call.get("input") or {})
                decision = policy.decide(self.rules, call["name"], args, self.workspace)
                base = {"tool_use_id": call["id"], "conversation_id": conversation, "checkpoint_id": cp.id}
                if call["name"] == policy.ASK_HUMAN:
                    kind = "question"
                    request = base | {k: args.get(k) for k in ("question", "why", "choices")}
                else:
                    kind = "tool_call"
                    request = base | {"tool": call["name"], "input": args, **decision.to_json()}
                expires = utcnow() + decision.expires_after if decision.expires_after else None
                approval = runs.add_approval(
                    conn, self.run.id, kind, request, self.session.id, expires_at=expires
                )
                tokens[approval] = runs.issue_token(conn, approval)
                asked.append(f"{kind} {approval}")
            log.append(
                conn,
                self.run.id,
                "paused_for_approval",
                {"checkpoint_id": cp.id, "conversation_id": conversation, "approvals": asked},
                session_id=self.session.id,
            )
        for approval, token in tokens.items():
            # The token decides this one approval; it goes to the webhook only, never to the store.
            data = {"approval_id": approval, "token": token}
            self.notifier.send("approval_requested", self.run.id, self.run.name, data)
        return f"waiting for a person: {', '.join(asked)}"

    def should_stop(self) -> bool:
        return self.stop_requested

    def wrap_up_notice(self) -> str | None:
        if self.wrap_up_sent or utcnow() < self.session.wrap_up_at:
            return None
        self.wrap_up_sent = True
        left = max(int((self.session.deadline_at - utcnow()).total_seconds()), 0)
        with self.store.writing() as conn:
            runs.set_session_state(conn, self.session.id, SessionState.wrapping_up)
            log.append(conn, self.run.id, "wrap_up", {"seconds_left": left}, session_id=self.session.id)
        return (
            f"[longrun] This session ends in {left} seconds. Wrap up now: commit your work and call "
            "`handoff` with what is done, what is next and any blockers."
        )

    def after_tool(self, tool: str, is_error: bool, output: str) -> None:
        repeats = self.same_errors.see(tool, is_error, output)
        limit = threshold(self.spec.breakers.same_error_repeats, "same_error_repeats" in self.half_open)
        if repeats >= limit:
            self.trip(
                Trip(
                    "same_error_repeats",
                    {
                        "repeats": repeats,
                        "limit": self.spec.breakers.same_error_repeats,
                        "error": self.same_errors.signature,
                    },
                )
            )
        self.calls_since_checkpoint += 1
        every_calls = self.spec.session.checkpoint_every_calls
        every_minutes = self.spec.session.checkpoint_every_minutes
        if every_calls and self.calls_since_checkpoint >= every_calls:
            self.checkpoint("calls", None)
        elif every_minutes and (utcnow() - self.last_checkpoint_at).total_seconds() >= every_minutes * 60:
            self.checkpoint("timer", None)

    def propose_features(self, proposed: list[dict[str, Any]]) -> str:
        """Record the initializer's proposed done-condition as a pending approval, and end the session."""
        try:
            spec = RunSpec.model_validate({**self.spec.model_dump(mode="json"), "features": proposed})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p + 1) if isinstance(p, int) else str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg']}") from None
        if not spec.features:
            raise ValueError("propose at least one feature")
        features = [f.model_dump(mode="json", exclude_defaults=True) for f in spec.features]
        with self.store.writing() as conn:
            approval = runs.add_approval(
                conn,
                self.run.id,
                "done_condition",
                {"features": features, "proposed_by": f"session {self.session.n}"},
                self.session.id,
            )
            log.append(
                conn,
                self.run.id,
                "features_proposed",
                {"approval_id": approval, "features": [f["id"] for f in features]},
                session_id=self.session.id,
            )
        self.stop_requested = True
        return (
            f"Recorded {len(features)} proposed features as approval {approval}. A person reviews them "
            "before any coding session starts; end your turn now."
        )

    def keep_conversation(self, messages: list[dict[str, Any]]) -> None:
        self.final_conversation = messages

    def handoff(self, handoff: dict[str, Any]) -> str:
        self.event("handoff", handoff)
        cp = self.checkpoint("handoff", handoff)
        return f"Handoff recorded as checkpoint {cp.id} (commit {cp.commit[:10]})."

    # --- checkpoints ------------------------------------------------------------------------

    def checkpoint(self, reason: str, handoff: dict[str, Any] | None) -> CheckpointView:
        self.calls_since_checkpoint = 0
        self.last_checkpoint_at = utcnow()
        return take_checkpoint(self.store, self.run, self.session, reason, handoff)

    def ensure_context(self) -> str:
        """Put the workspace at the starting checkpoint and record the context the model gets."""
        start = (
            runs.get_checkpoint(self.store, self.session.from_checkpoint_id)
            if self.session.from_checkpoint_id
            else None
        )
        ws.init_workspace(self.workspace, self.run.branch)
        if start is not None:
            mirror.bring_back(self.store.home, self.workspace, self.run.id, start.commit)
            ws.restore(
                self.workspace,
                self.run.branch,
                start.commit,
                keep_ref=f"refs/longrun/{self.run.id}/found/session-{self.session.n}",
            )
        inputs = load_resume_inputs(self.store, self.run, self.session, start.id if start else None)
        text = build_resume_context(inputs)
        if inputs.features:
            document = features_document(self.run.id, inputs.checkpoint_id, inputs.features)
            sha = write_features_file(self.workspace, document)
            self.event(
                "features_file", {"path": FEATURES_FILE, "sha256": sha, "features": len(inputs.features)}
            )
        self.event(
            "context",
            {
                "checkpoint_id": start.id if start else None,
                "commit": start.commit if start else ws.head(self.workspace),
                "bytes": len(text.encode()),
                "sha256": context_digest(text),
                "text": text,
            },
        )
        return text


async def _heartbeat(harness: Harness) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        if await asyncio.to_thread(runs.heartbeat, harness.store, harness.session.id):
            if not harness.stop_requested:
                harness.stop_requested = True
                harness.event("stop_seen", {})


async def run_session(store: Store, session_id: int) -> WorkerOutcome:
    session = runs.get_session(store, session_id)
    run = runs.get_run(store, session.run_id)
    spec = RunSpec.model_validate(run.spec)
    harness = Harness(store, session, run, spec, prices_for(spec, store.home))
    session = runs.session_started(store, session_id, os.getpid())
    harness.session = session
    context = harness.ensure_context()

    try:
        worker = backend_of(spec.worker).make(
            spec.worker,
            WorkerSetup(run.id, session.n, Path(run.spec_path).parent if run.spec_path else None),
        )
    except LongrunError as exc:
        outcome = WorkerOutcome(EndReason.error, exc.message)
        finish(harness, outcome)
        return outcome

    try:
        sandbox = open_sandbox(harness)
    except LongrunError as exc:
        outcome = WorkerOutcome(EndReason.error, exc.message)
        finish(harness, outcome)
        return outcome

    resume = resume_point(harness)
    hooks = WorkerHooks(
        check_call=harness.check_call,
        tool_policy=harness.tool_policy,
        should_stop=harness.should_stop,
        wrap_up_notice=harness.wrap_up_notice,
        after_tool=harness.after_tool,
        handoff=harness.handoff,
        propose_features=harness.propose_features if not spec.features else None,
        pause=harness.pause,
        keep_conversation=harness.keep_conversation,
    )
    task = WorkerTask(
        context=context,
        workspace=harness.workspace,
        deadline=session.deadline_at,
        model=spec.worker.model,
        max_tokens=spec.worker.max_tokens,
        resume=resume,
        sandbox=sandbox,
        wrap_up_at=session.wrap_up_at,
    )
    beat = asyncio.create_task(_heartbeat(harness))
    if sandbox is not None:
        sandbox.watch(harness.sandbox_breached)
    try:
        outcome = await worker.run(task, hooks, harness)
    except LongrunError as exc:
        outcome = WorkerOutcome(EndReason.error, exc.message)
    finally:
        beat.cancel()
        if sandbox is not None:
            sandbox.close()
            if sandbox.egress is not None:
                harness.event("egress", {"hosts": list(sandbox.spec.network), **sandbox.egress.tally()})
    if harness.tripped is not None:
        outcome = WorkerOutcome(EndReason.breaker, harness.tripped.reason)
    elif sandbox is not None and sandbox.breached is not None:
        harness.event("sandbox_limit", {"reason": sandbox.breached})
        outcome = WorkerOutcome(EndReason.error, sandbox.breached)
    finish(harness, outcome)
    return outcome


def open_sandbox(harness: Harness) -> Sandbox | None:
    """The session's sandbox as its spec asks (None when `mode = "off"`), recorded as an event
    that says what confines the worker, or that nothing does."""
    spec, backend = harness.spec.sandbox, backend_of(harness.spec.worker)
    if spec.mode == "off":
        harness.event("sandbox", {"mode": "off", "confined": False, "why": '[sandbox] mode = "off"'})
        return None
    if not backend.sandboxed:
        why = f"the {backend.name} worker does not run in longrun's sandbox yet"
        harness.event("sandbox", {"mode": "on", "confined": False, "why": why})
        return None
    hidden = [harness.store.home, *home_dirs()]
    name = f"longrun-{harness.run.id}-{harness.session.n}-{os.getpid()}"
    sandbox = Sandbox.open(spec, harness.workspace, name, hidden)
    harness.event("sandbox", sandbox.describe() | {"confined": True})
    return sandbox


def finish(harness: Harness, outcome: WorkerOutcome) -> None:
    """Checkpoint the session's end, keep its conversation, and record how it ended."""
    cp = harness.checkpoint("session_end", None)
    if harness.final_conversation:
        with harness.store.writing() as conn:
            runs.add_conversation(
                conn, harness.run.id, harness.session.id, cp.id, "session_end", harness.final_conversation
            )
    data: dict[str, Any] = {"detail": outcome.detail}
    if outcome.retry_at:
        data["retry_at"] = outcome.retry_at.astimezone(UTC).isoformat()
        harness.event("rate_limited", {"retry_at": data["retry_at"], "detail": outcome.detail})
    if harness.budget_cap:
        data["cap"] = harness.budget_cap
    if harness.tripped:
        data["breaker"] = harness.tripped.name
    runs.end_session(harness.store, harness.session.id, SessionState.ended, str(outcome.reason), data)
    harness.notifier.close(wait_s=3.0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m longrun.scheduler.session SESSION_ID", file=sys.stderr)
        return 2
    try:
        store = Store.open(create=False)
        outcome = asyncio.run(run_session(store, int(args[0])))
    except LongrunError as exc:
        print(f"longrun session: {exc.message}", file=sys.stderr)
        return 1
    print(f"session ended: {outcome.reason} ({outcome.detail}) at {datetime.now(UTC).isoformat()}")
    return 0
