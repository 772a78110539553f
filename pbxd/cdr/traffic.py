"""A number's traffic per 15-minute UTC slot (`number_traffic`): the rollup reports read.

Reports and the numbers page sum a few hundred slots instead of reading every call. The CDR
writer recounts the slots a batch touches (`recount`) in the transaction that writes the
calls and legs: the recount reads the slot's calls from `calls`, so a snapshot written twice,
a replay after a restart or calls of one number written by several pbxd servers at once
never count twice. On PostgreSQL each slot row is locked (an upsert that changes nothing)
before its calls are read, in key order: a second writer's recount then waits for the first
to commit and reads its calls too (READ COMMITTED gives each statement a fresh snapshot).
`rebuild` recounts every slot from the calls (migration 0007, `bench/cdr_scale.py`).

Slots are UTC quarter hours because every time zone in use is a whole number of quarter
hours from UTC and changes offset on a quarter hour: a slot lies in one local hour of any
zone, so the rollup does not depend on the zone a number has today. A zone where that does
not hold (`hours_of_slots` returns None) is reported from the calls themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Insert,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from pbxd.cdr.db import upsert_insert
from pbxd.cdr.records import Direction, Disposition
from pbxd.cdr.reports import LocalHour, ReportCall, Tally
from pbxd.cdr.schema import Base, CallRow, LegRow, NumberTrafficRow

_CALLS: Final[Table] = Base.metadata.tables[CallRow.__tablename__]
_LEGS: Final[Table] = Base.metadata.tables[LegRow.__tablename__]
TRAFFIC: Final[Table] = Base.metadata.tables[NumberTrafficRow.__tablename__]

SLOT: Final = timedelta(minutes=15)

# Reports count calls people made to the number; calls it placed (direction outbound, 0004
# onwards) are in its call log, not in its answer rates.
INBOUND: Final = or_(_CALLS.c.direction.is_(None), _CALLS.c.direction == Direction.INBOUND.value)

# One column per disposition, named by its value (enum lookups are slow in a hot loop).
_DISPOSITIONS: Final = tuple(d.value for d in Disposition)

SlotKey = tuple[str, datetime]
"""A number (E.164) and the UTC start of one of its slots."""


def slot_of(moment: datetime) -> datetime:
    """The UTC start of the 15-minute slot holding `moment` (aware)."""
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def on_slot_edge(moment: datetime) -> bool:
    """True when `moment` starts a slot (a period bound the rollup can answer exactly)."""
    return slot_of(moment) == moment.astimezone(UTC)


def report_calls_query(*where: ColumnElement[bool]) -> Select[Any]:
    """The inbound calls matching `where`, reduced to (did, what a report reads).

    A call's answer moment is its first leg's answer when a leg answered (a person picking
    up), else the call's own (a call answered without legs).
    """
    first_leg_answer = (
        select(func.min(_LEGS.c.answered_at))
        .where(_LEGS.c.call_id == _CALLS.c.call_id)
        .scalar_subquery()
    )
    leg_answer = case(
        (_CALLS.c.disposition == Disposition.ANSWERED.value, first_leg_answer), else_=None
    )
    return select(
        _CALLS.c.did,
        _CALLS.c.started_at,
        _CALLS.c.disposition,
        _CALLS.c.answered_at,
        _CALLS.c.ended_at,
        leg_answer.label("leg_answered_at"),
    ).where(INBOUND, *where)


def report_call(row: Sequence[Any]) -> tuple[str, ReportCall]:
    """A row of `report_calls_query` as (did, ReportCall)."""
    did, started_at, disposition, answered_at, ended_at, leg_answered_at = row
    call = ReportCall(
        started_at=started_at,
        disposition=None if disposition is None else Disposition(disposition),
        answered_at=_as_utc(leg_answered_at) or answered_at,
        ended_at=ended_at,
    )
    return did, call


def _as_utc(value: datetime | str | None) -> datetime | None:
    """A time from an expression column: the UtcDateTime type does not reach `min(...)`.

    SQLite hands back its stored text (naive UTC), PostgreSQL an aware datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------- rows <-> tallies


