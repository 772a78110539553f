"""The calls' journals: table `call_events` (one row per typed call event).

Revision ID: 0003_call_events
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_call_events"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `call_events`; existing calls keep their rows and simply have no journal."""
    # Spelled out (not generated from the models) so this revision never changes.
    op.create_table(
        "call_events",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "seq", name=op.f("pk_call_events")),
    )


def downgrade() -> None:
    """Drop the journals (the CDR rows are untouched)."""
    op.drop_table("call_events")
