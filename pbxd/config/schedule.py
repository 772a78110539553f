"""Opening hours as an admin writes them -> `pbxd.dialplan.hours.OpeningHours`.

    hours:
      acme-office:
        timezone: Europe/Paris            # default: the number's time zone
        weekly:
          mon-fri: [09:00-12:30, 14:00-18:00]
          sat: 10:00-12:00
        holidays: FR                      # or {country: FR, subdivision: "57"}
        closed:
          - 2026-12-28 to 2027-01-02      # a company closure (whole days)
          - 05-01                         # every year
          - {date: 12-24, from: "12:00"}  # every 24 December from noon
          - {from: 2026-07-10 15:00, until: 2026-07-11 10:00}
        open:
          - {date: 2026-12-20, hours: [10:00-16:00]}   # an exceptional opening

Each parse function raises `ScheduleError` with a message for the admin; the compiler
places it at FILE:LINE:COLUMN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pbxd.config.diagnostics import did_you_mean
from pbxd.dialplan.hours import (
    MINUTES_PER_DAY,
    WEEKDAYS,
    Closure,
    DateSpan,
    DayOfYear,
    HolidayCalendar,
    OpeningHours,
    PartDayClosure,
    SpecialDay,
    TimeRange,
    supported_countries,
)

_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$", re.ASCII)
_DAY = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$", re.ASCII)
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})$", re.ASCII)
_DAY_ALIASES = {"daily": "mon-sun", "everyday": "mon-sun", "weekdays": "mon-fri"}
_MAX_RULES = 1000  # a schedule longer than this is a mistake, not a calendar


class ScheduleError(ValueError):
    """A problem in an opening-hours entry; `key` names the part of the entry it is in."""

    def __init__(self, message: str, key: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.key = key


def parse_minute(text: str) -> int:
    """`09:30` -> 570; `24:00` -> 1440."""
    match = _TIME.match(text.strip())
    if not match:
        raise ScheduleError(f"'{text}' is not a time of day (HH:MM, 00:00 to 24:00)")
    minute = int(match[1]) * 60 + int(match[2])
    if minute > MINUTES_PER_DAY:
        raise ScheduleError(f"'{text}' is past 24:00")
    return minute


def parse_ranges(value: Any) -> list[tuple[int, int]]:
    """`09:00-12:30` or a list of them -> (start, end) minutes; end <= start crosses midnight."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ScheduleError("hours must be `HH:MM-HH:MM` or a list of them")
    ranges = []
    for item in items:
        if not isinstance(item, str) or item.count("-") != 1:
            raise ScheduleError(f"'{item}' is not a time range such as 09:00-12:30")
        start_text, end_text = item.split("-")
        start, end = parse_minute(start_text), parse_minute(end_text)
        if start == end:
            raise ScheduleError(f"'{item}' is empty: it starts and ends at the same time")
        if start == MINUTES_PER_DAY:
            raise ScheduleError(f"'{item}' starts at 24:00: write 00:00")
        ranges.append((start, end))
    return ranges


def parse_weekdays(text: str) -> list[int]:
    """`mon-fri`, `sat,sun`, `daily` -> weekday numbers (Monday = 0)."""
    spec = _DAY_ALIASES.get(text.strip().lower(), text.strip().lower())
    days: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ScheduleError(
                f"'{text}' is not a day or range of days (mon, tue, … sun; mon-fri; sat,sun)"
            )
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return days


def parse_day(text: str) -> DayOfYear:
    """`2026-12-24` or `12-24` (every year)."""
    match = _DAY.match(str(text).strip()) if str(text).isascii() else None
    if not match:
        raise ScheduleError(f"'{text}' is not a date (YYYY-MM-DD, or MM-DD for every year)")
    year = int(match[1]) if match[1] else None
    day = DayOfYear(int(match[2]), int(match[3]), year)
    if day.key(year or 2024) is None:  # 2024: a leap year, so 02-29 passes
        raise ScheduleError(f"'{text}' is not a date in the calendar")
    return day


def parse_span(text: str) -> DateSpan:
    """`2026-12-28 to 2027-01-02`, `12-24 to 12-26` or a single date."""
    first_text, sep, last_text = str(text).partition(" to ")
    first = parse_day(first_text)
    last = parse_day(last_text) if sep else first
    if (first.year is None) != (last.year is None):
        raise ScheduleError(f"'{text}': write both dates with a year, or both without")
    if first.year is not None and last.year is not None:
        start, end = first.key(first.year), last.key(last.year)
        assert start is not None and end is not None
        if end < start:
            raise ScheduleError(f"'{text}' ends before it starts")
    return DateSpan(first, last)


def _parse_datetime(text: str) -> datetime:
    match = _DATETIME.match(str(text).strip())
    if not match:
        raise ScheduleError(f"'{text}' is not a local date and time (YYYY-MM-DD HH:MM)")
    day = parse_day(match[1])
    minute = parse_minute(match[2])
    base = day.key(day.year or 2024)
    assert base is not None
    return datetime(base.year, base.month, base.day) + timedelta(minutes=minute)


