"""What ring strategies remember (migration 0005), on SQLite and PostgreSQL: an existing
CDR database is upgraded without losing a row, the round-robin turn is shared by several
daemons on one database and never handed out twice, and everything survives a reopen."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from pbxd.cdr.db import current_revision, make_engine, migrate
from pbxd.cdr.memory import RingMemory
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.cdr.store import CdrStore

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
DAY = date(2026, 12, 3)


async def test_a_0004_database_is_upgraded_with_its_calls_intact(cdr_url: str) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine, "0004_calls_going_out")
    finally:
        await engine.dispose()
    # Written by the 0004 code: a call and a leg, the journal table already there.
    store = CdrStore(make_engine(cdr_url), flush_interval=0.01)
    call = CallRecord(
        "old-1",
        "+33170000001",
        T0,
        ended_at=T0 + timedelta(seconds=30),
        disposition=Disposition.NO_ANSWER,
    )
    store.record_call(call)
    store.record_leg(LegRecord("old-1-1", "old-1", "alice", "PJSIP/alice", T0, ended_at=T0))
    await store.close()

    upgraded = await CdrStore.open(cdr_url, flush_interval=0.01)  # as every command does
    try:
        async with upgraded.engine.connect() as conn:
            assert await conn.run_sync(current_revision) == "0005_ring_memory"
            for table in ("ring_turns", "target_activity", "target_days", "target_dnd"):
                assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
        entry = await upgraded.get_call("old-1")
        assert entry is not None and entry.call == call and len(entry.legs) == 1
        memory = RingMemory(upgraded.engine)
        assert await memory.take_turn("support") == 0
    finally:
        await upgraded.close()


async def test_two_daemons_on_one_database_never_share_a_turn(cdr_url: str) -> None:
    first, second = make_engine(cdr_url), make_engine(cdr_url)
    try:
        await migrate(first)
        a, b = RingMemory(first), RingMemory(second)
        turns = await asyncio.gather(*(m.take_turn("support") for m in [a, b] * 10))
        assert sorted(turns) == list(range(20))
        assert await a.take_turn("sales") == 0  # each route has its own turn
    finally:
        await first.dispose()
        await second.dispose()


async def test_activity_days_and_dnd_survive_a_reopen(cdr_url: str) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine)
        memory = RingMemory(engine)
        await memory.note_answered("alice", T0, DAY)
        await memory.note_answered("alice", T0 + timedelta(minutes=5), DAY)
        await memory.note_call_over("alice", T0 + timedelta(minutes=9))
        await memory.note_call_over("bob", T0 + timedelta(minutes=1))  # answered before 0005
        await memory.note_answered("dave", T0, DAY - timedelta(days=1))
        await memory.set_dnd("bob", True, "adam", T0)
        await memory.set_dnd("bob", True, "eve", T0 + timedelta(hours=1))  # the first stays
        await memory.set_dnd("dave", True, "adam", T0)
        await memory.set_dnd("dave", False, "adam", T0)
    finally:
        await engine.dispose()

    engine = make_engine(cdr_url)
    try:
        memory = RingMemory(engine)
        assert await memory.last_active(["alice", "bob", "dave", "carol"]) == {
            "alice": T0 + timedelta(minutes=9),
            "bob": T0 + timedelta(minutes=1),
            "dave": T0,
        }
        assert await memory.answered_on(["alice", "dave"], DAY) == {"alice": 2}
        assert await memory.dnd() == {"bob": ("adam", T0)}
    finally:
        await engine.dispose()
