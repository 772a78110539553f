"""Initial CDR tables: calls and legs.

Revision ID: 0001
Revises:
Create Date: 2024-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The Disposition values as of this revision (a later value needs a new revision).
_DISPOSITION_CHECK = (
    "disposition IS NULL OR disposition IN "
    "('answered', 'no_answer', 'busy', 'failed', 'abandoned', 'rejected')"
)


def upgrade() -> None:
    """Create `calls` and `legs` with their indexes."""
    # Spelled out (not generated from the models) so this revision never changes.
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("did", sa.String(), nullable=False),
        sa.Column("caller_number", sa.String(), nullable=True),
        sa.Column("caller_name", sa.String(), nullable=True),
        sa.Column("trunk", sa.String(), nullable=True),
        sa.Column("route", sa.String(), nullable=True),
        sa.Column("strategy", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("billsec", sa.Integer(), nullable=True),
        sa.Column("disposition", sa.String(length=16), nullable=True),
        sa.Column("answered_by", sa.String(), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.CheckConstraint(_DISPOSITION_CHECK, name=op.f("ck_calls_disposition")),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_did_started_at"), "calls", ["did", "started_at"])
    op.create_index(
        op.f("ix_calls_open"),
        "calls",
        ["started_at"],
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "legs",
        sa.Column("leg_id", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.call_id"],
            name=op.f("fk_legs_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("leg_id", name=op.f("pk_legs")),
    )
    op.create_index(op.f("ix_legs_call_id"), "legs", ["call_id"])


def downgrade() -> None:
    """Drop both tables (legs first: it references calls)."""
    op.drop_index(op.f("ix_legs_call_id"), table_name="legs")
    op.drop_table("legs")
    op.drop_index(op.f("ix_calls_open"), table_name="calls")
    op.drop_index(op.f("ix_calls_did_started_at"), table_name="calls")
    op.drop_table("calls")
