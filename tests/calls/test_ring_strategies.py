"""Each ring strategy through the daemon against the simulator, with its memory in the CDR
database (SQLite and PostgreSQL): staggered stages, memoryhunt rounds, round robin across
calls and restarts, longest idle, fewest calls today, random and weighted orders, max_legs,
disabled targets. Every CDR is read back from the store."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxd.calls.strategies import NO_STANDING, RandomHunt, Weighted
from pbxd.cdr.memory import RingMemory
from pbxd.cdr.records import CallLogEntry, Disposition
from pbxd.config.model import Config
from pbxd.dialplan import CallFacts, Flow, LegPlan, RingStep, plan_call
from pbxd.sim import PeerScript

from .conftest import CallLab, LabFactory, assert_no_errors, seconds, write_config

STAGGERED = "+33170000001"  # alice; the mobile m1 after 5 s; m2 after 10 s; route 20 s
MEMORYHUNT = "+33170000002"  # alice, bob, dave; 4 s a round; route 30 s
ROUNDROBIN = "+33170000003"  # alice, bob, dave 5 s each; route 20 s
LONGEST_IDLE = "+33170000004"  # alice, bob, dave 5 s each; route 20 s
FEWEST_CALLS = "+33170000005"  # alice, bob, dave 5 s each; route 20 s (Europe/Paris)
RANDOM = "+33170000006"  # alice, bob, dave 3 s each; route 20 s
WEIGHTED = "+33170000007"  # alice (3), bob (1), dave (1) 3 s each; route 20 s
MAX_LEGS = "+33170000008"  # ringall alice, bob, dave, at most 2 at once; route 10 s
DISABLED = "+33170000010"  # hunt alice (disabled), bob; route 10 s

TRUNKS = """\
    trunks:
      carrier-fr:
        inbound_endpoint: trunk-in
        dial: "PJSIP/{number}@trunk-out"
        allowed_destinations: ["+33"]
        max_outbound_legs: 10
        country: FR
        timezone: Europe/Paris
        numbers:
          - number: 01 70 00 00 01
          - number: 01 70 00 00 02
          - number: 01 70 00 00 03
          - number: 01 70 00 00 04
          - number: 01 70 00 00 05
          - number: 01 70 00 00 06
          - number: 01 70 00 00 07
          - number: 01 70 00 00 08
          - number: 01 70 00 00 09
          - number: 01 70 00 00 10
"""

ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      dave: {softphone: PJSIP/dave}
      carol: {softphone: PJSIP/carol}
      m1: {external: 06 12 34 56 71, trunk: carrier-fr}
      m2: {external: 06 12 34 56 72, trunk: carrier-fr}
    routes:
      - name: staggered
        numbers: [01 70 00 00 01]
        strategy: staggered
        ring_time: 30
        timeout: 20
        targets:
          - alice
          - {target: m1, start_after: 5}
          - {target: m2, start_after: 10}
      - name: memoryhunt
        numbers: [01 70 00 00 02]
        strategy: memoryhunt
        ring_time: 4
        timeout: 30
        targets: [alice, bob, dave]
      - name: roundrobin
        numbers: [01 70 00 00 03]
        strategy: roundrobin
        ring_time: 5
        timeout: 20
        targets: [alice, bob, dave]
      - name: longest-idle
        numbers: [01 70 00 00 04]
        strategy: longest_idle
        ring_time: 5
        timeout: 20
        targets: [alice, bob, dave]
      - name: fewest-calls
        numbers: [01 70 00 00 05]
        strategy: fewest_calls
        ring_time: 5
        timeout: 20
        targets: [alice, bob, dave]
      - name: random
        numbers: [01 70 00 00 06]
        strategy: random
        ring_time: 3
        timeout: 20
        targets: [alice, bob, dave]
      - name: weighted
        numbers: [01 70 00 00 07]
        strategy: weighted
        ring_time: 3
        timeout: 20
        targets:
          - {target: alice, weight: 3}
          - bob
          - dave
      - name: max-legs
        numbers: [01 70 00 00 08]
        strategy: ringall
        max_legs: 2
        ring_time: 10
        timeout: 10
        targets: [alice, bob, dave]
      - name: disabled
        numbers: [01 70 00 00 10]
        strategy: hunt
        ring_time: 5
        timeout: 10
        targets:
          - {target: alice, enabled: false}
          - bob
"""


def strategies_config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "strategies", TRUNKS, ROUTING)


@pytest.fixture
async def slab(make_lab: LabFactory, tmp_path: Path) -> CallLab:
    return await make_lab(strategies_config(tmp_path))


def targets(entry: CallLogEntry) -> list[str]:
    return [leg.target for leg in entry.legs]


