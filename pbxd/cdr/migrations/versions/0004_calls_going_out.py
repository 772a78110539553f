"""Calls going out: `calls.direction`, `dialled`, `presented` and `emergency`.

Revision ID: 0004_calls_going_out
Revises: 0003_call_events
Create Date: 2026-12-03

Nullable columns added in place (no table copy on SQLite): NULL `direction` reads as an
inbound call, which every call before this revision was.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_calls_going_out"
down_revision: str | Sequence[str] | None = "0003_call_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns of a call going out; older rows stay inbound calls."""
    # Spelled out (not generated from the models) so this revision never changes.
    op.add_column("calls", sa.Column("direction", sa.String(length=8), nullable=True))
    op.add_column("calls", sa.Column("dialled", sa.String(), nullable=True))
    op.add_column("calls", sa.Column("presented", sa.String(), nullable=True))
    op.add_column("calls", sa.Column("emergency", sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Drop them (calls going out then read as inbound calls to the number presented)."""
    for column in ("emergency", "presented", "dialled", "direction"):
        op.drop_column("calls", column)
