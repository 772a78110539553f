"""The spool file on its own: lines round-trip, a torn tail is dropped, one owner at a time."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pbxd.cdr.records import (
    CallRecord,
    Disposition,
    LegRecord,
    PathStep,
    StepKind,
    StepOutcome,
    VoicemailLeft,
)
from pbxd.cdr.spool import CdrSpool, SpoolBusyError, decode_line, encode_line

PARIS = timezone(timedelta(hours=2))


def call(n: int) -> CallRecord:
    return CallRecord(
        call_id=f"c{n}",
        did="+33199000001",
        started_at=datetime(2024, 6, 1, 12, n, tzinfo=UTC),
        caller_name='Zoë\n"quoted" \u2028',
        answered_at=datetime(2024, 6, 1, 14, n, 5, 123456, tzinfo=PARIS),
        ended_at=datetime(2024, 6, 1, 12, n, 50, tzinfo=UTC),
        disposition=Disposition.VOICEMAIL,
        hangup_cause=16,
        path=(
            PathStep(StepKind.RING, StepOutcome.NO_ANSWER),
            PathStep(StepKind.VOICEMAIL, StepOutcome.LEFT),
        ),
        voicemail=VoicemailLeft("msg-1", 12),
    )


def test_a_line_round_trips_times_enums_and_odd_text() -> None:
    line = encode_line(7, call(1))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    entry = decode_line(line)
    assert entry.seq == 7 and entry.record == call(1)
    assert isinstance(entry.record, CallRecord)
    assert entry.record.disposition is Disposition.VOICEMAIL
    assert entry.record.path[1].outcome is StepOutcome.LEFT
    leg = LegRecord("l1", "c1", "alice", "PJSIP/alice", datetime(2024, 6, 1, tzinfo=UTC))
    assert decode_line(encode_line(8, leg)).record == leg


@pytest.mark.parametrize(
    "raw",
    [
        b"not json\n",
        b'{"seq": 1, "kind": "fax", "row": {}}\n',
        b'{"seq": 1, "kind": "call", "record": {"call_id": "x"}}\n',  # no row
        b'{"seq": 1, "kind": "call", "row": {"call_id": "x", "did": "+1",'
        b' "started_at": "2024-06-01T12:00:00"}}\n',  # a naive time
        b'{"seq": 1, "kind": "call", "row": {"call_id": "x", "did": "+1",'
        b' "started_at": "2024-06-01T12:00:00+00:00", "disposition": "teleported"}}\n',
    ],
)
def test_an_unreadable_line_says_why(raw: bytes) -> None:
    entry = decode_line(raw)
    assert entry.record is None and entry.problem
    assert entry.raw == raw.decode().rstrip("\n")


def test_fields_unknown_to_this_version_are_ignored() -> None:
    raw = encode_line(1, call(1)).replace(b'"call_id"', b'"from_the_future":1,"call_id"')
    assert decode_line(raw).record == call(1)


def test_append_peek_advance_and_emptying(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "spool.jsonl"
    spool = CdrSpool(path)
    assert spool.append([(1, call(1)), (2, call(2)), (3, call(3))]) == 3
    entries, offset = spool.peek(2)
    assert [e.seq for e in entries] == [1, 2]
    spool.advance(offset, 2)
    assert spool.pending == 1 and path.stat().st_size > 0
    spool.append([(4, call(4))])  # appended while the front is being written
    entries, offset = spool.peek(10)
    assert [e.seq for e in entries] == [3, 4]
    spool.advance(offset, 2)
    assert spool.pending == 0 and path.stat().st_size == 0
    spool.close()


def test_a_restart_finds_the_lines_and_drops_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = CdrSpool(path)
    spool.append([(5, call(5)), (6, call(6))])
    spool.close()
    with path.open("ab") as f:
        f.write(encode_line(7, call(7))[:-9])  # pbxd died inside a write
    again = CdrSpool(path)
    assert (again.pending, again.first_seq, again.last_seq) == (2, 5, 6)
    assert path.read_bytes().endswith(b"\n")
    entries, _ = again.peek(10)
    assert [e.record for e in entries] == [call(5), call(6)]
    again.close()


def test_one_spool_one_owner(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    owner = CdrSpool(path)
    with pytest.raises(SpoolBusyError, match="in use by another pbxd"):
        CdrSpool(path)
    owner.close()
    CdrSpool(path).close()  # free again


def test_a_failed_append_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spool.jsonl"
    spool = CdrSpool(path)
    spool.append([(1, call(1))])
    before = path.read_bytes()

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        spool.append([(2, call(2)), (3, call(3))])
    monkeypatch.undo()
    assert path.read_bytes() == before and spool.pending == 1
    spool.close()
