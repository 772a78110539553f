"""One pbxd of an active/standby pair: stand by, take over, own the Stasis app, fence.

Both pbxd of a pair run `ActiveStandby.run()`. Each asks Asterisk who it is (the lock is
keyed by the app and that identity), then tries the PostgreSQL lock every `poll_every`
seconds. The one that gets it waits out the previous active's lease (`lease.py`), then
starts the call service, which connects the app's WebSocket and recovers the calls in
progress exactly as a restart does. While active it checks every `check_every` seconds that
it still holds the lock; when it cannot prove it before its lease ends, when the lock is
gone, or when Asterisk says another client took the app (ApplicationReplaced), it fences:
it stops driving calls (they stay up on Asterisk), drops its session (so the lock), and
stands by again. Until it has stopped, the call daemon ignores events once the lease ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog

from pbxd.ari import AsteriskInfo
from pbxd.clock import Clock
from pbxd.ha.lease import Lease, PairTimings, Role, lock_key
from pbxd.ha.lock import AppLock

log = structlog.get_logger("pbxd.ha")
_T = TypeVar("_T")


class Driver(Protocol):
    """What the active runs: the call service (an adapter of it in `pbxd run`)."""

    async def start(self) -> None:
        """Connect and recover; returns once calls are driven."""
        ...

    async def stop(self) -> None:
        """Stop driving calls; they stay up on Asterisk."""
        ...


class Ownership(Protocol):
    """What the active's driver is given: whether it may act, and how to report a rival."""

    def owns(self) -> bool:
        """True while the lease is valid: events may be acted on."""
        ...

    def replaced(self) -> None:
        """Asterisk sent ApplicationReplaced: another client took the app."""
        ...


MakeDriver = Callable[[AsteriskInfo, Ownership], Driver]


