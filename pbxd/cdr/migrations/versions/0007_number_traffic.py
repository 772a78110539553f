"""Traffic slots per number (`number_traffic`) and the call log's keyset index.

Revision ID: 0007_number_traffic
Revises: 0006_call_server
Create Date: 2026-12-03

Reports and the numbers page read a rollup of each number's inbound calls per 15-minute UTC
slot (`pbxd.cdr.traffic`), which the CDR writer keeps in the transaction writing the calls;
this revision creates it and counts it from the calls already stored. The call log's index
gains `call_id`, so a page (newest first, cursor `(started_at, call_id)`) is one index seek.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pbxd.cdr import traffic

revision: str = "0007_number_traffic"
down_revision: str | Sequence[str] | None = "0006_call_server"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out (not generated from the models) so this revision never changes.
_COUNTS = (
    "calls",
    "answered",
    "no_answer",
    "busy",
    "failed",
    "abandoned",
    "rejected",
    "voicemail",
    "closed",
    "waits",
    "wait_seconds",
)


def upgrade() -> None:
    """Create `number_traffic`, count it from `calls`; re-index the call log."""
    op.create_table(
        "number_traffic",
        sa.Column("did", sa.String(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("longest_wait", sa.Integer(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("did", "slot", name=op.f("pk_number_traffic")),
    )
    op.create_index(op.f("ix_number_traffic_slot"), "number_traffic", ["slot"])
    op.drop_index(op.f("ix_calls_did_started_at"), table_name="calls")
    op.create_index(
        op.f("ix_calls_did_started_at_call_id"), "calls", ["did", "started_at", "call_id"]
    )
    # The writer's own recount, over every call: the same figures as the writer keeps.
    traffic.rebuild(op.get_bind())


def downgrade() -> None:
    """Drop `number_traffic` and restore the call log's old index; calls are untouched."""
    op.drop_index(op.f("ix_calls_did_started_at_call_id"), table_name="calls")
    op.create_index(op.f("ix_calls_did_started_at"), "calls", ["did", "started_at"])
    op.drop_index(op.f("ix_number_traffic_slot"), table_name="number_traffic")
    op.drop_table("number_traffic")
