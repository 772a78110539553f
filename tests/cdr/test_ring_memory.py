"""What ring strategies remember (migration 0005), on SQLite and PostgreSQL: an existing
CDR database is upgraded without losing a row, the round-robin turn is shared by several
daemons on one database and never handed out twice, and everything survives a reopen."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from pbxd.cdr.db import alembic_config, current_revision, make_engine, migrate
from pbxd.cdr.memory import RingMemory
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.cdr.schema import call_to_row, leg_to_row
from pbxd.cdr.store import CdrStore

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
DAY = date(2026, 12, 3)


async def test_a_0004_database_is_upgraded_with_its_calls_intact(cdr_url: str) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine, "0004_calls_going_out")
    finally:
        await engine.dispose()
    # Written by the 0004 code: a call and a leg (only the columns 0004 had), the journal
    # table already there.
    call = CallRecord(
        "old-1",
        "+33170000001",
        T0,
        ended_at=T0 + timedelta(seconds=30),
        disposition=Disposition.NO_ANSWER,
    )
    leg = LegRecord("old-1-1", "old-1", "alice", "PJSIP/alice", T0, ended_at=T0)
    engine = make_engine(cdr_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_write_as_0004, call, leg)
    finally:
        await engine.dispose()

    upgraded = await CdrStore.open(cdr_url, flush_interval=0.01)  # as every command does
    try:
        async with upgraded.engine.connect() as conn:
            assert await conn.run_sync(current_revision) == _head()
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


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _write_as_0004(conn: Connection, call: CallRecord, leg: LegRecord) -> None:
    """Insert with the columns the tables had at 0004 (later revisions add some)."""
    for table, row in (("calls", call_to_row(call)), ("legs", leg_to_row(leg))):
        columns = {c["name"] for c in sa.inspect(conn).get_columns(table)}
        kept = {k: v for k, v in row.items() if k in columns}
        if conn.dialect.name == "sqlite":  # UtcDateTime's naive UTC there
            kept = {
                k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                for k, v in kept.items()
            }
        conn.execute(sa.table(table, *(sa.column(c) for c in kept)).insert(), [kept])


async def test_notes_go_in_one_batch_and_this_daemon_reads_them_before_they_are_written(
    cdr_url: str,
) -> None:
    engine, other_engine = make_engine(cdr_url), make_engine(cdr_url)
    commits: list[int] = []
    sa.event.listen(engine.sync_engine, "commit", lambda _conn: commits.append(1))
    try:
        await migrate(engine)
        memory = RingMemory(engine, linger=3600.0)  # nothing is written until flushed
        other = RingMemory(other_engine)  # another pbxd on the same database
        first = asyncio.create_task(memory.note_answered("carol", T0, DAY))
        await asyncio.sleep(0)
        await memory.flush()
        await first
        commits.clear()
        noted = [
            asyncio.create_task(memory.note_answered("alice", T0 + timedelta(minutes=m), DAY))
            for m in range(10)
        ]
        noted.append(asyncio.create_task(memory.note_call_over("alice", T0 + timedelta(hours=1))))
        noted.append(asyncio.create_task(memory.note_answered("carol", T0, DAY)))
        await asyncio.sleep(0)
        # Not written yet, and seen here anyway (the database's count plus the notes).
        assert await other.answered_on(["alice", "carol"], DAY) == {"carol": 1}
        assert await memory.answered_on(["alice", "carol"], DAY) == {"alice": 10, "carol": 2}
        assert await memory.last_active(["alice", "carol"]) == {
            "alice": T0 + timedelta(hours=1),
            "carol": T0,
        }
        assert not any(task.done() for task in noted)
        await memory.flush()
        await asyncio.gather(*noted)
        assert len(commits) == 1  # twelve notes, one transaction
        # Written once: nothing counted twice now that the database holds them.
        for reader in (memory, other):
            assert await reader.answered_on(["alice", "carol"], DAY) == {"alice": 10, "carol": 2}
            assert await reader.last_active(["alice"]) == {"alice": T0 + timedelta(hours=1)}
    finally:
        await engine.dispose()
        await other_engine.dispose()


async def test_a_note_whose_batch_cannot_be_written_says_so_and_the_next_batch_goes(
    cdr_url: str,
) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine)
        memory = RingMemory(engine)
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE target_days RENAME TO target_days_away"))
        try:
            await memory.note_answered("alice", T0, DAY)
        except Exception as exc:  # the database's own error, for the roster to log
            assert "target_days" in str(exc)
        else:
            raise AssertionError("a batch that cannot be written must say so")
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE target_days_away RENAME TO target_days"))
        await memory.note_call_over("bob", T0)
        await memory.flush()  # nothing left: returns at once
        assert await RingMemory(engine).last_active(["alice", "bob"]) == {"bob": T0}
    finally:
        await engine.dispose()
