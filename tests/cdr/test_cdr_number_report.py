"""A number's report over a period: the pure summary, and the query on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pbxd.cdr.queries import calls_today, number_report
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.cdr.reports import (
    PeriodError,
    ReportCall,
    ReportPeriod,
    format_report_csv,
    format_report_json,
    format_report_table,
    summarise_report,
)
from pbxd.cdr.store import CdrStore

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
DID = "+33170000001"
OTHER = "+33170000002"
NOV = ReportPeriod.parse("2026-11")


def utc(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "first", "end"),
    [
        ("2026-11", date(2026, 11, 1), date(2026, 12, 1)),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
        ("2026-02-28", date(2026, 2, 28), date(2026, 3, 1)),
        ("2026", date(2026, 1, 1), date(2027, 1, 1)),
    ],
)
def test_period_parse(text: str, first: date, end: date) -> None:
    period = ReportPeriod.parse(text)
    assert (period.first, period.end, period.label) == (first, end, text)


@pytest.mark.parametrize("text", ["2026-13", "11-2026", "2026-02-30", "", "٢٠٢٦", "2026-1"])
def test_period_parse_refuses_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(PeriodError, match="2026-11"):
        ReportPeriod.parse(text)


def test_period_bounds_are_local_midnights() -> None:
    # Paris is UTC+1 in November: the month starts at 23:00 UTC the day before.
    since, until = NOV.bounds(PARIS)
    assert since == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert until == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert len(NOV.days()) == 30


def test_summary_counts_waits_talk_and_buckets_in_local_time() -> None:
    calls = [
        # Mon 2 Nov 09:00 Paris: answered after 12 s, 3 minutes talk.
        ReportCall(utc(2, 8), Disposition.ANSWERED, utc(2, 8, 0, 12), utc(2, 8, 3, 12)),
        # Mon 2 Nov 09:30 Paris: answered after 30 s, 60 s talk.
        ReportCall(utc(2, 8, 30), Disposition.ANSWERED, utc(2, 8, 30, 30), utc(2, 8, 31, 30)),
        # Mon 2 Nov 09:50: the caller hung up while it rang.
        ReportCall(utc(2, 8, 50), Disposition.ABANDONED, None, utc(2, 8, 50, 20)),
        # Tue 3 Nov 00:30 Paris (23:30 UTC on the 2nd): a message left.
        ReportCall(utc(2, 23, 30), Disposition.VOICEMAIL, None, utc(2, 23, 31)),
        # Sun 29 Nov 14:00 Paris: nobody answered.
        ReportCall(utc(29, 13), Disposition.NO_ANSWER, None, utc(29, 13, 0, 40)),
        # Mon 30 Nov 10:00 Paris: still ringing.
        ReportCall(utc(30, 9), None),
    ]
    rep = summarise_report(calls, did=DID, period=NOV, tz=PARIS, label="Reception")
    assert (rep.calls, rep.answered, rep.missed, rep.in_progress) == (6, 2, 3, 1)
    assert (rep.abandoned, rep.voicemail) == (1, 1)
    assert rep.answer_rate == pytest.approx(2 / 5)
    assert rep.average_wait == pytest.approx(21.0)
    assert rep.longest_wait == 30
    assert rep.talk_seconds == 240 and rep.talk_minutes == 4.0
    assert rep.dispositions == {"abandoned": 1, "answered": 2, "no_answer": 1, "voicemail": 1}
    assert [(h.hour, h.calls) for h in rep.busiest_hours] == [(9, 3), (0, 1), (10, 1)]
    days = {d.day: (d.answered, d.missed) for d in rep.per_day}
    assert len(days) == 30
    assert days[date(2026, 11, 2)] == (2, 1)
    assert days[date(2026, 11, 3)] == (0, 1)  # local date, not the UTC one
    assert days[date(2026, 11, 29)] == (0, 1)
    assert days[date(2026, 11, 30)] == (0, 0)  # an open call is neither
    assert sum(a + m for a, m in days.values()) == 5
    assert rep.by_hour_of_week[0][9] == 3  # Monday 09h
    assert rep.by_hour_of_week[1][0] == 1  # Tuesday 00h
    assert rep.by_hour_of_week[6][14] == 1  # Sunday 14h
    assert rep.by_hour_of_week[0][10] == 1  # Monday 30th, 10h
    assert sum(map(sum, rep.by_hour_of_week)) == 6


def test_summary_of_no_calls_has_no_rates() -> None:
    rep = summarise_report([], did=DID, period=NOV, tz=PARIS)
    assert rep.calls == 0 and rep.answer_rate is None and rep.average_wait is None
    assert rep.longest_wait is None and rep.busiest_hours == ()
    assert _figures(format_report_table(rep))["answer rate"] == "-"


def test_report_formats() -> None:
    calls = [
        ReportCall(utc(2, 8), Disposition.ANSWERED, utc(2, 8, 0, 12), utc(2, 8, 3, 12)),
        ReportCall(utc(3, 8), Disposition.BUSY, None, utc(3, 8, 0, 5)),
    ]
    rep = summarise_report(calls, did=DID, period=NOV, tz=PARIS, label="Reception")
    table = format_report_table(rep)
    assert table.startswith("+33170000001 (Reception): 2026-11, times in Europe/Paris")
    figures = _figures(table)
    assert figures["answer rate"] == "50.0 %" and figures["longest wait"] == "0:12"
    assert figures["busiest hours"] == "09-10h (2)"
    assert "2026-11-03         0       1" in table
    rows = list(csv.DictReader(io.StringIO(format_report_csv(rep))))
    assert len(rows) == 30
    assert rows[1] == {"day": "2026-11-02", "calls": "1", "answered": "1", "missed": "0"}
    data = json.loads(format_report_json(rep))
    assert data["answer_rate"] == 0.5 and data["talk_minutes"] == 3.0
    assert data["period"] == {
        "label": "2026-11",
        "first_day": "2026-11-01",
        "end_day": "2026-12-01",
    }
    assert data["by_hour_of_week"]["Mon"][9] == 1 and data["by_hour_of_week"]["Tue"][9] == 1
    assert data["per_day"][2] == {"day": "2026-11-03", "answered": 0, "missed": 1}


def _figures(table: str) -> dict[str, str]:
    """The headline `name  value` lines of a report table."""
    head = table.split("\n\n")[1]
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in head.splitlines())


async def _write(store: CdrStore, calls: list[CallRecord], legs: list[LegRecord]) -> None:
    for call in calls:
        store.record_call(call)
    for leg in legs:
        store.record_leg(leg)
    await store.flush()
    assert store.dropped == 0


async def test_number_report_reads_the_store(store: CdrStore) -> None:
    # The greeting answered the caller at 08:00:01 (billing starts), alice at 08:00:20.
    greeted = CallRecord(
        "greeted",
        DID,
        utc(2, 8),
        answered_at=utc(2, 8, 0, 1),
        ended_at=utc(2, 8, 5, 20),
        disposition=Disposition.ANSWERED,
        answered_by="alice",
    )
    legs = [
        LegRecord("g-bob", "greeted", "bob", "PJSIP/bob", utc(2, 8, 0, 5), None, utc(2, 8, 0, 20)),
        LegRecord("g-alice", "greeted", "alice", "PJSIP/alice", utc(2, 8, 0, 5), utc(2, 8, 0, 20)),
    ]
    missed = CallRecord(
        "missed", DID, utc(3, 9), ended_at=utc(3, 9, 0, 30), disposition=Disposition.NO_ANSWER
    )
    # The last evening of October in UTC is 1 November in Paris: in the report.
    early = CallRecord(
        "early",
        DID,
        utc(31, 23, 30, month=10),
        ended_at=utc(31, 23, 31, month=10),
        disposition=Disposition.BUSY,
    )
    # 30 November 23:30 UTC is 1 December in Paris: not in it.
    late = CallRecord(
        "late", DID, utc(30, 23, 30), ended_at=utc(30, 23, 31), disposition=Disposition.BUSY
    )
    elsewhere = CallRecord(
        "elsewhere", OTHER, utc(2, 8), ended_at=utc(2, 8, 1), disposition=Disposition.BUSY
    )
    await _write(store, [greeted, missed, early, late, elsewhere], legs)
    rep = await number_report(store.engine, DID, NOV, PARIS, label="Reception")
    assert (rep.calls, rep.answered, rep.missed) == (3, 1, 2)
    assert rep.longest_wait == 20  # from arrival to alice's answer, not the greeting's
    assert rep.talk_seconds == 300  # alice's 5 minutes
    assert {d.day: d.missed for d in rep.per_day if d.missed} == {
        date(2026, 11, 1): 1,
        date(2026, 11, 3): 1,
    }
    assert rep.label == "Reception" and rep.time_zone == "Europe/Paris"


async def test_calls_today_counts_each_number_in_its_own_day(store: CdrStore) -> None:
    now = utc(23, 12)  # noon UTC: 13:00 in Paris, 07:00 in New York
    calls = [
        # 23 Nov 00:30 Paris (22 Nov 23:30 UTC): today in Paris.
        CallRecord("p1", DID, utc(22, 23, 30), ended_at=utc(22, 23, 31), disposition="answered"),
        CallRecord("p2", DID, utc(23, 11), ended_at=utc(23, 11, 1), disposition="no_answer"),
        CallRecord("p3", DID, utc(23, 11, 30)),  # still ringing
        CallRecord("p-old", DID, utc(22, 22), ended_at=utc(22, 22, 1), disposition="busy"),
        # 23 Nov 02:00 New York is 07:00 UTC; 22 Nov 23:00 New York is 23 Nov 04:00 UTC.
        CallRecord("n1", OTHER, utc(23, 7), ended_at=utc(23, 7, 1), disposition="busy"),
        CallRecord("n-old", OTHER, utc(23, 4), ended_at=utc(23, 4, 1), disposition="busy"),
    ]
    await _write(store, [_typed(c) for c in calls], [])
    quiet = "+33170000003"
    tallies = await calls_today(store.engine, {DID: PARIS, OTHER: NEW_YORK, quiet: PARIS}, now)
    assert (tallies[DID].calls, tallies[DID].answered, tallies[DID].missed) == (3, 1, 1)
    assert tallies[DID].day == date(2026, 11, 23)
    assert (tallies[OTHER].calls, tallies[OTHER].missed) == (1, 1)
    assert (tallies[quiet].calls, tallies[quiet].answered) == (0, 0)
    with pytest.raises(ValueError, match="aware"):
        await calls_today(store.engine, {DID: PARIS}, now.replace(tzinfo=None))


def _typed(call: CallRecord) -> CallRecord:
    """The tests above write dispositions as words; records carry the enum."""
    if isinstance(call.disposition, str):
        call.disposition = Disposition(call.disposition)
    return call


def test_a_period_cannot_end_before_it_starts() -> None:
    with pytest.raises(PeriodError):
        ReportPeriod(date(2026, 11, 2), date(2026, 11, 2), "empty")
    assert ReportPeriod.between(date(2026, 11, 1), date(2026, 11, 1) + timedelta(days=7)).label == (
        "2026-11-01..2026-11-08"
    )
