"""What ring strategies remember across calls, and do-not-disturb flags.

Tables `ring_turns` (round robin), `target_activity` (longest idle), `target_days` (fewest
calls today) and `target_dnd`. New tables only: existing CDR rows are untouched.

Revision ID: 0005_ring_memory
Revises: 0004_calls_going_out
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ring_memory"
down_revision: str | Sequence[str] | None = "0004_calls_going_out"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the four tables (empty: every strategy starts from no memory)."""
    # Spelled out (not generated from the models) so this revision never changes.
    op.create_table(
        "ring_turns",
        sa.Column("memory", sa.String(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("memory", name=op.f("pk_ring_turns")),
    )
    op.create_table(
        "target_activity",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("last_answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_call_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_target_activity")),
    )
    op.create_table(
        "target_days",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("target", "day", name=op.f("pk_target_days")),
    )
    op.create_table(
        "target_dnd",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_target_dnd")),
    )


def downgrade() -> None:
    """Drop what strategies remember (the CDR rows are untouched)."""
    for table in ("target_dnd", "target_days", "target_activity", "ring_turns"):
        op.drop_table(table)
