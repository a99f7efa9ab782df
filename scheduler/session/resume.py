"""Where a session picks up a conversation that paused for a person: the history up to the model's
message whose calls waited, and what was decided about each call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from longrun.scheduler.workers.base import (
    Decided,
    ResumePoint,
)
from longrun.store import log, runs
from longrun.store.runs import QuestionRequest, ToolCallRequest

if TYPE_CHECKING:
    from longrun.scheduler.session.harness import Harness


def resume_point(harness: Harness) -> ResumePoint | None:
    """The conversation this session goes on from, when the last one paused for a person at the
    checkpoint it starts from and every call it asked about is decided."""
    conversation = runs.paused_conversation(harness.store, harness.run.id, harness.session.from_checkpoint_id)
    if conversation is None:
        return None
    if conversation.reason == "exact":
        return _exact_point(harness, conversation)
    mine = [
        a
        for a in runs.list_approvals(harness.store, harness.run.id)
        if isinstance(a.asks, (QuestionRequest, ToolCallRequest))
        and a.asks.conversation_id == conversation.id
    ]
    if any(a.state == "pending" for a in mine):
        return None
    decided: dict[str, Decided] = {}
    lines = []
    for a in mine:
        who = f"{a.decided_by} at {a.decided_at.isoformat(timespec='seconds') if a.decided_at else '?'}"
        said = f": {a.comment}" if a.comment and a.kind != "question" else ""
        asks = a.asks
        if isinstance(asks, QuestionRequest) and a.state == "answered":
            decided[asks.tool_use_id] = Decided("answer", a.comment or "")
            lines.append(f"your question was answered by {who}")
        elif isinstance(asks, QuestionRequest):
            text = f"No answer: the question was {a.state} by {who}{said}. Go on with your best judgement."
            decided[asks.tool_use_id] = Decided("deny", text)
            lines.append(f"your question was {a.state}")
        elif isinstance(asks, ToolCallRequest) and (
            a.state == "approved" or (a.state == "expired" and asks.on_expiry == "approve")
        ):
            decided[asks.tool_use_id] = Decided("run")
            harness.approved.add((asks.tool, log.canonical_json(asks.input)))
            lines.append(f"{asks.tool} call approved by {who}{said}")
        elif isinstance(asks, ToolCallRequest):
            text = f"Not run: the call was {a.state} by {who}{said}. Do not try it again; find another way."
            decided[asks.tool_use_id] = Decided("deny", text)
            lines.append(f"{asks.tool} call {a.state} by {who}{said}")
    notice = "[longrun] This session goes on from where the last one paused: " + "; ".join(lines) + "."
    with harness.store.writing() as conn:
        runs.mark_resumed(conn, conversation.id, harness.session.id)
        log.append(
            conn,
            harness.run.id,
            "conversation_resumed",
            {
                "conversation_id": conversation.id,
                "approvals": [a.id for a in mine],
                "results": {call: {"action": d.action, "text": d.text} for call, d in decided.items()},
                "notice": notice,
            },
            session_id=harness.session.id,
        )
    return ResumePoint(conversation.messages, decided, notice)


def _exact_point(harness: Harness, conversation: runs.ConversationView) -> ResumePoint:
    """Go on from a stored conversation exactly (`longrun resume --exact`); calls the model made
    that never ran are answered as such."""
    last = conversation.messages[-1]
    pending = [
        b["id"] for b in last.get("content", []) if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    ended = "Not run: the session ended before this call ran."
    decided = {call: Decided("deny", ended) for call in pending} if last.get("role") == "assistant" else {}
    notice = (
        f"[longrun] A new session (session {harness.session.n}) goes on from this conversation exactly, "
        "with the workspace as it was at its checkpoint. Go on with the work."
    )
    with harness.store.writing() as conn:
        runs.mark_resumed(conn, conversation.id, harness.session.id)
        data = {"conversation_id": conversation.id, "exact": True, "messages": len(conversation.messages)}
        log.append(conn, harness.run.id, "conversation_resumed", data, session_id=harness.session.id)
    return ResumePoint(conversation.messages, decided, notice)
