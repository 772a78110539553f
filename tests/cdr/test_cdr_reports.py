"""Call-log reports: table, CSV and JSON, with times in the number's (DST-aware) zone."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pbxd.cdr.records import CallLogEntry, CallRecord, Disposition, LegRecord
from pbxd.cdr.reports import (
    format_csv,
    format_json,
    format_seconds,
    format_table,
    hangup_cause_text,
    legs_summary,
)

PARIS = ZoneInfo("Europe/Paris")
DID = "+33199000001"


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def entries() -> list[CallLogEntry]:
    """Newest first, as call_log returns them.

    - "spring": 2024-03-31 00:30 UTC = 01:30 CET; Paris jumps to CEST at 01:00 UTC, so the
      call ends at 03:31:10 CEST (+02:00): same call, two offsets.
    - "winter": a missed call on a January day (CET, +01:00), two legs.
    """
    spring = CallRecord(
        call_id="spring",
        did=DID,
        started_at=utc(2024, 3, 31, 0, 30, 0),
        caller_number="+33612345678",
        caller_name="Alice Caller",
        trunk="trunk-in",
        route="office",
        strategy="ring_all",
        answered_at=utc(2024, 3, 31, 0, 30, 5),
        ended_at=utc(2024, 3, 31, 1, 31, 5),
        disposition=Disposition.ANSWERED,
        answered_by="alice",
        hangup_cause=16,
    )
    spring_legs = [
        LegRecord(
            "spring-alice",
            "spring",
            "alice",
            "PJSIP/alice",
            started_at=utc(2024, 3, 31, 0, 30, 1),
            answered_at=utc(2024, 3, 31, 0, 30, 5),
            ended_at=utc(2024, 3, 31, 1, 31, 5),
            hangup_cause=16,
        )
    ]
    winter = CallRecord(
        call_id="winter",
        did=DID,
        started_at=utc(2024, 1, 15, 8, 0, 0),
        caller_number="+33700000000",
        ended_at=utc(2024, 1, 15, 8, 0, 42),
        disposition=Disposition.NO_ANSWER,
        hangup_cause=19,
    )
    winter_legs = [
        LegRecord(
            "w-bob",
            "winter",
            "bob",
            "PJSIP/bob",
            started_at=utc(2024, 1, 15, 8, 0, 1),
            ended_at=utc(2024, 1, 15, 8, 0, 41),
            hangup_cause=19,
        ),
        LegRecord(
            "w-mobile",
            "winter",
            "mobile",
            "PJSIP/+33612000000@trunk-out",
            started_at=utc(2024, 1, 15, 8, 0, 2),
            ended_at=utc(2024, 1, 15, 8, 0, 41),
        ),
    ]
    return [CallLogEntry(spring, spring_legs), CallLogEntry(winter, winter_legs)]


def test_table_shows_local_times_with_zone_abbreviation(entries: list[CallLogEntry]) -> None:
    table = format_table(entries, PARIS)
    lines = table.splitlines()
    assert lines[0].split() == [
        "start",
        "caller",
        "disposition",
        "answered",
        "by",
        "duration",
        "billsec",
        "legs",
        "hangup",
        "cause",
        "path",
        "voicemail",
    ]
    assert set(lines[1]) <= {"-", " "}
    spring, winter = lines[2], lines[3]
    assert spring.startswith("2024-03-31 01:30:00 CET  Alice Caller <+33612345678>  answered")
    assert "1:01:05  1:01:00" in spring  # duration, billsec
    assert "1: alice answered" in spring and "16 (normal clearing)" in spring
    assert winter.startswith("2024-01-15 09:00:00 CET  +33700000000")
    assert "  no answer  " in winter and "0:42" in winter and "0:00" in winter
    assert "2: bob no answer, mobile unreachable" in winter
    assert "19 (no answer)" in winter
    # Columns are aligned: every row is as wide as the separator line or narrower.
    assert all(len(line) <= len(lines[1]) for line in lines)


def test_table_of_an_open_call_and_of_nothing() -> None:
    open_call = CallRecord("now", DID, started_at=utc(2024, 7, 1, 10, 0, 0))
    table = format_table([CallLogEntry(open_call)], PARIS)
    row = table.splitlines()[2]
    assert row.startswith("2024-07-01 12:00:00 CEST  anonymous  in progress")
    assert format_table([], PARIS).splitlines()[-1] == "(no calls)"


def test_csv_has_one_row_per_call_with_offsets_of_the_zone(entries: list[CallLogEntry]) -> None:
    rows = list(csv.DictReader(io.StringIO(format_csv(entries, PARIS))))
    assert [r["call_id"] for r in rows] == ["spring", "winter"]
    spring, winter = rows
    assert spring["started_at"] == "2024-03-31T01:30:00+01:00"
    assert spring["answered_at"] == "2024-03-31T01:30:05+01:00"
    assert spring["ended_at"] == "2024-03-31T03:31:05+02:00"  # after the DST jump
    assert (spring["duration"], spring["billsec"]) == ("3665", "3660")
    assert spring["disposition"] == "answered" and spring["answered_by"] == "alice"
    assert spring["legs"] == "1"
    assert winter["started_at"] == "2024-01-15T09:00:00+01:00"
    assert winter["answered_at"] == "" and winter["answered_by"] == ""
    assert (winter["duration"], winter["billsec"]) == ("42", "0")
    assert winter["legs"] == "2"
    assert datetime.fromisoformat(spring["ended_at"]) == utc(2024, 3, 31, 1, 31, 5)


def test_json_has_local_and_utc_times_and_the_legs(entries: list[CallLogEntry]) -> None:
    calls = json.loads(format_json(entries, PARIS))
    assert [c["call_id"] for c in calls] == ["spring", "winter"]
    spring = calls[0]
    assert spring["time_zone"] == "Europe/Paris"
    assert spring["started_at"] == "2024-03-31T01:30:00+01:00"
    assert spring["started_at_utc"] == "2024-03-31T00:30:00+00:00"
    assert spring["ended_at"] == "2024-03-31T03:31:05+02:00"
    assert spring["ended_at_utc"] == "2024-03-31T01:31:05+00:00"
    assert spring["disposition"] == "answered"
    assert (spring["duration"], spring["billsec"]) == (3665, 3660)
    [leg] = spring["legs"]
    assert leg["leg_id"] == "spring-alice" and leg["outcome"] == "answered"
    assert leg["answered_at"] == "2024-03-31T01:30:05+01:00"
    assert leg["ended_at"] == "2024-03-31T03:31:05+02:00"
    winter = calls[1]
    assert winter["answered_at"] is None and winter["answered_at_utc"] is None
    assert [leg["target"] for leg in winter["legs"]] == ["bob", "mobile"]
    assert json.loads(format_json([], PARIS)) == []


def test_autumn_fold_keeps_distinct_offsets() -> None:
    # 2024-10-27: 02:30 happens twice in Paris; the offset tells them apart.
    first = CallRecord("first", DID, started_at=utc(2024, 10, 27, 0, 30, 0))
    second = CallRecord("second", DID, started_at=utc(2024, 10, 27, 1, 30, 0))
    rows = list(
        csv.DictReader(io.StringIO(format_csv([CallLogEntry(second), CallLogEntry(first)], PARIS)))
    )
    assert [r["started_at"] for r in rows] == [
        "2024-10-27T02:30:00+01:00",
        "2024-10-27T02:30:00+02:00",
    ]
    table = format_table([CallLogEntry(second), CallLogEntry(first)], PARIS)
    assert "2024-10-27 02:30:00 CET" in table and "2024-10-27 02:30:00 CEST" in table


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0, "0:00"), (42, "0:42"), (725, "12:05"), (3723, "1:02:03")]
)
def test_format_seconds(seconds: int | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_small_helpers() -> None:
    assert hangup_cause_text(None) == "-"
    assert hangup_cause_text(17) == "17 (user busy)"
    assert hangup_cause_text(99) == "99"
    assert legs_summary([]) == "0"


def test_leg_outcomes_follow_their_hangup_causes() -> None:
    from datetime import UTC, datetime

    from pbxd.cdr.records import LegRecord
    from pbxd.cdr.reports import legs_summary

    t = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def leg(target: str, cause: int | None, answered: bool = False) -> LegRecord:
        return LegRecord(
            f"c-{target}",
            "c",
            target,
            f"PJSIP/{target}",
            t,
            answered_at=t if answered else None,
            ended_at=t,
            hangup_cause=cause,
        )

    summary = legs_summary(
        [leg("a", 17), leg("b", 26), leg("c", 19), leg("d", None), leg("e", 16, True), leg("f", 99)]
    )
    assert summary == (
        "6: a busy, b answered elsewhere, c no answer, d unreachable, e answered, f failed (99)"
    )


def _voicemail_entry() -> CallLogEntry:
    """After hours: closed, then a 42 s message."""
    from pbxd.cdr.records import PathStep, StepKind, StepOutcome, VoicemailLeft

    call = CallRecord(
        "vm",
        DID,
        started_at=utc(2024, 12, 24, 19, 0, 0),  # 20:00 in Paris
        caller_number="+33612345678",
        ended_at=utc(2024, 12, 24, 19, 1, 0),
        disposition=Disposition.VOICEMAIL,
        hangup_cause=16,
        path=(
            PathStep(StepKind.SCHEDULE, StepOutcome.CLOSED),
            PathStep(StepKind.VOICEMAIL, StepOutcome.LEFT),
        ),
        voicemail=VoicemailLeft("20241224T190000Z-vm", 42),
    )
    return CallLogEntry(call)


def test_table_shows_the_path_and_the_voicemail(entries: list[CallLogEntry]) -> None:
    import re

    lines = format_table([_voicemail_entry(), *entries], PARIS).splitlines()
    vm, spring = (re.split(r"\s{2,}", line.strip()) for line in lines[2:4])
    assert vm[:3] == ["2024-12-24 20:00:00 CET", "+33612345678", "voicemail"]
    assert vm[-2:] == ["closed → voicemail", "0:42 (20241224T190000Z-vm)"]
    assert spring[-3:] == ["16 (normal clearing)", "-", "-"]  # an older call: no path known


def test_csv_has_the_path_readable_and_typed_and_the_voicemail(
    entries: list[CallLogEntry],
) -> None:
    rows = list(csv.DictReader(io.StringIO(format_csv([_voicemail_entry(), *entries], PARIS))))
    vm, spring = rows[0], rows[1]
    assert vm["path"] == "closed → voicemail"
    assert vm["path_steps"] == "schedule:closed voicemail:left"
    assert (vm["voicemail_id"], vm["voicemail_seconds"]) == ("20241224T190000Z-vm", "42")
    assert (spring["path"], spring["voicemail_id"], spring["voicemail_seconds"]) == ("", "", "")


def test_json_keeps_one_object_per_call_with_path_legs_and_voicemail(
    entries: list[CallLogEntry],
) -> None:
    calls = json.loads(format_json([_voicemail_entry(), *entries], PARIS))
    assert [c["call_id"] for c in calls] == ["vm", "spring", "winter"]
    vm = calls[0]
    assert vm["disposition"] == "voicemail"
    assert vm["path"] == [
        {"step": "schedule", "outcome": "closed"},
        {"step": "voicemail", "outcome": "left"},
    ]
    assert vm["path_text"] == "closed → voicemail"
    assert vm["voicemail"] == {"message_id": "20241224T190000Z-vm", "duration": 42}
    assert vm["legs"] == []
    assert calls[1]["voicemail"] is None and calls[1]["path"] == []
    assert len(calls[2]["legs"]) == 2


def test_a_log_merging_two_servers_shows_each_calls_server(
    entries: list[CallLogEntry],
) -> None:
    entries[0].call.server = "ast-paris"
    entries[1].call.server = "ast-lyon"
    table = format_table(entries, PARIS).splitlines()
    assert table[0].split()[-1] == "server"
    assert table[2].endswith("ast-paris") and table[3].endswith("ast-lyon")
    rows = list(csv.DictReader(io.StringIO(format_csv(entries, PARIS))))
    assert [r["server"] for r in rows] == ["ast-paris", "ast-lyon"]
    assert list(rows[0])[-1] == "server"  # appended: older spreadsheets keep their columns
    calls = json.loads(format_json(entries, PARIS))
    assert [c["server"] for c in calls] == ["ast-paris", "ast-lyon"]


def test_one_servers_log_has_no_server_column(entries: list[CallLogEntry]) -> None:
    for entry in entries:
        entry.call.server = "ast-paris"
    assert "server" not in format_table(entries, PARIS).splitlines()[0].split()
    rows = list(csv.DictReader(io.StringIO(format_csv(entries, PARIS))))
    assert [r["server"] for r in rows] == ["ast-paris", "ast-paris"]  # exports always carry it
