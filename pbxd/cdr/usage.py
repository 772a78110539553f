"""What a number's plan counts, read from the CDRs (SQLite and PostgreSQL): one place for it.

Forwarded legs are the legs through a trunk (`PJSIP/+33...@trunk-out`) of inbound calls to the
number; calls going out are the number's `direction = outbound` calls, emergency calls aside.
Every process on one database reads the same rows, so restarts and several pbxd instances
see the same count. The arithmetic (months in the number's zone, seconds) is in
`pbxd.dialplan.limits`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Table, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pbxd.cdr.queries import INBOUND
from pbxd.cdr.records import Direction
from pbxd.cdr.schema import Base, CallRow, LegRow
from pbxd.dialplan.limits import Billable, UsageKind

_CALLS: Final[Table] = Base.metadata.tables[CallRow.__tablename__]
_LEGS: Final[Table] = Base.metadata.tables[LegRow.__tablename__]

# A call answered in a month started at most this long before (calls last 24 h at most).
_LONGEST_CALL = timedelta(days=1)
# An open row older than this is a call a crash left open, not a call in progress.
_STALE_OPEN = timedelta(days=1)


async def billables(
    conn: AsyncConnection, did: str, since: datetime, until: datetime
) -> list[Billable]:
    """The forwarded legs and calls going out of `did` answered in [since, until)."""
    started = and_(
        _CALLS.c.did == did,
        _CALLS.c.started_at >= since - _LONGEST_CALL,
        _CALLS.c.started_at < until,
    )
    legs = (
        select(_LEGS.c.leg_id, _LEGS.c.answered_at, _LEGS.c.ended_at)
        .select_from(_LEGS.join(_CALLS, _LEGS.c.call_id == _CALLS.c.call_id))
        .where(
            started,
            INBOUND,
            _LEGS.c.answered_at.is_not(None),
            _LEGS.c.destination.contains("@"),  # through a trunk: a forwarded leg
        )
    )
    out = select(_CALLS.c.call_id, _CALLS.c.answered_at, _CALLS.c.ended_at).where(
        started,
        _CALLS.c.direction == Direction.OUTBOUND.value,
        _CALLS.c.emergency.is_not(True),
        _CALLS.c.answered_at.is_not(None),
    )
    found: list[Billable] = []
    for kind, query in ((UsageKind.FORWARDED, legs), (UsageKind.OUTBOUND, out)):
        for key, answered_at, ended_at in await conn.execute(query):
            if since <= answered_at < until:
                found.append(Billable(key, kind, answered_at, ended_at))
    return found


async def calls_in_progress(conn: AsyncConnection, did: str, now: datetime) -> set[str]:
    """The ids of `did`'s calls not yet ended (either way), leaving out stale rows."""
    query = select(_CALLS.c.call_id).where(
        _CALLS.c.did == did,
        _CALLS.c.ended_at.is_(None),
        _CALLS.c.started_at >= now - _STALE_OPEN,
    )
    return {call_id for (call_id,) in await conn.execute(query)}
