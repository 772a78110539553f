"""A number's call log for people (table, CSV, JSON), and a number's report over a period.

Times are shown in the number's time zone (the caller passes it), because "the call at
9:02" means 9:02 where the business is. JSON also carries `*_utc` fields for machines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pbxd.cdr.records import (
    CallLogEntry,
    CallRecord,
    Direction,
    Disposition,
    LegRecord,
    PathStep,
    format_path,
    path_to_text,
)
from pbxd.config.destinations import BARRED_CAUSE, MAX_DURATION_CAUSE

MISSING = "-"

# Q.850 causes a person can act on; others are shown as bare numbers.
HANGUP_CAUSES: dict[int, str] = {
    0: "unknown",
    1: "unallocated number",
    3: "no route to destination",
    16: "normal clearing",
    17: "user busy",
    18: "no user responding",
    19: "no answer",
    20: "subscriber absent",
    21: "call rejected",
    26: "answered elsewhere",  # Q.850 "non-selected user clearing": another leg took the call
    22: "number changed",
    27: "destination out of order",
    28: "invalid number format",
    31: "normal, unspecified",
    34: "no circuit available",
    38: "network out of order",
    41: "temporary failure",
    42: "switching equipment congestion",
    BARRED_CAUSE: "outgoing calls barred",  # pbxd refused the leg: not a destination it may dial
    MAX_DURATION_CAUSE: "timer expired: max call duration",  # Q.850 "recovery on timer expiry"
    127: "interworking, unspecified",
}

TABLE_COLUMNS = (
    "start",
    "caller",
    "disposition",
    "answered by",
    "duration",
    "billsec",
    "legs",
    "hangup cause",
    "path",
    "voicemail",
)

CSV_COLUMNS = (
    "call_id",
    "did",
    "started_at",
    "answered_at",
    "ended_at",
    "caller_number",
    "caller_name",
    "trunk",
    "route",
    "strategy",
    "disposition",
    "answered_by",
    "duration",
    "billsec",
    "hangup_cause",
    "legs",
    "legs_summary",
    "path",
    "path_steps",
    "voicemail_id",
    "voicemail_seconds",
    "direction",
    "dialled",
    "presented",
    "emergency",
    "server",  # last: spreadsheets built on the older columns keep their places
)


def local_time(value: datetime | None, tz: ZoneInfo) -> str:
    """`2024-03-31 03:30:00 CEST`: the instant in `tz` with its zone abbreviation."""
    if value is None:
        return MISSING
    local = value.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def iso_local(value: datetime | None, tz: ZoneInfo, *, timespec: str = "seconds") -> str | None:
    """ISO 8601 with the offset of `tz` at that instant (DST-aware), or None."""
    return None if value is None else value.astimezone(tz).isoformat(timespec=timespec)


def iso_utc(value: datetime | None, *, timespec: str = "seconds") -> str | None:
    """ISO 8601 in UTC (`+00:00`), or None."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec=timespec)


def format_seconds(seconds: int | None) -> str:
    """`0:42`, `12:05`, `1:02:03`; `-` when unknown (call still open)."""
    if seconds is None:
        return MISSING
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def hangup_cause_text(cause: int | None) -> str:
    """`16 (normal clearing)`, `99`, or `-`."""
    if cause is None:
        return MISSING
    name = HANGUP_CAUSES.get(cause)
    return f"{cause} ({name})" if name else str(cause)


def party_text(call: CallRecord) -> str:
    """Who called: `Alice <+33612345678>`; a call going out: `alice → +33612345678`."""
    if call.direction is Direction.OUTBOUND:
        emergency = " (emergency)" if call.emergency else ""
        return f"{call.caller_number or MISSING} \N{RIGHTWARDS ARROW} {call.dialled}{emergency}"
    return caller_text(call.caller_number, call.caller_name)


def caller_text(number: str | None, name: str | None) -> str:
    """`Alice <+33612345678>`, the number alone, or `anonymous`."""
    if number and name:
        return f"{name} <{number}>"
    return number or name or "anonymous"


# How an unanswered leg ended, by its Q.850 cause (what the support checklist asks for).
_UNANSWERED_LEG = {
    17: "busy",
    18: "no answer",
    19: "no answer",
    21: "rejected",
    26: "answered elsewhere",
    1: "unallocated",
    20: "unreachable",
    27: "unreachable",
    34: "congestion",
    38: "network failure",
    16: "cancelled",
    BARRED_CAUSE: "barred",
}


