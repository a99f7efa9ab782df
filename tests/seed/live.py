"""A session as it runs (`Live`): model turns, tool calls and their results, handoffs, checkpoints
and its end; and the verdicts a judge would write.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from seed.calls import Call, digest
from seed.ids import HAIKU, SONNET

if TYPE_CHECKING:
    from seed.story import SeedRun, Story

from longrun.scheduler.guards import policy
from longrun.store import log, runs
from longrun.store.models import SessionState
from longrun.store.runs import CheckpointView, SessionView, Usage


class Live:
    """A session as it runs: model turns, tool calls and results, handoffs, checkpoints, its end."""

    def __init__(self, story: Story, run: SeedRun, view: SessionView) -> None:
        self.story = story
        self.run = run
        self.view = view
        self.calls = 0
        self.from_checkpoint = run.head_checkpoint

    @property
    def id(self) -> int:
        return self.view.id

    def features_file(self) -> None:
        features = [f.id for f in self.run.spec.features]
        sha = digest(self.run.id, self.view.n, "features", *features)
        data = {"features": len(features), "path": ".longrun/features.json", "sha256": sha}
        self.story.event(self.run.id, "features_file", data, self.id)

    def sandbox(self) -> None:
        box = self.run.spec.sandbox
        limits = f"cgroup v2: {box.memory_mb} MiB, {box.processes} processes, {box.cpu_minutes} CPU minutes"
        data = {
            "confined": True,
            "mode": box.mode,
            "network": box.network_words,
            "limits": limits + " for the whole session",
            "env": ["HOME", "LANG", "PATH", "TMPDIR"],
        }
        self.story.event(self.run.id, "sandbox", data, self.id)

    def context(self) -> None:
        cp = self.from_checkpoint
        assert cp is not None
        statuses = cp.features
        lines = [
            f"# Run {self.run.name} ({self.run.id}), session {self.view.n}",
            "",
            f"You resume from checkpoint {cp.id} (workspace commit {cp.commit[:12]}).",
            "",
            "## Goal",
            self.run.spec.goal.strip(),
            "",
            "## Done-condition (decided by the judge, not by you)",
        ]
        for f in self.run.spec.features:
            how = f"check: `{f.check}`" if f.check else "judged by a reviewer model against its rubric"
            lines.append(f"- [{statuses.get(f.id, 'unjudged')}] {f.id}: {f.description} ({how})")
        handoff = cp.handoff
        lines += ["", "## Last handoff"]
        if handoff:
            lines += [
                f"Done: {'; '.join(handoff['done']) or '—'}",
                f"Next: {'; '.join(handoff['next']) or '—'}",
            ]
            if handoff.get("blockers"):
                lines.append(f"Blockers: {'; '.join(handoff['blockers'])}")
            if handoff.get("notes"):
                lines.append(f"Notes: {handoff['notes']}")
        else:
            lines.append("None yet: this is the first session from this checkpoint.")
        budget = self.run.spec.budget.usd
        lines += [
            "",
            "## Budget and time",
            f"${cp.spent_usd:.2f} of ${budget:.2f} spent. This session ends at "
            f"{self.view.deadline_at.strftime('%H:%M')} UTC; wrap up and hand off before then.",
        ]
        text = "\n".join(lines)
        data = {
            "bytes": len(text.encode()),
            "checkpoint_id": cp.id,
            "commit": cp.commit,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "text": text,
        }
        self.story.event(self.run.id, "context", data, self.id)

    def beat(self) -> None:
        """A heartbeat now (the harness beats every two seconds; only the last one is kept)."""
        self.story.flush()
        runs.heartbeat(self.story.store, self.id)

    def _usage(self, out: int) -> Usage:
        """Tokens of the next call: the cached prefix grows call by call; the first call writes it."""
        k = self.calls
        self.calls += 1
        base = self.run.context_tokens
        if k == 0:
            return SONNET.usage(base + 97 * self.view.n, out, 0, 0)
        return SONNET.usage(24 + (k * 37) % 180, out, 90 + (k * 53) % 420, base + 410 * k)

    def turn(self, text: str, *calls: Call, out: int = 600, asks: list[str] | None = None) -> None:
        """One model reply and the tool calls it made, each recorded as it ran; `asks` names calls
        of the reply that are not run here (a handoff, or calls that wait for a person)."""
        story = self.story
        duration = 900 + out * 11 + (self.calls * 131) % 700
        story.later(duration / 1000)
        usage = self._usage(out)
        k = self.calls
        data = {
            "model": SONNET.model,
            "request_id": f"req_01{digest(self.run.id, self.view.n, k, 'req')[:22]}",
            "message_id": f"msg_01{digest(self.run.id, self.view.n, k, 'msg')[:22]}",
            "stop_reason": "tool_use" if calls or asks else "end_turn",
            "max_tokens": self.run.spec.worker.max_tokens,
            "duration_ms": duration,
            "text": text,
            "tool_calls": [c.tool for c in calls] + (asks or []),
            "usage": usage.to_json(),
        }
        story.event(self.run.id, "model_call", data, self.id, usage=usage, usage_session_id=self.id)
        for call in calls:
            story.later(0.004)
            decision = {"decision": "allow", "input": call.input, "tool": call.tool}
            story.event(self.run.id, "tool_call", decision, self.id)
            story.later(call.ms / 1000)
            if call.commit is not None:
                message, files = call.commit
                sha = self.run.repo.commit(message, files, story.now)
                self.run.since_checkpoint.insert(0, {"sha": sha, "subject": message})
            if call.interrupted:
                continue
            result = {
                "duration_ms": call.ms,
                "is_error": call.is_error,
                "output": call.output,
                "tool": call.tool,
            }
            story.event(self.run.id, "tool_result", result, self.id)

    def handoff(self, text: str, handoff: dict[str, Any], *, out: int = 900) -> CheckpointView:
        """The model calls `handoff`: the note, a checkpoint, and what the tool told the model."""
        story = self.story
        self.turn(text, out=out, asks=["handoff"])
        story.later(0.004)
        story.event(
            self.run.id, "tool_call", {"decision": "allow", "input": handoff, "tool": "handoff"}, self.id
        )
        story.later(0.001)
        story.event(self.run.id, "handoff", handoff, self.id)
        story.later(0.02)
        cp = story.checkpoint(self.run, self.view, "handoff", handoff)
        said = f"Handoff recorded as checkpoint {cp.id} (commit {cp.commit[:10]})."
        story.event(
            self.run.id,
            "tool_result",
            {"duration_ms": 27, "is_error": False, "output": said, "tool": "handoff"},
            self.id,
        )
        return cp

    def pause(self, text: str, waiting: list[dict[str, Any]], *, out: int = 700) -> list[int]:
        """The model makes calls the approval rules ask a person about: checkpoint, keep the
        conversation, ask for each, and say the session paused (the session then ends)."""
        story = self.story
        self.turn(text, out=out, asks=[w["name"] for w in waiting])
        story.later(0.04)
        cp = story.checkpoint(self.run, self.view, "approval")
        uses = [{"type": "tool_use", "id": w["id"], "name": w["name"], "input": w["input"]} for w in waiting]
        history = [
            {"role": "user", "content": f"# Run {self.run.name} ({self.run.id}), session {self.view.n}"},
            {"role": "assistant", "content": [{"type": "text", "text": text}, *uses]},
        ]
        rules = policy.rules_of(self.run.spec)
        asked: list[str] = []
        ids: list[int] = []
        with story.store.writing() as conn:
            conversation = runs.add_conversation(conn, self.run.id, self.id, cp.id, "approval", history)
            for call in waiting:
                args = dict(call["input"])
                base = {"tool_use_id": call["id"], "conversation_id": conversation, "checkpoint_id": cp.id}
                if call["name"] == policy.ASK_HUMAN:
                    kind = "question"
                    request = base | {k: args.get(k) for k in ("question", "why", "choices")}
                else:
                    decision = policy.decide(rules, call["name"], args, self.run.workspace)
                    kind = "tool_call"
                    request = base | {"tool": call["name"], "input": args, **decision.to_json()}
                approval = runs.add_approval(conn, self.run.id, kind, request, self.id)
                asked.append(f"{kind} {approval}")
                ids.append(approval)
            log.append(
                conn,
                self.run.id,
                "paused_for_approval",
                {"checkpoint_id": cp.id, "conversation_id": conversation, "approvals": asked},
                session_id=self.id,
            )
        self.end("approval", f"waiting for a person: {', '.join(asked)}")
        return ids

    def end(
        self, reason: str, detail: str, *, state: SessionState = SessionState.ended, **extra: Any
    ) -> CheckpointView:
        """The session's end: its last checkpoint, then how it ended (a crashed session's last
        heartbeat is the one `beat` gave before it died)."""
        story = self.story
        if state == SessionState.ended:
            self.beat()
        story.later(0.08)
        checkpoint_reason = "session_end" if state == SessionState.ended else str(state)
        cp = story.checkpoint(self.run, self.view, checkpoint_reason)
        data = {"detail": detail, **extra} if state == SessionState.ended else None
        runs.end_session(story.store, self.id, state, reason, data)
        story.later(0.005)
        return cp


def tool_use_id(run_id: str, n: int, k: int) -> str:
    return f"toolu_01{digest(run_id, n, k, 'toolu')[:22]}"


def check_verdict(
    command: str, status: str, output: str, seconds: float, exit_code: int | None = None
) -> dict[str, Any]:
    code = exit_code if exit_code is not None else (0 if status == "pass" else 1)
    return {"command": command, "duration_s": seconds, "exit_code": code, "output_tail": output}


def rubric_verdict(
    rubric: str, verdict: str, rationale: str, criteria: list[tuple[str, bool, str]], base: str, size: int
) -> dict[str, Any]:
    return {
        "confidence": 0.9 if verdict == "pass" else 0.86,
        "criteria": [{"criterion": c, "met": met, "note": note} for c, met, note in criteria],
        "diff_base": base,
        "diff_bytes": size,
        "model": HAIKU.model,
        "rationale": rationale,
        "rubric": rubric,
    }
