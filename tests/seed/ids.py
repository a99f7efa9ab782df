"""The seed's fixed names: its runs, checkpoints, approvals, sessions, times, prices and people,
which the tests look for.
"""

from __future__ import annotations

from datetime import UTC, datetime

from longrun.scheduler.guards.pricing import Price
from longrun.store.models import RunState

SEED_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""The moment the seeded store describes: give the dashboard a clock frozen here."""

WHO = "ana"
"""The person who started, paused, rewound, forked and approved things."""

RUN_ACTIVE = "r-textstats"
RUN_FORK = "r-textstats-fork"
RUN_PAUSED = "r-migrate-orm"
RUN_DONE = "r-docs-site"
RUN_FAILED = "r-research-notes"
RUN_IDS = (RUN_ACTIVE, RUN_FORK, RUN_PAUSED, RUN_DONE, RUN_FAILED)

RUN_STATES = {
    RUN_ACTIVE: RunState.awaiting_approval,
    RUN_FORK: RunState.running,
    RUN_PAUSED: RunState.paused,
    RUN_DONE: RunState.done,
    RUN_FAILED: RunState.failed,
}

# textstats' checkpoints: 1 → 2 → 3 → {4 → 5 → 6 (abandoned by the rewind to 3), 7 → 8 → 9 (head)}
CP_CREATED = 1
CP_S1_APPROVAL = 2
CP_S1_END = 3
"""Where textstats was rewound to, and where the main line goes on from."""
CP_S2_HANDOFF = 4
CP_S2_END = 5
"""The end of the abandoned line, where textstats-fork was forked from."""
CP_BEFORE_REWIND = 6
CP_S3_HANDOFF = 7
CP_S3_APPROVAL = 8
"""The checkpoint the pending push and question were asked at."""
CP_HEAD = 9
"""textstats' head: the end of session 3."""
CP_ABANDONED = (CP_S2_HANDOFF, CP_S2_END, CP_BEFORE_REWIND)
CP_FORKED = 10
"""textstats-fork's first checkpoint."""

APPROVAL_DECIDED = 1
"""textstats' `curl` download, approved by ana with a comment."""
APPROVAL_PUSH = 2
"""textstats' pending `git push origin HEAD` (a tool call)."""
APPROVAL_QUESTION = 3
"""textstats' pending question (ask_human)."""
APPROVAL_BUDGET = 4
"""migrate-orm's pending budget raise."""
PENDING_APPROVALS = (APPROVAL_PUSH, APPROVAL_QUESTION, APPROVAL_BUDGET)

SESSION_LIVE = 4
"""textstats-fork's running session (its session 1); its deadline is after SEED_NOW."""

OPEN_BREAKER = "no_progress_sessions"
"""migrate-orm's open breaker."""

SONNET = Price("claude-sonnet-5-5", 2.0, 10.0, 2.5, 0.1)
HAIKU = Price("claude-haiku-5-5", 0.5, 2.5, 0.625, 0.05)
"""The prices the seed charges at, fixed here so that a change to pricing.toml changes nothing."""

AGENT = ("longrun agent", "agent@longrun.invalid")
PERSON = ("Ana Lima", "ana.lima@example.org")
