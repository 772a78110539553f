"""Ring strategies: in which order a ring step's legs are made, and which start when.

Each strategy is a small class behind `RingStrategyRule`, and pure: given the step's legs
and what pbxd remembers of their targets (`Standing`, read from the database by the ring
step), `arrange` says which legs the step makes, in which order and in which turn; given the
state of every leg and the seconds since the step started, `to_start` says which waiting
legs start now. Adding a strategy is one class here (and its name in `pbxd.vocabulary`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pbxd.calls.states import LegState
from pbxd.dialplan.flow import LegPlan
from pbxd.vocabulary import RingStrategy

# A timer set for a stage at 10 s may read 9.9999999 s on the clock: still due.
DUE_SLACK_SECONDS = 1e-6


class Recall(StrEnum):
    """What a strategy needs pbxd to remember across calls (kept in the database)."""

    TURN = "turn"  # how many calls this step took so far (round robin)
    IDLE = "idle"  # when each target last answered or finished a call
    TODAY = "today"  # how many calls each target answered today, in the number's time zone


@dataclass(frozen=True, slots=True)
class Standing:
    """What the database remembers of a step's targets when a call reaches it."""

    turn: int = 0
    last_active: Mapping[str, datetime] = field(default_factory=dict)
    answered_today: Mapping[str, int] = field(default_factory=dict)


NO_STANDING = Standing()


@dataclass(frozen=True, slots=True)
class Slot:
    """One leg a step makes: which of its planned legs (`plan`), rung in which `turn`.

    Legs of one turn start together (memoryhunt's rounds); a target may have a slot in
    several turns.
    """

    plan: int
    turn: int = 0


@dataclass(frozen=True, slots=True)
class LegTurn:
    """What a strategy sees of one leg: its state, its turn, when it may start (seconds)."""

    state: LegState
    turn: int = 0
    start_after: float = 0.0


class RingStrategyRule(Protocol):
    """How a ring step's legs are rung."""

    name: RingStrategy
    recalls: frozenset[Recall]

    def arrange(
        self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random
    ) -> list[Slot]:
        """The legs to make, in order, from the step's planned legs."""
        ...

    def to_start(self, legs: Sequence[LegTurn], elapsed: float) -> list[int]:
        """Indexes of the legs to start now, `elapsed` seconds after the step started."""
        ...

    def next_start(self, legs: Sequence[LegTurn], elapsed: float) -> float | None:
        """When (seconds after the step started) a waiting leg becomes due; None: never by
        time alone (it starts when others end)."""
        ...


def _waiting(legs: Sequence[LegTurn]) -> list[int]:
    return [i for i, leg in enumerate(legs) if leg.state is LegState.WAITING]


def _any_live(legs: Sequence[LegTurn]) -> bool:
    return any(leg.state.live for leg in legs)


class RingAll:
    """Every target at once: every leg still waiting starts now."""

    name = RingStrategy.RINGALL
    recalls: frozenset[Recall] = frozenset()

    def arrange(
        self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random
    ) -> list[Slot]:
        """Every target once, as written."""
        return [Slot(i) for i in range(len(legs))]

    def to_start(self, legs: Sequence[LegTurn], elapsed: float) -> list[int]:
        """Every waiting leg (at entry: all; after a restart: those never created)."""
        return _waiting(legs)

    def next_start(self, legs: Sequence[LegTurn], elapsed: float) -> float | None:
        """Nothing waits for a time."""
        return None


class Hunt:
    """One target after another, in order: the next starts when the previous one ended."""

    name = RingStrategy.HUNT
    recalls: frozenset[Recall] = frozenset()

    def order(self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random) -> list[int]:
        """The order targets are tried in (as written, for a plain hunt)."""
        return list(range(len(legs)))

    def arrange(
        self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random
    ) -> list[Slot]:
        """Every target once, each in its own turn, in `order`."""
        return [Slot(plan, turn) for turn, plan in enumerate(self.order(legs, standing, rng))]

    def to_start(self, legs: Sequence[LegTurn], elapsed: float) -> list[int]:
        """The first waiting leg, once no leg is live."""
        if _any_live(legs):
            return []
        return _waiting(legs)[:1]

    def next_start(self, legs: Sequence[LegTurn], elapsed: float) -> float | None:
        """Nothing waits for a time."""
        return None


