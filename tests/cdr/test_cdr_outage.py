"""Database outages provoked for real: no CDR is lost, none is doubled, the last snapshot wins.

PostgreSQL: a role of the test's own is refused logins (`NOLOGIN`) or connections
(`CONNECTION LIMIT 0`) and its sessions are killed (`pg_terminate_backend`). SQLite: another
process holds the database with `BEGIN EXCLUSIVE`. Records go on arriving during the outage;
some wait in memory, some in the spool file, and all land once the database is back.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dbfixtures import postgres_admin_url, postgres_role_url, sqlite_held_locked, sqlite_url
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from structlog.testing import capture_logs

from pbxd.cdr import db as cdr_db
from pbxd.cdr import store as cdr_store
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.cdr.spool import CdrSpool
from pbxd.cdr.store import CdrStore

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DID = "+33199000001"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry every 0.1 s at most and wait 50 ms for a SQLite lock: outages end quickly here."""
    monkeypatch.setattr(cdr_store, "RETRY_MAX_DELAY", 0.1)
    monkeypatch.setattr(cdr_db, "SQLITE_BUSY_TIMEOUT_MS", 50)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class CallPlay:
    """A call and its leg, recorded snapshot by snapshot like the controller does."""

    def __init__(self, n: int) -> None:
        self.call = CallRecord(
            call_id=f"call-{n:03d}", did=DID, started_at=at(n), caller_number="+33612345678"
        )
        self.leg = LegRecord(
            leg_id=f"call-{n:03d}-1",
            call_id=self.call.call_id,
            target="alice",
            destination="PJSIP/alice",
            started_at=at(n + 0.1),
        )

    def ring(self, store: CdrStore) -> None:
        assert store.record_call(self.call) and store.record_leg(self.leg)

    def answer(self, store: CdrStore) -> None:
        self.call.answered_at = self.leg.answered_at = at(self.call.started_at.second + 2)
        self.call.answered_by = "alice"
        assert store.record_call(self.call) and store.record_leg(self.leg)

    def end(self, store: CdrStore) -> None:
        self.call.ended_at = self.leg.ended_at = at(self.call.started_at.second + 30)
        self.call.disposition = Disposition.ANSWERED
        self.call.hangup_cause = self.leg.hangup_cause = 16
        assert store.record_call(self.call) and store.record_leg(self.leg)


async def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Poll the store's own state (it has no event for "an outage began")."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def assert_landed_once(url: str, plays: list[CallPlay]) -> None:
    """Every call and leg is in the database exactly once, with its last snapshot."""
    reader = await CdrStore.open(url)
    try:
        async with reader.engine.connect() as conn:
            calls = (await conn.execute(text("SELECT count(*) FROM calls"))).scalar()
            legs = (await conn.execute(text("SELECT count(*) FROM legs"))).scalar()
        assert (calls, legs) == (len(plays), len(plays))
        for play in plays:
            entry = await reader.get_call(play.call.call_id)
            assert entry is not None, play.call.call_id
            assert entry.call == play.call
            assert entry.legs == [play.leg]
    finally:
        await reader.close()


def events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == name]


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


@asynccontextmanager
async def admin_sql() -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    """Run SQL as the PostgreSQL superuser (ALTER ROLE, pg_terminate_backend)."""
    engine = create_async_engine(postgres_admin_url(), poolclass=NullPool)

    async def run(sql: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(sql))

    try:
        yield run
    finally:
        await engine.dispose()


def terminate(role: str) -> str:
    return f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"


# ---------------------------------------------------------------- outages, live


@pytest.mark.parametrize(
    ("refuse", "restore"),
    [
        ("NOLOGIN", "LOGIN"),
        ("CONNECTION LIMIT 0", "CONNECTION LIMIT -1"),
    ],
)
async def test_postgresql_refusing_the_role_loses_no_record(
    tmp_path: Path, refuse: str, restore: str
) -> None:
    async with postgres_role_url() as (role, url, _), admin_sql() as sql:
        spool = CdrSpool(tmp_path / "cdr-spool.jsonl")
        store = await CdrStore.open(url, flush_interval=0.01, spool=spool, spool_after=0.2)
        plays = [CallPlay(n) for n in range(30)]
        try:
            with capture_logs() as logs:
                for play in plays[:10]:
                    play.ring(store)
                await store.flush()  # written while the database is fine

                await sql(f'ALTER ROLE "{role}" {refuse}')
                await sql(terminate(role))
                for play in plays[:20]:
                    play.answer(store) if play in plays[:10] else play.ring(store)
                await wait_until(lambda: store.spooled > 0)  # outage seen, records on disk
                await sql(terminate(role))  # whatever got through is cut again
                for play in plays:
                    if play in plays[20:]:
                        play.ring(store)
                    play.end(store)  # the last snapshots wait in memory, behind the spool
                assert store.in_outage and store.backlog > 0

                await sql(f'ALTER ROLE "{role}" {restore}')
                async with asyncio.timeout(30):
                    await store.flush()
            assert store.dropped == 0 and store.refused == 0
            assert store.spooled == 0 and not store.in_outage
        finally:
            await store.close()
        await assert_landed_once(url, plays)
    [started] = events(logs, "cdr_outage_started")
    assert refuse.split()[0].lower() in {"nologin", "connection"}
    assert any(s in str(started["error"]) for s in ("not permitted to log in", "too many"))
    assert len(events(logs, "cdr_outage_ended")) == 1
    assert events(logs, "cdr_spooled") and events(logs, "cdr_spool_replayed")
    assert not events(logs, "cdr_row_rejected")


