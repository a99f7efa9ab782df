"""The triggers that refuse every UPDATE and DELETE no code path makes, as schema 3 made them.

Revision 0003 creates them and `verify` checks they are all there. A later change to a trigger is a
new revision that drops and makes it again, with this tuple changed to match.
"""

from __future__ import annotations


def _refuse(name: str, when: str, event_: str, message: str) -> tuple[str, str]:
    condition = f" WHEN {when}" if when else ""
    return name, (
        f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event_}{condition} "
        "BEGIN SELECT RAISE(ABORT, '" + message.replace("'", "''") + "'); END"
    )


def _changed(*columns: str) -> str:
    return " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in columns)


def _lowered(*columns: str) -> str:
    return " OR ".join(f'NEW."{c}" < OLD."{c}"' for c in columns)


_TOTALS = ("spent_usd", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")

GUARDS: tuple[tuple[str, str], ...] = (
    _refuse(
        "event_append_only_update", "", "UPDATE ON event", "the event log is append-only: UPDATE refused"
    ),
    _refuse(
        "event_append_only_delete", "", "DELETE ON event", "the event log is append-only: DELETE refused"
    ),
    _refuse(
        "chain_head_forward_only",
        f"{_changed('run_id', 'exact_from')} OR NEW.events < OLD.events "
        "OR (NEW.events = OLD.events AND NEW.hash IS NOT OLD.hash)",
        "UPDATE ON chain_head",
        "a chain head only moves forward: UPDATE refused",
    ),
    _refuse("chain_head_kept", "", "DELETE ON chain_head", "a chain head is never deleted: DELETE refused"),
    _refuse(
        "run_fixed",
        f"{_changed('id', 'name', 'goal', 'workspace', 'branch', 'spec_path', 'parent_run_id', 'created_at')}"
        f" OR {_lowered(*_TOTALS)}",
        "UPDATE ON run",
        "a run keeps its identity and its spend only grows: UPDATE refused",
    ),
    _refuse("run_kept", "", "DELETE ON run", "a run is never deleted: DELETE refused"),
    _refuse(
        "session_fixed",
        f"{_changed('id', 'run_id', 'n', 'created_at', 'deadline_at', 'wrap_up_at', 'from_checkpoint_id')}"
        f" OR (OLD.ended_at IS NOT NULL AND ({_changed('state', 'ended_at', 'end_reason')}))"
        f" OR {_lowered(*_TOTALS)}",
        "UPDATE ON session",
        "a session keeps its time box and its end once recorded: UPDATE refused",
    ),
    _refuse("session_kept", "", "DELETE ON session", "a session is never deleted: DELETE refused"),
    _refuse(
        "checkpoint_fixed",
        _changed(
            "id",
            "run_id",
            "session_id",
            "parent_id",
            "seq",
            "commit",
            "reason",
            "handoff_json",
            "commits_json",
            "spent_usd",
            "tokens",
            "created_at",
        ),
        "UPDATE ON checkpoint",
        "a checkpoint changes only its feature status: UPDATE refused",
    ),
    _refuse("checkpoint_kept", "", "DELETE ON checkpoint", "a checkpoint is never deleted: DELETE refused"),
    _refuse("verdict_fixed", "", "UPDATE ON verdict", "a verdict is never changed: UPDATE refused"),
    _refuse("verdict_kept", "", "DELETE ON verdict", "a verdict is never deleted: DELETE refused"),
    _refuse(
        "approval_fixed",
        f"OLD.state IS NOT 'pending' OR "
        f"{_changed('id', 'run_id', 'session_id', 'kind', 'request_json', 'requested_at', 'expires_at')}",
        "UPDATE ON approval",
        "an approval is decided once and its request never changes: UPDATE refused",
    ),
    _refuse("approval_kept", "", "DELETE ON approval", "an approval is never deleted: DELETE refused"),
    _refuse(
        "conversation_fixed",
        f"{_changed('id', 'run_id', 'session_id', 'checkpoint_id', 'reason', 'messages_json', 'created_at')}"
        " OR (OLD.resumed_by IS NOT NULL AND NEW.resumed_by IS NOT OLD.resumed_by)",
        "UPDATE ON conversation",
        "a kept conversation never changes: UPDATE refused",
    ),
    _refuse(
        "conversation_kept",
        "",
        "DELETE ON conversation",
        "a kept conversation is never deleted: DELETE refused",
    ),
    _refuse(
        "spend_day_forward_only",
        f"{_changed('run_id', 'day')} OR {_lowered(*_TOTALS)}",
        "UPDATE ON spend_day",
        "a day's spend only grows: UPDATE refused",
    ),
    _refuse("spend_day_kept", "", "DELETE ON spend_day", "a day's spend is never deleted: DELETE refused"),
)
"""The triggers that refuse every UPDATE and DELETE no code path makes, by name. Someone with
the file can drop them; `longrun verify` says so, and the rows they guard are checked against
the log anyway."""
