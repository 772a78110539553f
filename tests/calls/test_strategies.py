"""Ring strategies and the state tables of the call core: pure rules, table-tested."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxd.calls.daemon import adopted_slots
from pbxd.calls.states import (
    CALL_TRANSITIONS,
    LEG_TRANSITIONS,
    CallState,
    IllegalTransition,
    LegState,
    check,
)
from pbxd.calls.strategies import (
    NO_STANDING,
    STRATEGIES,
    FewestCalls,
    Hunt,
    LegTurn,
    LongestIdle,
    MemoryHunt,
    RandomHunt,
    RingAll,
    RoundRobin,
    Staggered,
    Standing,
    Weighted,
    strategy_of,
)
from pbxd.cdr.records import LegRecord
from pbxd.dialplan.flow import LegPlan, RingStep
from pbxd.vocabulary import RingStrategy

W, C, D, R, A, E, X = (
    LegState.WAITING,
    LegState.CREATING,
    LegState.DIALING,
    LegState.RINGING,
    LegState.ANSWERED,
    LegState.ENDING,
    LegState.ENDED,
)


def turns(states: list[LegState], turns: list[int] | None = None) -> list[LegTurn]:
    return [LegTurn(s, (turns or [0] * len(states))[i]) for i, s in enumerate(states)]


@pytest.mark.parametrize(
    ("legs", "ringall", "hunt"),
    [
        ([W, W, W], [0, 1, 2], [0]),  # entering the step
        ([R, W, W], [1, 2], []),  # hunt: alice still rings
        ([X, W, W], [1, 2], [1]),  # hunt: alice ended, bob's turn
        ([X, X, W], [2], [2]),
        ([X, E, W], [2], []),  # hunt: bob is being hung up, dave waits for him
        ([R, R, R], [], []),
        ([X, X, X], [], []),
        ([X, R, W], [2], []),  # ringall after a restart: the never-created leg rings now
    ],
)
def test_which_legs_start(legs: list[LegState], ringall: list[int], hunt: list[int]) -> None:
    assert RingAll().to_start(turns(legs), 0.0) == ringall
    assert Hunt().to_start(turns(legs), 0.0) == hunt
    for ordered in (RoundRobin(), LongestIdle(), FewestCalls(), RandomHunt(), Weighted()):
        assert ordered.to_start(turns(legs), 0.0) == hunt  # hunts in another order


def plan(target: str, start_after: int = 0, weight: int = 1) -> LegPlan:
    return LegPlan(
        target=target,
        dial_string=f"PJSIP/{target}",
        trunk=None,
        ring_time=20,
        caller_id_number="+33612000001",
        caller_id_name="",
        start_after=start_after,
        weight=weight,
    )


ABC = [plan("alice"), plan("bob"), plan("carol")]
T9 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def staged(states: list[LegState], starts: list[float]) -> list[LegTurn]:
    return [LegTurn(s, 0, a) for s, a in zip(states, starts, strict=True)]


@pytest.mark.parametrize(
    ("states", "starts", "elapsed", "start", "wake"),
    [
        # softphones at once, the mobile after 10 s, the desk line after 20 s
        ([W, W, W], [0, 10, 20], 0.0, [0], 10.0),
        ([R, W, W], [0, 10, 20], 5.0, [], 10.0),
        ([R, W, W], [0, 10, 20], 10.0, [1], 20.0),  # the softphone keeps ringing
        ([R, W, W], [0, 10, 20], 9.9999999, [1], 20.0),  # a timer read a hair early is due
        ([R, R, W], [0, 10, 20], 20.0, [2], None),
        ([X, W, W], [0, 10, 20], 3.0, [1], 10.0),  # nothing rings: the next stage at once
        ([X, X, W], [0, 10, 20], 12.0, [2], 20.0),
        ([W, W, W], [0, 0, 5], 0.0, [0, 1], 5.0),  # a stage of two
        ([X, X, X], [0, 10, 20], 25.0, [], None),
    ],
)
def test_staggered_stages(
    states: list[LegState],
    starts: list[float],
    elapsed: float,
    start: list[int],
    wake: float | None,
) -> None:
    rule = Staggered()
    assert rule.to_start(staged(states, starts), elapsed) == start
    assert rule.next_start(staged(states, starts), elapsed) == wake


def test_memoryhunt_rings_the_first_then_the_first_two_then_three() -> None:
    slots = MemoryHunt().arrange(ABC, NO_STANDING, random.Random(0))
    assert [(s.plan, s.turn) for s in slots] == [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2)]


@pytest.mark.parametrize(
    ("states", "start"),
    [
        ([W, W, W, W, W, W], [0]),
        ([R, W, W, W, W, W], []),
        ([X, W, W, W, W, W], [1, 2]),  # round 2: alice and bob together
        ([X, R, X, W, W, W], []),  # bob gave up, alice still rings: the round goes on
        ([X, X, X, W, W, W], [3, 4, 5]),
        ([X, X, X, X, X, X], []),
    ],
)
def test_memoryhunt_rounds(states: list[LegState], start: list[int]) -> None:
    rounds = [0, 1, 1, 2, 2, 2]
    assert MemoryHunt().to_start(turns(states, rounds), 0.0) == start


@pytest.mark.parametrize(
    ("rule", "standing", "order"),
    [
        (Hunt(), NO_STANDING, [0, 1, 2]),
        (RoundRobin(), Standing(turn=0), [0, 1, 2]),
        (RoundRobin(), Standing(turn=1), [1, 2, 0]),
        (RoundRobin(), Standing(turn=5), [2, 0, 1]),
        (LongestIdle(), NO_STANDING, [0, 1, 2]),  # nobody ever answered: as written
        (
            LongestIdle(),
            Standing(last_active={"alice": T9, "bob": T9 - timedelta(hours=1)}),
            [2, 1, 0],  # carol never answered, bob idle an hour, alice just now
        ),
        (
            LongestIdle(),
            Standing(last_active={"alice": T9, "bob": T9, "carol": T9}),
            [0, 1, 2],  # ties: as written
        ),
        (FewestCalls(), Standing(answered_today={"alice": 3, "bob": 1}), [2, 1, 0]),
        (FewestCalls(), Standing(answered_today={"alice": 1, "bob": 1, "carol": 1}), [0, 1, 2]),
    ],
)
def test_who_rings_first(rule: Hunt, standing: Standing, order: list[int]) -> None:
    slots = rule.arrange(ABC, standing, random.Random(0))
    assert [s.plan for s in slots] == order
    assert [s.turn for s in slots] == [0, 1, 2]  # one at a time, in that order


def test_random_orders_come_from_the_given_source() -> None:
    first = [s.plan for s in RandomHunt().arrange(ABC, NO_STANDING, random.Random(7))]
    again = [s.plan for s in RandomHunt().arrange(ABC, NO_STANDING, random.Random(7))]
    assert first == again and sorted(first) == [0, 1, 2]
    orders = {
        tuple(s.plan for s in RandomHunt().arrange(ABC, NO_STANDING, random.Random(seed)))
        for seed in range(50)
    }
    assert len(orders) == 6  # every order of three targets comes up


@given(st.integers(min_value=1, max_value=12), st.integers(min_value=0, max_value=10_000))
def test_round_robin_over_n_calls_spreads_evenly(targets: int, start: int) -> None:
    legs = [plan(f"agent{i}") for i in range(targets)]
    firsts = Counter(
        RoundRobin().arrange(legs, Standing(turn=start + n), random.Random(0))[0].plan
        for n in range(targets * 7)
    )
    assert firsts == dict.fromkeys(range(targets), 7)


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=8))
def test_ordered_hunts_ring_everyone_once(turn: int, targets: int) -> None:
    legs = [plan(f"agent{i}", weight=i + 1) for i in range(targets)]
    standing = Standing(turn=turn, answered_today={"agent0": turn})
    for rule in (RoundRobin(), LongestIdle(), FewestCalls(), RandomHunt(), Weighted()):
        slots = rule.arrange(legs, standing, random.Random(turn))
        assert sorted(s.plan for s in slots) == list(range(targets))


@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=6))
def test_fewest_calls_rings_the_least_busy_first(counts: list[int]) -> None:
    legs = [plan(f"agent{i}") for i in range(len(counts))]
    standing = Standing(answered_today={f"agent{i}": c for i, c in enumerate(counts)})
    order = [s.plan for s in FewestCalls().arrange(legs, standing, random.Random(0))]
    assert [counts[i] for i in order] == sorted(counts)


def test_weighted_puts_heavier_targets_first_more_often() -> None:
    legs = [plan("alice", weight=3), plan("bob", weight=1)]
    rng = random.Random(42)
    firsts = Counter(Weighted().arrange(legs, NO_STANDING, rng)[0].plan for _ in range(4000))
    assert 0.70 < firsts[0] / 4000 < 0.80  # 3 / (3 + 1)


def test_one_at_a_time_matches_the_rules() -> None:
    for name, rule in STRATEGIES.items():
        assert name.one_at_a_time is isinstance(rule, Hunt), name


def test_every_strategy_has_a_rule() -> None:
    assert set(STRATEGIES) == set(RingStrategy)
    assert isinstance(strategy_of(RingStrategy.HUNT), Hunt)
    assert isinstance(strategy_of(RingStrategy.STAGGERED), Staggered)


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (W, C, True),
        (W, X, True),  # its turn never came
        (W, R, False),  # a leg never rings before it exists
        (C, D, True),
        (R, A, True),
        (A, R, False),
        (E, X, True),
        (X, E, False),  # an ended leg never comes back
        (X, X, False),
    ],
)
def test_leg_transitions(old: LegState, new: LegState, allowed: bool) -> None:
    if allowed:
        check(LEG_TRANSITIONS, old, new)
    else:
        with pytest.raises(IllegalTransition):
            check(LEG_TRANSITIONS, old, new)


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (CallState.STARTING, CallState.RINGING, True),
        (CallState.RINGING, CallState.PLAYING, True),  # ring, then a greeting on no answer
        (CallState.RINGING, CallState.ANSWERING, True),
        (CallState.ANSWERING, CallState.BRIDGED, True),
        (CallState.BRIDGED, CallState.RINGING, False),
        (CallState.ENDING, CallState.ENDED, True),
        (CallState.ENDED, CallState.ENDING, False),
        (CallState.STARTING, CallState.BRIDGED, False),
    ],
)
def test_call_transitions(old: CallState, new: CallState, allowed: bool) -> None:
    assert (new in CALL_TRANSITIONS[old]) is allowed


def test_live_states() -> None:
    assert [s for s in LegState if s.live] == [C, D, R, A, E]


def _stored(*targets: tuple[int, str]) -> list[LegRecord]:
    return [LegRecord(f"c1-{n}", "c1", t, f"PJSIP/{t}", T9) for n, t in targets]


@pytest.mark.parametrize(
    ("strategy", "stored", "order"),
    [
        (RingStrategy.HUNT, [], [0, 1, 2]),
        (RingStrategy.HUNT, [(3, "alice")], [0, 1, 2]),
        (RingStrategy.ROUNDROBIN, [(3, "bob")], [1, 2, 0]),  # turn 1 started at bob
        (RingStrategy.ROUNDROBIN, [(3, "carol"), (4, "alice")], [2, 0, 1]),
        (RingStrategy.LONGEST_IDLE, [(3, "bob"), (4, "alice")], [1, 0, 2]),
        (RingStrategy.RANDOM, [(1, "carol")], [0, 1, 2]),  # a leg of an earlier step: not ours
        (RingStrategy.RINGALL, [(3, "carol")], [0, 1, 2]),  # written order, whatever was made
    ],
)
def test_a_restart_finds_the_order_a_hunt_chose(
    strategy: RingStrategy, stored: list[tuple[int, str]], order: list[int]
) -> None:
    step = RingStep("ring", strategy, tuple(ABC), 30, "end", "end", "end")
    slots = adopted_slots(step, 3, _stored(*stored))
    assert [s.plan for s in slots] == order
