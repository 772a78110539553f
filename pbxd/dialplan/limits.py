"""A number's plan against what it used: pure rules over plain data, no I/O, no clock.

What counts are billable seconds (answer to end, half a second up, as the CDR's billsec) of
forwarded legs (an inbound call's legs through a trunk) and of calls going out (never an
emergency call), in the calendar month of the number's time zone, by the moment each was
answered. A call in progress counts up to `now`. The same item seen twice (a row in the
database, the same call live in this process) counts once: items are keyed by leg or call id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from pbxd.cdr.records import billable_seconds
from pbxd.cdr.reports import ReportPeriod
from pbxd.config.model import Plan
from pbxd.dialplan.flow import Flow

# Re-check a call that counts against a limit at least this often (other calls use it too).
RECHECK_SECONDS = 30.0


class UsageKind(StrEnum):
    """Which monthly minutes an item uses."""

    FORWARDED = "forwarded"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class Billable:
    """A forwarded leg (key: leg id) or a call going out (key: call id) that was answered."""

    key: str
    kind: UsageKind
    answered_at: datetime
    ended_at: datetime | None = None  # None: in progress

    def seconds(self, now: datetime) -> int:
        """Its billable seconds so far."""
        return billable_seconds(self.answered_at, self.ended_at or max(now, self.answered_at))


def month_of(at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month (in `tz`) the instant `at` falls in, as UTC bounds."""
    return ReportPeriod.parse(f"{at.astimezone(tz):%Y-%m}").bounds(tz)


def merge(stored: Iterable[Billable], live: Iterable[Billable]) -> list[Billable]:
    """Stored items with this process's own view over them (it knows its calls better)."""
    items = {item.key: item for item in stored}
    items.update((item.key, item) for item in live)
    return list(items.values())


def in_window(items: Iterable[Billable], start: datetime, end: datetime) -> list[Billable]:
    """The items answered in [start, end)."""
    return [item for item in items if start <= item.answered_at < end]


def used_seconds(items: Iterable[Billable], now: datetime) -> dict[UsageKind, int]:
    """Seconds used of each kind."""
    used = dict.fromkeys(UsageKind, 0)
    for item in items:
        used[item.kind] += item.seconds(now)
    return used


def by_day(
    items: Iterable[Billable], now: datetime, tz: ZoneInfo
) -> dict[date, dict[UsageKind, int]]:
    """Seconds used of each kind per local day (by the day each item was answered)."""
    days: dict[date, dict[UsageKind, int]] = {}
    for item in items:
        day = item.answered_at.astimezone(tz).date()
        days.setdefault(day, dict.fromkeys(UsageKind, 0))[item.kind] += item.seconds(now)
    return dict(sorted(days.items()))


@dataclass(frozen=True, slots=True)
class PlanUsage:
    """What a number used in a period against its plan (`pbxd usage`, the report, the API).

    Seconds of each kind in total and per local day; `allowed` is the plan's monthly
    allowance (None: unlimited, or no plan).
    """

    plan: str | None
    used: Mapping[UsageKind, int]
    allowed: Mapping[UsageKind, int | None]
    days: Mapping[date, Mapping[UsageKind, int]]

    def to_json(self) -> dict[str, object]:
        """Plain JSON data: totals, allowances and days, in seconds (null: unlimited)."""
        return {
            "plan": self.plan,
            "forwarded_seconds": self.used[UsageKind.FORWARDED],
            "outbound_seconds": self.used[UsageKind.OUTBOUND],
            "forwarded_allowed_seconds": self.allowed[UsageKind.FORWARDED],
            "outbound_allowed_seconds": self.allowed[UsageKind.OUTBOUND],
            "days": [
                {
                    "day": day.isoformat(),
                    "forwarded_seconds": used[UsageKind.FORWARDED],
                    "outbound_seconds": used[UsageKind.OUTBOUND],
                }
                for day, used in self.days.items()
            ],
        }


def plan_usage(
    plan: Plan | None, items: Iterable[Billable], now: datetime, tz: ZoneInfo
) -> PlanUsage:
    """The usage of `items` (one number's, one period's) against `plan`, by day in `tz`."""
    items = list(items)
    return PlanUsage(
        plan=plan.name if plan is not None else None,
        used=used_seconds(items, now),
        allowed={k: limit_seconds(plan, k) if plan is not None else None for k in UsageKind},
        days=by_day(items, now, tz),
    )


def kind_of(flow: Flow) -> UsageKind:
    """Which minutes a flow's call uses: outbound for a call going out, else forwarded."""
    return (
        UsageKind.OUTBOUND
        if flow.limits is not None and flow.limits.outbound
        else UsageKind.FORWARDED
    )


def limit_seconds(plan: Plan, kind: UsageKind) -> int | None:
    """The plan's monthly allowance of `kind`, in seconds (None: unlimited)."""
    minutes = plan.outbound_minutes if kind is UsageKind.OUTBOUND else plan.forwarded_minutes
    return None if minutes is None else minutes * 60


def refusal(
    plan: Plan, kind: UsageKind, used: Mapping[UsageKind, int], calls_in_progress: int
) -> str | None:
    """Why a new call must go to the plan's `at_limit` (None: it may go on)."""
    if plan.max_calls is not None and calls_in_progress >= plan.max_calls:
        return f"{calls_in_progress} calls in progress: plan '{plan.name}' allows {plan.max_calls}"
    limit = limit_seconds(plan, kind)
    if limit is not None and used.get(kind, 0) >= limit:
        return f"{kind} minutes of plan '{plan.name}' used up ({used[kind] // 60} of {limit // 60})"
    return None


@dataclass(frozen=True, slots=True)
class Watch:
    """What to do now with a call counting against a limit, and when to look again."""

    cut: bool
    warn: bool
    again_in: float


def watch(plan: Plan, left: float, sharing: int, warned: bool) -> Watch:
    """A call in progress that uses minutes: cut it, warn it, or look again later.

    `left` seconds of the allowance remain for every call using it; `sharing` calls (this one
    included) use them at once, so this call's share runs out `sharing` times sooner. Looking
    again at least every RECHECK_SECONDS catches calls starting or ending meanwhile.
    """
    own = left / max(1, sharing)
    if own <= 0:
        return Watch(cut=True, warn=False, again_in=0.0)
    warn = not warned and bool(plan.warning) and own <= plan.warn_before
    already = warned or warn
    until = own - plan.warn_before if not already and own > plan.warn_before else own
    return Watch(cut=False, warn=warn, again_in=max(1.0, min(until, RECHECK_SECONDS)))