def leg_outcome(leg: LegRecord) -> str:
    """What happened to one leg, in a word or two."""
    if leg.answered_at is not None and leg.hangup_cause == MAX_DURATION_CAUSE:
        return "answered, cut at max duration"
    if leg.answered_at is not None:
        return "answered"
    if leg.ended_at is None:
        return "ringing"
    if leg.hangup_cause is None:
        return "unreachable"  # no channel could be made (offline endpoint, trunk full)
    return _UNANSWERED_LEG.get(leg.hangup_cause, f"failed ({leg.hangup_cause})")


def legs_summary(legs: Sequence[LegRecord]) -> str:
    """`2: alice answered, bob no answer`; `0` when nobody was dialled."""
    if not legs:
        return "0"
    return f"{len(legs)}: " + ", ".join(f"{leg.target} {leg_outcome(leg)}" for leg in legs)


def path_text(call: CallRecord) -> str:
    """`closed → voicemail`; `-` for a call with no recorded path (written before paths)."""
    return format_path(call.path) or MISSING


def voicemail_text(call: CallRecord) -> str:
    """`0:42 (msg-id)` for a message left, else `-`."""
    if call.voicemail is None:
        return MISSING
    return f"{format_seconds(call.voicemail.duration)} ({call.voicemail.message_id})"


def format_table(entries: Sequence[CallLogEntry], tz: ZoneInfo) -> str:
    """An aligned plain-text table, one line per call, times in `tz`.

    A log merging calls of several Asterisk servers gets a `server` column; one server's
    log (the usual case) does not need it.
    """
    servers = {e.call.server for e in entries}
    columns = (*TABLE_COLUMNS, "server") if len(servers) > 1 else TABLE_COLUMNS
    rows = [
        (
            local_time(e.call.started_at, tz),
            party_text(e.call),
            e.call.disposition.replace("_", " ") if e.call.disposition else "in progress",
            e.call.answered_by or MISSING,
            format_seconds(e.call.duration),
            format_seconds(e.call.billsec),
            legs_summary(e.legs),
            hangup_cause_text(e.call.hangup_cause),
            path_text(e.call),
            voicemail_text(e.call),
            *((e.call.server or MISSING,) if len(columns) > len(TABLE_COLUMNS) else ()),
        )
        for e in entries
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(columns)]
    # Numbers read best right-aligned; everything else left-aligned.
    right = {TABLE_COLUMNS.index("duration"), TABLE_COLUMNS.index("billsec")}

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        )
        return "  ".join(padded).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    if not rows:
        out.append("(no calls)")
    return "\n".join(out) + "\n"