class Staggered:
    """Follow-me: each target joins at its `start_after`; earlier ones keep ringing.

    When nothing rings any more (every earlier target offline, busy or rung out), the next
    stage starts at once rather than leaving the caller on ringing that reaches nobody.
    """

    name = RingStrategy.STAGGERED
    recalls: frozenset[Recall] = frozenset()

    def arrange(
        self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random
    ) -> list[Slot]:
        """Every target once, as written (their `start_after` says when)."""
        return [Slot(i) for i in range(len(legs))]

    def to_start(self, legs: Sequence[LegTurn], elapsed: float) -> list[int]:
        """The waiting legs whose time came; the next stage early when nothing is live."""
        waiting = _waiting(legs)
        due = [i for i in waiting if legs[i].start_after <= elapsed + DUE_SLACK_SECONDS]
        if due or _any_live(legs) or not waiting:
            return due
        first = min(legs[i].start_after for i in waiting)
        return [i for i in waiting if legs[i].start_after == first]

    def next_start(self, legs: Sequence[LegTurn], elapsed: float) -> float | None:
        """The next stage's `start_after`."""
        later = [
            legs[i].start_after
            for i in _waiting(legs)
            if legs[i].start_after > elapsed + DUE_SLACK_SECONDS
        ]
        return min(later, default=None)


class MemoryHunt:
    """The first target, then the first two, then the first three… each round together."""

    name = RingStrategy.MEMORYHUNT
    recalls: frozenset[Recall] = frozenset()

    def arrange(
        self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random
    ) -> list[Slot]:
        """Round k rings the first k targets: a target has a leg in each round from its own."""
        return [Slot(plan, turn) for turn in range(len(legs)) for plan in range(turn + 1)]

    def to_start(self, legs: Sequence[LegTurn], elapsed: float) -> list[int]:
        """Once the round ended, every leg of the next one."""
        waiting = _waiting(legs)
        if _any_live(legs) or not waiting:
            return []
        turn = min(legs[i].turn for i in waiting)
        return [i for i in waiting if legs[i].turn == turn]

    def next_start(self, legs: Sequence[LegTurn], elapsed: float) -> float | None:
        """Nothing waits for a time."""
        return None


def rotated(count: int, turn: int) -> list[int]:
    """0..count-1 starting at `turn` (modulo count): call n of a round robin starts at n."""
    if count == 0:
        return []
    first = turn % count
    return [*range(first, count), *range(first)]


class RoundRobin(Hunt):
    """A hunt starting one target further at each call; the turn is kept in the database,
    so it survives restarts and is shared by every pbxd on one PostgreSQL."""

    name = RingStrategy.ROUNDROBIN
    recalls = frozenset({Recall.TURN})

    def order(self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random) -> list[int]:
        """Starting at this call's turn, wrapping round."""
        return rotated(len(legs), standing.turn)


class LongestIdle(Hunt):
    """A hunt, the target idle longest first (since it last answered or finished a call;
    never: first of all), ties in written order."""

    name = RingStrategy.LONGEST_IDLE
    recalls = frozenset({Recall.IDLE})

    def order(self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random) -> list[int]:
        """Least recently active first."""
        active = standing.last_active

        def key(i: int) -> tuple[bool, float, int]:
            seen = active.get(legs[i].target)
            return (seen is not None, seen.timestamp() if seen is not None else 0.0, i)

        return sorted(range(len(legs)), key=key)


class FewestCalls(Hunt):
    """A hunt, the target with the fewest calls answered today first (the day of the
    called number's time zone), ties in written order."""

    name = RingStrategy.FEWEST_CALLS
    recalls = frozenset({Recall.TODAY})

    def order(self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random) -> list[int]:
        """Fewest answered today first."""
        counts = standing.answered_today
        return sorted(range(len(legs)), key=lambda i: (counts.get(legs[i].target, 0), i))


class RandomHunt(Hunt):
    """A hunt in a random order (the random source is given, so tests can seed it)."""

    name = RingStrategy.RANDOM
    recalls: frozenset[Recall] = frozenset()

    def order(self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random) -> list[int]:
        """A uniformly random order."""
        return rng.sample(range(len(legs)), len(legs))


class Weighted(Hunt):
    """A hunt in a random order where a target of weight 3 comes first three times as often
    as one of weight 1 (Efraimidis-Spirakis: sort by u^(1/w), u uniform in (0, 1])."""

    name = RingStrategy.WEIGHTED
    recalls: frozenset[Recall] = frozenset()

    def order(self, legs: Sequence[LegPlan], standing: Standing, rng: random.Random) -> list[int]:
        """A weighted random order."""
        keys = [(1.0 - rng.random()) ** (1.0 / max(1, leg.weight)) for leg in legs]
        return sorted(range(len(legs)), key=lambda i: -keys[i])


STRATEGIES: dict[RingStrategy, RingStrategyRule] = {
    rule.name: rule
    for rule in (
        RingAll(),
        Hunt(),
        Staggered(),
        MemoryHunt(),
        RoundRobin(),
        LongestIdle(),
        FewestCalls(),
        RandomHunt(),
        Weighted(),
    )
}


def strategy_of(name: RingStrategy) -> RingStrategyRule:
    """The rule implementing a strategy."""
    return STRATEGIES[name]
