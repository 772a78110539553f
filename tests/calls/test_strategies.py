"""Ring strategies and the state tables of the call core: pure rules, table-tested."""

from __future__ import annotations

import pytest

from pbxd.calls.states import (
    CALL_TRANSITIONS,
    LEG_TRANSITIONS,
    CallState,
    IllegalTransition,
    LegState,
    check,
)
from pbxd.calls.strategies import STRATEGIES, Hunt, RingAll, strategy_of
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
    assert RingAll().to_start(legs) == ringall
    assert Hunt().to_start(legs) == hunt


def test_every_strategy_has_a_rule() -> None:
    assert set(STRATEGIES) == set(RingStrategy)
    assert isinstance(strategy_of(RingStrategy.HUNT), Hunt)


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