def _closure(entry: Mapping[str, Any]) -> Closure | PartDayClosure | DateSpan:
    keys = set(entry)
    if keys - {"date", "from", "until"}:
        unknown = sorted(keys - {"date", "from", "until"})[0]
        raise ScheduleError(f"unknown key '{unknown}' (use date, from, until)")
    if "date" in entry:
        span = parse_span(str(entry["date"]))
        start = parse_minute(str(entry.get("from", "00:00")))
        end = parse_minute(str(entry.get("until", "24:00")))
        if end <= start:
            raise ScheduleError("`until` must come after `from`")
        if start == 0 and end == MINUTES_PER_DAY:
            return span
        return PartDayClosure(span, TimeRange(start, end))
    if "from" not in entry or "until" not in entry:
        raise ScheduleError("a closure needs `date`, or both `from` and `until`")
    start_at, end_at = _parse_datetime(entry["from"]), _parse_datetime(entry["until"])
    if end_at <= start_at:
        raise ScheduleError("`until` must come after `from`")
    return Closure(start_at, end_at)


def _holidays(value: Any) -> HolidayCalendar:
    if isinstance(value, str):
        country, subdivision = value.strip().upper(), None
    elif isinstance(value, Mapping) and set(value) <= {"country", "subdivision"}:
        country = str(value.get("country", "")).upper()
        raw_sub = value.get("subdivision")
        subdivision = None if raw_sub is None else str(raw_sub)
    else:
        raise ScheduleError("holidays: a country code (FR) or {country: FR, subdivision: …}")
    known = supported_countries()
    if country not in known:
        hint = did_you_mean(country, known)
        raise ScheduleError(
            f"no public holidays known for country '{country}'{hint}", ("holidays",)
        )
    if subdivision is not None and subdivision not in known[country]:
        listed = ", ".join(known[country][:12])
        raise ScheduleError(
            f"'{subdivision}' is not a subdivision of {country} (known: {listed})", ("holidays",)
        )
    return HolidayCalendar(country, subdivision)


def parse_opening_hours(name: str, data: Any, default_timezone: str) -> OpeningHours:
    """One `hours:` entry -> OpeningHours; raises ScheduleError (with the key it is in)."""
    if not isinstance(data, Mapping):
        raise ScheduleError("opening hours must be a mapping (weekly, holidays, closed, open)")
    allowed = {"timezone", "weekly", "holidays", "closed", "open"}
    for key in data:
        if key not in allowed:
            raise ScheduleError(f"unknown key '{key}' (use {', '.join(sorted(allowed))})", (key,))
    timezone = str(data.get("timezone") or default_timezone)
    weekly: list[list[TimeRange]] = [[] for _ in range(7)]
    raw_weekly = data.get("weekly") or {}
    if not isinstance(raw_weekly, Mapping):
        raise ScheduleError(
            "weekly: a mapping of days to hours (mon-fri: 09:00-18:00)", ("weekly",)
        )
    for days_text, hours in raw_weekly.items():
        try:
            days = parse_weekdays(str(days_text))
            ranges = parse_ranges(hours)
        except ScheduleError as exc:
            raise ScheduleError(str(exc), ("weekly", str(days_text))) from None
        for day in days:
            for start, end in ranges:
                if end > start:
                    weekly[day].append(TimeRange(start, end))
                else:  # crosses midnight: the evening here, the morning on the next day
                    weekly[day].append(TimeRange(start, MINUTES_PER_DAY))
                    if end:
                        weekly[(day + 1) % 7].append(TimeRange(0, end))
    closed_days: list[DateSpan] = []
    closures: list[Closure] = []
    part_days: list[PartDayClosure] = []
    for index, item in enumerate(_listed(data.get("closed"), "closed")):
        try:
            if isinstance(item, Mapping):
                found = _closure(item)
                if isinstance(found, DateSpan):
                    closed_days.append(found)
                elif isinstance(found, PartDayClosure):
                    part_days.append(found)
                else:
                    closures.append(found)
            else:
                closed_days.append(parse_span(str(item)))
        except ScheduleError as exc:
            raise ScheduleError(str(exc), ("closed", index)) from None
    special: list[SpecialDay] = []
    for index, item in enumerate(_listed(data.get("open"), "open")):
        try:
            if not isinstance(item, Mapping) or set(item) != {"date", "hours"}:
                raise ScheduleError("an exceptional opening is {date: …, hours: [HH:MM-HH:MM]}")
            span = parse_span(str(item["date"]))
            ranges = parse_ranges(item["hours"])
            if any(end <= start for start, end in ranges):
                raise ScheduleError("an exceptional opening cannot cross midnight")
            special.append(SpecialDay(span, tuple(TimeRange(s, e) for s, e in ranges)))
        except ScheduleError as exc:
            raise ScheduleError(str(exc), ("open", index)) from None
    calendar = None if data.get("holidays") in (None, "", "none") else _holidays(data["holidays"])
    return OpeningHours(
        name=name,
        timezone=timezone,
        weekly=tuple(tuple(sorted(_merge(day))) for day in weekly),
        holidays=calendar,
        closed_days=tuple(closed_days),
        closures=tuple(closures),
        part_days=tuple(part_days),
        special=tuple(special),
    )


def _listed(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if len(items) > _MAX_RULES:
        raise ScheduleError(f"{key}: more than {_MAX_RULES} entries", (key,))
    return items


def _merge(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Overlapping or touching ranges of one day become one."""
    merged: list[TimeRange] = []
    for r in sorted(ranges):
        if merged and r.start <= merged[-1].end:
            last = merged.pop()
            merged.append(TimeRange(last.start, max(last.end, r.end)))
        else:
            merged.append(r)
    return merged
