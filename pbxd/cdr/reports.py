"""A number's call log for people: an aligned text table, CSV, or JSON.

Times are shown in the number's time zone (the caller passes it), because "the call at
9:02" means 9:02 where the business is. JSON also carries `*_utc` fields for machines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pbxd.cdr.records import (
    CallLogEntry,
    CallRecord,
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
    """An aligned plain-text table, one line per call, times in `tz`."""
    rows = [
        (
            local_time(e.call.started_at, tz),
            caller_text(e.call.caller_number, e.call.caller_name),
            e.call.disposition.replace("_", " ") if e.call.disposition else "in progress",
            e.call.answered_by or MISSING,
            format_seconds(e.call.duration),
            format_seconds(e.call.billsec),
            legs_summary(e.legs),
            hangup_cause_text(e.call.hangup_cause),
            path_text(e.call),
            voicemail_text(e.call),
        )
        for e in entries
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(TABLE_COLUMNS)]
    # Numbers read best right-aligned; everything else left-aligned.
    right = {TABLE_COLUMNS.index("duration"), TABLE_COLUMNS.index("billsec")}

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        )
        return "  ".join(padded).rstrip()

    out = [line(TABLE_COLUMNS), "  ".join("-" * w for w in widths)]
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
        "legs": [_leg_json(leg, tz) for leg in entry.legs],
    }


def format_json(entries: Sequence[CallLogEntry], tz: ZoneInfo) -> str:
    """A JSON array, one object per call with its `legs`; local and `*_utc` ISO times."""
    calls = [call_json(e, tz) for e in entries]
    return json.dumps(calls, indent=2, ensure_ascii=False) + "\n"
