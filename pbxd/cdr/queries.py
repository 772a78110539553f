"""Read-only queries for reports, the numbers page, diagnose and exports (SQLite and PostgreSQL).

Each function takes the store's engine (`CdrStore.engine`) and returns plain data from
`records` / `reports`; the summing and the time zones are pure functions elsewhere. The
indexes these queries lean on are in `schema.py` (migration 0007): a number's calls by
`(did, started_at, call_id)` (newest first, keyset pages), a call's legs by `call_id`; reports
and today's calls read the `number_traffic` rollup (`traffic.py`), not the calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pbxd.cdr import traffic
from pbxd.cdr.records import CallLogEntry, Disposition, LegRecord
from pbxd.cdr.reports import (
    NumberReport,
    ReportCall,
    ReportPeriod,
    summarise_hours,
    summarise_report,
)
from pbxd.cdr.schema import Base, CallRow, LegRow, row_to_call, row_to_leg
from pbxd.cdr.traffic import INBOUND as INBOUND  # re-exported: usage.py reads it here
from pbxd.cdr.traffic import TRAFFIC

_CALLS: Final[Table] = Base.metadata.tables[CallRow.__tablename__]
_LEGS: Final[Table] = Base.metadata.tables[LegRow.__tablename__]

# Chunk of ids per IN (...) list: SQLite caps bound parameters per statement.
_IN_CHUNK = 500


def _aware(name: str, value: datetime) -> None:
    """Refuse a naive bound: it would be read as UTC on one backend and local on another."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


async def report_calls(
    conn: AsyncConnection, did: str, since: datetime, until: datetime
) -> list[ReportCall]:
    """The calls to `did` started in [since, until), reduced to what a report reads.

    A call's `answered_at` here is its first leg's answer when a leg answered (a person
    picking up), else the call's own (a call answered without legs).
    """
    _aware("since", since)
    _aware("until", until)
    query = traffic.report_calls_query(
        _CALLS.c.did == did, _CALLS.c.started_at >= since, _CALLS.c.started_at < until
    )
    return [call for _, call in map(traffic.report_call, await conn.execute(query))]


async def number_report(
    engine: AsyncEngine, did: str, period: ReportPeriod, tz: ZoneInfo, *, label: str = ""
) -> NumberReport:
    """The report of `did` over `period` (local days in `tz`), from its traffic slots.

    A period whose bounds or slots do not fall on local hours (a zone off the quarter-hour
    grid) is summed from the calls themselves, with the same figures.
    """
    since, until = period.bounds(tz)
    async with engine.connect() as conn:
        if traffic.on_slot_edge(since) and traffic.on_slot_edge(until):
            query = select(TRAFFIC).where(
                TRAFFIC.c.did == did, TRAFFIC.c.slot >= since, TRAFFIC.c.slot < until
            )
            rows = (await conn.execute(query)).mappings()
            hours = traffic.hours_of_slots(
                ((row["slot"], traffic.tally_of_row(row)) for row in rows), tz
            )
            if hours is not None:
                return summarise_hours(hours, did=did, period=period, tz=tz, label=label)
        calls = await report_calls(conn, did, since, until)
    return summarise_report(calls, did=did, period=period, tz=tz, label=label)


@dataclass(frozen=True, slots=True)
class DayTally:
    """One number's calls of one local day (the numbers page's "today")."""

    did: str
    day: date
    calls: int
    answered: int
    missed: int  # ended and not answered; calls still open are in `calls` only


