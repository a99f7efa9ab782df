"""Schema 3: `chain_head` (each run's head, kept with every append, so a cut tail shows) and the
triggers that refuse the edits no code path makes. Each run's head is taken from its log as it
stands; `exact_from` marks where rows begin to carry their event's time exactly.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from longrun.store.guards import GUARDS
from longrun.store.migrations import never_down

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_head",
        sa.Column("run_id", sa.String(), primary_key=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("exact_from", sa.Integer(), nullable=False),
    )
    for _name, trigger in GUARDS:
        op.execute(trigger)
    op.execute(
        "INSERT INTO chain_head (run_id, events, hash, exact_from) "
        "SELECT e.run_id, e.seq, e.hash, e.seq + 1 FROM (SELECT run_id, max(seq) AS seq FROM event "
        "GROUP BY run_id) h JOIN event e ON e.run_id = h.run_id AND e.seq = h.seq"
    )
    op.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")


def downgrade() -> None:
    never_down()
