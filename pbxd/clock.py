"""Time for the whole daemon: real, or scaled so a simulated call runs faster than life.

The simulator and the call controllers share one Clock in `pbxd simulate`, so a 20 s ring
time and a callee answering "after 5 s" stay consistent while the run takes a fraction of
that. Wall times reported by a ScaledClock advance at the virtual rate, so CDR durations
read as they would on a real system.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")
# A virtual timer: due time, tie-break, the handle given out, its callback and context.
# The handle alone holds the callback (and its context): cancelling it lets the callback go
# at once, as asyncio's own timers do, so nothing a cancelled timer closed over stays alive.
_Timer = tuple[float, int, asyncio.TimerHandle]


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


class Stalled(TimeoutError):
    """A virtual-clock wait that can never end: nothing scheduled, nothing running."""


class VirtualClock:
    """Virtual time that moves only when its driver (a test) says so, and only when the
    process has nothing left to do at the current instant.

    `call_later`/`sleep` queue timers on the clock, not on the event loop. Timers already
    due run at once; later ones wait until `advance`, `run_until` or `drive` moves time to
    them, one instant at a time (its timers together, in order), each once the loop is
    quiet: no ready callback for a few rounds (loopback I/O shows up within one) and no
    `hold()` open. So the order in which
    things happen is fixed by virtual time alone, never by how loaded the machine is.
    Work outside the loop (a database answering) is bracketed by `hold()`: time stands
    still until it is done, so a slow database never changes what a call does.
    """

    def __init__(
        self,
        origin: datetime | None = None,
        *,
        quiet_rounds: int = 3,
        stall_seconds: float = 2.0,
    ) -> None:
        # A whole second, as ARI timestamps keep only milliseconds: none reads before now().
        self._origin = origin or datetime.now(UTC).replace(microsecond=0)
        self._now = 0.0
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._holds = 0
        self._released: asyncio.Event | None = None
        self._driving = False
        self._draining = False
        self.quiet_rounds = quiet_rounds
        self.stall_seconds = stall_seconds  # real seconds a wait with nothing scheduled may poll

    # ------------------------------------------------------------ the Clock protocol
    def now(self) -> datetime:
        return self._origin + timedelta(seconds=self._now)

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_later(seconds, wake)
        try:
            await future
        finally:
            handle.cancel()

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        when = self._now + max(0.0, seconds)
        handle = asyncio.TimerHandle(when, callback, (), loop, contextvars.copy_context())
        timer = (when, next(self._seq), handle)
        heapq.heappush(self._timers, timer)
        if when <= self._now:
            loop.call_soon(self._fire_due)
        return handle

    # ------------------------------------------------------------------ driving
    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Time stands still inside: wrap work whose answer comes from outside the loop."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0 and self._released is not None:
                self._released.set()

    async def settle(self) -> None:
        """Return once everything due at the current instant has run and the loop is quiet."""
        loop = asyncio.get_running_loop()
        if not hasattr(loop, "_ready"):
            raise RuntimeError("VirtualClock needs asyncio's own event loop (it reads _ready)")
        quiet = 0
        while quiet < self.quiet_rounds:
            if self._holds:
                self._released = asyncio.Event()
                await self._released.wait()
                quiet = 0
                continue
            await asyncio.sleep(0)
            # Timers due now were handed to the loop by call_later: they show up as ready.
            quiet = 0 if loop._ready else quiet + 1

    async def advance(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass, running every timer due meanwhile in order."""
        target = self._now + max(0.0, seconds)
        async with self._driver():
            await self._run_to(lambda: False, target, stall=False)
            self._now = max(self._now, target)
            await self.settle()

    async def run_until(
        self, done: Callable[[], bool], *, within: float | None = None, what: str = ""
    ) -> None:
        """Move time on, timer by timer, until `done()` holds at a quiet moment.

        Raises TimeoutError once `within` virtual seconds would pass, and Stalled when
        nothing is scheduled and nothing happens for `stall_seconds` of real time.
        """
        limit = None if within is None else self._now + within
        async with self._driver():
            if not await self._run_to(done, limit):
                raise TimeoutError(f"not within {within} virtual s: {what or done}")

    async def drive(self, awaitable: Awaitable[T], *, within: float | None = None) -> T:
        """Await `awaitable` while moving time on as `run_until` does."""
        task = asyncio.ensure_future(awaitable)
        try:
            await self.run_until(task.done, within=within, what=repr(awaitable))
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return task.result()

    # ---------------------------------------------------------------- internals
    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[None]:
        if self._driving:
            raise RuntimeError("virtual clock already driven by another wait")
        self._driving = True
        try:
            yield
        finally:
            self._driving = False

    async def _run_to(
        self, done: Callable[[], bool], limit: float | None, *, stall: bool = True
    ) -> bool:
        """Fire timers in order up to `limit` until `done()`; False when `limit` is hit."""
        while True:
            await self.settle()
            if done():
                return True
            when = self._next_when()
            if when is None:
                if not stall:
                    return False  # advance() moves to its target itself
                if not await self._await_anything(done):
                    raise Stalled("nothing scheduled on the virtual clock and nothing running")
                continue
            if limit is not None and when > limit:
                self._now = max(self._now, limit)
                return False
            self._now = max(self._now, when)
            self._fire_due()

    async def _await_anything(self, done: Callable[[], bool]) -> bool:
        """Nothing scheduled: poll (real time, virtual time still) for outside work to land."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stall_seconds
        while loop.time() < deadline:
            await asyncio.sleep(0.005)
            await self.settle()
            if done() or self._next_when() is not None:
                return True
        return False

    def _next_when(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled():
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _next_due(self) -> float | None:
        when = self._next_when()
        return when if when is not None and when <= self._now else None

    def _fire_one(self) -> None:
        _, _, handle = heapq.heappop(self._timers)
        if not handle.cancelled():
            # asyncio's own run: the callback in its context; an exception goes to the
            # loop's handler, so a timer that fails does not stop time for the others.
            handle._run()

    def _fire_due(self) -> None:
        """Fire every timer due now, in order, as one batch (as a loop iteration would)."""
        while self._next_due() is not None:
            self._fire_one()


class HeldDuringAwaits:
    """`inner` seen through a VirtualClock: its coroutine methods run with time held.

    A database answers from outside the event loop; holding virtual time until it has
    answered keeps a slow answer (a loaded machine) from letting a timer overtake it.
    Anything else is `inner`'s own attribute.
    """

    def __init__(self, inner: object, clock: VirtualClock) -> None:
        self._inner = inner
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        clock = self._clock

        @functools.wraps(attr)
        async def held(*args: Any, **kwargs: Any) -> Any:
            with clock.hold():
                return await attr(*args, **kwargs)

        return held


def held_on(clock: object, inner: T) -> T:
    """`inner` itself, or, on a VirtualClock, `inner` with time held while it answers."""
    if isinstance(clock, VirtualClock):
        return cast(T, HeldDuringAwaits(inner, clock))
    return inner


async def off_loop(clock: Clock, func: Callable[..., T], /, *args: Any) -> T:
    """`asyncio.to_thread(func, *args)`, with `clock`'s time held meanwhile if it is virtual.

    The answer comes from a thread, which a VirtualClock cannot see: without the hold it would
    take the quiet loop for idle and move time on before the file work is done.
    """
    hold = getattr(clock, "hold", None)
    with hold() if hold is not None else contextlib.nullcontext():
        return await asyncio.to_thread(func, *args)