def tally_of_row(row: Mapping[str, Any] | RowMapping) -> Tally:
    """The tally a `number_traffic` row holds."""
    return Tally(
        calls=row["calls"],
        dispositions={name: row[name] for name in _DISPOSITIONS if row[name]},
        waits=row["waits"],
        wait_seconds=row["wait_seconds"],
        longest_wait=row["longest_wait"],
        talk_seconds=row["talk_seconds"],
    )


def row_of_tally(did: str, slot: datetime, tally: Tally) -> dict[str, Any]:
    """The `number_traffic` row of one slot's tally (every column, for an upsert)."""
    return {
        "did": did,
        "slot": slot,
        "calls": tally.calls,
        **{name: tally.dispositions.get(name, 0) for name in _DISPOSITIONS},
        "waits": tally.waits,
        "wait_seconds": tally.wait_seconds,
        "longest_wait": tally.longest_wait,
        "talk_seconds": tally.talk_seconds,
    }


def tally_slots(calls: Iterable[tuple[str, ReportCall]]) -> dict[SlotKey, Tally]:
    """The calls counted per (number, slot) in Python: pure, the definition the SQL of
    `recount` and `rebuild` is held to by the tests (neither calls it)."""
    slots: dict[SlotKey, Tally] = {}
    for did, call in calls:
        slots.setdefault((did, slot_of(call.started_at)), Tally()).add(call)
    return slots


def hours_of_slots(
    slots: Iterable[tuple[datetime, Tally]], tz: ZoneInfo
) -> dict[LocalHour, Tally] | None:
    """Slot tallies summed per local hour of `tz`; None when a slot straddles two hours."""
    hours: dict[LocalHour, Tally] = {}
    for slot, tally in slots:
        start = slot.astimezone(tz)
        last = (slot + SLOT - timedelta(microseconds=1)).astimezone(tz)
        if (start.date(), start.hour, start.utcoffset()) != (
            last.date(),
            last.hour,
            last.utcoffset(),
        ):
            return None  # a zone off the quarter-hour grid
        hours.setdefault((start.date(), start.hour), Tally()).merge(tally)
    return hours


# ---------------------------------------------------------------- writer side


def slots_of_calls(call_rows: Iterable[Mapping[str, Any]]) -> set[SlotKey]:
    """The slots that `calls` rows (as the writer upserts them) count in: inbound only."""
    return {
        (row["did"], slot_of(row["started_at"]))
        for row in call_rows
        if row.get("direction") != Direction.OUTBOUND.value
    }


async def slots_of_legs(conn: AsyncConnection, call_ids: Iterable[str]) -> set[SlotKey]:
    """The slots of the inbound calls these legs belong to (a leg's answer is a call's wait)."""
    wanted = sorted(set(call_ids))
    found: set[SlotKey] = set()
    for i in range(0, len(wanted), 500):
        query = select(_CALLS.c.did, _CALLS.c.started_at).where(
            _CALLS.c.call_id.in_(wanted[i : i + 500]), INBOUND
        )
        found.update((did, slot_of(started)) for did, started in await conn.execute(query))
    return found


async def recount(conn: AsyncConnection, keys: Iterable[SlotKey]) -> None:
    """Recount these slots from their calls, in the caller's transaction (see the module).

    The database counts (`_slot_counts`, as `rebuild` does), so no call crosses into Python:
    read back and tallied here, a busy number's slot cost the loop ~140 µs a call at every
    batch, its whole quarter hour again each time (7-10 % of the daemon's CPU in
    bench/calls.py --profile, growing as the slot fills).
    """
    ordered = sorted(set(keys))
    if not ordered:
        return
    dialect = conn.dialect.name
    # Zero the slots first (a slot whose calls all went counts nothing); on PostgreSQL this
    # also locks their rows, in key order (no deadlock), before their calls are read.
    await conn.execute(upsert(dialect), [row_of_tally(did, slot, Tally()) for did, slot in ordered])
    numbers_of: dict[datetime, list[str]] = {}
    for did, slot in ordered:
        numbers_of.setdefault(slot, []).append(did)
    stmt = _recount_statement(dialect, _can_materialize(conn))
    for slot, dids in numbers_of.items():  # a batch touches a slot or two
        for i in range(0, len(dids), _NUMBERS_PER_QUERY):
            chunk = dids[i : i + _NUMBERS_PER_QUERY]
            await conn.execute(stmt, {"dids": chunk, "since": slot, "until": slot + SLOT})


