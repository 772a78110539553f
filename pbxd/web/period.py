"""A number's report over a period, from its call log: what the report page and API show.

Pure: entries in, figures out. Days and hours are the number's own (its time zone), so
"Monday 9:00" means what the business means.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pbxd.cdr.records import CallLogEntry, Disposition

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BUSIEST = 3  # how many busiest hours a report names


@dataclass(frozen=True, slots=True)
class Period:
    """Local days [first, last] in a time zone; `start`/`end` are the UTC bounds."""

    first: date
    last: date
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        """The first instant, UTC."""
        return datetime.combine(self.first, time(), tzinfo=self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The instant after the last day, UTC (exclusive)."""
        after = self.last + timedelta(days=1)
        return datetime.combine(after, time(), tzinfo=self.tz).astimezone(UTC)

    @property
    def label(self) -> str:
        """`2026-11` for a whole month, `2026-11-23` for a day, else `FIRST to LAST`."""
        month_end = calendar.monthrange(self.first.year, self.first.month)[1]
        if self.first.day == 1 and self.last == self.first.replace(day=month_end):
            return f"{self.first:%Y-%m}"
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()} to {self.last.isoformat()}"

    def days(self) -> list[date]:
        """Every local day of the period, in order."""
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


MAX_DAYS = 366


def parse_period(text: str, tz: ZoneInfo) -> Period:
    """`2026-11` (a month), `2026-11-23` (a day) or `2026-11-01..2026-11-15`; ValueError."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}", text):
        year, month = int(text[:4]), int(text[5:])
        if not 1 <= month <= 12 or year < 1:
            raise ValueError(f"{text!r}: no such month")
        month_end = calendar.monthrange(year, month)[1]
        return Period(date(year, month, 1), date(year, month, month_end), tz)
    first_text, sep, last_text = text.partition("..")
    try:
        first = date.fromisoformat(first_text)
        last = date.fromisoformat(last_text) if sep else first
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is not a month (2026-11), a day (2026-11-23) "
            "or days (2026-11-01..2026-11-15)"
        ) from None
    if last < first:
        raise ValueError(f"{text!r}: the period ends before it starts")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"{text!r}: a report covers at most {MAX_DAYS} days")
    return Period(first, last, tz)


def current_month(now: datetime, tz: ZoneInfo) -> Period:
    """The month `now` falls in, where the number is."""
    local = now.astimezone(tz).date()
    return parse_period(f"{local:%Y-%m}", tz)


@dataclass(frozen=True, slots=True)
class DayCount:
    """One local day's answered and missed calls."""

    day: date
    answered: int
    missed: int


@dataclass(frozen=True, slots=True)
class PeriodReport:
    """Calls, answered, missed, waits and talk time of one number over one period."""

    did: str
    period: Period
    calls: int
    answered: int
    missed: int  # every call nobody took (abandoned and voicemail included)
    abandoned: int  # the caller hung up before anyone answered
    voicemail: int  # missed calls where a message was left
    average_wait: float | None  # seconds from arrival to answer, answered calls
    longest_wait: int | None
    talk_seconds: int
    per_day: tuple[DayCount, ...]
    per_hour_of_week: tuple[tuple[int, ...], ...]  # [weekday 0=Mon][hour 0-23]
    busiest_hours: tuple[tuple[int, int, int], ...] = field(default=())  # (weekday, hour, n)

    @property
    def answer_rate(self) -> float | None:
        """Answered calls over ended calls (None without calls)."""
        return self.answered / self.calls if self.calls else None


def period_report(did: str, period: Period, entries: Sequence[CallLogEntry]) -> PeriodReport:
    """The report of the calls in `entries` that started in `period` (others are ignored)."""
    tz = period.tz
    answered = missed = abandoned = voicemail = talk = 0
    waits: list[float] = []
    by_day: dict[date, list[int]] = {day: [0, 0] for day in period.days()}
    grid = [[0] * 24 for _ in WEEKDAYS]
    for entry in entries:
        call = entry.call
        if call.ended_at is None or not period.start <= call.started_at < period.end:
            continue  # still in progress: counted once it ends
        local = call.started_at.astimezone(tz)
        grid[local.weekday()][local.hour] += 1
        counts = by_day.setdefault(local.date(), [0, 0])
        if call.answered_at is not None and call.disposition is Disposition.ANSWERED:
            answered += 1
            counts[0] += 1
            waits.append((call.answered_at - call.started_at).total_seconds())
            talk += call.billsec or 0
        else:
            missed += 1
            counts[1] += 1
            abandoned += call.disposition is Disposition.ABANDONED
            voicemail += call.disposition is Disposition.VOICEMAIL
    hours = Counter({(d, h): n for d, row in enumerate(grid) for h, n in enumerate(row) if n})
    return PeriodReport(
        did=did,
        period=period,
        calls=answered + missed,
        answered=answered,
        missed=missed,
        abandoned=abandoned,
        voicemail=voicemail,
        average_wait=round(sum(waits) / len(waits), 1) if waits else None,
        longest_wait=round(max(waits)) if waits else None,
        talk_seconds=talk,
        per_day=tuple(DayCount(day, a, m) for day, (a, m) in sorted(by_day.items())),
        per_hour_of_week=tuple(tuple(row) for row in grid),
        busiest_hours=tuple((d, h, n) for (d, h), n in hours.most_common(BUSIEST)),
    )


def report_json(report: PeriodReport) -> dict[str, object]:
    """The report as the API returns it."""
    return {
        "number": report.did,
        "period": report.period.label,
        "time_zone": report.period.tz.key,
        "first_day": report.period.first.isoformat(),
        "last_day": report.period.last.isoformat(),
        "calls": report.calls,
        "answered": report.answered,
        "missed": report.missed,
        "abandoned": report.abandoned,
        "voicemail": report.voicemail,
        "answer_rate": None if report.answer_rate is None else round(report.answer_rate, 3),
        "average_wait_seconds": report.average_wait,
        "longest_wait_seconds": report.longest_wait,
        "talk_minutes": round(report.talk_seconds / 60, 1),
        "busiest_hours": [
            {"weekday": WEEKDAYS[d], "hour": h, "calls": n} for d, h, n in report.busiest_hours
        ],
        "per_day": [
            {"day": d.day.isoformat(), "answered": d.answered, "missed": d.missed}
            for d in report.per_day
        ],
        "per_hour_of_week": {
            WEEKDAYS[d]: list(row) for d, row in enumerate(report.per_hour_of_week)
        },
    }
