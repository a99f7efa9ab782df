"""Runs, sessions, checkpoints, verdicts, approvals, breakers and kept conversations: the writes that go
with them and the read models handed out.

Read models are frozen dataclasses (`RunView`, `SessionView`, `CheckpointView`, ...; `views`), never
live table rows. Every write that changes what happened also appends its event in the same
transaction, so the log and the tables never disagree. Callers import this package
(`from longrun.store import runs`); each section is a module of its own.
"""

from __future__ import annotations

from longrun.store.runs.approvals import (
    add_approval,
    approval_of_token,
    decide_approval,
    get_approval,
    issue_token,
    list_approvals,
    overdue_approvals,
    recent_decisions,
)
from longrun.store.runs.breakers import (
    breakers,
    set_breaker,
)
from longrun.store.runs.checkpoints import (
    add_checkpoint,
    checkpoint_ancestors,
    get_checkpoint,
    list_checkpoints,
)
from longrun.store.runs.conversations import (
    add_conversation,
    conversation_of,
    mark_resumed,
    paused_conversation,
)
from longrun.store.runs.requests import (
    ApprovalRequest,
    BreakerResetRequest,
    BudgetRaiseRequest,
    DoneConditionRequest,
    OtherRequest,
    QuestionRequest,
    RatchetRequest,
    SignOffRequest,
    ToolCallRequest,
    read_request,
)
from longrun.store.runs.run import (
    RUN_PLAN_FIELDS,
    get_run,
    insert_run,
    list_runs,
    set_head_checkpoint,
    set_run_plan,
    set_run_spec,
    set_run_state,
)
from longrun.store.runs.sessions import (
    create_session,
    end_session,
    get_session,
    heartbeat,
    list_sessions,
    live_sessions,
    live_sessions_of,
    mark_settled,
    request_session_end,
    session_count,
    session_started,
    set_session_pid,
    set_session_state,
    unsettled_sessions,
)
from longrun.store.runs.usage import (
    add_usage,
    count_events_since,
    day_usage,
    spent_since,
    utc_day,
)
from longrun.store.runs.verdicts import (
    add_verdicts,
    add_verdicts_in,
    latest_verdicts,
    run_verdicts,
    verdicts_at,
)
from longrun.store.runs.views import (
    TOKEN_KINDS,
    ApprovalView,
    BreakerView,
    CheckpointView,
    ConversationView,
    RunView,
    SessionView,
    Usage,
    VerdictView,
)

__all__ = [
    "ApprovalRequest",
    "BreakerResetRequest",
    "BudgetRaiseRequest",
    "DoneConditionRequest",
    "OtherRequest",
    "QuestionRequest",
    "RatchetRequest",
    "SignOffRequest",
    "ToolCallRequest",
    "read_request",
    "ApprovalView",
    "BreakerView",
    "CheckpointView",
    "ConversationView",
    "RUN_PLAN_FIELDS",
    "RunView",
    "SessionView",
    "TOKEN_KINDS",
    "Usage",
    "VerdictView",
    "add_approval",
    "add_checkpoint",
    "add_conversation",
    "add_usage",
    "add_verdicts",
    "add_verdicts_in",
    "approval_of_token",
    "breakers",
    "checkpoint_ancestors",
    "conversation_of",
    "count_events_since",
    "create_session",
    "day_usage",
    "decide_approval",
    "end_session",
    "get_approval",
    "get_checkpoint",
    "get_run",
    "get_session",
    "heartbeat",
    "insert_run",
    "issue_token",
    "latest_verdicts",
    "list_approvals",
    "list_checkpoints",
    "list_runs",
    "list_sessions",
    "live_sessions",
    "live_sessions_of",
    "mark_resumed",
    "mark_settled",
    "overdue_approvals",
    "paused_conversation",
    "recent_decisions",
    "request_session_end",
    "run_verdicts",
    "session_count",
    "session_started",
    "set_breaker",
    "set_head_checkpoint",
    "set_run_plan",
    "set_run_spec",
    "set_run_state",
    "set_session_pid",
    "set_session_state",
    "spent_since",
    "unsettled_sessions",
    "utc_day",
    "verdicts_at",
]
