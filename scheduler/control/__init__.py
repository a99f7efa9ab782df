"""longrun.scheduler.control: the verbs people use, the only way the CLI, the dashboard and any other
client change a run.

Each verb validates against the run's current state and writes in one transaction, with an event
naming who did it; the supervisor picks the new state up at its next tick. `runs` creates runs
and moves them (start, pause, stop, resume), `limits` raises budgets and resets breakers,
`approvals` decides what waits for a person, `features` edits and judges the done-condition,
`history` rewinds, forks and resumes from a checkpoint, `notes` takes a handoff or a progress
note from outside any session, and `reads` answers what the dashboard asks of git. A new verb goes
in the module of its kind and is listed here.
"""

from __future__ import annotations

from longrun.scheduler.control.approvals import (
    answer,
    decide,
    decide_by_token,
    expire_approvals,
)
from longrun.scheduler.control.features import (
    edit_features,
    features_document_of,
    features_text,
    judge_now,
    verdict_matrix,
)
from longrun.scheduler.control.history import (
    CONTEXT_TOKENS,
    RESUMABLE,
    fork,
    resume_now,
    rewind,
)
from longrun.scheduler.control.limits import (
    BREAKER_NAMES,
    budget_document,
    reset_breaker,
    set_budget,
)
from longrun.scheduler.control.notes import (
    Handoff,
    handoff_of,
    record_handoff,
    report_progress,
)
from longrun.scheduler.control.reads import (
    EMPTY_TREE,
    checkpoint_diff,
)
from longrun.scheduler.control.runs import (
    ACTIVE_NOW,
    ACTIVE_STATES,
    create_run,
    create_run_from_file,
    new_run_id,
    pause,
    prepare_demo,
    resume,
    run_session_now,
    start,
    stop,
)

__all__ = [
    "ACTIVE_NOW",
    "ACTIVE_STATES",
    "BREAKER_NAMES",
    "CONTEXT_TOKENS",
    "EMPTY_TREE",
    "Handoff",
    "RESUMABLE",
    "answer",
    "budget_document",
    "checkpoint_diff",
    "create_run",
    "create_run_from_file",
    "decide",
    "decide_by_token",
    "edit_features",
    "expire_approvals",
    "features_document_of",
    "features_text",
    "fork",
    "handoff_of",
    "judge_now",
    "new_run_id",
    "pause",
    "prepare_demo",
    "record_handoff",
    "report_progress",
    "reset_breaker",
    "resume",
    "resume_now",
    "rewind",
    "run_session_now",
    "set_budget",
    "start",
    "stop",
    "verdict_matrix",
]
