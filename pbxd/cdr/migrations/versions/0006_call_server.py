"""The Asterisk server each call came through (`calls.server`).

Revision ID: 0006_call_server
Revises: 0005_ring_memory
Create Date: 2026-12-03

Several Asterisk servers, each with its pbxd, may share one PostgreSQL: each call row names
its server (Asterisk's system name, else its entity id). Rows written before keep NULL: one
server wrote them. A nullable column is added in place on both backends (no table copy).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_call_server"
down_revision: str | Sequence[str] | None = "0005_ring_memory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `calls.server` (NULL for every existing row)."""
    op.add_column("calls", sa.Column("server", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop `calls.server`; the calls themselves are untouched."""
    # SQLite 3.35+ drops an unindexed column in place: no copy of `calls`, no cascade.
    op.execute("ALTER TABLE calls DROP COLUMN server")
