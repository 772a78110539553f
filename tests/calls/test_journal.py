"""The journal: typed call events -> the CDR (call-logd style), and where a call stood.

Pure: no simulator, no database. Each case is a call's events as a table and the record
(or position) they must make.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pbxd.calls.journal import (
    Bridged,
    CallArrived,
    CallEnd,
    CallEnded,
    CallerAnswered,
    CallerGone,
    CallRejected,
    Journal,
    JournalEvent,
    LegAnswered,
    LegCause,
    LegCreated,
    LegEnd,
    LegEnded,
    LegRinging,
    StepEntered,
    StepLeft,
    event_from_data,
    replay,
)
from pbxd.cdr.records import CallEventRecord, CallRecord, Disposition, LegRecord, format_path
from pbxd.dialplan.flow import StepKind, StepOutcome

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CALL = "1796000000.1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Sink:
    """Keeps what the journal writes, like the CDR store's queue."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.legs: list[LegRecord] = []
        self.events: list[CallEventRecord] = []

    def record_call(self, record: CallRecord) -> None:
        self.calls.append(record.snapshot())

    def record_leg(self, record: LegRecord) -> None:
        self.legs.append(record.snapshot())

    def record_event(self, record: CallEventRecord) -> None:
        self.events.append(record)


def journal_of(*events: JournalEvent) -> tuple[Journal, Sink]:
    sink = Sink()
    journal = Journal(CallRecord(call_id=CALL, did="+33170000001", started_at=T0), sink)
    for event in events:
        journal.add(event)
    return journal, sink


ARRIVED = CallArrived(at(0), "+33170000001", "+33612000001", "Jean", "carrier-fr", "ringall")
RING = StepEntered(at(0), "ring", StepKind.RING, "ringall", 1)


def leg(n: int, target: str, seconds: float) -> LegCreated:
    return LegCreated(at(seconds), f"{CALL}-{n}", target, f"PJSIP/{target}", "ring")


ANSWERED_CALL = (
    ARRIVED,
    RING,
    leg(1, "alice", 0.1),
    leg(2, "bob", 0.1),
    LegRinging(at(0.5), f"{CALL}-1"),
    LegAnswered(at(2), f"{CALL}-2"),
    LegEnded(at(2.1), f"{CALL}-1", LegEnd.HUNG_UP, 26),
    CallerAnswered(at(2.05), "bob"),
    Bridged(at(2.1), f"{CALL}-bridge", f"{CALL}-2"),
    StepLeft(at(2.1), "ring", StepOutcome.ANSWERED),
    CallerGone(at(10), None),
    LegEnded(at(10.1), f"{CALL}-2", LegEnd.HUNG_UP, 16),
    CallerGone(at(10.1), 16),
    CallEnded(at(10.2), 16),
)

NOBODY_ANSWERS = (
    ARRIVED,
    RING,
    leg(1, "alice", 0.1),
    LegEnded(at(20), f"{CALL}-1", LegEnd.HUNG_UP, 19),
    StepLeft(at(20), "ring", StepOutcome.NO_ANSWER),
    StepEntered(at(20), "no_answer", StepKind.HANGUP),
    StepLeft(at(20), "no_answer", StepOutcome.HUNG_UP),
    CallerGone(at(20.1), 19),
    CallEnded(at(20.2), 19),
)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (ANSWERED_CALL, (Disposition.ANSWERED, "bob", 2.05, 10, 16, 8)),
        (NOBODY_ANSWERS, (Disposition.NO_ANSWER, None, None, 20.1, 19, 0)),
        # The caller leaves while it rings: abandoned, even though a leg ends after.
        (
            (ARRIVED, RING, leg(1, "alice", 0.1), CallerGone(at(3), 127), CallEnded(at(3.2))),
            (Disposition.ABANDONED, None, None, 3, 127, 0),
        ),
        # Busy and unavailable outcomes give their dispositions.
        (
            (ARRIVED, RING, StepLeft(at(1), "ring", StepOutcome.BUSY), CallEnded(at(1.1), 17)),
            (Disposition.BUSY, None, None, 1.1, 17, 0),
        ),
        (
            (ARRIVED, RING, StepLeft(at(1), "ring", StepOutcome.UNAVAILABLE), CallEnded(at(1))),
            (Disposition.FAILED, None, None, 1, None, 0),
        ),
        (
            (ARRIVED, CallRejected(at(0), "unknown_number", "unallocated"), CallEnded(at(0.5), 1)),
            (Disposition.REJECTED, None, None, 0.5, 1, 0),
        ),
    ],
)
def test_the_cdr_is_built_from_the_events(
    events: tuple[JournalEvent, ...], expected: tuple[Any, ...]
) -> None:
    journal, sink = journal_of(*events)
    call = journal.record
    disposition, answered_by, answered, ended, cause, billsec = expected
    assert call.disposition is disposition
    assert call.answered_by == answered_by
    assert call.answered_at == (None if answered is None else at(answered))
    assert call.ended_at == at(ended)
    assert call.hangup_cause == cause
    assert call.billsec == billsec
    strategy = "ringall" if RING in events else None  # a rejected call rang nobody
    assert (call.route, call.strategy, call.trunk) == ("ringall", strategy, "carrier-fr")
    # Every event is kept, numbered in order; the last call snapshot is the record.
    assert [e.seq for e in sink.events] == list(range(1, len(events) + 1))
    assert sink.calls[-1] == call


