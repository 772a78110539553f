"""Call paths, voicemail links, and the `voicemail` and `closed` dispositions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Adds `calls.path`, `calls.voicemail_id`, `calls.voicemail_seconds` (NULL for older calls,
which had no flow) and widens the disposition CHECK. SQLite cannot alter a CHECK: batch mode
copies `calls` into a new table, so the foreign keys must be off (`pbxd.cdr.db` does it),
or dropping the old table would cascade to every leg.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_VALUES = ("answered", "no_answer", "busy", "failed", "abandoned", "rejected")
# Spelled out (not read from the Disposition enum) so this revision never changes.
_NEW_VALUES = (*_OLD_VALUES, "voicemail", "closed")


def _check(values: Sequence[str]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"disposition IS NULL OR disposition IN ({listed})"


def _refuse_sqlite_with_foreign_keys() -> None:
    """Dropping the old `calls` with foreign keys on would delete every leg: refuse."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "SQLite foreign keys are on: this migration would delete every leg; "
            "run it through pbxd (pbxd.cdr.db.migrate), which turns them off"
        )


def _drop_call_indexes() -> None:
    # Dropped and recreated by hand: batch mode's copy must not lose the partial WHERE.
    op.drop_index(op.f("ix_calls_open"), table_name="calls")
    op.drop_index(op.f("ix_calls_did_started_at"), table_name="calls")


def _create_call_indexes() -> None:
    op.create_index(op.f("ix_calls_did_started_at"), "calls", ["did", "started_at"])
    op.create_index(
        op.f("ix_calls_open"),
        "calls",
        ["started_at"],
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )


def upgrade() -> None:
    """Add the path and voicemail columns; allow the new dispositions."""
    _refuse_sqlite_with_foreign_keys()
    _drop_call_indexes()
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("path", sa.String(), nullable=True))
        batch.add_column(sa.Column("voicemail_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("voicemail_seconds", sa.Integer(), nullable=True))
        batch.drop_constraint(op.f("ck_calls_disposition"), type_="check")
        batch.create_check_constraint(op.f("ck_calls_disposition"), _check(_NEW_VALUES))
    _create_call_indexes()


def downgrade() -> None:
    """Drop the columns; calls with a new disposition go back to NULL (unknown)."""
    _refuse_sqlite_with_foreign_keys()
    op.execute(
        sa.text("UPDATE calls SET disposition = NULL WHERE disposition IN ('voicemail', 'closed')")
    )
    _drop_call_indexes()
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_disposition"), type_="check")
        batch.create_check_constraint(op.f("ck_calls_disposition"), _check(_OLD_VALUES))
        batch.drop_column("voicemail_seconds")
        batch.drop_column("voicemail_id")
        batch.drop_column("path")
    _create_call_indexes()
