"""A number's plan against what it used, as tables (pure: no database, no clock)."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbxd.config.model import Plan
from pbxd.dialplan.limits import (
    RECHECK_SECONDS,
    Billable,
    UsageKind,
    by_day,
    in_window,
    merge,
    month_of,
    refusal,
    used_seconds,
    watch,
)

from .test_outbound_plan import TRUNKS as OUTBOUND_TRUNKS
from .test_outbound_plan import compile_tree, errors_of

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("instant", "first", "last"),
    [
        # 23:30 UTC on 30 November is 00:30 on 1 December in Paris: December there.
        (datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "2026-11-30T23:00", "2026-12-31T23:00"),
        (datetime(2026, 11, 30, 22, 30, tzinfo=UTC), "2026-10-31T23:00", "2026-11-30T23:00"),
        # March: the clocks go forward on the last Sunday, the month still starts at +01:00.
        (datetime(2027, 3, 31, 12, 0, tzinfo=UTC), "2027-02-28T23:00", "2027-03-31T22:00"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "2026-12-31T23:00", "2027-01-31T23:00"),
    ],
)
def test_a_month_is_the_calendar_month_of_the_numbers_zone(
    instant: datetime, first: str, last: str
) -> None:
    start, end = month_of(instant, PARIS)
    assert (start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")) == (first, last)


def test_each_item_counts_once_live_ones_up_to_now() -> None:
    stored = [
        Billable("leg-1", UsageKind.FORWARDED, at(0), at(60)),
        Billable("call-2", UsageKind.OUTBOUND, at(0), None),  # written while in progress
    ]
    live = [Billable("call-2", UsageKind.OUTBOUND, at(0), at(30))]  # it ended here meanwhile
    items = merge(stored, live)
    assert used_seconds(items, at(100)) == {UsageKind.FORWARDED: 60, UsageKind.OUTBOUND: 30}
    in_progress = merge(stored, [])
    assert used_seconds(in_progress, at(100))[UsageKind.OUTBOUND] == 100


def test_usage_by_day_in_the_numbers_zone() -> None:
    late = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # 23:30 in Paris, 1 December
    later = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # 00:30 in Paris, 2 December
    items = [
        Billable("a", UsageKind.FORWARDED, late, late + timedelta(seconds=90)),
        Billable("b", UsageKind.OUTBOUND, later, later + timedelta(seconds=30)),
    ]
    days = by_day(items, later, PARIS)
    assert list(days) == [date(2026, 12, 1), date(2026, 12, 2)]
    assert days[date(2026, 12, 1)][UsageKind.FORWARDED] == 90
    assert days[date(2026, 12, 2)][UsageKind.OUTBOUND] == 30
    start, end = month_of(late, PARIS)
    assert in_window(items, start, end) == items
    assert in_window(items, *month_of(datetime(2026, 11, 2, tzinfo=UTC), PARIS)) == []


PLAN = Plan("p", forwarded_minutes=10, outbound_minutes=3, max_calls=2, warning=("sound:w",))


@pytest.mark.parametrize(
    ("kind", "used", "calls", "why"),
    [
        (UsageKind.OUTBOUND, 179, 0, None),
        (UsageKind.OUTBOUND, 180, 0, "outbound minutes of plan 'p' used up"),
        (UsageKind.FORWARDED, 180, 1, None),
        (UsageKind.FORWARDED, 600, 0, "forwarded minutes"),
        (UsageKind.FORWARDED, 0, 2, "2 calls in progress"),
    ],
)
def test_a_new_call_meets_the_limit(
    kind: UsageKind, used: int, calls: int, why: str | None
) -> None:
    found = refusal(PLAN, kind, {kind: used}, calls)
    assert (found is None) == (why is None)
    if why is not None:
        assert found is not None and why in found


@pytest.mark.parametrize(
    ("left", "sharing", "warned", "cut", "warn", "again"),
    [
        (500.0, 1, False, False, False, RECHECK_SECONDS),
        (80.0, 1, False, False, False, 20.0),  # the warning is due at 60 s left
        (60.0, 1, False, False, True, RECHECK_SECONDS),
        (20.0, 1, True, False, False, 20.0),
        (120.0, 2, False, False, True, RECHECK_SECONDS),  # two calls: 60 s each
        (0.0, 1, True, True, False, 0.0),
        (-5.0, 3, True, True, False, 0.0),
        (0.5, 1, True, False, False, 1.0),  # never a busy loop
    ],
)
def test_a_call_in_progress_is_watched(
    left: float, sharing: int, warned: bool, cut: bool, warn: bool, again: float
) -> None:
    verdict = watch(PLAN, left, sharing, warned)
    assert (verdict.cut, verdict.warn, verdict.again_in) == (cut, warn, again)


# The outbound tests' trunk, with both numbers in service.
TRUNKS = OUTBOUND_TRUNKS.replace("        status: reserved\n", "")


def errors_in(tmp_path: Path, routing: str) -> list[str]:
    return errors_of(compile_tree(tmp_path, textwrap.dedent(routing), TRUNKS))


ROUTING = """\
    country: FR
    targets:
      m1: {external: 06 12 34 56 71, trunk: carrier-fr}
      m2: {external: 06 12 34 56 72, trunk: carrier-fr}
      m3: {external: 06 12 34 56 73, trunk: carrier-fr}
    mailboxes:
      box: {}
    routes:
      - name: one
        numbers: [01 70 00 00 01]
        targets: [m1, m2]
      - name: three
        numbers: [01 70 00 00 02]
        targets: [m1, m2, m3]
    plans:
      two-destinations:
        numbers: [01 70 00 00 01, 01 70 00 00 02]
        max_destinations: 2
        at_limit: {voicemail: box}
"""


def test_a_route_forwarding_to_more_destinations_than_its_plan_is_refused_at_its_line(
    tmp_path: Path,
) -> None:
    errors = errors_in(tmp_path, ROUTING)
    assert len(errors) == 1, errors
    line = ROUTING.splitlines().index("      - name: three") + 1
    assert re.search(rf"main\.yaml:{line}:\d+: error: route 'three' forwards to 3", errors[0])
    assert "allows 2" in errors[0]
    assert errors_in(tmp_path, ROUTING.replace("max_destinations: 2", "max_destinations: 3")) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("{voicemail: box}", "{voicemail: boxx}"), "no mailbox 'boxx'"),
        (("{voicemail: box}", "{goto: nowhere}"), "goto 'nowhere' leads nowhere"),
        (("01 70 00 00 02]", "01 70 00 00 09]"), "+33170000009 is not one of our numbers"),
        (("max_destinations: 2", "max_destinations: 0"), "max_destinations must be at least 1"),
        (("max_destinations: 2", "outbound_minutes: -1"), "outbound_minutes must be between"),
        (("max_destinations: 2", "blocks: [nope]"), "unknown block 'nope'"),
        (("max_destinations: 2", "when_crossed: never"), "when_crossed"),
    ],
)
def test_plan_errors_are_pinned(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    errors = errors_in(tmp_path, ROUTING.replace(*change))
    assert any(message in e and re.search(r"main\.yaml:\d+:\d+: error", e) for e in errors), errors
