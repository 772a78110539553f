"""Database tables for call-detail records, and the conversions to/from `records.py`.

The dataclasses in `records.py` are what the rest of pbxd sees; the rows here are a storage
detail. Every conversion happens at this boundary (`call_to_row`, `row_to_call`, ...), so
the writer and the reports never touch SQLAlchemy objects.

Times are stored in UTC. PostgreSQL keeps them as `timestamptz`; SQLite has no time zone
type, so `UtcDateTime` stores naive UTC text there and hands back aware UTC datetimes on
both backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from pbxd.cdr.records import (
    CallEventRecord,
    CallRecord,
    Direction,
    Disposition,
    LegRecord,
    VoicemailLeft,
    path_from_text,
    path_to_text,
)

# Deterministic constraint names, so the Alembic migration and the models agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DISPOSITION_VALUES: tuple[str, ...] = tuple(d.value for d in Disposition)


def disposition_check_sql(column: str = "disposition") -> str:
    """SQL for the CHECK constraint limiting `column` to the `Disposition` values (or NULL)."""
    values = ", ".join(f"'{v}'" for v in DISPOSITION_VALUES)
    return f"{column} IS NULL OR {column} IN ({values})"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend; naive datetimes are refused, not guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; SQLite gets naive UTC (it would silently drop the offset)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} in a CDR: times must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC, whatever the backend handed us."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for pbxd's CDR tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CallRow(Base):
    """One inbound call (table `calls`)."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(disposition_check_sql(), name="disposition"),
        # "Calls of number X between times", newest first, and the call log's keyset cursor
        # (started_at, call_id): equality on did, range and order on the rest.
        Index("ix_calls_did_started_at_call_id", "did", "started_at", "call_id"),
        # Open calls are few; a partial index keeps the startup scan cheap on both backends.
        Index(
            "ix_calls_open",
            "started_at",
            postgresql_where="ended_at IS NULL",
            sqlite_where="ended_at IS NULL",
        ),
    )

    call_id: Mapped[str] = mapped_column(String, primary_key=True)
    did: Mapped[str] = mapped_column(String)
    caller_number: Mapped[str | None] = mapped_column(String)
    caller_name: Mapped[str | None] = mapped_column(String)
    trunk: Mapped[str | None] = mapped_column(String)
    route: Mapped[str | None] = mapped_column(String)
    strategy: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Derived from the times when the call ends; stored so reports can sum/sort in SQL.
    duration: Mapped[int | None] = mapped_column(Integer)
    billsec: Mapped[int | None] = mapped_column(Integer)
    disposition: Mapped[str | None] = mapped_column(String(16))
    answered_by: Mapped[str | None] = mapped_column(String)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    # The flow's steps as `kind:outcome[:label]` tokens (records.path_to_text); NULL before 0002.
    path: Mapped[str | None] = mapped_column(String)
    voicemail_id: Mapped[str | None] = mapped_column(String)
    voicemail_seconds: Mapped[int | None] = mapped_column(Integer)
    # Calls going out (0004): NULL direction is an inbound call (every call before 0004).
    direction: Mapped[str | None] = mapped_column(String(8))
    dialled: Mapped[str | None] = mapped_column(String)
    presented: Mapped[str | None] = mapped_column(String)
    emergency: Mapped[bool | None] = mapped_column(Boolean)
    # The Asterisk server the call came through (several share one database); NULL before 0006.
    server: Mapped[str | None] = mapped_column(String)


class LegRow(Base):
    """One outbound attempt of a call (table `legs`)."""

    __tablename__ = "legs"
    __table_args__ = (Index("ix_legs_call_id", "call_id"),)

    leg_id: Mapped[str] = mapped_column(String, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String)
    destination: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)


class CallEventRow(Base):
    """One event of a call's journal (table `call_events`): what a restart resumes from."""

    __tablename__ = "call_events"

    call_id: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class RingTurnRow(Base):
    """How many calls a round-robin step took (table `ring_turns`): whose turn is next."""

    __tablename__ = "ring_turns"

    memory: Mapped[str] = mapped_column(String, primary_key=True)
    turn: Mapped[int] = mapped_column(Integer)


