"""Kept conversations: a session's whole conversation, so a later session can go on from it exactly."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text

from longrun.store.db import Store
from longrun.store.models import (
    iso,
    utcnow,
)
from longrun.store.runs.views import ConversationView


def add_conversation(
    conn: Connection,
    run_id: str,
    session_id: int | None,
    checkpoint_id: int,
    reason: str,
    messages: list[dict[str, Any]],
) -> int:
    """Keep a conversation, in the caller's transaction; returns its id."""
    result = conn.execute(
        text(
            "INSERT INTO conversation (run_id, session_id, checkpoint_id, reason, messages_json, created_at) "
            "VALUES (:run, :session, :cp, :reason, :messages, :now)"
        ),
        {
            "run": run_id,
            "session": session_id,
            "cp": checkpoint_id,
            "reason": reason,
            "messages": json.dumps(messages, ensure_ascii=False, separators=(",", ":")),
            "now": iso(utcnow()),
        },
    )
    return int(result.lastrowid or 0)


_CONVERSATION_AT = (
    "SELECT c.id, c.run_id, c.session_id, c.checkpoint_id, c.reason, c.messages_json, c.resumed_by "
    "FROM conversation c JOIN checkpoint k ON k.id = :cp AND k.session_id = c.session_id "
    "WHERE c.run_id = :run"
)


def _conversation_at(store: Store, run_id: str, checkpoint_id: int, where: str) -> ConversationView | None:
    """The newest conversation kept by the session that made a checkpoint, among those `where` allows."""
    with store.reading() as conn:
        row = conn.execute(
            text(f"{_CONVERSATION_AT} {where} ORDER BY c.id DESC LIMIT 1"),
            {"run": run_id, "cp": checkpoint_id},
        ).first()
    if row is None:
        return None
    return ConversationView(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])


def paused_conversation(store: Store, run_id: str, checkpoint_id: int | None) -> ConversationView | None:
    """The conversation to go on from at checkpoint `checkpoint_id`: the one its session paused on
    for a person, or one a person asked to resume exactly, when nobody has gone on from it yet."""
    if checkpoint_id is None:
        return None
    where = "AND c.reason IN ('approval', 'exact') AND c.resumed_by IS NULL"
    return _conversation_at(store, run_id, checkpoint_id, where)


def mark_resumed(conn: Connection, conversation_id: int, session_id: int) -> None:
    conn.execute(
        text("UPDATE conversation SET resumed_by = :s WHERE id = :id"),
        {"s": session_id, "id": conversation_id},
    )


def conversation_of(store: Store, run_id: str, checkpoint_id: int) -> ConversationView | None:
    """The newest conversation kept by the session that made a checkpoint (None when it kept none)."""
    return _conversation_at(store, run_id, checkpoint_id, "")
