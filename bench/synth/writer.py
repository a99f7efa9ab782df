"""The story written session after session: each starts, works, ends as its act says and is
judged, and then a person may act."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta

from longrun.bench.synth.payloads import ANSWER, APPROVE_COMMENT, PUSH, PUSH_OUTPUT, RATE_LIMIT, RESET_COMMENT
from longrun.bench.synth.plan import Slot, judge_stream, usage_stream, work_window
from longrun.bench.synth.runlog import Live, LogFull
from longrun.bench.synth.session import SessionWriter
from longrun.bench.synth.sink import stamp
from longrun.bench.synth.spec import COOLDOWN, NO_PROGRESS_LIMIT
from longrun.bench.synth.story import (
    CHECKED,
    END_REASONS,
    FEATURES,
    MIN_EVENTS,
    ON_CALL,
    RUBRIC,
    SESSION_STATES,
    WHO,
    Act,
)
from longrun.scheduler.judging.features import FEATURES_FILE
from longrun.store import log
from longrun.store.models import SessionState


class RunWriter(SessionWriter):
    """One run's story, session after session: each starts (going on from a paused conversation),
    works, ends as its act says and is judged, and then a person may act."""

    def sessions(
        self, acts: tuple[Act, ...], slots_: list[Slot], steps: list[int], due_reason: str, events: int | None
    ) -> None:
        """Write every session of the story with what happens after each; the live one, last, up to
        `events` events in the log."""
        reason = due_reason
        for n, (act, slot, count) in enumerate(zip(acts, slots_, steps, strict=True), start=1):
            self.add_json("session_due", {"reason": reason}, None, slot.due)
            session = self.start(n, act, slot)
            if act.ending == "live":
                assert events is not None
                self.limit = events
                t0, t1 = work_window(act, slot, self.box)
                left = events - self.seq
                if left < 1:
                    raise ValueError(f"{events} events are too few for this story (at least {MIN_EVENTS})")
                try:
                    self.work(session, t0, t1, events=left)
                except LogFull:
                    pass
                self.limit = None
                self.session_row(session, None, None, None)
                return
            self.run_session(session, count)
            self.settle(session)
            reason = self.after(session)
            if act.then == "fork" and self.fork_hook is not None:
                self.fork_hook(session)

    def start(self, n: int, act: Act, slot: Slot) -> Live:
        session_id = self.ids.take("session")
        created = slot.due + timedelta(seconds=0.4)
        deadline = created + self.box
        session = Live(
            id=session_id,
            n=n,
            act=act,
            slot=slot,
            created=created,
            deadline=deadline,
            wrap_up_at=deadline - self.wrap,
            from_checkpoint=self.head,
            before=dict(self.head_features),
            from_commit=self.head_commit,
            usages=usage_stream(self.seed, f"{self.key}{n}"),
            rng=random.Random(f"synth:{self.seed}:{self.key}{n}:shape"),
            tools=[],
            sayings=[],
        )
        focus = self.focus(session)
        session.tools, session.sayings = self.pools[focus], self.sayings[focus]
        data = {
            "deadline_at": stamp(deadline),
            "from_checkpoint_id": self.head,
            "n": n,
            "wrap_up_at": stamp(session.wrap_up_at),
        }
        self.add_json("session_created", data, session_id, created)
        session.pid = 20_000 + self.rng.randrange(40_000)
        session.heartbeat = slot.due + timedelta(seconds=1.5)
        self.add_json("session_started", {"n": n, "pid": session.pid}, session_id, session.heartbeat)
        session.last_checkpoint = session.heartbeat
        features = {f: session.before.get(f, "unjudged") for f in FEATURES}
        sha = hashlib.sha256(log.canonical_json(features).encode()).hexdigest()
        data = {"features": len(FEATURES), "path": FEATURES_FILE, "sha256": sha}
        self.add_json("features_file", data, session_id, slot.due + timedelta(seconds=1.8))
        text = self.context_text(session)
        context = {
            "bytes": len(text.encode()),
            "checkpoint_id": self.head,
            "commit": self.head_commit,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "text": text,
        }
        self.add_json("context", context, session_id, slot.due + timedelta(seconds=2.0))
        if self.conversation is not None:
            self.resume_conversation(session, slot.due + timedelta(seconds=2.2))
        return session

    def resume_conversation(self, session: Live, ts: datetime) -> None:
        assert self.conversation is not None
        conversation, tool_use, approval = self.conversation
        self.conversation = None
        self.rows.conversations[conversation][7] = session.id
        row = self.rows.approvals[approval]
        who = f"{row[7]} at {datetime.fromisoformat(row[8]).isoformat(timespec='seconds')}"
        if row[3] == "question":
            results = {tool_use: {"action": "answer", "text": row[9]}}
            line = f"your question was answered by {who}"
        else:
            results = {tool_use: {"action": "run", "text": ""}}
            line = f"bash call approved by {who}: {row[9]}"
        notice = "[longrun] This session goes on from where the last one paused: " + line + "."
        data = {
            "approvals": [approval],
            "conversation_id": conversation,
            "notice": notice,
            "results": results,
        }
        self.add_json("conversation_resumed", data, session.id, ts)
        if row[3] == "tool_call":
            call = log.canonical_json({"decision": "allow", "input": {"command": PUSH}, "tool": "bash"})
            self.add("tool_call", call, session.id, ts + timedelta(seconds=0.1))
            output = PUSH_OUTPUT.format(branch=self.branch)
            result = log.canonical_json(
                {"duration_ms": 2140, "is_error": False, "output": output, "tool": "bash"}
            )
            self.add("tool_result", result, session.id, ts + timedelta(seconds=0.3))
            session.calls += 1

    def run_session(self, session: Live, steps: int) -> None:
        act, slot = session.act, session.slot
        t0, t1 = work_window(act, slot, self.box)
        self.work(session, t0, t1, steps=steps)
        sid = session.id
        if act.ending == "timed_out" and act.handoff and not session.handoff_written:
            self.wrap_up(session, t1)
            self.handoff(session, t1 + timedelta(seconds=0.1))
        elif act.ending == "timed_out" and not session.wrapped:
            self.wrap_up(session, t1)
        if act.ending == "finished":
            self.handoff(session, t1 + timedelta(seconds=1))
            self.model_call(
                session,
                "end_turn",
                "[]",
                json.dumps("Handoff written; ending the session."),
                t1 + timedelta(seconds=7),
                2600,
            )
            self.checkpoint(t1 + timedelta(seconds=10), session, "session_end")
            self.ended(session, SessionState.ended, "finished", {"detail": "the model ended its turn"})
        elif act.ending in ("question", "push"):
            self.pause(session, t1)
        elif act.ending == "rate_limited":
            retry = slot.action
            assert retry is not None
            for attempt in range(1, 4):
                data = {"attempt": attempt, "reset_at": retry.isoformat(), "status": 429}
                self.add_json("api_error", data, sid, t1 + timedelta(seconds=1.5 * attempt))
            self.checkpoint(t1 + timedelta(seconds=6), session, "session_end")
            data = {"detail": RATE_LIMIT, "retry_at": retry.isoformat()}
            self.add_json("rate_limited", data, sid, t1 + timedelta(seconds=7))
            self.ended(session, SessionState.ended, "rate_limited", data)
        elif act.ending in ("timed_out", "crashed"):
            state = SESSION_STATES[act.ending]
            self.checkpoint(slot.end - timedelta(seconds=0.5), session, str(state))
            self.ended(session, state, END_REASONS[act.ending], {})

    # --- after a session --------------------------------------------------------------------------

    def settle(self, session: Live) -> None:
        """The supervisor after a session: the judge, the breakers, what comes next."""
        act, slot, sid = session.act, session.slot, session.id
        cp = self.head
        assert cp is not None
        statuses = {f: "pass" if f in act.passing else "fail" for f in FEATURES}
        calls = judge_stream(self.seed, f"{self.key}{session.n}")
        spent = 0.0
        i = 0
        for feature in FEATURES:
            if feature not in RUBRIC or (feature in CHECKED and statuses[feature] != "pass"):
                continue
            u = next(calls)
            usd = self.price.cost(*u)
            data = (
                f'{{"checkpoint_id":{cp},"feature_id":"{feature}","model":{self.model_json},'
                f'"request_id":"req_{session.rng.getrandbits(96):024x}","status":"{statuses[feature]}",'
                f'"usage":{{"cache_read_tokens":0,"cache_write_tokens":0,"input_tokens":{u[0]},'
                f'"output_tokens":{u[1]},"tokens":{u[0] + u[1]},"usd":{usd!r}}}}}'
            )
            self.add("judge_call", data, sid, slot.end + timedelta(seconds=2 + 4 * i))
            self.charge(u, usd, self.last_ts, None)
            spent += usd
            i += 1
        at = slot.end + timedelta(seconds=2.3 + 4 * i)
        for feature in FEATURES:
            status = statuses[feature]
            judge = self.judges[(feature, status)]
            proof = self.evidence[(feature, status)]
            data = (
                f'{{"checkpoint_id":{cp},"evidence":{proof},"feature_id":"{feature}",'
                f'"judge":"{judge}","status":"{status}"}}'
            )
            self.add("verdict", data, None, at)
            self.rows.verdicts.append((self.run_id, cp, feature, judge, status, proof, stamp(at)))
        self.head_features = statuses
        self.rows.checkpoints[cp][8] = log.canonical_json(statuses)
        judged = {
            "by": "supervisor",
            "checkpoint_id": cp,
            "errors": [],
            "failing": sorted(f for f, s in statuses.items() if s == "fail"),
            "passing": sorted(f for f, s in statuses.items() if s == "pass"),
            "usd": round(spent, 6),
        }
        self.add_json("judged", judged, sid, at + timedelta(seconds=0.6))
        if any(session.before.get(f) == "pass" and s != "pass" for f, s in statuses.items()):
            self.moments.setdefault("regression", at)
        newly = sorted(f for f, s in statuses.items() if s == "pass" and session.before.get(f) != "pass")
        self.progress.append(bool(newly))
        self.add_json(
            "session_judged",
            {"n": session.n, "newly_passing": newly, "progress": bool(newly)},
            sid,
            slot.judged,
        )
        streak = 0
        for made in reversed(self.progress):
            if made:
                break
            streak += 1
        tripped = not self.breaker_open and streak >= (1 if self.half_open else NO_PROGRESS_LIMIT)
        if tripped != (act.then == "reset"):
            raise AssertionError(f"session {session.n}: the story's breaker does not match its progress")
        name = "no_progress_sessions"
        at = slot.judged + timedelta(microseconds=500)
        if tripped:
            numbers = {"breaker": name, "limit": NO_PROGRESS_LIMIT, "sessions_without_progress": streak}
            self.add_json("breaker_tripped", numbers, sid, at)
            shown = f"sessions_without_progress={streak}, limit={NO_PROGRESS_LIMIT}"
            self.rows.breakers[(self.run_id, name)] = [
                self.run_id,
                name,
                "open",
                stamp(at),
                f"breaker {name} tripped ({shown})",
            ]
            self.breaker_open = True
            self.moments["breaker_tripped"] = at
            self.pending["breaker_reset"] = self.approval("breaker_reset", {"breaker": name}, sid, at)
        elif self.half_open:
            self.add_json("breaker_closed", {"breaker": name}, sid, at)
            self.rows.breakers[(self.run_id, name)][2] = "closed"
            self.half_open = False
        if act.then == "limit":
            assert slot.action is not None
            self.add_json("usage_limit_wait", {"until": slot.action.isoformat()}, sid, at)
            self.moments["usage_limit_wait"] = at
        reason = END_REASONS[act.ending]
        self.session_row(session, stamp(slot.end), reason, stamp(slot.judged))

    def after(self, session: Live) -> str:
        """What happens between this session and the next; returns why the next one is due."""
        act, slot = session.act, session.slot
        if act.then is None or act.then == "fork":
            return f"cooldown of {int(COOLDOWN.total_seconds())}s after the last session"
        at = slot.action
        assert at is not None
        if act.then == "answer":
            self.decide(self.pending.pop("question"), "answered", WHO, ANSWER, at)
            self.moments["question_answered"] = at
            return f"question answered by {WHO}"
        if act.then == "approve":
            self.decide(self.pending.pop("tool_call"), "approved", WHO, APPROVE_COMMENT, at)
            self.moments["tool_call_approved"] = at
            return f"tool call approved by {WHO}"
        if act.then == "reset":
            name = "no_progress_sessions"
            self.add_json(
                "breaker_reset", {"breaker": name, "by": ON_CALL, "comment": RESET_COMMENT}, None, at
            )
            self.decide(
                self.pending.pop("breaker_reset"),
                "approved",
                ON_CALL,
                RESET_COMMENT,
                at + timedelta(microseconds=1),
            )
            self.rows.breakers[(self.run_id, name)][2] = "half_open"
            self.breaker_open, self.half_open = False, True
            self.moments["breaker_reset"] = at
            return "breaker reset"
        if act.then == "limit":
            return f"usage limit resets at {at.isoformat(timespec='seconds')}"
        halted = {"by": WHO, "sessions_told_to_wrap_up": []}
        if act.then == "pause":
            self.add_json("paused", halted, None, at)
            return "paused"
        if act.then == "rewind":
            # A person pauses the run, moves it back to where the session started, and resumes it.
            self.add_json("paused", halted, None, slot.judged + timedelta(seconds=5))
            target = session.from_checkpoint
            assert target is not None
            left = self.checkpoint(at, None, "before_rewind")
            data = {
                "abandoned_ref": f"refs/longrun/{self.run_id}/abandoned/1",
                "by": WHO,
                "commit": session.from_commit,
                "from": left,
                "to": target,
            }
            self.add_json("rewound", data, None, at + timedelta(microseconds=1))
            self.head, self.head_commit = target, session.from_commit
            self.head_features = dict(session.before)
            self.moments["rewound"] = at
            self.add_json("resumed", {"by": WHO}, None, at + timedelta(seconds=20))
            return "resumed"
        raise AssertionError(f"no such turn of the story: {act.then}")
