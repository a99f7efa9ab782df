"""Schema 1: runs, sessions, the event log, checkpoints, verdicts, approvals, breakers, spend by
day, the supervisor's lease and the store's meta, as the first longrun made them.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from longrun.store.migrations import never_down

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.String(32)
"""Timestamps are fixed-width ISO-8601 text (see `longrun.store.models.UTCDateTime`)."""


def _totals() -> list[sa.Column[float] | sa.Column[int]]:
    return [
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    op.create_table(
        "lease",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("heartbeat_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("goal", sa.String(), nullable=False),
        sa.Column("spec_json", sa.String(), nullable=False),
        sa.Column("spec_path", sa.String()),
        sa.Column("workspace", sa.String(), nullable=False),
        sa.Column("branch", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("state_reason", sa.String()),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("head_checkpoint_id", sa.Integer()),
        sa.Column("parent_run_id", sa.String()),
        sa.Column("due_at", TIME),
        sa.Column("next_session_at", TIME),
        sa.Column("next_reason", sa.String()),
        sa.Column("hold_until", TIME),
        sa.Column("window_ends_at", TIME),
        *_totals(),
    )
    op.create_index("ix_run_name", "run", ["name"])
    op.create_table(
        "session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME),
        sa.Column("deadline_at", TIME, nullable=False),
        sa.Column("wrap_up_at", TIME, nullable=False),
        sa.Column("heartbeat_at", TIME),
        sa.Column("ended_at", TIME),
        sa.Column("end_reason", sa.String()),
        sa.Column("from_checkpoint_id", sa.Integer()),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("kill_requested", sa.Boolean(), nullable=False),
        sa.Column("settled_at", TIME),
        *_totals(),
        sa.UniqueConstraint("run_id", "n"),
    )
    op.create_index("ix_session_run_id", "session", ["run_id"])
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer()),
        sa.Column("ts", TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("data", sa.String(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.UniqueConstraint("run_id", "seq"),
    )
    op.create_index("ix_event_run_kind_ts", "event", ["run_id", "kind", "ts"])
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("session_id", sa.Integer()),
        sa.Column("parent_id", sa.Integer()),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("commit", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("handoff_json", sa.String()),
        sa.Column("features_json", sa.String(), nullable=False),
        sa.Column("commits_json", sa.String(), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_checkpoint_run_id", "checkpoint", ["run_id"])
    op.create_table(
        "verdict",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), sa.ForeignKey("checkpoint.id"), nullable=False),
        sa.Column("feature_id", sa.String(), nullable=False),
        sa.Column("judge", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("evidence_json", sa.String(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_verdict_checkpoint", "verdict", ["checkpoint_id"])
    op.create_index("ix_verdict_run_feature", "verdict", ["run_id", "feature_id", "checkpoint_id", "id"])
    op.create_table(
        "approval",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("session_id", sa.Integer()),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("request_json", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String()),
        sa.Column("requested_at", TIME, nullable=False),
        sa.Column("expires_at", TIME),
        sa.Column("decided_by", sa.String()),
        sa.Column("decided_at", TIME),
        sa.Column("comment", sa.String()),
    )
    op.create_index("ix_approval_run_id", "approval", ["run_id"])
    op.create_table(
        "breaker",
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("tripped_at", TIME),
        sa.Column("reason", sa.String()),
    )
    op.create_table(
        "spend_day",
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("day", sa.String(), primary_key=True),
        *_totals(),
    )
    op.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")


def downgrade() -> None:
    never_down()
