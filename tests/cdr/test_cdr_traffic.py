"""The traffic rollup (`number_traffic`) equals what the calls themselves say, on both backends."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Connection, select

from pbxd.cdr import traffic
from pbxd.cdr.db import alembic_config, schema_change
from pbxd.cdr.queries import calls_today, number_report, report_calls
from pbxd.cdr.records import CallRecord, Direction, Disposition, LegRecord
from pbxd.cdr.reports import ReportCall, ReportPeriod, Tally, summarise_hours, summarise_report
from pbxd.cdr.store import CdrStore

PARIS = ZoneInfo("Europe/Paris")
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local hours are half past UTC ones
DID = "+33170000001"
OTHER = "+33170000002"
NOV = ReportPeriod.parse("2026-11")


def utc(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


async def _stored_slots(store: CdrStore) -> dict[traffic.SlotKey, Tally]:
    """Every `number_traffic` row, as tallies (zero slots left out)."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(traffic.TRAFFIC))).mappings().all()
    return {(r["did"], r["slot"]): traffic.tally_of_row(r) for r in rows if r["calls"]}


async def _counted_from_calls(store: CdrStore) -> dict[traffic.SlotKey, Tally]:
    """The slots counted afresh from the `calls` and `legs` rows."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(traffic.report_calls_query())
        return traffic.tally_slots(map(traffic.report_call, rows))


def _life_of_a_call(call_id: str, did: str, start: datetime, server: str) -> list[object]:
    """The snapshots a writer records for one answered call: arrival, ringing, answer, end."""
    call = CallRecord(call_id, did, start, server=server)
    leg = LegRecord(f"{call_id}-l", call_id, "alice", "PJSIP/alice", start + timedelta(seconds=2))
    snapshots: list[object] = [call.snapshot(), leg.snapshot()]
    call.answered_at = start + timedelta(seconds=1)  # the greeting
    leg.answered_at = start + timedelta(seconds=9, milliseconds=500)  # alice: waits 10 s (9.5 up)
    snapshots += [call.snapshot(), leg.snapshot()]
    call.ended_at = leg.ended_at = start + timedelta(minutes=3)
    call.disposition = Disposition.ANSWERED
    snapshots += [call.snapshot(), leg.snapshot()]
    return snapshots


def _record(store: CdrStore, snapshot: object) -> None:
    if isinstance(snapshot, CallRecord):
        store.record_call(snapshot)
    elif isinstance(snapshot, LegRecord):
        store.record_leg(snapshot)


async def test_the_rollup_equals_the_calls_written_by_two_servers(cdr_url: str) -> None:
    # Two pbxd servers on one database write calls of the same number in the same slot, in
    # small interleaved batches: no count is lost or doubled.
    lyon = await CdrStore.open(cdr_url, flush_interval=0.01, batch_size=3)
    paris = await CdrStore.open(cdr_url, flush_interval=0.01, batch_size=3)
    try:
        lives = [
            (lyon, _life_of_a_call(f"lyon-{n}", DID, utc(2, 8, n), "ast-lyon")) for n in range(6)
        ] + [
            (paris, _life_of_a_call(f"paris-{n}", DID, utc(2, 8, n), "ast-paris")) for n in range(6)
        ]
        for step in range(6):
            for store, snapshots in lives:
                _record(store, snapshots[step])
            await asyncio.gather(lyon.flush(), paris.flush())
        # Written again (a replay after a crash): still counted once.
        for store, snapshots in lives[:3]:
            for snapshot in snapshots:
                _record(store, snapshot)
        missed = CallRecord(
            "missed", DID, utc(2, 8, 7), ended_at=utc(2, 8, 8), disposition=Disposition.NO_ANSWER
        )
        open_call = CallRecord("open", DID, utc(2, 8, 9), server="ast-paris")
        out = CallRecord(
            "out", DID, utc(2, 8, 3), direction=Direction.OUTBOUND, dialled="+33612345678"
        )
        for call in (missed, open_call, out):
            paris.record_call(call)
        await asyncio.gather(lyon.flush(), paris.flush())

        stored = await _stored_slots(paris)
        assert stored == await _counted_from_calls(paris)
        slot = stored[(DID, utc(2, 8))]
        assert slot.calls == 14 and slot.answered == 12 and slot.missed == 1  # "out" is not in
        assert (slot.waits, slot.wait_seconds, slot.longest_wait) == (12, 120, 10)
        assert slot.talk_seconds == 12 * 171  # alice's 170.5 s, rounded half up
        assert await number_report(paris.engine, DID, NOV, PARIS) == summarise_report(
            await _reported(paris, DID, NOV, PARIS), did=DID, period=NOV, tz=PARIS
        )
    finally:
        await lyon.close()
        await paris.close()


async def _reported(
    store: CdrStore, did: str, period: ReportPeriod, tz: ZoneInfo
) -> list[ReportCall]:
    since, until = period.bounds(tz)
    async with store.engine.connect() as conn:
        return await report_calls(conn, did, since, until)


async def test_a_call_crossing_midnight_counts_on_the_day_it_started(store: CdrStore) -> None:
    # 23:50 to 00:20 in Paris (22:50-23:20 UTC): one call of 2 November, none of the 3rd.
    crossing = CallRecord(
        "crossing",
        DID,
        utc(2, 22, 50),
        answered_at=utc(2, 22, 50, 30),
        ended_at=utc(2, 23, 20),
        disposition=Disposition.ANSWERED,
    )
    # 00:05 on 3 November in Paris is still 2 November in UTC.
    after_midnight = CallRecord(
        "after", DID, utc(2, 23, 5), ended_at=utc(2, 23, 6), disposition=Disposition.ABANDONED
    )
    for call in (crossing, after_midnight):
        store.record_call(call)
    await store.flush()
    assert await _stored_slots(store) == await _counted_from_calls(store)
    rep = await number_report(store.engine, DID, NOV, PARIS)
    assert rep == summarise_report(
        await _reported(store, DID, NOV, PARIS), did=DID, period=NOV, tz=PARIS
    )
    days = {d.day: (d.answered, d.missed) for d in rep.per_day if d.calls}
    assert days == {date(2026, 11, 2): (1, 0), date(2026, 11, 3): (0, 1)}
    assert rep.talk_seconds == 29 * 60 + 30
    today = await calls_today(store.engine, {DID: PARIS}, utc(3, 8))
    assert (today[DID].calls, today[DID].missed) == (1, 1)


async def test_rebuild_counts_what_the_writer_keeps(store: CdrStore) -> None:
    for n in range(40):
        start = utc(1 + n % 28, n % 24, (n * 7) % 60)
        disposition = (Disposition.ANSWERED, Disposition.VOICEMAIL, Disposition.CLOSED)[n % 3]
        answered = start + timedelta(seconds=n) if disposition is Disposition.ANSWERED else None
        store.record_call(
            CallRecord(
                f"c{n}",
                (DID, OTHER)[n % 2],
                start,
                answered_at=answered,
                ended_at=start + timedelta(minutes=2),
                disposition=disposition,
            )
        )
    await store.flush()
    kept = await _stored_slots(store)
    async with store.engine.begin() as conn:
        written = await conn.run_sync(traffic.rebuild)
    assert written == len(kept) and len(kept) > 20
    assert await _stored_slots(store) == kept == await _counted_from_calls(store)


def _awkward_calls(seed: int) -> list[tuple[CallRecord, list[LegRecord]]]:
    """Calls that test the SQL recount's arithmetic: waits on the half-second edge (to the
    microsecond), answers before the start, legs answering before or after the call, calls
    still open, calls going out, starts on and just before a slot's edge, before 1970."""
    rng = random.Random(seed)
    found: list[tuple[CallRecord, list[LegRecord]]] = []
    edges = [timedelta(0), timedelta(microseconds=-1), timedelta(minutes=14, seconds=59.999999)]
    for n in range(300):
        start = utc(1 + n % 27, rng.randrange(24), rng.choice((0, 15, 30, 45)))
        start += rng.choice(edges) + timedelta(microseconds=rng.randrange(1_000_000))
        if n % 50 == 0:
            start = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
        disposition = rng.choice([None, *Disposition])
        wait = timedelta(
            seconds=rng.randrange(-2, 40),
            microseconds=rng.choice((499_999, 500_000, 500_001, 0, rng.randrange(1_000_000))),
        )
        answered = start + wait if rng.random() < 0.8 else None
        ended = (answered or start) + timedelta(seconds=rng.randrange(0, 900), microseconds=500_000)
        call = CallRecord(
            f"a{seed}-{n}",
            (DID, OTHER)[n % 2],
            start,
            answered_at=answered,
            ended_at=None if disposition is None or rng.random() < 0.1 else ended,
            disposition=disposition,
            direction=Direction.OUTBOUND if n % 17 == 0 else Direction.INBOUND,
        )
        legs = [
            LegRecord(
                f"a{seed}-{n}-{k}",
                call.call_id,
                "alice",
                "PJSIP/alice",
                start,
                answered_at=(
                    start + wait + timedelta(milliseconds=rng.randrange(-3000, 3000))
                    if rng.random() < 0.6
                    else None
                ),
            )
            for k in range(rng.randrange(3))
        ]
        found.append((call, legs))
    return found


