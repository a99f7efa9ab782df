"""Schema 2: the conversation table (a session's messages kept when it pauses for an approval, so
the next session runs exactly the call that was asked).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from longrun.store.migrations import never_down

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("session_id", sa.Integer()),
        sa.Column("checkpoint_id", sa.Integer(), sa.ForeignKey("checkpoint.id"), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("messages_json", sa.String(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("resumed_by", sa.Integer()),
    )
    op.create_index("ix_conversation_run_id", "conversation", ["run_id"])
    op.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    never_down()
