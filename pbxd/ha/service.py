"""`pbxd run` with `ha: {mode: active-standby}`: the call service, started and stopped by the
pair (`pair.py`) as this pbxd becomes active or fences; the rest of `pbxd run` sees one
object with the call service's `start`/`stop`/`daemon`/`stream`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp
import structlog

from pbxd.ari import AriClient, AsteriskInfo, EventStream
from pbxd.calls.daemon import CallDaemon, CdrStoreLike, identify_asterisk
from pbxd.calls.dnd import DoNotDisturb
from pbxd.calls.runtime import AriEndpoint, CallService
from pbxd.calls.session import CallSession
from pbxd.clock import Clock
from pbxd.config.model import Config
from pbxd.ha.lease import PairTimings, Role
from pbxd.ha.lock import PgAppLock
from pbxd.ha.pair import ActiveStandby, Ownership

log = structlog.get_logger("pbxd.ha")


class _ActiveCalls:
    """The pair's driver: a call service, started until its calls are recovered."""

    def __init__(
        self, service: CallService, on_call_finished: Callable[[CallSession], None] | None
    ) -> None:
        self.service = service
        self._on_call_finished = on_call_finished

    async def start(self) -> None:
        await self.service.start()
        daemon = self.service.daemon
        if daemon is not None:
            daemon.on_call_finished = daemon.on_call_finished or self._on_call_finished
            await daemon.recovered.wait()

    async def stop(self) -> None:
        await self.service.stop()


class PairedService:
    """One pbxd of an active/standby pair, shaped like `CallService` for `pbxd run`."""

    def __init__(
        self,
        config: Config,
        ari: AriEndpoint,
        cdr: CdrStoreLike,
        clock: Clock,
        *,
        timings: PairTimings | None = None,
        dnd: DoNotDisturb | None = None,
    ) -> None:
        """As `CallService` (`dnd` is handed to each takeover's); `timings`: the pair's."""
        self.config = config
        self._dnd = dnd
        self._ari = ari
        self._cdr = cdr
        self._clock = clock
        self.active: CallService | None = None  # the call service while this pbxd is active
        # Told of each ended call, whichever takeover's daemon drove it (the metrics).
        self.on_call_finished: Callable[[CallSession], None] | None = None
        self.pair = ActiveStandby(
            ari.app,
            self._identify,
            lambda key: PgAppLock(config.settings.database_url, key),
            self._drive,
            clock,
            timings,
        )
        self._running: asyncio.Task[None] | None = None

    async def _identify(self) -> AsteriskInfo:
        """Who the Asterisk is (the lock's key), asked over REST: no WebSocket yet."""
        async with aiohttp.ClientSession() as session:
            client = AriClient(
                self._ari.url,
                self._ari.username,
                self._ari.password,
                self._ari.app,
                session=session,
            )
            return await identify_asterisk(client, self._clock)

    def _drive(self, info: AsteriskInfo, ownership: Ownership) -> _ActiveCalls:
        self.active = CallService(
            self.config,
            self._ari,
            self._cdr,
            self._clock,
            asterisk=info,
            owns=ownership.owns,
            on_app_replaced=ownership.replaced,
            dnd=self._dnd,
        )
        return _ActiveCalls(self.active, self.on_call_finished)

    def use_config(self, config: Config) -> None:
        """A reload: the active plans new calls on `config`, and so does a later takeover."""
        self.config = config
        if self.active is not None:
            self.active.use_config(config)

    async def start(self) -> None:
        """Run the pair; returns once standing by, or active with its calls recovered."""
        self._running = asyncio.create_task(self.pair.run(), name="pbxd-ha")
        ready = asyncio.create_task(self.pair.ready.wait())
        try:
            await asyncio.wait({self._running, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._running.done():
            await self._running  # its exception says why the pair could not run

    async def stop(self) -> None:
        """Stop: the active's calls stay up on Asterisk; the other pbxd takes them over."""
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running

    @property
    def role(self) -> Role:
        """Standby, taking over, or active."""
        return self.pair.role

    @property
    def daemon(self) -> CallDaemon | None:
        """The active's call daemon; None on standby."""
        return self.active.daemon if self.active is not None and self.pair.driver else None

    @property
    def stream(self) -> EventStream | None:
        """The active's ARI event stream; None on standby."""
        return self.active.stream if self.active is not None and self.pair.driver else None