_RECOUNTS: dict[tuple[str, bool], Insert] = {}
_NUMBERS_PER_QUERY = 500  # bound twice each: under SQLite's cap on parameters


def _recount_statement(dialect: str, materialize: bool) -> Insert:
    """The upsert of the counted slots of some numbers (`dids`) in one slot (`since`,
    `until`): built once, so each batch costs a cached statement, not a new one."""
    stmt = _RECOUNTS.get((dialect, materialize))
    if stmt is None:
        started = _CALLS.c.started_at
        where = and_(
            _CALLS.c.did.in_(bindparam("dids", expanding=True)),
            started >= bindparam("since", type_=started.type),
            started < bindparam("until", type_=started.type),
        )
        counted = _slot_counts(dialect, materialize=materialize, where=where)
        insert_counted = upsert_insert(TRAFFIC, dialect).from_select(
            [c.name for c in TRAFFIC.columns], counted
        )
        stmt = insert_counted.on_conflict_do_update(
            index_elements=[TRAFFIC.c.did, TRAFFIC.c.slot],
            set_={
                c.name: insert_counted.excluded[c.name]
                for c in TRAFFIC.columns
                if not c.primary_key
            },
        )
        _RECOUNTS[(dialect, materialize)] = stmt
    return stmt


def upsert(dialect: str) -> Insert:
    """INSERT … ON CONFLICT (did, slot) DO UPDATE every count: a recount replaces the slot."""
    stmt = upsert_insert(TRAFFIC, dialect)
    return stmt.on_conflict_do_update(
        index_elements=[TRAFFIC.c.did, TRAFFIC.c.slot],
        set_={c.name: stmt.excluded[c.name] for c in TRAFFIC.columns if not c.primary_key},
    )


# ---------------------------------------------------------------- rebuild


def rebuild(connection: Connection) -> int:
    """Recount every slot from `calls` (synchronous: migrations and `run_sync`); slot count.

    One INSERT … SELECT … GROUP BY: the database counts (a table scan and a sort) instead of
    Python reading every call (~140 µs a call: 25 minutes at 10 M calls). It counts as
    `Tally.add` does, column for column; tests hold it to `tally_slots` over the same calls.
    """
    connection.execute(delete(TRAFFIC))
    counted = _slot_counts(connection.dialect.name, materialize=_can_materialize(connection))
    columns = [c.name for c in TRAFFIC.columns]
    connection.execute(insert(TRAFFIC).from_select(columns, counted))
    return int(connection.execute(select(func.count()).select_from(TRAFFIC)).scalar_one())


def _can_materialize(connection: Connection | AsyncConnection) -> bool:
    """Whether the backend takes `WITH … AS MATERIALIZED` (SQLite 3.35, PostgreSQL 12)."""
    version = connection.dialect.server_version_info or ()
    if connection.dialect.name == "sqlite":
        import sqlite3  # here: a daemon on PostgreSQL never loads it

        version = sqlite3.sqlite_version_info
    least = (3, 35) if connection.dialect.name == "sqlite" else (12,)
    return tuple(version) >= least


