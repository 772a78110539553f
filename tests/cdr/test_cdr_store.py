"""CdrStore against SQLite and PostgreSQL: migrations, upserts, batching, reads, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from pbxd.cdr.db import current_revision, make_engine, migrate
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.cdr.schema import Base
from pbxd.cdr.store import CdrStore

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DID = "+33199000001"
OTHER_DID = "+33199000002"


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def new_call(call_id: str, *, did: str = DID, start: float = 0.0) -> CallRecord:
    """A freshly arrived call."""
    return CallRecord(
        call_id=call_id,
        did=did,
        started_at=at(start),
        caller_number="+33612345678",
        caller_name="Alice Caller",
        trunk="trunk-in",
        route="office",
        strategy="ring_all",
    )


def new_leg(leg_id: str, call_id: str, *, start: float, target: str = "alice") -> LegRecord:
    """A freshly started outbound attempt."""
    return LegRecord(
        leg_id=leg_id,
        call_id=call_id,
        target=target,
        destination=f"PJSIP/{target}",
        started_at=at(start),
    )


@contextmanager
def count_rows_written(store: CdrStore, table: str) -> Iterator[list[int]]:
    """Record how many rows each INSERT into `table` carried (one entry per statement)."""
    counts: list[int] = []

    def before(
        _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            counts.append(len(params) if executemany else 1)

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    try:
        yield counts
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)


# ------------------------------------------------------------------ migrations


async def test_migrate_twice_is_a_noop(cdr_url: str) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine)
        await migrate(engine)  # second run: nothing to do, nothing raised
        async with engine.connect() as conn:
            assert await conn.run_sync(current_revision) == "0006_call_server"
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert {"calls", "legs", "alembic_version"} <= tables
            versions = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar()
            assert versions == 1
    finally:
        await engine.dispose()
    # Opening a store on an already migrated database works too.
    store = await CdrStore.open(cdr_url)
    await store.close()


async def test_models_match_the_migration(cdr_url: str) -> None:
    engine = make_engine(cdr_url)
    try:
        await migrate(engine)

        def diff(conn: Connection) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


# ------------------------------------------------------------------- write path


async def test_call_progression_with_legs(store: CdrStore) -> None:
    call = new_call("c1")
    store.record_call(call)
    await store.flush()
    entry = await store.get_call("c1")
    assert entry is not None
    assert entry.call == call and entry.legs == []
    assert [c.call_id for c in await store.open_calls()] == ["c1"]

    alice = new_leg("l-alice", "c1", start=1, target="alice")
    bob = new_leg("l-bob", "c1", start=0.5, target="bob")
    store.record_leg(alice)
    store.record_leg(bob)
    await store.flush()
    legs = await store.legs_of("c1")
    assert [leg.leg_id for leg in legs] == ["l-bob", "l-alice"]  # by start, not by arrival

    alice.answered_at = at(4)
    call.answered_at = at(4)
    call.answered_by = "alice"
    bob.ended_at, bob.hangup_cause = at(4), 26
    store.record_call(call)
    store.record_leg(alice)
    store.record_leg(bob)
    await store.flush()

    alice.ended_at, alice.hangup_cause = at(65.4), 16
    call.ended_at, call.hangup_cause = at(65.4), 16
    call.disposition = Disposition.ANSWERED
    store.record_call(call)
    store.record_leg(alice)
    await store.flush()

    entry = await store.get_call("c1")
    assert entry is not None
    assert entry.call == call
    assert entry.call.disposition is Disposition.ANSWERED
    assert [leg.leg_id for leg in entry.legs] == ["l-bob", "l-alice"]
    assert entry.legs[1] == alice and entry.legs[0] == bob
    assert await store.open_calls() == []
    # duration/billsec are stored for SQL reports once the call has ended.
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT duration, billsec FROM calls WHERE call_id = 'c1'"))
        ).one()
    assert tuple(row) == (65, 61)


async def test_open_call_has_no_duration_in_the_table(store: CdrStore) -> None:
    store.record_call(new_call("open"))
    await store.flush()
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT duration, billsec FROM calls WHERE call_id = 'open'"))
        ).one()
    assert tuple(row) == (None, None)


async def test_updates_are_coalesced_latest_snapshot_wins(cdr_url: str) -> None:
    store = await CdrStore.open(cdr_url, flush_interval=30)
    try:
        call = new_call("c1")
        with count_rows_written(store, "calls") as call_rows:
            store.record_call(call)
            call.answered_at = at(3)
            store.record_call(call)
            call.answered_by = "bob"
            store.record_call(call)
            # Mutating after record_call must not leak in: the queue holds snapshots.
            call.answered_by = "never recorded"
            await store.flush()
        assert call_rows == [1]  # three snapshots, one row in one statement
        entry = await store.get_call("c1")
        assert entry is not None
        assert entry.call.answered_at == at(3)
        assert entry.call.answered_by == "bob"
    finally:
        await store.close()


async def test_calls_are_written_before_legs_in_one_batch(store: CdrStore) -> None:
    # The leg is queued before its call exists in the database: same batch, calls first.
    store.record_call(new_call("c1"))
    store.record_leg(new_leg("l1", "c1", start=1))
    store.record_call(new_call("c2", start=5))
    await store.flush()
    assert [leg.leg_id for leg in await store.legs_of("c1")] == ["l1"]
    assert store.dropped == 0


async def test_flush_waits_for_commit_and_returns_at_once_when_idle(cdr_url: str) -> None:
    store = await CdrStore.open(cdr_url, flush_interval=30)
    try:
        started = time.monotonic()
        await store.flush()  # nothing queued
        store.record_call(new_call("c1"))
        await asyncio.sleep(0.05)
        assert await store.get_call("c1") is None  # still lingering in the queue
        await asyncio.gather(store.flush(), store.flush(), store.flush())
        assert await store.get_call("c1") is not None
        assert time.monotonic() - started < 10  # flush() cut the 30 s linger short
        assert store.backlog == 0
    finally:
        await store.close()


async def test_writer_flushes_by_itself_after_the_interval(cdr_url: str) -> None:
    store = await CdrStore.open(cdr_url, flush_interval=0.01)
    try:
        store.record_call(new_call("c1"))
        for _ in range(200):
            if await store.get_call("c1") is not None:
                break
            await asyncio.sleep(0.025)
        assert await store.get_call("c1") is not None
    finally:
        await store.close()


async def test_full_batches_are_written_without_waiting(cdr_url: str) -> None:
    store = await CdrStore.open(cdr_url, batch_size=10, flush_interval=30)
    try:
        with count_rows_written(store, "calls") as call_rows:
            for i in range(25):
                store.record_call(new_call(f"c{i:02d}", start=i))
            await store.flush()
        assert call_rows == [10, 10, 5]
        assert len(await store.call_log(DID)) == 25
    finally:
        await store.close()


# ------------------------------------------------------------------- read side


async def test_open_calls_lists_only_unended_calls_oldest_first(store: CdrStore) -> None:
    ended = new_call("ended", start=0)
    ended.ended_at = at(10)
    ended.disposition = Disposition.NO_ANSWER
    for rec in (new_call("late", start=20), ended, new_call("early", start=5)):
        store.record_call(rec)
    await store.flush()
    assert [c.call_id for c in await store.open_calls()] == ["early", "late"]


async def test_call_log_filters_by_did_and_time_newest_first(store: CdrStore) -> None:
    for i, start in enumerate((0, 60, 120, 180)):
        store.record_call(new_call(f"c{i}", start=start))
    store.record_call(new_call("other", did=OTHER_DID, start=90))
    store.record_leg(new_leg("c2-b", "c2", start=125, target="bob"))
    store.record_leg(new_leg("c2-a", "c2", start=121, target="alice"))
    await store.flush()

    def ids(entries: list[Any]) -> list[str]:
        return [e.call.call_id for e in entries]

    assert ids(await store.call_log(DID)) == ["c3", "c2", "c1", "c0"]
    assert ids(await store.call_log(OTHER_DID)) == ["other"]
    assert await store.call_log("+33100000000") == []
    # since is inclusive, until exclusive.
    assert ids(await store.call_log(DID, since=at(60))) == ["c3", "c2", "c1"]
    assert ids(await store.call_log(DID, until=at(120))) == ["c1", "c0"]
    assert ids(await store.call_log(DID, since=at(60), until=at(180))) == ["c2", "c1"]
    assert ids(await store.call_log(DID, limit=2)) == ["c3", "c2"]
    # Bounds in another zone mean the same instants.
    paris = ZoneInfo("Europe/Paris")
    assert ids(await store.call_log(DID, since=at(60).astimezone(paris))) == ["c3", "c2", "c1"]
    log = await store.call_log(DID, since=at(120), until=at(121))
    assert [leg.leg_id for leg in log[0].legs] == ["c2-a", "c2-b"]
    with pytest.raises(ValueError, match="aware"):
        await store.call_log(DID, since=datetime(2024, 6, 1))


async def test_call_log_keeps_one_servers_calls_when_asked(store: CdrStore) -> None:
    for i, server in enumerate(("ast-paris-1", "ast-lyon-2", "ast-paris-1", None)):
        call = new_call(f"s{i}", start=i * 60)
        call.server = server
        store.record_call(call)
    await store.flush()
    paris = await store.call_log(DID, server="ast-paris-1")
    assert [e.call.call_id for e in paris] == ["s2", "s0"]
    assert [e.call.call_id for e in await store.call_log(DID, server="ast-lyon-2")] == ["s1"]
    assert len(await store.call_log(DID)) == 4  # no filter merges every server
    assert await store.call_log(DID, server="ast-paris-1' OR '1'='1") == []


async def test_a_late_open_snapshot_never_reopens_an_ended_row(store: CdrStore) -> None:
    # The pbxd that adopted the call wrote its end; the fenced one replays older snapshots.
    ringing, ringing_leg = new_call("c1", start=0), new_leg("c1-a", "c1", start=1)
    ended, ended_leg = ringing.snapshot(), ringing_leg.snapshot()
    ended.answered_at, ended.ended_at, ended.disposition = at(5), at(65), Disposition.ANSWERED
    ended_leg.answered_at, ended_leg.ended_at = at(5), at(65)
    store.record_call(ended)
    store.record_leg(ended_leg)
    await store.flush()
    store.record_call(ringing)
    store.record_leg(ringing_leg)
    await store.flush()
    entry = await store.get_call("c1")
    assert entry is not None
    assert (entry.call.ended_at, entry.call.disposition) == (at(65), Disposition.ANSWERED)
    [leg] = await store.legs_of("c1")
    assert (leg.answered_at, leg.ended_at) == (at(5), at(65))
    # An ended snapshot still replaces an ended row (a voicemail filed after the end, say).
    later = ended.snapshot()
    later.disposition = Disposition.VOICEMAIL
    store.record_call(later)
    await store.flush()
    again = await store.get_call("c1")
    assert again is not None and again.call.disposition is Disposition.VOICEMAIL


async def test_get_call_of_unknown_id_is_none(store: CdrStore) -> None:
    assert await store.get_call("nope") is None
    assert await store.legs_of("nope") == []


async def test_times_round_trip_as_aware_utc(store: CdrStore) -> None:
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2024, 3, 31, 3, 30, 15, 123456, tzinfo=paris)  # just after the DST jump
    call = CallRecord(call_id="tz", did=DID, started_at=start, answered_at=start)
    store.record_call(call)
    store.record_leg(LegRecord("tz-l", "tz", "alice", "PJSIP/alice", started_at=start))
    await store.flush()
    entry = await store.get_call("tz")
    assert entry is not None
    for value in (entry.call.started_at, entry.call.answered_at, entry.legs[0].started_at):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
        assert value == datetime(2024, 3, 31, 1, 30, 15, 123456, tzinfo=UTC)
    assert entry.call.ended_at is None


async def test_deleting_a_call_cascades_to_its_legs(store: CdrStore) -> None:
    store.record_call(new_call("c1"))
    store.record_leg(new_leg("l1", "c1", start=1))
    await store.flush()
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM calls WHERE call_id = 'c1'"))
    assert await store.legs_of("c1") == []


# ------------------------------------------------------------------- failures


async def test_bad_records_are_dropped_and_the_writer_goes_on(store: CdrStore) -> None:
    orphan = new_leg("orphan", "no-such-call", start=1)  # foreign key violation
    weird = new_call("weird")
    weird.disposition = cast(Disposition, "teleported")  # CHECK constraint violation
    naive = CallRecord(call_id="naive", did=DID, started_at=datetime(2024, 6, 1, 12))
    with capture_logs() as logs:
        store.record_call(new_call("good-1"))
        store.record_leg(orphan)
        store.record_call(weird)
        store.record_call(naive)
        store.record_leg(new_leg("good-leg", "good-1", start=2))
        await store.flush()
    assert store.dropped == 3
    rejected = [e for e in logs if e["event"] == "cdr_row_rejected"]
    dropped = {(e["kind"], e["id"]) for e in rejected}
    assert dropped == {("leg", "orphan"), ("call", "weird"), ("call", "naive")}
    assert all(e["log_level"] == "error" for e in rejected)
    # The whole row is in the log line, so an admin can put it back by hand.
    [weird_line] = [e for e in rejected if e["id"] == "weird"]
    assert weird_line["row"]["disposition"] == "teleported"
    assert weird_line["row"]["caller_number"] == "+33612345678"
    assert (await store.get_call("good-1")) is not None
    assert [leg.leg_id for leg in await store.legs_of("good-1")] == ["good-leg"]
    # The writer is alive: later records are written.
    store.record_call(new_call("good-2", start=10))
    await store.flush()
    assert await store.get_call("good-2") is not None


async def test_a_record_that_cannot_even_be_converted_is_dropped(store: CdrStore) -> None:
    mixed = new_call("mixed")
    mixed.ended_at = datetime(2024, 6, 1, 12, 5)  # naive minus aware: TypeError in duration
    with capture_logs() as logs:
        store.record_call(mixed)
        store.record_call(new_call("fine"))
        await store.flush()
    assert store.dropped == 1
    assert any(e["event"] == "cdr_row_rejected" and e["id"] == "mixed" for e in logs)
    assert await store.get_call("fine") is not None


async def test_transient_failures_are_retried_and_logged(
    store: CdrStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = store._commit
    failures = 3

    async def flaky(*args: Any) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("INSERT …", {}, ConnectionResetError("database went away"))
        await real_commit(*args)

    monkeypatch.setattr(store, "_commit", flaky)
    with capture_logs() as logs:
        store.record_call(new_call("c1"))
        await store.flush()
    retries = [e for e in logs if e["event"] == "cdr_write_retry"]
    assert len(retries) == 3 and all(e["transient"] for e in retries)
    assert [e["retry_in"] for e in retries] == [0.05, 0.1, 0.2]  # backoff doubles
    assert await store.get_call("c1") is not None
    assert store.dropped == 0


async def test_backlog_above_the_limit_is_refused(cdr_url: str) -> None:
    store = await CdrStore.open(cdr_url, max_backlog=3, flush_interval=30)
    try:
        with capture_logs() as logs:
            accepted = [store.record_call(new_call(f"c{i}", start=i)) for i in range(5)]
        assert accepted == [True, True, True, False, False]
        assert store.refused == 2 and store.backlog == 3
        refusals = [e for e in logs if e["event"] == "cdr_record_refused"]
        assert refusals and refusals[0]["log_level"] == "error"
        assert refusals[0]["reason"] == "backlog full"
        await store.flush()
        assert [e.call.call_id for e in await store.call_log(DID)] == ["c2", "c1", "c0"]
        assert store.record_call(new_call("c9", start=9))  # room again
    finally:
        await store.close()


async def test_close_drains_the_queue(cdr_url: str) -> None:
    store = await CdrStore.open(cdr_url, flush_interval=30)
    for i in range(50):
        call = new_call(f"c{i:02d}", start=i)
        store.record_call(call)
        store.record_leg(new_leg(f"l{i:02d}", call.call_id, start=i + 1))
    await store.close()  # no flush(): close must write everything
    await store.close()  # idempotent
    with capture_logs() as logs:
        assert store.record_call(new_call("late")) is False
    assert logs[0]["reason"] == "store closing"
    with pytest.raises(RuntimeError, match="closed"):
        await store.open_calls()

    reopened = await CdrStore.open(cdr_url)
    try:
        log = await reopened.call_log(DID)
        assert len(log) == 50 and all(len(e.legs) == 1 for e in log)
    finally:
        await reopened.close()


async def test_close_gives_up_after_the_drain_timeout(
    cdr_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await CdrStore.open(cdr_url, flush_interval=30)

    async def down(*_args: Any) -> None:
        raise OperationalError("INSERT …", {}, ConnectionRefusedError("database is down"))

    monkeypatch.setattr(store, "_commit", down)
    store.record_call(new_call("c1"))
    with capture_logs() as logs:
        await store.close(drain_timeout=0.3)
    [timeout] = [e for e in logs if e["event"] == "cdr_close_timeout"]
    assert timeout["lost"] == 1


async def test_context_manager_and_concurrent_close(cdr_url: str) -> None:
    async with await CdrStore.open(cdr_url, flush_interval=30) as store:
        store.record_call(new_call("c1"))
        await asyncio.gather(store.close(), store.close())
    reopened = await CdrStore.open(cdr_url)
    try:
        assert await reopened.get_call("c1") is not None
    finally:
        await reopened.close()


# ------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize(
    ("answer", "end", "duration", "billsec"),
    [
        (1.0, 3.5, 4, 3),  # 3.5 s and 2.5 s: both half a second up, never to even
        (1.0, 2.5, 3, 2),  # 2.5 s up to 3, 1.5 s up to 2
        (0.2, 0.6, 1, 0),  # 0.6 s of call, 0.4 s of talk
        (None, 7.499, 7, 0),  # unanswered: no billable second
        (2.0, 2.0, 2, 0),
    ],
)
def test_duration_and_billsec_round_half_up(
    answer: float | None, end: float, duration: int, billsec: int
) -> None:
    call = CallRecord(
        call_id="c",
        did=DID,
        started_at=at(0),
        answered_at=None if answer is None else at(answer),
        ended_at=at(end),
    )
    assert (call.duration, call.billsec) == (duration, billsec)
    assert call.billsec <= call.duration  # type: ignore[operator]


def test_open_call_has_no_duration_yet() -> None:
    call = CallRecord(call_id="c", did=DID, started_at=at(0), answered_at=at(1))
    assert (call.duration, call.billsec) == (None, None)