def test_leg_records_follow_their_events() -> None:
    journal, sink = journal_of(*ANSWERED_CALL)
    legs = journal.legs
    assert legs[f"{CALL}-1"].answered_at is None
    assert (legs[f"{CALL}-1"].ended_at, legs[f"{CALL}-1"].hangup_cause) == (at(2.1), 26)
    assert (legs[f"{CALL}-2"].answered_at, legs[f"{CALL}-2"].hangup_cause) == (at(2), 16)
    assert legs[f"{CALL}-2"].started_at == at(0.1)
    # A cause that comes after the leg was closed updates it.
    journal.add(LegCause(at(11), f"{CALL}-1", 31))
    assert journal.legs[f"{CALL}-1"].hangup_cause == 31
    assert sink.legs[-1].hangup_cause == 31
    assert journal.path == ["ring"]
    assert format_path(journal.record.path) == "ring \N{RIGHTWARDS ARROW} answered"


def test_the_call_path_says_which_way_the_flow_went() -> None:
    journal, _ = journal_of(*NOBODY_ANSWERS)
    assert journal.path == ["ring", "no_answer"]
    assert [step.token() for step in journal.record.path] == ["ring:no_answer", "hangup:hung_up"]


@pytest.mark.parametrize("event", [*ANSWERED_CALL, *NOBODY_ANSWERS])
def test_every_event_survives_the_database(event: JournalEvent) -> None:
    # What the store keeps (kind, time, JSON-ready fields) gives the same event back.
    import json

    data = json.loads(json.dumps(event.data()))
    assert event_from_data(event.kind, event.at, data) == event


def test_an_unknown_or_broken_stored_event_is_skipped() -> None:
    assert event_from_data("menu_key_pressed", T0, {"key": "1"}) is None
    assert event_from_data("leg_ended", T0, {"leg": "x", "why": "no-such-reason"}) is None
    assert event_from_data("call_ended", T0, {"why": str(CallEnd.ASTERISK_LOST)}) == CallEnded(
        T0, None, CallEnd.ASTERISK_LOST
    )


def test_replay_says_where_a_ringing_hunt_stood() -> None:
    position = replay(
        [
            ARRIVED,
            StepEntered(at(0), "ring", StepKind.RING, "hunt", 1),
            leg(1, "alice", 0.1),
            LegRinging(at(0.5), f"{CALL}-1"),
            LegEnded(at(2), f"{CALL}-1", LegEnd.HUNG_UP, 17),
            leg(2, "bob", 2),
            LegRinging(at(2.5), f"{CALL}-2"),
        ]
    )
    assert (position.route, position.step, position.strategy) == ("ringall", "ring", "hunt")
    assert position.step_entered == at(0) and position.first_leg == 1
    assert [(p.target, p.rung, p.ended, p.cause) for p in position.legs] == [
        ("alice", True, True, 17),
        ("bob", True, False, None),
    ]
    assert position.legs_made == 2 and not position.ended
    assert position.last_seen == at(2.5)


def test_replay_of_a_call_past_its_ring_step() -> None:
    position = replay(ANSWERED_CALL)
    assert position.step is None  # the ring step was left (answered)
    assert position.answered_by == "bob" and position.bridged_leg == f"{CALL}-2"
    assert position.ended