RAW_SLOTS = "SELECT did, slot FROM number_traffic"


@pytest.mark.parametrize(("seed", "materialize"), [(12, True), (13, True), (14, False)])
async def test_rebuild_in_sql_equals_the_python_recount(
    store: CdrStore, seed: int, materialize: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without MATERIALIZED (SQLite before 3.35) the figures are the same, only slower.
    monkeypatch.setattr(traffic, "_can_materialize", lambda connection: materialize)
    for call, legs in _awkward_calls(seed):
        store.record_call(call)
        for leg in legs:
            store.record_leg(leg)
    await store.flush()
    kept = await _stored_slots(store)
    async with store.engine.connect() as conn:
        # The slot column as stored (SQLite: text), which the writer's upserts must match.
        raw_before = {tuple(r) for r in await conn.exec_driver_sql(RAW_SLOTS)}
    async with store.engine.begin() as conn:
        written = await conn.run_sync(traffic.rebuild)
    recounted = await _counted_from_calls(store)  # tally_slots over every call: Python's
    assert await _stored_slots(store) == recounted == kept
    assert written == len(raw_before) and len(recounted) > 250
    async with store.engine.connect() as conn:
        raw_after = {tuple(r) for r in await conn.exec_driver_sql(RAW_SLOTS)}
    assert raw_after == raw_before
    # The writer recounts a rebuilt slot in place: no second row for it.
    late = CallRecord(
        "late", DID, utc(3, 10, 5), disposition=Disposition.BUSY, ended_at=utc(3, 10, 6)
    )
    store.record_call(late)
    await store.flush()
    assert await _stored_slots(store) == await _counted_from_calls(store)


async def test_a_zone_off_the_quarter_hour_grid_is_reported_from_the_calls(
    store: CdrStore,
) -> None:
    # Monrovia was 44 min 30 s behind UTC until 1972: its hours are not made of slots.
    monrovia = ZoneInfo("Africa/Monrovia")
    period = ReportPeriod.parse("1970-03")
    for n, minute in enumerate((1, 20, 40, 50)):
        start = datetime(1970, 3, 2, 10, minute, tzinfo=UTC)
        store.record_call(
            CallRecord(f"m{n}", DID, start, ended_at=start, disposition=Disposition.BUSY)
        )
    await store.flush()
    rep = await number_report(store.engine, DID, period, monrovia)
    assert rep == summarise_report(
        await _reported(store, DID, period, monrovia), did=DID, period=period, tz=monrovia
    )
    # 09:16:30, 09:35:30, 09:55:30 and 10:05:30 in Monrovia.
    assert [(h.hour, h.calls) for h in rep.busiest_hours] == [(9, 3), (10, 1)]


@pytest.mark.parametrize("tz", [PARIS, KOLKATA, ZoneInfo("America/St_Johns")])
def test_slots_summed_per_local_hour_give_the_report_of_the_calls(tz: ZoneInfo) -> None:
    # Every 7 minutes over the March DST change in Europe and America (Newfoundland: -3:30).
    start = datetime(2026, 3, 7, tzinfo=UTC)
    dispositions = [Disposition.ANSWERED, Disposition.NO_ANSWER, None, Disposition.ABANDONED]
    calls = [
        ReportCall(
            start + timedelta(minutes=7 * n),
            dispositions[n % 4],
            start + timedelta(minutes=7 * n, seconds=n % 50) if n % 4 == 0 else None,
            start + timedelta(minutes=7 * n + 3),
        )
        for n in range(7000)
    ]
    period = ReportPeriod.parse("2026-03")
    slots = traffic.tally_slots((DID, call) for call in calls)
    hours = traffic.hours_of_slots(((slot, tally) for (_, slot), tally in slots.items()), tz)
    assert hours is not None
    # Only calls inside the period, as the query bounds them.
    since, until = period.bounds(tz)
    inside = [c for c in calls if since <= c.started_at < until]
    in_hours = traffic.hours_of_slots(
        ((slot, t) for (_, slot), t in slots.items() if since <= slot < until), tz
    )
    assert in_hours is not None
    assert summarise_hours(in_hours, did=DID, period=period, tz=tz) == summarise_report(
        inside, did=DID, period=period, tz=tz
    )


def test_a_slot_straddling_two_local_hours_is_refused() -> None:
    # 10:30-10:45 UTC was 09:45:30-10:00:30 in Monrovia; 10:00-10:15 fits in its 09h.
    monrovia = ZoneInfo("Africa/Monrovia")
    slot = datetime(1970, 3, 2, 10, 30, tzinfo=UTC)
    assert traffic.hours_of_slots([(slot, Tally(calls=1))], monrovia) is None
    fitting = slot - timedelta(minutes=30)
    assert traffic.hours_of_slots([(fitting, Tally(calls=1))], monrovia) == {
        (date(1970, 3, 2), 9): Tally(calls=1)
    }
    assert traffic.hours_of_slots([(slot, Tally(calls=1))], PARIS) == {
        (date(1970, 3, 2), 11): Tally(calls=1)  # 11:30 in Paris
    }


async def test_migration_0007_counts_the_calls_already_stored(store: CdrStore) -> None:
    for n in range(12):
        start = utc(2 + n, 9, n)
        store.record_call(
            CallRecord(f"c{n}", DID, start, ended_at=start, disposition=Disposition.BUSY)
        )
    await store.flush()
    kept = await _stored_slots(store)

    def down_and_up(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_call_server")  # drops number_traffic
        command.upgrade(cfg, "head")  # creates it and counts the calls

    async with schema_change(store.engine) as conn:
        await conn.run_sync(down_and_up)
    assert await _stored_slots(store) == kept == await _counted_from_calls(store)
    assert len(kept) == 12
