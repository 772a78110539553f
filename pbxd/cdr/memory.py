"""What ring strategies remember across calls, in the CDR database (SQLite or PostgreSQL).

Round robin's turn, when each target last answered or finished a call, how many calls each
answered per local day, and do-not-disturb flags. Kept in the database so they survive a
restart and are shared by every pbxd on one PostgreSQL: the round-robin turn is taken with
one atomic upsert, so two daemons never hand out the same turn.

What a call teaches (answered, call over) is written behind, in batches: notes wait up to
`linger` seconds and go in one transaction, coalesced per target. Two transactions per
answered call had cost 9 % of the daemon's CPU (bench/calls.py --profile). This daemon's
reads see its notes at once (they are laid over what the database says); another pbxd on
the same database sees them a batch later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pbxd.cdr.db import upsert_insert
from pbxd.cdr.schema import RingTurnRow, TargetActivityRow, TargetDayRow, TargetDndRow

# How long the daemon lets a call's notes wait for others to share their transaction.
LINGER_SECONDS = 0.2

_TURNS: Table = RingTurnRow.__table__  # type: ignore[assignment]
_ACTIVITY: Table = TargetActivityRow.__table__  # type: ignore[assignment]
_DAYS: Table = TargetDayRow.__table__  # type: ignore[assignment]
_DND: Table = TargetDndRow.__table__  # type: ignore[assignment]


@dataclass
class _Notes:
    """What calls taught and the database does not hold yet, coalesced per target."""

    answered_at: dict[str, datetime] = field(default_factory=dict)  # the latest answer
    over_at: dict[str, datetime] = field(default_factory=dict)  # the latest end of a call
    answered: dict[tuple[str, str], int] = field(default_factory=dict)  # (target, day): calls

    def __bool__(self) -> bool:
        return bool(self.answered_at or self.over_at or self.answered)

    def last_active(self, target: str) -> datetime | None:
        """The latest moment these notes know `target` answered or finished a call."""
        moments = [m for m in (self.answered_at.get(target), self.over_at.get(target)) if m]
        return max(moments) if moments else None


class RingMemory:
    """Reads and writes of the strategies' memory; each a short transaction, notes batched.

    `linger`: how long a note waits for others to share its transaction (0: none waits,
    but notes made while a batch is being written still go together in the next).
    """

    def __init__(self, engine: AsyncEngine, *, linger: float = 0.0) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._linger = linger
        self._notes = _Notes()  # filling
        self._notes_written: asyncio.Future[None] | None = None  # when the filling batch is
        self._writer: asyncio.Task[None] | None = None
        self._urgent = asyncio.Event()  # flush(): no more lingering
        # A read and a batch's commit never overlap: a read lays over it exactly the notes
        # its own query could not have seen.
        self._lock = asyncio.Lock()
        answered = upsert_insert(_ACTIVITY, self._dialect)
        self._answered_upsert = answered.on_conflict_do_update(
            index_elements=["target"], set_={"last_answered_at": answered.excluded.last_answered_at}
        )
        over = upsert_insert(_ACTIVITY, self._dialect)
        self._over_upsert = over.on_conflict_do_update(
            index_elements=["target"], set_={"last_call_ended_at": over.excluded.last_call_ended_at}
        )
        days = upsert_insert(_DAYS, self._dialect)
        self._days_upsert = days.on_conflict_do_update(
            index_elements=["target", "day"],
            set_={"answered": _DAYS.c.answered + days.excluded.answered},
        )

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
        async with self._lock:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
            notes = self._notes
        found: dict[str, datetime] = {}
        for row in rows:
            moments = [m for m in (row["last_answered_at"], row["last_call_ended_at"]) if m]
            if moments:
                found[row["target"]] = max(moments)
        for target in targets:
            noted = notes.last_active(target)
            if noted is not None and (target not in found or noted > found[target]):
                found[target] = noted
        return found

    async def answered_on(self, targets: Sequence[str], day: date) -> dict[str, int]:
        """Calls each target answered on `day` (a local date; absent: none)."""
        query = select(_DAYS.c.target, _DAYS.c.answered).where(
            _DAYS.c.target.in_(list(targets)), _DAYS.c.day == day.isoformat()
        )
        async with self._lock:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            notes = self._notes
        found = {target: int(answered) for target, answered in rows}
        for target in targets:
            noted = notes.answered.get((target, day.isoformat()), 0)
            if noted:
                found[target] = found.get(target, 0) + noted
        return found

    async def note_answered(self, target: str, at: datetime, day: date) -> None:
        """`target` answered a call at `at`, on the local `day` of the called number.

        Returns once the batch holding it is written (raises if that failed)."""
        notes = self._notes
        if target not in notes.answered_at or at > notes.answered_at[target]:
            notes.answered_at[target] = at
        key = (target, day.isoformat())
        notes.answered[key] = notes.answered.get(key, 0) + 1
        await self._written()

    async def note_call_over(self, target: str, at: datetime) -> None:
        """The call `target` answered ended at `at`: it is idle from then (written as above)."""
        notes = self._notes
        if target not in notes.over_at or at > notes.over_at[target]:
            notes.over_at[target] = at
        await self._written()

    async def flush(self) -> None:
        """Write every note now (no lingering); at stop, so nothing a call taught is lost."""
        self._urgent.set()
        # The writer runs until no note is left; a note always has a writer running.
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _written(self) -> None:
        """Until the batch now filling is committed; its writer started if none runs."""
        if self._notes_written is None:
            self._notes_written = asyncio.get_running_loop().create_future()
        written = self._notes_written
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(), name="ring memory")
        # Shielded: a caller that stops waiting (a timeout, a stop) leaves the batch whole.
        await asyncio.shield(written)

    async def _write_batches(self) -> None:
        """Write what is noted, a batch at a time, until nothing is left."""
        while self._notes:
            if self._linger > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger)
            async with self._lock:
                notes, written = self._notes, self._notes_written
                self._notes, self._notes_written = _Notes(), None
                try:
                    await self._write(notes)
                except Exception as exc:  # the notes are lost: the strategies ring anyway
                    if written is not None and not written.done():
                        written.set_exception(exc)
                        written.exception()  # retrieved: every caller may have stopped waiting
                    continue
            if written is not None and not written.done():
                written.set_result(None)
        self._urgent.clear()

    async def _write(self, notes: _Notes) -> None:
        """One transaction for a batch of notes."""
        async with self._engine.begin() as conn:
            if notes.answered_at:
                rows = [
                    {"target": t, "last_answered_at": at} for t, at in notes.answered_at.items()
                ]
                await conn.execute(self._answered_upsert, rows)
            if notes.over_at:
                rows = [{"target": t, "last_call_ended_at": at} for t, at in notes.over_at.items()]
                await conn.execute(self._over_upsert, rows)
            if notes.answered:
                rows = [
                    {"target": t, "day": day, "answered": n}
                    for (t, day), n in notes.answered.items()
                ]
                await conn.execute(self._days_upsert, rows)

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
