"""Inside one session: its steps of work, the harness's checkpoints and wrap-up notice, the
handoff, and the pause to ask a person."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from longrun.bench.synth.payloads import HANDOFF, PUSH, QUESTION, WORK
from longrun.bench.synth.plan import Call
from longrun.bench.synth.runlog import Live, RunLog
from longrun.bench.synth.sink import stamp
from longrun.bench.synth.spec import CHECKPOINT_EVERY, CHECKPOINT_EVERY_CALLS
from longrun.scheduler.guards import policy
from longrun.store.models import SessionState


@dataclass(frozen=True)
class _Clock:
    """The time of the events of step `j`: a share of the step's time (`frac`), or for a session
    written to an event count, the next event's share of the session."""

    t0: datetime
    j: int
    per_step: float
    per_event: float
    writer: RunLog
    first_seq: int

    def at(self, frac: float) -> datetime:
        if self.per_step:
            return self.t0 + timedelta(microseconds=(self.j + frac) * self.per_step)
        return self.t0 + timedelta(microseconds=(self.writer.seq - self.first_seq + 0.5) * self.per_event)


class SessionWriter(RunLog):
    """What happens inside one session: its steps of work (model calls and the tools they ask
    for), the harness's checkpoints and wrap-up notice, and how the session hands off or stops to
    ask a person."""

    def work(self, session: Live, t0: datetime, t1: datetime, *, steps: int = 0, events: int = 0) -> None:
        """Steps of work between t0 and t1: each a model call and the tool calls it asked for.

        With `steps`, step j takes the j-th share of the time; with `events` (the live session),
        event i does, and the log stops at the writer's limit."""
        span = (t1 - t0) / timedelta(microseconds=1)
        per_step = span / steps if steps else 0.0
        per_event = span / events if events else 0.0
        first_seq = self.seq
        rng = session.rng
        tools = session.tools
        sayings = session.sayings
        j = 0
        while not steps or j < steps:
            clock = _Clock(t0, j, per_step, per_event, self, first_seq)
            at = clock.at
            if session.handoff_due and not session.handoff_written:
                self.handoff(session, at(0.05), at(0.08), at(0.11), at(0.14), at(0.2))
            call = next(session.usages)
            k = call[1]
            r = rng.random()
            picked = [tools[rng.randrange(len(tools))] for _ in range(k)]
            names = "[" + ",".join(f'"{t.name}"' for t in picked) + "]"
            ms = (per_step or per_event * 3.8) / 1000
            self.model_call(
                session,
                "tool_use",
                names,
                sayings[rng.randrange(len(sayings))],
                at(0.4),
                int(ms * (0.2 + 0.15 * r)),
                call,
            )
            width = 0.5 / k
            for i, tool in enumerate(picked):
                lo = 0.45 + width * i
                self.add("tool_call", tool.call, session.id, at(lo))
                done = at(lo + width * 0.6)
                took = max(5, int(tool.ms * (0.5 + rng.random())))
                self.add("tool_result", f'{{"duration_ms":{took},{tool.result_rest}}}', session.id, done)
                session.heartbeat = done
                self.after_tool(session, done, at(lo + width * 0.75), at(lo + width * 0.85))
            j += 1

    def model_call(
        self,
        session: Live,
        stop: str,
        names: str,
        saying: str,
        ts: datetime,
        duration_ms: int,
        call: Call | None = None,
    ) -> None:
        """One model reply and its usage (the next of the session's calls, unless given)."""
        u = (call or next(session.usages))[0]
        usd = self.price.cost(*u)
        rng = session.rng
        data = (
            f'{{"duration_ms":{max(duration_ms, 150)},"max_tokens":{self.max_tokens},'
            f'"message_id":"msg_{rng.getrandbits(96):024x}","model":{self.model_json},'
            f'"request_id":"req_{rng.getrandbits(96):024x}","stop_reason":"{stop}","text":{saying},'
            f'"tool_calls":{names},"usage":{{"cache_read_tokens":{u[3]},"cache_write_tokens":{u[2]},'
            f'"input_tokens":{u[0]},"output_tokens":{u[1]},"tokens":{u[0] + u[1] + u[2] + u[3]},'
            f'"usd":{usd!r}}}}}'
        )
        self.add("model_call", data, session.id, ts)
        before = self.totals.usd
        self.charge(u, usd, self.last_ts, session)
        if self.warn_at is not None and before < self.warn_at <= self.totals.usd:
            budget = self.spec.budget
            warning = {
                "cap": "usd",
                "limit": budget.usd,
                "spent": round(self.totals.usd, 6),
                "warn_at": budget.warn_at,
            }
            self.add_json("budget_warning", warning, session.id, ts + timedelta(microseconds=1))
            self.warned_at = ts

    def after_tool(self, session: Live, ts: datetime, cp_ts: datetime, wrap_ts: datetime) -> None:
        """The harness after each tool call: a checkpoint every N calls (or M minutes), and the
        wrap-up notice once its time has come."""
        session.calls += 1
        if session.calls >= CHECKPOINT_EVERY_CALLS:
            self.checkpoint(cp_ts, session, "calls")
        elif session.last_checkpoint is not None and ts - session.last_checkpoint >= CHECKPOINT_EVERY:
            self.checkpoint(cp_ts, session, "timer")
        if not session.wrapped and ts >= session.wrap_up_at and session.act.ending != "crashed":
            self.wrap_up(session, wrap_ts)

    def wrap_up(self, session: Live, ts: datetime) -> None:
        session.wrapped = True
        left = max(int((session.deadline - ts).total_seconds()), 0)
        self.add_json("wrap_up", {"seconds_left": left}, session.id, ts)
        if session.act.ending == "timed_out" and session.act.handoff:
            session.handoff_due = True

    def handoff(self, session: Live, ts: datetime, *rest: datetime) -> None:
        """The model calls `handoff`: its note, a checkpoint, the tool's result."""
        times = [ts, *rest] if rest else [ts + timedelta(seconds=0.5 * i) for i in range(5)]
        work = WORK[self.focus(session)]
        note = {**HANDOFF, "done": [d.format(function=work.function) for d in HANDOFF["done"]]}
        text = json.dumps(f"Wrapping up: {work.function} is done; writing the handoff.")
        self.model_call(session, "tool_use", '["handoff"]', text, times[0], 3100)
        call = {"decision": "allow", "input": note, "tool": "handoff"}
        self.add_json("tool_call", call, session.id, times[1])
        self.add_json("handoff", note, session.id, times[2])
        cp = self.checkpoint(times[3], session, "handoff", note)
        output = f"Handoff recorded as checkpoint {cp} (commit {self.head_commit[:10]})."
        result = {"duration_ms": 180, "is_error": False, "output": output, "tool": "handoff"}
        self.add_json("tool_result", result, session.id, times[4])
        session.calls += 1
        session.handoff_written = True

    def pause(self, session: Live, t1: datetime) -> None:
        """The model asks a person (a question, or a call the rules ask about): checkpoint, keep the
        conversation, ask, and end the session."""
        sid = session.id
        rng = session.rng
        tool_use = f"toolu_{rng.getrandbits(96):024x}"
        if session.act.ending == "question":
            name, args = policy.ASK_HUMAN, dict(QUESTION)
            saying = "The tests do not say how sentences() treats line breaks; asking before I choose."
        else:
            name, args = "bash", {"command": PUSH}
            saying = "Everything passes; pushing the branch so the team can review it."
        self.model_call(
            session, "tool_use", f'["{name}"]', json.dumps(saying), t1 + timedelta(seconds=0.2), 2900
        )
        cp = self.checkpoint(t1 + timedelta(seconds=0.6), session, "approval")
        conversation = self.ids.take("conversation")
        messages = [
            {"role": "user", "content": self.context_text(session)},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": saying},
                    {"type": "tool_use", "id": tool_use, "name": name, "input": args},
                ],
            },
        ]
        self.rows.conversations[conversation] = [
            conversation,
            self.run_id,
            sid,
            cp,
            "approval",
            json.dumps(messages, ensure_ascii=False, separators=(",", ":")),
            stamp(t1 + timedelta(seconds=0.6)),
            None,
        ]
        base = {"tool_use_id": tool_use, "conversation_id": conversation, "checkpoint_id": cp}
        if name == policy.ASK_HUMAN:
            kind, request = "question", base | args
        else:
            decision = policy.decide(policy.rules_of(self.spec), name, args, Path(self.spec.workspace))
            kind, request = "tool_call", base | {"tool": name, "input": args, **decision.to_json()}
        approval = self.approval(kind, request, sid, t1 + timedelta(seconds=0.7))
        self.moments[f"{kind}_asked"] = t1 + timedelta(seconds=0.7)
        self.pending[kind] = approval
        self.conversation = (conversation, tool_use, approval)
        data = {"approvals": [f"{kind} {approval}"], "checkpoint_id": cp, "conversation_id": conversation}
        self.add_json("paused_for_approval", data, sid, t1 + timedelta(seconds=0.8))
        self.checkpoint(t1 + timedelta(seconds=2), session, "session_end")
        self.ended(
            session, SessionState.ended, "approval", {"detail": f"waiting for a person: {kind} {approval}"}
        )