async def calls_today(
    engine: AsyncEngine, zones: Mapping[str, ZoneInfo], now: datetime
) -> dict[str, DayTally]:
    """Today's calls of every number in `zones` (did -> its zone), today being each zone's.

    Numbers without a call today get a zero tally. Numbers whose zones share a midnight are
    counted together (grouped queries of their traffic slots, one per distinct local day).
    """
    _aware("now", now)
    by_day: dict[tuple[datetime, datetime, date], list[str]] = {}
    for did, tz in zones.items():
        today = now.astimezone(tz).date()
        start = datetime.combine(today, time(), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(date.fromordinal(today.toordinal() + 1), time(), tzinfo=tz)
        by_day.setdefault((start, end.astimezone(UTC), today), []).append(did)
    tallies: dict[str, DayTally] = {}
    async with engine.connect() as conn:
        for (start, end, today), dids in by_day.items():
            for i in range(0, len(dids), _IN_CHUNK):
                chunk = dids[i : i + _IN_CHUNK]
                for did, count, took, missed in await conn.execute(_day_query(chunk, start, end)):
                    tallies[did] = DayTally(did, today, int(count), int(took), int(missed))
            for did in dids:
                tallies.setdefault(did, DayTally(did, today, 0, 0, 0))
    return tallies


def _day_query(dids: Sequence[str], start: datetime, end: datetime) -> Select[Any]:
    """(did, calls, answered, missed) of these numbers' calls started in [start, end).

    From the traffic slots (a number's day is at most 96 rows of its primary key); from the
    calls themselves when the day does not start on a quarter hour (a zone off the grid).
    """
    if traffic.on_slot_edge(start) and traffic.on_slot_edge(end):
        t = TRAFFIC.c
        missed = sum(
            (t[d.value] for d in Disposition if d is not Disposition.ANSWERED), start=literal(0)
        )
        return (
            select(t.did, func.sum(t.calls), func.sum(t.answered), func.sum(missed))
            .where(t.did.in_(dids), t.slot >= start, t.slot < end)
            .group_by(t.did)
        )
    answered = Disposition.ANSWERED.value
    ended_unanswered = and_(_CALLS.c.disposition.is_not(None), _CALLS.c.disposition != answered)
    return (
        select(
            _CALLS.c.did,
            func.count(),
            func.sum(case((_CALLS.c.disposition == answered, 1), else_=0)),
            func.sum(case((ended_unanswered, 1), else_=0)),
        )
        .where(
            _CALLS.c.did.in_(dids), _CALLS.c.started_at >= start, _CALLS.c.started_at < end, INBOUND
        )
        .group_by(_CALLS.c.did)
    )


# A failed call, for support: somebody called and nobody took the call, nor a message.
FAILED_DISPOSITIONS: Final[frozenset[Disposition]] = frozenset(
    {
        Disposition.NO_ANSWER,
        Disposition.BUSY,
        Disposition.FAILED,
        Disposition.REJECTED,
        Disposition.ABANDONED,
    }
)


async def last_failed_calls(
    engine: AsyncEngine, did: str, *, limit: int = 3, until: datetime | None = None
) -> list[CallLogEntry]:
    """The newest `limit` failed calls to `did` (before `until`), each with its legs."""
    query = select(_CALLS).where(
        _CALLS.c.did == did,
        _CALLS.c.disposition.in_(sorted(d.value for d in FAILED_DISPOSITIONS)),
        INBOUND,
    )
    if until is not None:
        _aware("until", until)
        query = query.where(_CALLS.c.started_at < until)
    query = query.order_by(_CALLS.c.started_at.desc(), _CALLS.c.call_id.desc()).limit(limit)
    async with engine.connect() as conn:
        calls = [row_to_call(row) for row in (await conn.execute(query)).mappings()]
        legs = await legs_by_call(conn, [c.call_id for c in calls])
    return [CallLogEntry(c, legs.get(c.call_id, [])) for c in calls]


async def legs_by_call(
    conn: AsyncConnection, call_ids: Sequence[str]
) -> dict[str, list[LegRecord]]:
    """Legs of the given calls, grouped by call, each group ordered by start."""
    grouped: dict[str, list[LegRecord]] = {}
    for i in range(0, len(call_ids), _IN_CHUNK):
        query = (
            select(_LEGS)
            .where(_LEGS.c.call_id.in_(call_ids[i : i + _IN_CHUNK]))
            .order_by(_LEGS.c.started_at, _LEGS.c.leg_id)
        )
        for row in (await conn.execute(query)).mappings():
            leg = row_to_leg(row)
            grouped.setdefault(leg.call_id, []).append(leg)
    return grouped


async def ended_calls_between(
    engine: AsyncEngine,
    since: datetime,
    until: datetime,
    *,
    did: str | None = None,
    batch: int = 2000,
) -> AsyncIterator[CallLogEntry]:
    """Ended calls started in [since, until) (of one `did`, or all), oldest first, with legs.

    One query, calls left-joined to their legs in (start, call id, leg start) order, streamed
    (a server-side cursor on PostgreSQL) `batch` rows at a time: the database sorts once, and
    memory holds one batch and one call, whatever the period.
    """
    _aware("since", since)
    _aware("until", until)
    leg_columns = [c.label(f"leg_{c.name}") for c in _LEGS.c]
    query = (
        select(_CALLS, *leg_columns)
        .select_from(_CALLS.outerjoin(_LEGS, _LEGS.c.call_id == _CALLS.c.call_id))
        .where(
            _CALLS.c.started_at >= since,
            _CALLS.c.started_at < until,
            _CALLS.c.ended_at.is_not(None),
        )
        .order_by(_CALLS.c.started_at, _CALLS.c.call_id, _LEGS.c.started_at, _LEGS.c.leg_id)
        .execution_options(yield_per=batch)
    )
    if did is not None:
        query = query.where(_CALLS.c.did == did)
    call_names = [c.name for c in _CALLS.c]
    leg_names = [c.name for c in _LEGS.c]
    width = len(call_names)
    call_id_at, leg_id_at = call_names.index("call_id"), width + leg_names.index("leg_id")
    current: CallLogEntry | None = None
    async with engine.connect() as conn:
        result = await conn.stream(query)
        async for rows in result.partitions(batch):
            for row in rows:
                if current is None or current.call.call_id != row[call_id_at]:
                    if current is not None:
                        yield current
                    call = dict(zip(call_names, row[:width], strict=True))
                    current = CallLogEntry(row_to_call(call), [])
                if row[leg_id_at] is not None:  # NULL: the call rang nobody
                    leg = dict(zip(leg_names, row[width:], strict=True))
                    current.legs.append(row_to_leg(leg))
    if current is not None:
        yield current