def format_csv(entries: Sequence[CallLogEntry], tz: ZoneInfo) -> str:
    """CSV with a header, one row per call; times ISO 8601 with the offset of `tz`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        c = e.call
        writer.writerow(
            (
                c.call_id,
                c.did,
                iso_local(c.started_at, tz),
                iso_local(c.answered_at, tz) or "",
                iso_local(c.ended_at, tz) or "",
                c.caller_number or "",
                c.caller_name or "",
                c.trunk or "",
                c.route or "",
                c.strategy or "",
                str(c.disposition) if c.disposition else "",
                c.answered_by or "",
                "" if c.duration is None else c.duration,
                "" if c.billsec is None else c.billsec,
                "" if c.hangup_cause is None else c.hangup_cause,
                len(e.legs),
                legs_summary(e.legs) if e.legs else "",
                format_path(c.path),
                path_to_text(c.path) or "",
                "" if c.voicemail is None else c.voicemail.message_id,
                "" if c.voicemail is None else c.voicemail.duration,
                str(c.direction),
                c.dialled or "",
                c.presented or "",
                "yes" if c.emergency else "",
                c.server or "",
            )
        )
    return buffer.getvalue()


def _times(values: dict[str, datetime | None], tz: ZoneInfo) -> dict[str, str | None]:
    """`started_at` (local, with offset) and `started_at_utc` for each named time."""
    out: dict[str, str | None] = {}
    for name, value in values.items():
        out[name] = iso_local(value, tz, timespec="auto")
        out[f"{name}_utc"] = iso_utc(value, timespec="auto")
    return out


def _leg_json(leg: LegRecord, tz: ZoneInfo) -> dict[str, Any]:
    """One leg as a JSON object."""
    times = {"started_at": leg.started_at, "answered_at": leg.answered_at, "ended_at": leg.ended_at}
    return {
        "leg_id": leg.leg_id,
        "target": leg.target,
        "destination": leg.destination,
        **_times(times, tz),
        "outcome": leg_outcome(leg),
        "hangup_cause": leg.hangup_cause,
    }


def _step_json(step: PathStep) -> dict[str, Any]:
    """One path step as a JSON object: `{"step": "ring", "outcome": "no_answer"}`."""
    out: dict[str, Any] = {"step": str(step.kind), "outcome": str(step.outcome)}
    if step.label is not None:
        out["label"] = step.label
    return out


def call_json(entry: CallLogEntry, tz: ZoneInfo) -> dict[str, Any]:
    """One call as a JSON object with its `legs`; local and `*_utc` ISO times."""
    c = entry.call
    times = {"started_at": c.started_at, "answered_at": c.answered_at, "ended_at": c.ended_at}
    return {
        "call_id": c.call_id,
        "did": c.did,
        "time_zone": tz.key,
        **_times(times, tz),
        "caller_number": c.caller_number,
        "caller_name": c.caller_name,
        "trunk": c.trunk,
        "route": c.route,
        "strategy": c.strategy,
        "disposition": None if c.disposition is None else str(c.disposition),
        "answered_by": c.answered_by,
        "duration": c.duration,
        "billsec": c.billsec,
        "hangup_cause": c.hangup_cause,
        "path": [_step_json(step) for step in c.path],
        "path_text": format_path(c.path),
        "voicemail": (
            None
            if c.voicemail is None
            else {"message_id": c.voicemail.message_id, "duration": c.voicemail.duration}
        ),
        "server": c.server,
        "legs": [_leg_json(leg, tz) for leg in entry.legs],
        "direction": str(c.direction),
        # Who called out: the softphone user (endpoint name) or the call-through mobile.
        "user": c.caller_number if c.direction is Direction.OUTBOUND else None,
        "dialled": c.dialled,
        "presented": c.presented,
        "emergency": c.emergency,
    }


def format_json(entries: Sequence[CallLogEntry], tz: ZoneInfo) -> str:
    """A JSON array, one object per call with its `legs`; local and `*_utc` ISO times."""
    calls = [call_json(e, tz) for e in entries]
    return json.dumps(calls, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- a number's report


class PeriodError(ValueError):
    """A report period that does not read as 2026-11, 2026-11-23 or 2026."""


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """Local calendar days [first, end) in the number's zone: a month, a day or a year."""

    first: date
    end: date  # exclusive
    label: str

    def __post_init__(self) -> None:
        """An empty or backwards period is a caller's bug."""
        if self.end <= self.first:
            raise PeriodError(f"period {self.label!r} ends before it starts")

    @classmethod
    def parse(cls, text: str) -> ReportPeriod:
        """`2026-11` (a month), `2026-11-23` (a day) or `2026` (a year); PeriodError otherwise."""
        value = text.strip()
        try:
            if value.isascii() and len(value) == 4 and value.isdigit():
                year = int(value)
                return cls(date(year, 1, 1), date(year + 1, 1, 1), value)
            if value.isascii() and len(value) == 7 and value[4] == "-":
                first = date(int(value[:4]), int(value[5:]), 1)
                return cls(first, _next_month(first), value)
            if value.isascii() and len(value) == 10:
                day = date.fromisoformat(value)
                return cls(day, day + timedelta(days=1), value)
        except (ValueError, OverflowError):
            pass
        raise PeriodError(
            f"period {text!r} is not a month (2026-11), a day (2026-11-23) or a year (2026)"
        )

    @classmethod
    def between(cls, first: date, end: date) -> ReportPeriod:
        """Days [first, end): `2026-11-01..2026-11-15`."""
        return cls(first, end, f"{first.isoformat()}..{end.isoformat()}")

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[since, until) in UTC: local midnight of the first day to local midnight of `end`."""
        since = datetime.combine(self.first, time(), tzinfo=tz).astimezone(UTC)
        until = datetime.combine(self.end, time(), tzinfo=tz).astimezone(UTC)
        return since, until

    def days(self) -> list[date]:
        """Every local day of the period, in order."""
        count = (self.end - self.first).days
        return [self.first + timedelta(days=n) for n in range(count)]


def _next_month(first: date) -> date:
    return date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)


@dataclass(frozen=True, slots=True)
class ReportCall:
    """What a report needs of one call (the query reads only these columns).

    `answered_at` is when a person answered (the answering leg's moment when known): a
    greeting answered by pbxd is not a person picking up.
    """

    started_at: datetime
    disposition: Disposition | None
    answered_at: datetime | None = None
    ended_at: datetime | None = None


# Dispositions that are a missed call: somebody called and nobody took it.
MISSED_DISPOSITIONS: frozenset[Disposition] = frozenset(Disposition) - {Disposition.ANSWERED}


@dataclass(frozen=True, slots=True)
class DayCount:
    """One local day of the period: answered and missed calls (open calls in neither)."""

    day: date
    answered: int
    missed: int

    @property
    def calls(self) -> int:
        """Answered plus missed."""
        return self.answered + self.missed


@dataclass(frozen=True, slots=True)
class HourCount:
    """Calls that started in one local hour of the day (0-23), over the whole period."""

    hour: int
    calls: int


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class NumberReport:
    """A number's calls over a period, in its time zone: what `pbxd report` and the API show.

    `missed` counts every ended call nobody answered (abandoned, voicemail, closed, no
    answer, busy, failed, rejected); `abandoned` is the part where the caller hung up while
    waiting. `answer_rate` is answered / (answered + missed), None without ended calls.
    `by_hour_of_week[weekday][hour]` counts calls, Monday = 0.
    """

    did: str
    label: str
    time_zone: str
    period: ReportPeriod
    calls: int
    answered: int
    missed: int
    abandoned: int
    voicemail: int
    in_progress: int
    answer_rate: float | None
    average_wait: float | None  # seconds before a person answered, over answered calls
    longest_wait: int | None
    talk_seconds: int
    dispositions: dict[str, int]
    busiest_hours: tuple[HourCount, ...]
    per_day: tuple[DayCount, ...]
    by_hour_of_week: tuple[tuple[int, ...], ...]

    @property
    def talk_minutes(self) -> float:
        """Talk time in minutes (one decimal is what people read)."""
        return round(self.talk_seconds / 60, 1)


BUSIEST_HOURS = 3


def summarise_report(
    calls: Iterable[ReportCall],
    *,
    did: str,
    period: ReportPeriod,
    tz: ZoneInfo,
    label: str = "",
) -> NumberReport:
    """The report of `calls` (those started in `period`, local days in `tz`): pure, no I/O."""
    days = {day: [0, 0] for day in period.days()}
    week = [[0] * 24 for _ in WEEKDAYS]
    hours = [0] * 24
    dispositions: dict[str, int] = {}
    total = answered = missed = abandoned = voicemail = in_progress = 0
    waits: list[int] = []
    talk = 0
    for call in calls:
        total += 1
        local = call.started_at.astimezone(tz)
        week[local.weekday()][local.hour] += 1
        hours[local.hour] += 1
        counts = days.get(local.date())
        if call.disposition is None:
            in_progress += 1
            continue
        dispositions[call.disposition.value] = dispositions.get(call.disposition.value, 0) + 1
        if call.disposition is Disposition.ANSWERED:
            answered += 1
            if counts is not None:
                counts[0] += 1
            if call.answered_at is not None:
                waits.append(_whole_seconds(call.started_at, call.answered_at))
                if call.ended_at is not None:
                    talk += _whole_seconds(call.answered_at, call.ended_at)
            continue
        missed += 1
        abandoned += call.disposition is Disposition.ABANDONED
        voicemail += call.disposition is Disposition.VOICEMAIL
        if counts is not None:
            counts[1] += 1
    ranked = sorted((h for h in range(24) if hours[h]), key=lambda h: (-hours[h], h))
    ended = answered + missed
    return NumberReport(
        did=did,
        label=label,
        time_zone=tz.key,
        period=period,
        calls=total,
        answered=answered,
        missed=missed,
        abandoned=abandoned,
        voicemail=voicemail,
        in_progress=in_progress,
        answer_rate=answered / ended if ended else None,
        average_wait=sum(waits) / len(waits) if waits else None,
        longest_wait=max(waits) if waits else None,
        talk_seconds=talk,
        dispositions=dict(sorted(dispositions.items())),
        busiest_hours=tuple(HourCount(h, hours[h]) for h in ranked[:BUSIEST_HOURS]),
        per_day=tuple(DayCount(day, a, m) for day, (a, m) in days.items()),
        by_hour_of_week=tuple(tuple(row) for row in week),
    )


def _whole_seconds(start: datetime, end: datetime) -> int:
    """Whole seconds between two instants, half up, never negative (as billsec counts)."""
    millis = (end - start) // timedelta(milliseconds=1)
    return max(0, (millis + 500) // 1000)


def _percent(rate: float | None) -> str:
    return MISSING if rate is None else f"{rate * 100:.1f} %"


def report_summary_rows(rep: NumberReport) -> list[tuple[str, str]]:
    """The headline figures as (name, value) pairs, in the order people read them."""
    busiest = ", ".join(f"{h.hour:02d}-{h.hour + 1:02d}h ({h.calls})" for h in rep.busiest_hours)
    average = None if rep.average_wait is None else round(rep.average_wait)
    return [
        ("calls", str(rep.calls)),
        ("answered", str(rep.answered)),
        ("missed", str(rep.missed)),
        ("  abandoned", str(rep.abandoned)),
        ("  voicemail", str(rep.voicemail)),
        ("in progress", str(rep.in_progress)),
        ("answer rate", _percent(rep.answer_rate)),
        ("average wait", format_seconds(average)),
        ("longest wait", format_seconds(rep.longest_wait)),
        ("talk minutes", f"{rep.talk_minutes:.1f}"),
        ("busiest hours", busiest or MISSING),
    ]


def format_report_table(rep: NumberReport) -> str:
    """The report for a terminal: headline figures, calls per day, calls per hour of week."""
    label = f" ({rep.label})" if rep.label else ""
    out = [f"{rep.did}{label}: {rep.period.label}, times in {rep.time_zone}", ""]
    width = max(len(name) for name, _ in report_summary_rows(rep))
    out += [f"{name.ljust(width)}  {value}" for name, value in report_summary_rows(rep)]
    out += ["", "day         answered  missed"]
    out += [f"{d.day.isoformat()}  {d.answered:8d}  {d.missed:6d}" for d in rep.per_day]
    out += ["", "hour  " + " ".join(day.rjust(4) for day in WEEKDAYS)]
    for hour in range(24):
        cells = " ".join(str(rep.by_hour_of_week[w][hour]).rjust(4) for w in range(7))
        out.append(f"{hour:02d}    {cells}")
    return "\n".join(out) + "\n"


REPORT_CSV_COLUMNS = ("day", "calls", "answered", "missed")


def format_report_csv(rep: NumberReport) -> str:
    """CSV of calls per local day (the chart's data); the totals are the JSON's job."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_CSV_COLUMNS)
    for d in rep.per_day:
        writer.writerow((d.day.isoformat(), d.calls, d.answered, d.missed))
    return buffer.getvalue()


def report_to_json(rep: NumberReport) -> dict[str, Any]:
    """The report as plain JSON data (the API returns this object as is)."""
    return {
        "did": rep.did,
        "label": rep.label,
        "time_zone": rep.time_zone,
        "period": {
            "label": rep.period.label,
            "first_day": rep.period.first.isoformat(),
            "end_day": rep.period.end.isoformat(),
        },
        "calls": rep.calls,
        "answered": rep.answered,
        "missed": rep.missed,
        "abandoned": rep.abandoned,
        "voicemail": rep.voicemail,
        "in_progress": rep.in_progress,
        "answer_rate": rep.answer_rate,
        "average_wait_seconds": rep.average_wait,
        "longest_wait_seconds": rep.longest_wait,
        "talk_seconds": rep.talk_seconds,
        "talk_minutes": rep.talk_minutes,
        "dispositions": rep.dispositions,
        "busiest_hours": [{"hour": h.hour, "calls": h.calls} for h in rep.busiest_hours],
        "per_day": [
            {"day": d.day.isoformat(), "answered": d.answered, "missed": d.missed}
            for d in rep.per_day
        ],
        "by_hour_of_week": {
            WEEKDAYS[w]: list(rep.by_hour_of_week[w]) for w in range(len(WEEKDAYS))
        },
    }


def format_report_json(rep: NumberReport) -> str:
    """`report_to_json` as indented text."""
    return json.dumps(report_to_json(rep), indent=2, ensure_ascii=False) + "\n"