class ActiveStandby:
    """The pair's state machine for one pbxd (see the module docstring)."""

    def __init__(
        self,
        app: str,
        identify: Callable[[], Awaitable[AsteriskInfo]],
        lock_for: Callable[[tuple[int, int]], AppLock],
        make_driver: MakeDriver,
        clock: Clock,
        timings: PairTimings | None = None,
    ) -> None:
        self.app = app
        self.timings = timings or PairTimings()
        self.role = Role.STARTING
        self.server: str | None = None
        self.driver: Driver | None = None  # the active's call service, None on standby
        self.ready = asyncio.Event()  # standing by, or active with its calls recovered
        self.takeovers = 0
        self.fences: list[str] = []  # why this pbxd stopped owning the app, in order
        self._identify = identify
        self._lock_for = lock_for
        self._make_driver = make_driver
        self._clock = clock
        self._lease: Lease | None = None
        self._replaced = asyncio.Event()

    # ------------------------------------------------------------ Ownership

    def owns(self) -> bool:
        """True while this pbxd is active and its lease has not run out."""
        lease = self._lease
        return lease is not None and lease.valid(self._clock.monotonic())

    def replaced(self) -> None:
        """Another client registered our Stasis app on Asterisk: fence at once."""
        self._replaced.set()

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Stand by, take over, own, fence, forever (until cancelled)."""
        info = await self._identify()
        self.server = info.server
        lock = self._lock_for(lock_key(self.app, info.server))
        try:
            while True:
                acquired_at = await self._stand_by(lock)
                lease = await self._wait_out_previous_lease(lock, acquired_at)
                if lease is None:
                    continue
                reason = await self._own(lock, info, lease)
                self.fences.append(reason)
                log.warning("ha_fenced", app=self.app, server=self.server, reason=reason)
        finally:
            self._lease = None
            with contextlib.suppress(Exception):
                await lock.close()

    async def _stand_by(self, lock: AppLock) -> float:
        """Poll the lock until this session gets it; the moment the winning try was sent."""
        connected = False
        delay = self.timings.poll_every
        announced = False
        while True:
            if not connected:
                try:
                    await lock.connect()
                    connected, delay = True, self.timings.poll_every
                except Exception as exc:
                    log.warning("ha_lock_unreachable", error=_describe(exc), retry_in_s=delay)
                    await self._clock.sleep(delay)
                    delay = min(delay * 2, self.timings.reconnect_max)
                    continue
            sent = self._clock.monotonic()
            try:
                got = await lock.try_acquire()
            except Exception as exc:
                log.warning("ha_lock_lost", error=_describe(exc), role=str(self.role))
                await lock.close()
                connected = False
                continue
            if got:
                self.role = Role.TAKING_OVER
                log.info("ha_lock_acquired", app=self.app, server=self.server)
                return sent
            if not announced:
                self.role = Role.STANDBY
                self.ready.set()
                announced = True
                log.info("ha_standby", app=self.app, server=self.server)
            await self._clock.sleep(self.timings.poll_every)

    async def _wait_out_previous_lease(self, lock: AppLock, acquired_at: float) -> Lease | None:
        """Wait `fence_after` (the old active fences itself meanwhile), then prove the lock is
        still ours: the lease to own the app with, or None to stand by again."""
        await self._clock.sleep(
            max(0.0, acquired_at + self.timings.fence_after - self._clock.monotonic())
        )
        sent = self._clock.monotonic()
        try:
            held = await lock.still_held()
        except Exception as exc:
            log.warning("ha_lock_lost", error=_describe(exc), role=str(self.role))
            held = False
        if not held:
            await lock.close()
            return None
        return Lease(sent, self.timings.fence_after)

    async def _own(self, lock: AppLock, info: AsteriskInfo, lease: Lease) -> str:
        """Drive the calls until the lease cannot be renewed; why it stopped."""
        self._replaced.clear()
        self._lease = lease
        self.role = Role.ACTIVE
        self.takeovers += 1
        driver = self._make_driver(info, self)
        self.driver = driver
        started = self._clock.monotonic()
        starting = asyncio.create_task(driver.start(), name="pbxd-ha-start")
        starting.add_done_callback(lambda _task: self._started(_task, started))
        try:
            return await self._hold(lock, starting)
        finally:
            self._lease = None
            self.role = Role.STANDBY
            starting.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await starting
            try:
                await driver.stop()
            except Exception as exc:
                log.error("ha_stop_failed", error=_describe(exc))
            self.driver = None
            await lock.close()  # releases the lock if this session still had it

    def _started(self, task: asyncio.Task[None], started: float) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        self.ready.set()
        log.info(
            "ha_active",
            app=self.app,
            server=self.server,
            start_s=round(self._clock.monotonic() - started, 3),
            takeovers=self.takeovers,
        )

    async def _hold(self, lock: AppLock, starting: asyncio.Task[None]) -> str:
        """Renew the lease every `check_every` seconds; return why it could not be."""
        while True:
            lease = self._lease
            assert lease is not None
            now = self._clock.monotonic()
            pause = min(self.timings.check_every, max(0.0, lease.expires_at - now))
            reason = await self._interrupted(self._clock.sleep(pause), starting)
            if reason is not None:
                return reason
            if not lease.valid(self._clock.monotonic()):
                return "lease expired before a check could run (event loop stalled?)"
            sent = self._clock.monotonic()
            try:
                held = await self._within_lease(lock.still_held(), lease, starting)
            except _Fence as fence:
                return fence.reason
            except Exception as exc:
                return f"lock connection lost: {_describe(exc)}"
            if not held:
                return "the lock is no longer held by this session"
            self._lease = lease.confirmed(sent)

    async def _interrupted(self, wait: Awaitable[None], starting: asyncio.Task[None]) -> str | None:
        """Run `wait`; a reason to fence if the app was replaced or the start failed first."""
        try:
            await self._within_lease(wait, None, starting)
        except _Fence as fence:
            return fence.reason
        return None

    async def _within_lease(
        self, work: Awaitable[_T], lease: Lease | None, starting: asyncio.Task[None]
    ) -> _T:
        """`work`'s result, unless the app is replaced, the start fails or (with a lease) the
        lease ends first: then `_Fence` says why."""
        task: asyncio.Future[_T] = asyncio.ensure_future(work)
        replaced = asyncio.ensure_future(self._replaced.wait())
        timer = None
        if lease is not None:
            remaining = lease.expires_at - self._clock.monotonic()
            timer = asyncio.ensure_future(self._clock.sleep(max(0.0, remaining)))
        try:
            while True:
                waits: set[asyncio.Future[Any]] = {task, replaced}
                if timer is not None:
                    waits.add(timer)
                if not starting.done():
                    waits.add(starting)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if replaced.done():
                    raise _Fence(
                        "Asterisk gave the Stasis app to another client (ApplicationReplaced)"
                    )
                if starting.done() and not starting.cancelled() and starting.exception():
                    error = starting.exception()
                    assert error is not None
                    raise _Fence(f"the call service failed to start: {_describe(error)}")
                if task.done():
                    return task.result()
                if timer is not None and timer.done():
                    raise _Fence("PostgreSQL did not confirm the lock before the lease ended")
        finally:
            for future in (task, replaced, timer):
                if future is not None and not future.done():
                    future.cancel()

    # ------------------------------------------------------------ status

    def status(self, active_status: Callable[[], str]) -> str:
        """systemd's STATUS line: the role first, then what the active does."""
        where = f"app {self.app} on {self.server}" if self.server else f"app {self.app}"
        match self.role:
            case Role.STARTING:
                return f"standby (starting): asking Asterisk who it is for {where}"
            case Role.STANDBY:
                return f"standby: another pbxd is active for {where}"
            case Role.TAKING_OVER:
                return f"taking over {where}: waiting out the previous active's lease"
            case Role.ACTIVE:
                return f"active for {where}; {active_status()}"


class _Fence(Exception):
    """Raised inside `_hold` to stop owning the app, with the reason for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"
