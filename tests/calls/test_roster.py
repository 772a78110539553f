"""The roster's pure rules: who is skipped and why, the live presence table, the local day of
a call, and a ring step that rings without memory when the database does not answer."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest
import structlog

from pbxd.ari import Endpoint
from pbxd.calls.journal import LegEnd
from pbxd.calls.presence import Presence
from pbxd.calls.roster import Roster, local_day, skip_reason
from pbxd.calls.strategies import NO_STANDING, Recall, Standing
from pbxd.dialplan.flow import LegPlan, RingStep
from pbxd.vocabulary import RingStrategy

SOFTPHONE = LegPlan("alice", "PJSIP/alice", None, 20, "+33612000001", "")
MOBILE = LegPlan("m1", "PJSIP/+33612345671@trunk-out", "carrier-fr", 20, "+33612000001", "")


@pytest.mark.parametrize(
    ("plan", "offline", "dnd", "on_call", "skip_busy", "why"),
    [
        (SOFTPHONE, False, False, False, False, None),
        (SOFTPHONE, True, False, False, False, LegEnd.OFFLINE),
        (SOFTPHONE, True, True, False, False, LegEnd.DND),  # a choice beats a state
        (SOFTPHONE, False, False, True, False, None),  # on a call, but the route rings anyway
        (SOFTPHONE, False, False, True, True, LegEnd.ON_CALL),
        (MOBILE, True, False, False, False, None),  # a mobile has no registration to follow
        (MOBILE, False, True, False, False, LegEnd.DND),
    ],
)
def test_who_is_skipped(
    plan: LegPlan, offline: bool, dnd: bool, on_call: bool, skip_busy: bool, why: LegEnd | None
) -> None:
    assert skip_reason(plan, offline=offline, dnd=dnd, on_call=on_call, skip_busy=skip_busy) == why


def endpoint(resource: str, state: str | None) -> Endpoint:
    return Endpoint("PJSIP", resource, state, ())


def test_the_presence_table() -> None:
    presence = Presence()
    assert not presence.is_offline("PJSIP/carol")  # never heard of: rung as before
    presence.reload([endpoint("alice", "online"), endpoint("carol", "offline")], ["PJSIP/zed"])
    assert presence.is_offline("PJSIP/carol") and presence.is_offline("pjsip/carol")
    assert presence.is_offline("PJSIP/zed")  # not on Asterisk at all
    assert presence.online() == ["PJSIP/alice"]
    assert presence.update(endpoint("carol", "online")) == "offline"
    assert not presence.is_offline("PJSIP/carol")
    presence.update(endpoint("alice", None))  # unknown: not offline
    assert not presence.is_offline("PJSIP/alice")
    presence.forget()
    assert not presence.is_offline("PJSIP/zed")


@pytest.mark.parametrize(
    ("at", "zone", "day"),
    [
        (datetime(2026, 12, 3, 23, 30, tzinfo=UTC), "Europe/Paris", date(2026, 12, 4)),
        (datetime(2026, 12, 3, 23, 30, tzinfo=UTC), "Europe/London", date(2026, 12, 3)),
        (datetime(2026, 12, 4, 3, 0, tzinfo=UTC), "America/New_York", date(2026, 12, 3)),
        (datetime(2026, 12, 4, 3, 0, tzinfo=UTC), "Not/AZone", date(2026, 12, 4)),
    ],
)
def test_a_day_of_calls_is_the_numbers_day(at: datetime, zone: str, day: date) -> None:
    assert local_day(at, zone) == day


STEP = RingStep(
    "ring", RingStrategy.ROUNDROBIN, (SOFTPHONE,), 20, "end", "end", "end", memory="support"
)


class BrokenMemory:
    async def take_turn(self, memory: str) -> int:
        raise ConnectionError("database down")

    async def last_active(self, targets: Any) -> dict[str, datetime]:
        raise AssertionError("not asked for")


class TurnMemory:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def take_turn(self, memory: str) -> int:
        self.asked.append(memory)
        return 7


async def test_a_database_that_fails_costs_the_memory_not_the_call() -> None:
    roster = Roster(memory=BrokenMemory(), rng=random.Random(0))  # type: ignore[arg-type]
    now = datetime(2026, 12, 3, 9, tzinfo=UTC)
    with structlog.testing.capture_logs() as logs:
        standing = await roster.standing(frozenset({Recall.TURN}), STEP, "Europe/Paris", now)
    assert standing is NO_STANDING
    assert [line["event"] for line in logs] == ["ring_memory_unavailable"]


async def test_only_what_the_strategy_needs_is_read() -> None:
    memory = TurnMemory()
    roster = Roster(memory=memory)  # type: ignore[arg-type]
    now = datetime(2026, 12, 3, 9, tzinfo=UTC)
    assert await roster.standing(frozenset(), STEP, "UTC", now) is NO_STANDING
    assert memory.asked == []
    assert await roster.standing(frozenset({Recall.TURN}), STEP, "UTC", now) == Standing(turn=7)
    assert memory.asked == ["support"]
