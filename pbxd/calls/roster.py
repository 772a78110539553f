"""Who may be rung now, and what pbxd remembers of each target: what a ring step asks.

The roster joins the live facts (which softphones are registered, who is set to
do-not-disturb, who is on a pbxd call) and the strategies' memory in the database. A ring
step asks it for its targets' standing once at entry (only what its strategy needs) and
whether each leg is to be skipped; the session tells it when a target answered and when
that call ended. Its database writes never run in a call's task, and a database that does
not answer in time costs the call its memory (it rings as written), never its ringing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from pbxd.calls.dnd import DndStore, DoNotDisturb
from pbxd.calls.journal import LegEnd
from pbxd.calls.presence import Presence
from pbxd.calls.strategies import NO_STANDING, Recall, Standing
from pbxd.dialplan.flow import LegPlan, RingStep

log = structlog.get_logger("pbxd.calls")

# A ring step waits at most this long for the database before ringing without memory.
MEMORY_WAIT_SECONDS = 2.0


class StrategyMemory(Protocol):
    """What the strategies remember (`pbxd.cdr.memory.RingMemory`)."""

    async def take_turn(self, memory: str) -> int:
        """This call's round-robin turn."""
        ...

    async def last_active(self, targets: Sequence[str]) -> dict[str, datetime]:
        """When each target last answered or finished a call."""
        ...

    async def answered_on(self, targets: Sequence[str], day: date) -> dict[str, int]:
        """Calls each target answered on a local day."""
        ...

    async def note_answered(self, target: str, at: datetime, day: date) -> None:
        """A target answered."""
        ...

    async def note_call_over(self, target: str, at: datetime) -> None:
        """A target's answered call ended."""
        ...


class MemoryStore(StrategyMemory, DndStore, Protocol):
    """The database side of the roster: strategies' memory and do-not-disturb flags."""


def skip_reason(
    plan: LegPlan, *, offline: bool, dnd: bool, on_call: bool, skip_busy: bool
) -> LegEnd | None:
    """Why a leg is not rung at all (None: ring it). Do-not-disturb first: it is a choice."""
    if dnd:
        return LegEnd.DND
    if offline and plan.softphone is not None:
        return LegEnd.OFFLINE
    if skip_busy and on_call:
        return LegEnd.ON_CALL
    return None


def local_day(at: datetime, timezone: str) -> date:
    """The date at `at` in `timezone` (a day of calls is the called number's day)."""
    try:
        return at.astimezone(ZoneInfo(timezone)).date()
    except (KeyError, ValueError):
        return at.date()


Spawn = Callable[[Coroutine[Any, Any, None], str], None]


def _never_on_call(target: str) -> bool:
    return False


@dataclass
class Roster:
    """Presence, do-not-disturb, calls in progress and the strategies' memory."""

    presence: Presence = field(default_factory=Presence)
    dnd: DoNotDisturb | None = None
    memory: StrategyMemory | None = None
    rng: random.Random = field(default_factory=random.Random)
    on_call: Callable[[str], bool] = _never_on_call
    spawn: Spawn | None = None  # runs a memory write outside the call's task

    def skip(self, plan: LegPlan, step: RingStep) -> LegEnd | None:
        """Why this leg of `step` is not rung (None: ring it)."""
        endpoint = plan.softphone
        return skip_reason(
            plan,
            offline=endpoint is not None and self.presence.is_offline(endpoint),
            dnd=self.dnd is not None and self.dnd.is_on(plan.target),
            on_call=step.skip_busy and self.on_call(plan.target),
            skip_busy=step.skip_busy,
        )

    async def standing(
        self, recalls: frozenset[Recall], step: RingStep, timezone: str, now: datetime
    ) -> Standing:
        """What the database remembers of `step`'s targets, as far as `recalls` asks."""
        if not recalls or self.memory is None:
            return NO_STANDING
        memory = self.memory
        targets = list(dict.fromkeys(leg.target for leg in step.legs))
        try:
            async with asyncio.timeout(MEMORY_WAIT_SECONDS):
                turn = await memory.take_turn(step.memory) if Recall.TURN in recalls else 0
                active = await memory.last_active(targets) if Recall.IDLE in recalls else {}
                today = (
                    await memory.answered_on(targets, local_day(now, timezone))
                    if Recall.TODAY in recalls
                    else {}
                )
        except Exception as exc:
            log.warning("ring_memory_unavailable", error=repr(exc), step=step.name)
            return NO_STANDING
        return Standing(turn, active, today)

    def answered(self, target: str, at: datetime, timezone: str) -> None:
        """`target` answered a call to a number of `timezone` at `at`."""
        if self.memory is not None and self.spawn is not None:
            self.spawn(
                self._write(self.memory.note_answered(target, at, local_day(at, timezone))),
                f"memory answered {target}",
            )

    def call_over(self, target: str, at: datetime) -> None:
        """The call `target` answered ended at `at`."""
        if self.memory is not None and self.spawn is not None:
            self.spawn(self._write(self.memory.note_call_over(target, at)), f"memory over {target}")

    @staticmethod
    async def _write(write: Coroutine[Any, Any, None]) -> None:
        try:
            async with asyncio.timeout(MEMORY_WAIT_SECONDS * 5):
                await write
        except Exception as exc:
            log.warning("ring_memory_not_written", error=repr(exc))
