"""What ring strategies remember across calls, in the CDR database (SQLite or PostgreSQL).

Round robin's turn, when each target last answered or finished a call, how many calls each
answered per local day, and do-not-disturb flags. Kept in the database so they survive a
restart and are shared by every pbxd on one PostgreSQL: the round-robin turn is taken with
one atomic upsert, so two daemons never hand out the same turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pbxd.cdr.db import upsert_insert
from pbxd.cdr.schema import RingTurnRow, TargetActivityRow, TargetDayRow, TargetDndRow

_TURNS: Table = RingTurnRow.__table__  # type: ignore[assignment]
_ACTIVITY: Table = TargetActivityRow.__table__  # type: ignore[assignment]
_DAYS: Table = TargetDayRow.__table__  # type: ignore[assignment]
_DND: Table = TargetDndRow.__table__  # type: ignore[assignment]


class RingMemory:
    """Reads and writes of the strategies' memory; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def take_turn(self, memory: str) -> int:
        """This call's turn in the round robin `memory` (0 for the first call ever)."""
        insert = upsert_insert(_TURNS, self._dialect).values(memory=memory, turn=0)
        stmt = insert.on_conflict_do_update(
            index_elements=["memory"], set_={"turn": _TURNS.c.turn + 1}
        ).returning(_TURNS.c.turn)
        async with self._engine.begin() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def last_active(self, targets: Sequence[str]) -> dict[str, datetime]:
        """When each target last answered or finished a call (absent: never)."""
        query = select(_ACTIVITY).where(_ACTIVITY.c.target.in_(list(targets)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        found: dict[str, datetime] = {}
        for row in rows:
            moments = [m for m in (row["last_answered_at"], row["last_call_ended_at"]) if m]
            if moments:
                found[row["target"]] = max(moments)
        return found

    async def answered_on(self, targets: Sequence[str], day: date) -> dict[str, int]:
        """Calls each target answered on `day` (a local date; absent: none)."""
        query = select(_DAYS.c.target, _DAYS.c.answered).where(
            _DAYS.c.target.in_(list(targets)), _DAYS.c.day == day.isoformat()
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {target: int(answered) for target, answered in rows}

    async def note_answered(self, target: str, at: datetime, day: date) -> None:
        """`target` answered a call at `at`, on the local `day` of the called number."""
        activity = upsert_insert(_ACTIVITY, self._dialect).values(
            target=target, last_answered_at=at
        )
        activity = activity.on_conflict_do_update(
            index_elements=["target"], set_={"last_answered_at": at}
        )
        days = upsert_insert(_DAYS, self._dialect).values(
            target=target, day=day.isoformat(), answered=1
        )
        days = days.on_conflict_do_update(
            index_elements=["target", "day"], set_={"answered": _DAYS.c.answered + 1}
        )
        async with self._engine.begin() as conn:
            await conn.execute(activity)
            await conn.execute(days)

    async def note_call_over(self, target: str, at: datetime) -> None:
        """The call `target` answered ended at `at`: it is idle from then."""
        stmt = upsert_insert(_ACTIVITY, self._dialect).values(target=target, last_call_ended_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["target"], set_={"last_call_ended_at": at}
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def dnd(self) -> dict[str, tuple[str, datetime]]:
        """Targets set to do-not-disturb, with who set it and since when."""
        query = select(_DND.c.target, _DND.c.set_by, _DND.c.since)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {target: (by, since) for target, by, since in rows}

    async def set_dnd(self, target: str, on: bool, by: str, at: datetime) -> None:
        """Set (`on`) or clear `target`'s do-not-disturb; setting it twice keeps the first."""
        if on:
            stmt = upsert_insert(_DND, self._dialect).values(target=target, since=at, set_by=by)
            stmt = stmt.on_conflict_do_nothing(index_elements=["target"])
            async with self._engine.begin() as conn:
                await conn.execute(stmt)
            return
        async with self._engine.begin() as conn:
            await conn.execute(delete(_DND).where(_DND.c.target == target))
