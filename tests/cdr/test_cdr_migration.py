"""Migration 0002 upgrades a database written by the 0001 code without losing a row.

"Today's code" is imitated exactly: the schema is migrated to 0001 only, and rows are written
with the columns 0001 had, from the same records the old writer got. The upgrade then runs as
any `pbxd` command runs it (`CdrStore.open`), and everything reads back intact, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pbxd.cdr.db import (
    MigrationFailed,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    migrate_apart,
    schema_change,
)
from pbxd.cdr.records import (
    CallLogEntry,
    CallRecord,
    Disposition,
    LegRecord,
    PathStep,
    StepKind,
    StepOutcome,
    VoicemailLeft,
)
from pbxd.cdr.schema import call_to_row, leg_to_row
from pbxd.cdr.store import CdrStore

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DID = "+33170000001"

# The columns of revision 0001: what the code before 0002 wrote.
_CALLS_0001 = [
    *("call_id", "did", "caller_number", "caller_name", "trunk", "route", "strategy"),
    *("started_at", "answered_at", "ended_at", "duration", "billsec", "disposition"),
    *("answered_by", "hangup_cause"),
]
_LEGS_0001 = [
    *("leg_id", "call_id", "target", "destination", "started_at", "answered_at", "ended_at"),
    "hangup_cause",
]


def _old_entries() -> list[CallLogEntry]:
    """One call of each disposition 0001 knew, most with legs, newest first."""
    entries: list[CallLogEntry] = []
    for n, disposition in enumerate(
        [None, *[d for d in Disposition if d.value in _OLD_DISPOSITIONS]]
    ):
        start = T0 + timedelta(minutes=n)
        ended = disposition is not None
        call = CallRecord(
            call_id=f"old-{n}",
            did=DID,
            started_at=start,
            caller_number="+33612345678",
            caller_name=f"Caller {n}",
            trunk="trunk-in",
            route="reception",
            strategy="ringall",
            answered_at=start + timedelta(seconds=4) if disposition == "answered" else None,
            ended_at=start + timedelta(seconds=30) if ended else None,
            disposition=disposition,
            answered_by="alice" if disposition == "answered" else None,
            hangup_cause=16 if ended else None,
        )
        legs = [
            LegRecord(
                f"old-{n}-{k}",
                call.call_id,
                target,
                f"PJSIP/{target}",
                started_at=start + timedelta(seconds=1),
                ended_at=call.ended_at,
                hangup_cause=19 if ended else None,
            )
            for k, target in enumerate(("alice", "bob"))
        ]
        entries.append(CallLogEntry(call, legs if disposition != "rejected" else []))
    return entries[::-1]


_OLD_DISPOSITIONS = ("answered", "no_answer", "busy", "failed", "abandoned", "rejected")


def _write_as_0001(conn: Connection, entries: list[CallLogEntry]) -> None:
    """Insert with exactly the 0001 columns, as the writer of that time did."""
    calls = sa.table("calls", *(sa.column(c) for c in _CALLS_0001))
    legs = sa.table("legs", *(sa.column(c) for c in _LEGS_0001))

    def only(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
        return {c: row[c] for c in columns}

    # The UtcDateTime conversion the old writer applied: naive UTC on SQLite.
    def stored(row: dict[str, Any]) -> dict[str, Any]:
        if conn.dialect.name != "sqlite":
            return row
        return {
            k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
            for k, v in row.items()
        }

    for entry in entries:
        conn.execute(calls.insert(), [stored(only(call_to_row(entry.call), _CALLS_0001))])
        for leg in entry.legs:
            conn.execute(legs.insert(), [stored(only(leg_to_row(leg), _LEGS_0001))])


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def _written_by_0001(url: str, entries: list[CallLogEntry]) -> AsyncEngine:
    """An engine on a database migrated to 0001 only, holding `entries` as 0001 wrote them."""
    engine = make_engine(url)
    await migrate(engine, "0001")
    async with engine.begin() as conn:
        assert await conn.run_sync(current_revision) == "0001"
        await conn.run_sync(_write_as_0001, entries)
    return engine


async def test_head_is_0007() -> None:
    assert _head() == "0007_number_traffic"


async def test_a_0001_database_is_upgraded_and_reads_back_intact(cdr_url: str) -> None:
    old = _old_entries()
    engine = await _written_by_0001(cdr_url, old)
    try:
        # A call 0001 refuses: the CHECK really is the old one.
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO calls (call_id, did, started_at, disposition) "
                        "VALUES ('vm', :did, :t, 'voicemail')"
                    ),
                    {"did": DID, "t": T0.replace(tzinfo=None)},
                )
    finally:
        await engine.dispose()

    store = await CdrStore.open(cdr_url, flush_interval=0.01)  # upgrades, as every command does
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(current_revision) == _head()
            counts = [
                (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar()
                for t in ("calls", "legs")
            ]
        assert counts == [len(old), sum(len(e.legs) for e in old)]
        assert await store.call_log(DID) == old  # every field, every leg, same order
        open_ids = [c.call_id for c in await store.open_calls()]
        assert open_ids == [e.call.call_id for e in old if e.call.ended_at is None]

        # And the new columns and dispositions work on the upgraded tables.
        new = CallRecord(
            call_id="new-vm",
            did=DID,
            started_at=T0 + timedelta(hours=1),
            ended_at=T0 + timedelta(hours=1, seconds=40),
            disposition=Disposition.VOICEMAIL,
            path=(
                PathStep(StepKind.SCHEDULE, StepOutcome.CLOSED),
                PathStep(StepKind.VOICEMAIL, StepOutcome.LEFT),
            ),
            voicemail=VoicemailLeft("msg-1", 12),
        )
        store.record_call(new)
        await store.flush()
        assert store.dropped == 0
        entry = await store.get_call("new-vm")
        assert entry is not None and entry.call == new
    finally:
        await store.close()


async def test_the_open_calls_index_keeps_its_where_clause(cdr_url: str) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine, "0001")
        await migrate(engine)
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                sql = (
                    await conn.execute(
                        text("SELECT sql FROM sqlite_master WHERE name = 'ix_calls_open'")
                    )
                ).scalar()
            else:
                sql = (
                    await conn.execute(
                        # This schema only: another suite's schemas come and go meanwhile.
                        text(
                            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_calls_open' "
                            "AND schemaname = current_schema()"
                        )
                    )
                ).scalar()
        assert sql is not None and "ended_at IS NULL" in sql.replace("(", "").replace(")", "")
    finally:
        await engine.dispose()


async def test_downgrade_to_0001_keeps_the_rows(cdr_url: str) -> None:
    from alembic import command

    old = _old_entries()
    engine = await _written_by_0001(cdr_url, old)
    try:
        await migrate(engine)

        def downgrade(conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")

        async with schema_change(engine) as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert await conn.run_sync(current_revision) == "0001"
            legs = (await conn.execute(text("SELECT count(*) FROM legs"))).scalar()
        assert legs == sum(len(e.legs) for e in old)
    finally:
        await engine.dispose()


async def test_sqlite_migration_refuses_to_run_with_foreign_keys_on(tmp_path: Any) -> None:
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'cdr.db'}")
    try:
        await migrate(engine, "0001")

        def upgrade(conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

        # Foreign keys on (as every pbxd connection has them): dropping `calls` would cascade.
        async with engine.begin() as conn:
            with pytest.raises(RuntimeError, match="foreign keys are on"):
                await conn.run_sync(upgrade)
    finally:
        await engine.dispose()


# The columns of revision 0003 (calls gained path and voicemail in 0002; 0003 added journals).
_CALLS_0003 = [*_CALLS_0001, "path", "voicemail_id", "voicemail_seconds"]


async def _written_by_0003(url: str, entries: list[CallLogEntry]) -> AsyncEngine:
    """A database at 0003 holding `entries` and one journal event per call, as 0003 wrote."""
    engine = make_engine(url)
    await migrate(engine, "0003_call_events")
    calls = sa.table("calls", *(sa.column(c) for c in _CALLS_0003))
    legs = sa.table("legs", *(sa.column(c) for c in _LEGS_0001))
    events = sa.table(
        "call_events",
        *(sa.column(c) for c in ("call_id", "seq", "at", "kind")),
        sa.column("data", sa.JSON),
    )

    def write(conn: Connection) -> None:
        naive = conn.dialect.name == "sqlite"

        def stored(row: dict[str, Any]) -> dict[str, Any]:
            return {
                k: v.astimezone(UTC).replace(tzinfo=None)
                if naive and isinstance(v, datetime)
                else v
                for k, v in row.items()
            }

        for entry in entries:
            row = call_to_row(entry.call)
            conn.execute(calls.insert(), [stored({c: row[c] for c in _CALLS_0003})])
            for leg in entry.legs:
                leg_row = leg_to_row(leg)
                conn.execute(legs.insert(), [stored({c: leg_row[c] for c in _LEGS_0001})])
            event = {"call_id": entry.call.call_id, "seq": 1, "kind": "call_arrived"}
            event["at"] = entry.call.started_at
            conn.execute(events.insert(), [stored(event) | {"data": {"did": entry.call.did}}])

    async with engine.begin() as conn:
        await conn.run_sync(write)
    return engine


async def test_a_0003_database_gains_the_server_column_without_losing_a_row(cdr_url: str) -> None:
    old = _old_entries()
    engine = await _written_by_0003(cdr_url, old)
    await engine.dispose()

    store = await CdrStore.open(cdr_url, flush_interval=0.01)  # upgrades, as every command does
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(current_revision) == _head()
            counts = [
                (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar()
                for t in ("calls", "legs", "call_events")
            ]
        assert counts == [len(old), sum(len(e.legs) for e in old), len(old)]
        assert await store.call_log(DID) == old  # every field, every leg; server None
        assert all(e.call.server is None for e in await store.call_log(DID))
        assert [e.kind for e in await store.events_of(old[0].call.call_id)] == ["call_arrived"]
        # A row older than the column was written by the only server there was: each server's
        # recovery still sees it, and no other server's open calls.
        store.record_call(CallRecord("lyon-open", DID, T0, server="ast-lyon"))
        store.record_call(CallRecord("paris-open", DID, T0, server="ast-paris"))
        await store.flush()
        older_open = [e.call.call_id for e in old if e.call.ended_at is None]
        assert [c.call_id for c in await store.open_calls(server="ast-paris")] == sorted(
            [*older_open, "paris-open"]
        )
        assert len(await store.open_calls()) == len(older_open) + 2
        entry = await store.get_call("paris-open")
        assert entry is not None and entry.call.server == "ast-paris"
    finally:
        await store.close()


async def test_downgrade_to_0005_drops_only_the_server_column(cdr_url: str) -> None:
    from alembic import command

    old = _old_entries()
    engine = await _written_by_0003(cdr_url, old)
    try:
        await migrate(engine)

        def downgrade(conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005_ring_memory")

        async with schema_change(engine) as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert await conn.run_sync(current_revision) == "0005_ring_memory"
            columns = await conn.run_sync(
                lambda sync: [c["name"] for c in sa.inspect(sync).get_columns("calls")]
            )
            counts = [
                (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar()
                for t in ("calls", "legs", "call_events")
            ]
        assert "server" not in columns and {"path", "direction"} <= set(columns)
        assert counts == [len(old), sum(len(e.legs) for e in old), len(old)]
    finally:
        await engine.dispose()


def test_the_head_read_off_the_files_is_alembics() -> None:
    assert head_revision() == _head()


def test_a_database_at_head_opens_without_importing_alembic(tmp_path: Any) -> None:
    # Alembic and what it drags in (mako, and pygments where installed) weigh ~9 MB in a
    # daemon: only a database behind the code needs them (bench/concurrency.py, RSS).
    url = f"sqlite:///{tmp_path / 'cdr.db'}"
    script = (
        "import asyncio, sys\n"
        "from pbxd.cdr.store import CdrStore\n"
        "async def main():\n"
        f"    store = await CdrStore.open({url!r})\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )

    def opened() -> str:
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert opened() == "True"  # a new database is migrated: Alembic does that
    assert opened() == "False"  # the next start finds it at head with one query


def test_a_store_opened_with_migrate_apart_migrates_a_new_database_apart(tmp_path: Any) -> None:
    # With migrate_apart a child process runs Alembic (not yet what `pbxd run` does).
    url = f"sqlite:///{tmp_path / 'cdr.db'}"
    script = (
        "import asyncio, sys\n"
        "from sqlalchemy import text\n"
        "from pbxd.cdr.store import CdrStore\n"
        "async def main():\n"
        f"    store = await CdrStore.open({url!r}, migrate_apart=True)\n"
        "    async with store.engine.connect() as conn:\n"
        "        rows = await conn.execute(text('SELECT version_num FROM alembic_version'))\n"
        "        print(rows.scalar_one())\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [_head(), "False"]


async def test_a_migration_that_fails_apart_says_why(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cdr.db'}"
    (tmp_path / "cdr.db").write_text("not a database")
    with pytest.raises(MigrationFailed, match=r"not a database"):
        await migrate_apart(url)