async def test_sqlite_locked_by_another_process_loses_no_record(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = await CdrStore.open(
        url, flush_interval=0.01, spool=CdrSpool(tmp_path / "spool.jsonl"), spool_after=0.2
    )
    plays = [CallPlay(n) for n in range(20)]
    try:
        with capture_logs() as logs:
            plays[0].ring(store)
            await store.flush()
            async with sqlite_held_locked(sqlite_path(url)) as release:
                for play in plays:
                    play.ring(store)
                await wait_until(lambda: store.spooled > 0)
                for play in plays:
                    play.answer(store)
                    play.end(store)
                assert store.in_outage
                await release()
            async with asyncio.timeout(30):
                await store.flush()
        assert store.dropped == 0 and store.spooled == 0
    finally:
        await store.close()
    await assert_landed_once(url, plays)
    assert "database is locked" in str(events(logs, "cdr_outage_started")[0]["error"])
    assert events(logs, "cdr_spool_replayed")[0]["records"] >= 20


async def test_a_full_memory_queue_spills_to_the_spool_in_order(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    spool_path = tmp_path / "spool.jsonl"
    store = await CdrStore.open(
        url, flush_interval=30, max_backlog=4, spool=CdrSpool(spool_path), spool_after=60
    )
    plays = [CallPlay(n) for n in range(3)]
    try:
        with capture_logs() as logs:
            for play in plays:
                play.ring(store)  # 6 records: the 5th spills the first 4
            assert store.spooled == 4 and store.backlog == 2
            lines = [json.loads(line) for line in spool_path.read_text().splitlines()]
            assert [(x["kind"], x["seq"]) for x in lines] == [
                ("call", 1),
                ("leg", 2),
                ("call", 3),
                ("leg", 4),
            ]
            for play in plays:
                play.end(store)  # newer than what the spool holds
            await store.flush()
        assert store.refused == 0 and store.spooled == 0
        assert spool_path.stat().st_size == 0  # emptied once written
    finally:
        await store.close()
    await assert_landed_once(url, plays)
    assert events(logs, "cdr_spooled")[0]["reason"] == "memory backlog full"


# ------------------------------------------------------------- stop during an outage


async def test_close_during_an_outage_spools_and_the_next_open_replays_first(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    spool_path = tmp_path / "spool.jsonl"
    plays = [CallPlay(n) for n in range(5)]
    store = await CdrStore.open(url, flush_interval=0.01, spool=CdrSpool(spool_path))
    plays[0].ring(store)
    await store.flush()  # the file exists, then another process takes it
    async with sqlite_held_locked(sqlite_path(url)):
        for play in plays:
            play.ring(store)
            play.answer(store)
        with capture_logs() as logs:
            await store.close(drain_timeout=0.3)  # SIGTERM: pbxd must stop
        [closing] = events(logs, "cdr_close_timeout")
        assert closing["lost"] == 0 and closing["spooled"] == 20
        assert closing["log_level"] == "warning"
        lines = spool_path.read_text().splitlines()
        assert len(lines) == 20
    # The lock is gone; a new run opens the store: the spool is written before open returns.
    with capture_logs() as logs:
        reopened = await CdrStore.open(url, spool=CdrSpool(spool_path))
    try:
        for play in plays:
            entry = await reopened.get_call(play.call.call_id)
            assert entry is not None and entry.call == play.call
        assert reopened.spooled == 0
        # Later snapshots of the same calls go after the replayed ones.
        for play in plays:
            play.end(reopened)
        await reopened.flush()
    finally:
        await reopened.close()
    assert [e["records"] for e in events(logs, "cdr_spool_replayed")] == [20]
    await assert_landed_once(url, plays)


async def test_close_during_a_postgresql_outage_spools_everything(tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.jsonl"
    plays = [CallPlay(n) for n in range(5)]
    async with postgres_role_url() as (role, url, _), admin_sql() as sql:
        store = await CdrStore.open(url, flush_interval=0.01, spool=CdrSpool(spool_path))
        await sql(f'ALTER ROLE "{role}" CONNECTION LIMIT 0')
        await sql(terminate(role))
        for play in plays:
            play.ring(store)
            play.end(store)
        await wait_until(lambda: store.in_outage)
        await store.close(drain_timeout=0.2)
        assert len(spool_path.read_text().splitlines()) == 20
        await sql(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
        reopened = await CdrStore.open(url, spool=CdrSpool(spool_path))
        await reopened.close()
        await assert_landed_once(url, plays)


async def test_a_replay_after_a_crash_mid_write_doubles_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    spool_path = tmp_path / "spool.jsonl"
    plays = [CallPlay(n) for n in range(3)]
    store = await CdrStore.open(url, flush_interval=30, max_backlog=100, spool=CdrSpool(spool_path))
    for play in plays:
        play.ring(store)
        play.end(store)
    store._spill("test")  # as a spill does before an outage
    await store.flush()  # written from the spool ...
    # ... then pbxd died before emptying it: the same lines are there at the next start.
    written = spool_path.read_bytes()
    await store.close()
    spool_path.write_bytes(written + b'{"seq": 99, "kind": "call", "rec')  # torn last line
    reopened = await CdrStore.open(url, spool=CdrSpool(spool_path))
    await reopened.close()
    await assert_landed_once(url, plays)


# ---------------------------------------------------------- rejected on the merits


async def test_a_row_the_database_refuses_is_the_only_one_left_out(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = await CdrStore.open(url, flush_interval=0.01, spool=CdrSpool(tmp_path / "s.jsonl"))
    good = CallPlay(1)
    orphan = LegRecord(
        leg_id="orphan-1",
        call_id="no-such-call",
        target="bob",
        destination="PJSIP/bob",
        started_at=at(3),
    )
    with capture_logs() as logs:
        good.ring(store)
        store.record_leg(orphan)
        good.end(store)
        await store.flush()
    await store.close()
    [rejected] = events(logs, "cdr_row_rejected")
    assert rejected["id"] == "orphan-1" and rejected["row"]["destination"] == "PJSIP/bob"
    assert not events(logs, "cdr_outage_started")
    await assert_landed_once(url, [good])


async def test_a_full_memory_queue_spills_its_oldest_records_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cdr_store, "SPILL_CHUNK", 2)  # a spill blocks the event loop: keep short
    url = sqlite_url(tmp_path)
    spool_path = tmp_path / "spool.jsonl"
    store = await CdrStore.open(
        url, flush_interval=30, max_backlog=4, spool=CdrSpool(spool_path), spool_after=60
    )
    plays = [CallPlay(n) for n in range(4)]
    try:
        for play in plays:
            play.ring(store)  # 8 records: the 5th and the 7th each spill the 2 oldest
        assert (store.spooled, store.backlog) == (4, 4)
        seqs = [json.loads(line)["seq"] for line in spool_path.read_text().splitlines()]
        assert seqs == [1, 2, 3, 4]
        for play in plays:
            play.end(store)
        await store.flush()
    finally:
        await store.close()
    await assert_landed_once(url, plays)


class _PgError(Exception):
    """What asyncpg's errors look like once SQLAlchemy has adapted them: a SQLSTATE."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "rejected"),
    [
        # PostgreSQL away or refusing pbxd: an outage, whatever the wrapping.
        (DBAPIError("connect", {}, _PgError("too many connections for role", "53300")), False),
        (DBAPIError("connect", {}, _PgError("role is not permitted to log in", "28000")), False),
        (DBAPIError("connect", {}, _PgError("the database system is starting up", "57P03")), False),
        (DBAPIError("x", {}, _PgError("terminating connection (admin command)", "57P01")), False),
        (DBAPIError("x", {}, _PgError("the database system is in recovery mode", "57P03")), False),
        (DBAPIError("x", {}, _PgError("permission denied for table calls", "42501")), False),
        (OperationalError("x", {}, Exception("database is locked")), False),
        (ConnectionRefusedError(111, "Connect call failed"), False),
        (socket.gaierror(-2, "Name or service not known"), False),
        (TimeoutError(), False),
        # The row itself: refused.
        (IntegrityError("x", {}, Exception("FOREIGN KEY constraint failed")), True),
        (DBAPIError("x", {}, _PgError("value too long for type", "22001")), True),
        (DBAPIError("x", {}, _PgError("duplicate key value", "23505")), True),
        (StatementError("naive datetime", "x", {}, ValueError("naive")), True),
    ],
)
def test_an_outage_is_told_from_a_bad_row(error: BaseException, rejected: bool) -> None:
    assert cdr_store.rejected_on_merits(error) is rejected
