"""The clock of a scenario run: any Clock whose wall time can jump forward while nothing runs.

A scenario may place one call on 24 December at 17:55 and the next on the 25th at 10:00 (its
holiday and after-hours paths): playing the night in between, even 1000 times faster, would
take minutes. When no call is up, nothing can observe the gap, so the wall time jumps to the
next call instead. Timers and sleeps run on `monotonic()`, which never jumps: only `now()`
(what the daemon and the simulator stamp events and records with) moves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from pbxd.clock import Clock


class ScenarioClock:
    """`inner`'s time, plus every jump made so far (seconds of wall time skipped)."""

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self.jumped = 0.0
        self.speed = float(getattr(inner, "speed", 1.0))

    def now(self) -> datetime:
        return self.inner.now() + timedelta(seconds=self.jumped)

    def monotonic(self) -> float:
        return self.inner.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self.inner.call_later(seconds, callback)

    def hold(self) -> AbstractContextManager[None]:
        """`inner`'s hold, if it has one (a VirtualClock): time stands still inside."""
        hold = getattr(self.inner, "hold", None)
        return hold() if hold is not None else contextlib.nullcontext()

    def jump(self, seconds: float) -> None:
        """Move the wall time `seconds` forward (never back: CDR times must not go back)."""
        if seconds < 0:
            raise ValueError(f"a scenario clock only jumps forward, not {seconds} s")
        self.jumped += seconds
