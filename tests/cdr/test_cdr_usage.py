"""What plans count, read from the CDRs on SQLite and PostgreSQL; reports leave calls going out
aside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pbxd.cdr.queries import last_failed_calls, report_calls
from pbxd.cdr.records import CallRecord, Direction, Disposition, LegRecord
from pbxd.cdr.store import CdrStore
from pbxd.dialplan.limits import UsageKind

DID = "+33170000001"
T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call(call_id: str, **fields: object) -> CallRecord:
    record = CallRecord(call_id, DID, at(0))
    for name, value in fields.items():
        setattr(record, name, value)
    return record


async def test_billables_are_forwarded_legs_and_calls_going_out(store: CdrStore) -> None:
    inbound = call("in", answered_at=at(5), ended_at=at(100), disposition=Disposition.ANSWERED)
    out = call(
        "out",
        direction=Direction.OUTBOUND,
        dialled="+33612345678",
        answered_at=at(3),
        ended_at=at(63),
        disposition=Disposition.ANSWERED,
    )
    talking = call("talking", direction=Direction.OUTBOUND, answered_at=at(10))
    emergency = call(
        "sos", direction=Direction.OUTBOUND, emergency=True, answered_at=at(2), ended_at=at(50)
    )
    other = CallRecord("other", "+33170000002", at(0), answered_at=at(1), ended_at=at(9))
    for record in (inbound, out, talking, emergency, other):
        store.record_call(record)
    legs = [
        # A mobile through the trunk: forwarded. A softphone: costs nothing.
        LegRecord("in-1", "in", "m1", "PJSIP/+33612000001@trunk-out", at(1), at(5), at(100)),
        LegRecord("in-2", "in", "alice", "PJSIP/alice", at(1), None, at(5), 26),
        LegRecord("in-3", "in", "bob", "PJSIP/bob", at(1), at(4), at(100)),
    ]
    for leg in legs:
        store.record_leg(leg)
    await store.flush()

    found = await store.billables_of(DID, at(-3600), at(3600))
    by_key = {item.key: item for item in found}
    assert sorted(by_key) == ["in-1", "out", "talking"]
    assert by_key["in-1"].kind is UsageKind.FORWARDED and by_key["in-1"].seconds(at(500)) == 95
    assert by_key["out"].kind is UsageKind.OUTBOUND and by_key["out"].seconds(at(500)) == 60
    assert by_key["talking"].ended_at is None and by_key["talking"].seconds(at(70)) == 60
    # Answered before the window: not this month's.
    assert await store.billables_of(DID, at(20), at(3600)) == []
    assert await store.calls_in_progress_of(DID, at(100)) == {"talking"}
    # A row a crash left open two days ago is not a call in progress.
    assert await store.calls_in_progress_of(DID, at(3 * 86400)) == set()


async def test_reports_count_the_calls_people_made_to_the_number(store: CdrStore) -> None:
    store.record_call(call("in", ended_at=at(30), disposition=Disposition.NO_ANSWER))
    store.record_call(
        call(
            "out",
            direction=Direction.OUTBOUND,
            dialled="+4930123456",
            ended_at=at(1),
            disposition=Disposition.REJECTED,
        )
    )
    await store.flush()
    async with store.engine.connect() as conn:
        reported = await report_calls(conn, DID, at(-60), at(60))
    assert [c.disposition for c in reported] == [Disposition.NO_ANSWER]
    failed = await last_failed_calls(store.engine, DID)
    assert [entry.call.call_id for entry in failed] == ["in"]
    logged = await store.call_log(DID)
    assert sorted(entry.call.call_id for entry in logged) == ["in", "out"]
    out = next(entry.call for entry in logged if entry.call.call_id == "out")
    assert (out.direction, out.dialled) == (Direction.OUTBOUND, "+4930123456")