class TargetActivityRow(Base):
    """When a target last answered and last finished a call (table `target_activity`)."""

    __tablename__ = "target_activity"

    target: Mapped[str] = mapped_column(String, primary_key=True)
    last_answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_call_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TargetDayRow(Base):
    """Calls a target answered on one day of a number's time zone (table `target_days`)."""

    __tablename__ = "target_days"

    target: Mapped[str] = mapped_column(String, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # ISO date, local
    answered: Mapped[int] = mapped_column(Integer)


class TargetDndRow(Base):
    """A target set to do-not-disturb, since when, by whom (table `target_dnd`; no row: off)."""

    __tablename__ = "target_dnd"

    target: Mapped[str] = mapped_column(String, primary_key=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    set_by: Mapped[str] = mapped_column(String)


class NumberTrafficRow(Base):
    """A number's inbound calls started in one 15-minute UTC slot (table `number_traffic`).

    A rollup of `calls` (and the first answering leg) that the CDR writer recounts in the
    transaction writing the call, so reports and the numbers page read a few slots instead
    of every call. UTC quarter hours map onto exactly one local hour in every time zone in
    use, so the rollup does not depend on the number's zone. One column per disposition.
    """

    __tablename__ = "number_traffic"
    __table_args__ = (
        # Today's calls of many numbers: a range of slots.
        Index("ix_number_traffic_slot", "slot"),
    )

    did: Mapped[str] = mapped_column(String, primary_key=True)
    slot: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    no_answer: Mapped[int] = mapped_column(Integer)
    busy: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    abandoned: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    voicemail: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    waits: Mapped[int] = mapped_column(Integer)  # answered calls whose answer time is known
    wait_seconds: Mapped[int] = mapped_column(Integer)
    longest_wait: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int] = mapped_column(Integer)


CALL_COLUMNS: tuple[str, ...] = tuple(c.name for c in CallRow.__table__.columns)
LEG_COLUMNS: tuple[str, ...] = tuple(c.name for c in LegRow.__table__.columns)


def call_to_row(rec: CallRecord) -> dict[str, Any]:
    """Column values for `calls` (every column, so an upsert replaces the whole row)."""
    # duration/billsec only mean something once the call has ended.
    ended = rec.ended_at is not None
    return {
        "call_id": rec.call_id,
        "did": rec.did,
        "caller_number": rec.caller_number,
        "caller_name": rec.caller_name,
        "trunk": rec.trunk,
        "route": rec.route,
        "strategy": rec.strategy,
        "started_at": rec.started_at,
        "answered_at": rec.answered_at,
        "ended_at": rec.ended_at,
        "duration": rec.duration if ended else None,
        "billsec": rec.billsec if ended else None,
        "disposition": None if rec.disposition is None else str(rec.disposition),
        "answered_by": rec.answered_by,
        "hangup_cause": rec.hangup_cause,
        "path": path_to_text(rec.path),
        "voicemail_id": None if rec.voicemail is None else rec.voicemail.message_id,
        "voicemail_seconds": None if rec.voicemail is None else rec.voicemail.duration,
        "direction": str(rec.direction),
        "dialled": rec.dialled,
        "presented": rec.presented,
        "emergency": rec.emergency,
        "server": rec.server,
    }


def row_to_call(row: Mapping[str, Any] | RowMapping) -> CallRecord:
    """A `CallRecord` from a `calls` row mapping (duration/billsec are recomputed from times)."""
    disposition = row["disposition"]
    voicemail_id, voicemail_seconds = row["voicemail_id"], row["voicemail_seconds"]
    return CallRecord(
        call_id=row["call_id"],
        did=row["did"],
        started_at=row["started_at"],
        caller_number=row["caller_number"],
        caller_name=row["caller_name"],
        trunk=row["trunk"],
        route=row["route"],
        strategy=row["strategy"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        disposition=None if disposition is None else Disposition(disposition),
        answered_by=row["answered_by"],
        hangup_cause=row["hangup_cause"],
        path=path_from_text(row["path"]),
        voicemail=(
            None if voicemail_id is None else VoicemailLeft(voicemail_id, voicemail_seconds or 0)
        ),
        direction=Direction.OUTBOUND if row.get("direction") == "outbound" else Direction.INBOUND,
        dialled=row.get("dialled"),
        presented=row.get("presented"),
        emergency=bool(row.get("emergency")),
        server=row["server"],
    )


def leg_to_row(rec: LegRecord) -> dict[str, Any]:
    """Column values for `legs` (every column, so an upsert replaces the whole row)."""
    return {
        "leg_id": rec.leg_id,
        "call_id": rec.call_id,
        "target": rec.target,
        "destination": rec.destination,
        "started_at": rec.started_at,
        "answered_at": rec.answered_at,
        "ended_at": rec.ended_at,
        "hangup_cause": rec.hangup_cause,
    }


def row_to_leg(row: Mapping[str, Any] | RowMapping) -> LegRecord:
    """A `LegRecord` from a `legs` row mapping."""
    return LegRecord(
        leg_id=row["leg_id"],
        call_id=row["call_id"],
        target=row["target"],
        destination=row["destination"],
        started_at=row["started_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        hangup_cause=row["hangup_cause"],
    )


def event_to_row(rec: CallEventRecord) -> dict[str, Any]:
    """Column values for `call_events`."""
    return {
        "call_id": rec.call_id,
        "seq": rec.seq,
        "at": rec.at,
        "kind": rec.kind,
        "data": rec.data,
    }


def row_to_event(row: Mapping[str, Any] | RowMapping) -> CallEventRecord:
    """A `CallEventRecord` from a `call_events` row mapping."""
    data = row["data"]
    return CallEventRecord(
        call_id=row["call_id"],
        seq=row["seq"],
        at=row["at"],
        kind=row["kind"],
        data=dict(data) if isinstance(data, dict) else {},
    )


StoredRecord = CallRecord | LegRecord | CallEventRecord
"""What the CDR writer stores: call and leg snapshots, and journal events."""


def record_kind(rec: StoredRecord) -> str:
    """ "call", "leg" or "event": which table a record goes to."""
    if isinstance(rec, CallRecord):
        return "call"
    return "leg" if isinstance(rec, LegRecord) else "event"


def record_to_row(rec: StoredRecord) -> dict[str, Any]:
    """Column values of a record of any kind."""
    if isinstance(rec, CallRecord):
        return call_to_row(rec)
    return leg_to_row(rec) if isinstance(rec, LegRecord) else event_to_row(rec)


def row_to_record(kind: str, row: Mapping[str, Any] | RowMapping) -> StoredRecord:
    """A record of `kind` from its row."""
    if kind == "call":
        return row_to_call(row)
    return row_to_leg(row) if kind == "leg" else row_to_event(row)
