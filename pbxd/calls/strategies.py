"""Ring strategies: which legs of a ring step to start, and when.

Each strategy is a small class behind `RingStrategyRule`; the ring step asks it which
waiting legs to start when the step is entered (or resumed after a restart) and each time
a leg ends. Adding a strategy is one class here (and its name in `pbxd.vocabulary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pbxd.calls.states import LegState
from pbxd.vocabulary import RingStrategy


class RingStrategyRule(Protocol):
    """How a ring step's legs are rung."""

    name: RingStrategy

    def to_start(self, legs: Sequence[LegState]) -> list[int]:
        """Indexes of the legs to start now, given the state of every leg of the step."""
        ...


class RingAll:
    """Every target at once: every leg still waiting starts now."""

    name = RingStrategy.RINGALL

    def to_start(self, legs: Sequence[LegState]) -> list[int]:
        """Every waiting leg (at entry: all; after a restart: those never created)."""
        return [i for i, state in enumerate(legs) if state is LegState.WAITING]


class Hunt:
    """One target after another, in order: the next starts when the previous one ended."""

    name = RingStrategy.HUNT

    def to_start(self, legs: Sequence[LegState]) -> list[int]:
        """The first waiting leg, once no leg is live."""
        if any(state.live for state in legs):
            return []
        for i, state in enumerate(legs):
            if state is LegState.WAITING:
                return [i]
        return []


STRATEGIES: dict[RingStrategy, RingStrategyRule] = {rule.name: rule for rule in (RingAll(), Hunt())}


def strategy_of(name: RingStrategy) -> RingStrategyRule:
    """The rule implementing a strategy."""
    return STRATEGIES[name]