def _slot_counts(
    dialect: str, *, materialize: bool = True, where: ColumnElement[bool] | None = None
) -> Select[Any]:
    """Every inbound call's slot figures, summed per (number, slot): `number_traffic` rows.

    `where`: only the calls it matches (and only their legs are read).

    Each call's figures are worked out once (`materialize`): inlined, the database works
    them out again at each use in the sums (200,000 calls: 1.7x the CPU on SQLite, 1.5x the
    time on PostgreSQL). The first leg answers come from one join: a subquery per call,
    inlined too, took 5x (SQLite) and 6x (PostgreSQL).
    """
    legs = [_LEGS.c.answered_at.is_not(None)]
    calls = [INBOUND]
    if where is not None:
        legs.append(_LEGS.c.call_id.in_(select(_CALLS.c.call_id).where(where)))
        calls.append(where)
    first = (
        select(_LEGS.c.call_id, func.min(_LEGS.c.answered_at).label("answered_at"))
        .where(*legs)
        .group_by(_LEGS.c.call_id)
        .subquery()
    )
    # A person's answer: the first leg's when one answered, else the call's (report_call).
    answered = _CALLS.c.disposition == Disposition.ANSWERED.value
    answer = func.coalesce(first.c.answered_at, _CALLS.c.answered_at)
    inbound = (
        select(
            _CALLS.c.did,
            _CALLS.c.started_at,
            _CALLS.c.ended_at,
            _CALLS.c.disposition,
            case((answered, answer), else_=None).label("answered_at"),
        )
        .select_from(_CALLS.outerjoin(first, first.c.call_id == _CALLS.c.call_id))
        .where(*calls)
        .subquery()
    )
    figures = select(
        inbound.c.did.label("did"),
        _slot_expression(inbound.c.started_at, dialect).label("slot"),
        inbound.c.disposition.label("disposition"),
        _micros(inbound.c.answered_at, dialect).label("answer"),
        _micros(inbound.c.started_at, dialect).label("started"),
        _micros(inbound.c.ended_at, dialect).label("ended"),
    )
    per_call = (
        figures.cte("per_call").prefix_with("MATERIALIZED") if materialize else figures.subquery()
    )
    waited = per_call.c.answer.is_not(None)
    wait = _whole_seconds(per_call.c.answer - per_call.c.started)
    talk = _whole_seconds(per_call.c.ended - per_call.c.answer)
    talked = and_(waited, per_call.c.ended.is_not(None))
    return select(
        per_call.c.did,
        per_call.c.slot,
        func.count().label("calls"),
        *(
            func.sum(case((per_call.c.disposition == name, 1), else_=0)).label(name)
            for name in _DISPOSITIONS
        ),
        func.sum(case((waited, 1), else_=0)).label("waits"),
        func.sum(case((waited, wait), else_=0)).label("wait_seconds"),
        func.max(case((waited, wait), else_=None)).label("longest_wait"),
        func.sum(case((talked, talk), else_=0)).label("talk_seconds"),
    ).group_by(per_call.c.did, per_call.c.slot)


def _micros(moment: ColumnElement[Any], dialect: str) -> ColumnElement[int]:
    """A stored time as whole microseconds since the epoch (NULL stays NULL).

    SQLite holds naive UTC text (`2026-11-02 08:15:03.250000`): its whole seconds, then the
    digits after the point; PostgreSQL's epoch of a timestamptz is an exact numeric.
    """
    if dialect == "sqlite":
        text = cast(moment, String)
        point = func.instr(text, ".")
        fraction = func.substr(func.substr(text, point + 1).op("||")("000000"), 1, 6)
        # The seconds without the fraction: SQLite rounds a fractional time before 1970 to 0.
        seconds = cast(func.strftime("%s", func.substr(text, 1, 19)), Integer)
        micros = case((point > 0, cast(fraction, Integer)), else_=0)
        return seconds * 1_000_000 + micros
    return cast(func.extract("epoch", moment) * 1_000_000, BigInteger)


def _whole_seconds(micros: ColumnElement[int]) -> ColumnElement[int]:
    """`reports._whole_seconds` in SQL: milliseconds, then whole seconds half up, never < 0.

    SQL's integer division truncates where Python's floors, which differs only below zero,
    where both end at 0.
    """
    millis = micros // 1000
    whole = (millis + 500) // 1000
    return case((whole > 0, whole), else_=0)


def _slot_expression(moment: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The slot of a stored time, as the backend stores a slot (`slot_of` in SQL)."""
    if dialect == "sqlite":
        # The UtcDateTime text of the quarter hour: `2026-11-02 08:15:00.000000`.
        minute = cast(func.strftime("%M", moment), Integer)
        quarter = func.printf("%02d", minute - minute % 15)
        hour = func.strftime("%Y-%m-%d %H:", moment)
        return hour.op("||")(quarter).op("||")(":00.000000")
    # Epoch seconds do not depend on the session's time zone; date_trunc would.
    return func.to_timestamp(func.floor(func.extract("epoch", moment) / 900) * 900)
