"""Time for the whole daemon: real, or scaled so a simulated call runs faster than life.

The simulator and the call controllers share one Clock in `pbxd simulate`, so a 20 s ring
time and a callee answering "after 5 s" stay consistent while the run takes a fraction of
that. Wall times reported by a ScaledClock advance at the virtual rate, so CDR durations
read as they would on a real system.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the daemon and the simulator need to know about time."""

    def now(self) -> datetime:
        """The current UTC time (timezone-aware)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic, virtual-time scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of virtual time."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run `callback` on the running loop after `seconds` of virtual time."""
        ...


class RealClock:
    """Wall-clock time; the only clock used against a real Asterisk."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)


class ScaledClock:
    """Virtual time running `speed` times faster than real time, from a fixed origin."""

    def __init__(self, speed: float = 1.0, origin: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._origin = origin or datetime.now(UTC)
        self._start = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._start) * self.speed

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, seconds) / self.speed, callback)