def started(entry: CallLogEntry) -> list[tuple[str, float]]:
    """Each leg's target and when it started, in seconds after the call, rounded."""
    return [
        (leg.target, round(seconds(entry.call.started_at, leg.started_at))) for leg in entry.legs
    ]


def answers(slab: CallLab, *names: str, after: float = 0.5, talk: float = 1.0) -> None:
    for name in names:
        slab.sim.script(f"PJSIP/{name}", PeerScript(answer_after=after, hangup_after=talk))


async def answered_by(slab: CallLab, did: str) -> str | None:
    entry = await slab.finish(await slab.call(did))
    return entry.call.answered_by


# ------------------------------------------------------------------------ staggered


async def test_staggered_adds_the_mobiles_while_the_softphone_keeps_ringing(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    # alice never answers; m1 joins at 5 s and answers 2 s later; m2 (10 s) is never rung.
    slab.sim.script("+33612345671", PeerScript(answer_after=2, hangup_after=3))
    call_id = await slab.call(STAGGERED)
    entry = await slab.finish(call_id)
    assert entry.call.answered_by == "m1", slab.timeline(call_id)
    assert started(entry) == [("alice", 0), ("m1", 5)]
    legs = {leg.target: leg for leg in entry.legs}
    # alice rang until m1 answered (stage one kept ringing), then was answered elsewhere.
    assert legs["alice"].hangup_cause == 26
    assert round(seconds(entry.call.started_at, legs["alice"].ended_at)) == 7
    assert "+33612345672" not in str(slab.requests("POST", "/channels/create"))
    assert_no_errors(logs)


async def test_staggered_stage_starts_at_once_when_nothing_rings(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    # alice is busy at once: m1 need not wait for its 5 s, nor m2 for its 10 s after m1 fails.
    slab.sim.script("PJSIP/alice", PeerScript(busy_after=0))
    slab.sim.script("+33612345671", PeerScript(busy_after=1))
    slab.sim.script("+33612345672", PeerScript(answer_after=1, hangup_after=1))
    entry = await slab.finish(await slab.call(STAGGERED))
    assert entry.call.answered_by == "m2"
    assert started(entry) == [("alice", 0), ("m1", 0), ("m2", 1)]
    assert_no_errors(logs)


# ------------------------------------------------------------------------ memoryhunt


async def test_memoryhunt_rings_one_then_two_then_three(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    # alice and bob never answer; dave, first rung in round three (8 s), answers after 1 s.
    answers(slab, "dave", after=1)
    call_id = await slab.call(MEMORYHUNT)
    entry = await slab.finish(call_id)
    assert entry.call.answered_by == "dave", slab.timeline(call_id)
    assert started(entry) == [
        ("alice", 0),
        ("alice", 4),
        ("bob", 4),
        ("alice", 8),
        ("bob", 8),
        ("dave", 8),
    ]
    assert [leg.hangup_cause for leg in entry.legs][:3] == [19, 19, 19]  # rang out each round
    assert round(seconds(entry.call.started_at, entry.call.answered_at)) == 9
    assert_no_errors(logs)


# ------------------------------------------------------------------------ round robin


async def test_round_robin_spreads_calls_and_remembers_across_restarts(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    answers(slab, "alice", "bob", "dave")
    first = [await answered_by(slab, ROUNDROBIN) for _ in range(4)]
    assert first == ["alice", "bob", "dave", "alice"]
    # A restart (or another pbxd on the same database) goes on where the turn stood.
    await slab.kill_service()
    await slab.start_service()
    then = [await answered_by(slab, ROUNDROBIN) for _ in range(2)]
    assert then == ["bob", "dave"]
    assert await RingMemory(slab.store.engine).take_turn("roundrobin") == 6
    assert_no_errors(logs)


async def test_round_robin_starts_the_hunt_at_its_turn(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    # Turn 1 starts at bob; bob does not answer: dave, then alice (wrapping round).
    answers(slab, "alice", "dave")
    slab.sim.script("PJSIP/dave", PeerScript(busy_after=0.5))
    await RingMemory(slab.store.engine).take_turn("roundrobin")  # turn 0 went elsewhere
    entry = await slab.finish(await slab.call(ROUNDROBIN))
    assert targets(entry) == ["bob", "dave", "alice"]
    assert entry.call.answered_by == "alice"
    assert_no_errors(logs)


async def test_a_round_robin_call_ringing_through_a_restart_keeps_its_order(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    # Turn 1 starts at bob; pbxd dies while bob rings; the next run goes on with dave, then
    # alice (the order chosen at entry), though the turn has moved on meanwhile.
    slab.sim.script("PJSIP/dave", PeerScript(busy_after=0.5))
    answers(slab, "alice")
    memory = RingMemory(slab.store.engine)
    await memory.take_turn("roundrobin")
    call_id = await slab.call(ROUNDROBIN)
    await slab.wait_for(
        lambda: bool(slab.requests("POST", f"/channels/{call_id}-1/dial")), what="bob dialled"
    )
    await slab.store.flush()  # the call's rows are written: the restart adopts it
    await slab.kill_service()
    await memory.take_turn("roundrobin")  # another call took a turn meanwhile
    await slab.reopen_store()
    await slab.start_service()
    await slab.wait_for(lambda: call_id in slab.daemon.calls, what="call adopted")
    entry = await slab.finish(call_id)
    assert targets(entry) == ["bob", "dave", "alice"], slab.timeline(call_id)
    assert entry.call.answered_by == "alice"
    assert_no_errors(logs)


# ------------------------------------------------------------------------ longest idle


async def test_longest_idle_rings_who_waited_longest(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    answers(slab, "alice", "dave")
    # bob never answers: he rings out, dave takes the second call.
    assert await answered_by(slab, LONGEST_IDLE) == "alice"  # nobody ever answered: as written
    second = await slab.finish(await slab.call(LONGEST_IDLE))
    assert targets(second) == ["bob", "dave"]  # alice just finished a call: last
    assert second.call.answered_by == "dave"
    # bob never answered anything: first; then alice (idle since call one), dave last.
    third = await slab.finish(await slab.call(LONGEST_IDLE))
    assert targets(third) == ["bob", "alice"]
    assert third.call.answered_by == "alice"
    assert_no_errors(logs)


# ------------------------------------------------------------------------ fewest calls


async def test_fewest_calls_today_counts_the_numbers_day(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    answers(slab, "alice", "bob", "dave")
    memory = RingMemory(slab.store.engine)
    now = slab.clock.now()
    today = now.astimezone(ZoneInfo("Europe/Paris")).date()
    for target, count in (("alice", 2), ("bob", 1)):
        for _ in range(count):
            await memory.note_answered(target, now, today)
    for _ in range(5):  # yesterday's calls do not count today
        await memory.note_answered("dave", now - timedelta(days=1), today - timedelta(days=1))
    first = [await answered_by(slab, FEWEST_CALLS) for _ in range(3)]
    # dave (0 today); then bob and dave tie at 1 (bob is written first); then dave (1).
    assert first == ["dave", "bob", "dave"]
    counts = await memory.answered_on(["alice", "bob", "dave"], today)
    assert counts == {"alice": 2, "bob": 2, "dave": 2}
    assert_no_errors(logs)


# ------------------------------------------------------------------------ random, weighted


@pytest.mark.parametrize(("did", "rule"), [(RANDOM, RandomHunt()), (WEIGHTED, Weighted())])
async def test_random_orders_follow_the_seeded_source(
    logs: list[dict[str, Any]], slab: CallLab, did: str, rule: RandomHunt
) -> None:
    # Nobody answers: every target rings once, in the order the seeded source gives.
    entry = await slab.finish(await slab.call(did))
    assert entry.call.disposition is Disposition.NO_ANSWER
    planned = _step_legs(slab, did)
    expected = [
        planned[s.plan].target for s in rule.arrange(planned, NO_STANDING, random.Random(slab.seed))
    ]
    assert targets(entry) == expected
    assert sorted(targets(entry)) == ["alice", "bob", "dave"]
    assert_no_errors(logs)


def _step_legs(slab: CallLab, did: str) -> tuple[LegPlan, ...]:
    """The legs the planner gives the call's ring step (with their weights)."""
    flow = plan_call(
        CallFacts("x", "PJSIP/trunk-in-00000001", did, "+33612000001", ""), slab.config
    )
    assert isinstance(flow, Flow)
    step = flow.steps["ring"]
    assert isinstance(step, RingStep)
    return step.legs


# ------------------------------------------------------------------------ max_legs, enabled


async def test_max_legs_rings_at_most_two_at_once(
    logs: list[dict[str, Any]], slab: CallLab
) -> None:
    # alice declines after 2 s: only then does dave, the third, start ringing.
    slab.sim.script("PJSIP/alice", PeerScript(busy_after=2))
    answers(slab, "dave", after=1)
    call_id = await slab.call(MAX_LEGS)
    entry = await slab.finish(call_id)
    assert started(entry) == [("alice", 0), ("bob", 0), ("dave", 2)]
    assert entry.call.answered_by == "dave", slab.timeline(call_id)
    assert_no_errors(logs)


async def test_a_disabled_target_is_not_rung(logs: list[dict[str, Any]], slab: CallLab) -> None:
    answers(slab, "alice", "bob")
    entry = await slab.finish(await slab.call(DISABLED))
    assert targets(entry) == ["bob"]
    assert entry.call.answered_by == "bob"
    assert_no_errors(logs)
