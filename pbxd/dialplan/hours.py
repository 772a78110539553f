"""Opening hours of a number, in its own time zone: pure rules, no clock.

`OpeningHours.is_open(at)` answers for an aware instant. Everything is compared in the
number's local wall-clock time (zoneinfo), so a daylight-saving change moves the instants at
which the line opens, never the local hour: 09:00 stays 09:00 on both sides of the change.

A weekly range that crosses midnight (`22:00-06:00`) is split by the compiler into its
evening and the next morning; each part follows the rules of the day it falls on.

Precedence, strongest first: a closure (a date, a date range or a stretch of local time),
then an exceptional opening of a date, then a public holiday, then the weekly hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import holidays

MINUTES_PER_DAY = 24 * 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """Local minutes since midnight, `start` included, `end` excluded; 0 <= start < end <= 1440."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= MINUTES_PER_DAY:
            raise ValueError(f"bad time range {self.start}-{self.end}")

    def contains(self, minute: int) -> bool:
        """Whether local minute-of-day `minute` falls in the range."""
        return self.start <= minute < self.end

    def __str__(self) -> str:
        return f"{format_minute(self.start)}-{format_minute(self.end)}"


@dataclass(frozen=True, slots=True)
class DayOfYear:
    """A date, or a month and day that comes back every year (`12-24`)."""

    month: int
    day: int
    year: int | None = None

    def key(self, year: int) -> date | None:
        """This day in `year` (None for 29 February in a common year)."""
        try:
            return date(self.year or year, self.month, self.day)
        except ValueError:
            return None

    def __str__(self) -> str:
        md = f"{self.month:02d}-{self.day:02d}"
        return f"{self.year:04d}-{md}" if self.year else md


@dataclass(frozen=True, slots=True)
class DateSpan:
    """Whole days from `first` to `last` included; yearly spans may wrap the new year."""

    first: DayOfYear
    last: DayOfYear

    def covers(self, day: date) -> bool:
        """Whether `day` falls in the span."""
        if self.first.year is not None and self.last.year is not None:
            start, end = self.first.key(day.year), self.last.key(day.year)
            return start is not None and end is not None and start <= day <= end
        here = (day.month, day.day)
        lo, hi = (self.first.month, self.first.day), (self.last.month, self.last.day)
        return lo <= here <= hi if lo <= hi else (here >= lo or here <= hi)


@dataclass(frozen=True, slots=True)
class Closure:
    """The line is closed from `start` to `end`, local wall-clock times (naive)."""

    start: datetime
    end: datetime

    def covers(self, local: datetime) -> bool:
        """Whether the naive local time `local` falls in the closure."""
        return self.start <= local < self.end


@dataclass(frozen=True, slots=True)
class PartDayClosure:
    """Closed on these days between two local times (`{date: 12-24, from: "12:00"}`)."""

    days: DateSpan
    ranges: TimeRange

    def covers(self, day: date, minute: int) -> bool:
        """Whether local `day` at `minute` falls in the closure."""
        return self.ranges.contains(minute) and self.days.covers(day)


@dataclass(frozen=True, slots=True)
class SpecialDay:
    """An exceptional opening: on these days the line keeps these hours instead."""

    days: DateSpan
    ranges: tuple[TimeRange, ...]


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Public holidays of a country (and subdivision) from the `holidays` library."""

    country: str
    subdivision: str | None = None

    def is_holiday(self, day: date) -> bool:
        """Whether `day` is a public holiday."""
        return day in _holidays_of(self.country, self.subdivision, day.year)

    def name(self, day: date) -> str | None:
        """The holiday's name, for the call log, or None."""
        found = _holidays_of(self.country, self.subdivision, day.year).get(day)
        return str(found) if found else None


@lru_cache(maxsize=256)
def _holidays_of(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    # A year's table is computed once; a call is a set lookup after that. Imported here: the
    # library's ~6 MB are loaded only by a daemon whose hours name a holiday calendar.
    import holidays

    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def supported_countries() -> dict[str, list[str]]:
    """Countries the holidays library knows, with their subdivisions."""
    import holidays

    return dict(holidays.list_supported_countries())


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """When a number's line is open, in its time zone (`timezone`, an IANA name)."""

    name: str
    timezone: str
    weekly: tuple[tuple[TimeRange, ...], ...]  # 7 entries, Monday first
    holidays: HolidayCalendar | None = None
    closed_days: tuple[DateSpan, ...] = ()
    closures: tuple[Closure, ...] = ()
    part_days: tuple[PartDayClosure, ...] = ()
    special: tuple[SpecialDay, ...] = ()
    # Written without a time zone: each number reads them in its own zone (`in_zone`).
    floats: bool = False
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise ValueError("weekly hours need 7 days")
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def floating(self) -> OpeningHours:
        """The same hours, to be read in the zone of whichever number uses them."""
        return replace(self, floats=True)

    def in_zone(self, timezone: str) -> OpeningHours:
        """These hours for a number in `timezone` (themselves when their zone is fixed)."""
        if not self.floats or timezone == self.timezone:
            return self
        return _rezoned(self, timezone)

    def is_open(self, at: datetime) -> bool:
        """Whether the line is open at the aware instant `at`."""
        return self.why(at) == "open"

    def why(self, at: datetime) -> str:
        """`open`, or why the line is closed at `at` (`closure`, `closed day`, a holiday…)."""
        if at.tzinfo is None:
            raise ValueError("opening hours need an aware datetime")
        local = at.astimezone(self._zone).replace(tzinfo=None)
        day, minute = local.date(), local.hour * 60 + local.minute
        if any(c.covers(local) for c in self.closures) or any(
            p.covers(day, minute) for p in self.part_days
        ):
            return "closure"
        if any(span.covers(day) for span in self.closed_days):
            return "closed day"
        for special in reversed(self.special):
            if special.days.covers(day):
                return "open" if _within(special.ranges, minute) else "closed"
        if self.holidays is not None and self.holidays.is_holiday(day):
            return f"holiday: {self.holidays.name(day)}"
        return "open" if _within(self.weekly[day.weekday()], minute) else "closed"

    def never_open(self) -> bool:
        """True when no weekly hours and no exceptional opening exist: the line never opens."""
        return not any(self.weekly) and not any(s.ranges for s in self.special)

    def always_open(self) -> bool:
        """True when every day is open 24 hours with no closures or holidays."""
        full = (TimeRange(0, MINUTES_PER_DAY),)
        return (
            all(day == full for day in self.weekly)
            and self.holidays is None
            and not self.closed_days
            and not self.closures
            and not self.part_days
            and not self.special
        )


@lru_cache(maxsize=1024)
def _rezoned(hours: OpeningHours, timezone: str) -> OpeningHours:
    # One copy per (hours, zone): numbers of many zones may share one set of hours.
    return replace(hours, timezone=timezone)


def _within(ranges: Iterable[TimeRange], minute: int) -> bool:
    return any(r.contains(minute) for r in ranges)


def format_minute(minute: int) -> str:
    """Minutes since midnight -> `HH:MM` (1440 -> `24:00`)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"
