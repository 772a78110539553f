"""Starting and stopping the daemon's long-running parts, in one visible place.

`CallService` wires an ARI client, the event stream and the call daemon together; `pbxd run`,
`pbxd simulate` and the tests all start pbxd through it, so they run the same code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from pbxd.ari import AriClient, AsteriskInfo, EventStream
from pbxd.calls.daemon import CallDaemon, CdrStoreLike
from pbxd.calls.desk import CollectorDesk
from pbxd.calls.dnd import DoNotDisturb
from pbxd.calls.roster import MemoryStore
from pbxd.cdr.memory import LINGER_SECONDS, RingMemory
from pbxd.clock import Clock
from pbxd.config.model import Config
from pbxd.voicemail.collector import AriRecordings
from pbxd.voicemail.service import VoicemailService

log = structlog.get_logger("pbxd.runtime")

STREAM_RESTART_S = 0.1  # delay before restarting a failed event stream, doubling each time
STREAM_RESTART_MAX_S = 5.0
STREAM_HEALTHY_S = 60.0  # a stream that ran this long restarts from the first delay again
MEMORY_FLUSH_SECONDS = 5.0  # at stop, the longest wait for the ring memory's last batch


@dataclass(frozen=True, slots=True)
class AriEndpoint:
    """Where and how to reach ARI (the password is only held in memory)."""

    url: str
    username: str
    password: str = field(repr=False)
    app: str


class CallService:
    """pbxd's call path against one Asterisk: REST client, events, daemon."""

    def __init__(
        self,
        config: Config,
        ari: AriEndpoint,
        cdr: CdrStoreLike,
        clock: Clock,
        *,
        heartbeat: float = 10.0,
        asterisk: AsteriskInfo | None = None,
        owns: Callable[[], bool] | None = None,
        on_app_replaced: Callable[[], None] | None = None,
        memory: MemoryStore | None = None,
        rng: random.Random | None = None,
        dnd: DoNotDisturb | None = None,
    ) -> None:
        """`asterisk`: who ARI is, when already asked; `owns` and `on_app_replaced`: an
        active/standby pair's lease and fence (pbxd.ha), handed to the daemon. `memory`:
        what strategies remember and do-not-disturb; by default in the CDR store's database.
        `rng`: the random source of random and weighted ringing. `dnd`: the do-not-disturb
        flags (the HTTP API's), kept in `memory`."""
        self._owns = owns
        self._on_app_replaced = on_app_replaced
        self._session: aiohttp.ClientSession | None = None
        self._ari = ari
        self._heartbeat = heartbeat
        self.config = config
        self.cdr = cdr
        self.clock = clock
        engine = getattr(cdr, "engine", None)
        self.memory = memory or (
            RingMemory(engine, linger=LINGER_SECONDS) if isinstance(engine, AsyncEngine) else None
        )
        self.rng = rng or random.Random()
        self.dnd = dnd or DoNotDisturb()
        self.client: AriClient | None = None
        self.daemon: CallDaemon | None = None
        self.stream: EventStream | None = None
        self.voicemail: VoicemailService | None = None
        self.asterisk = asterisk
        self._stream_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stream_failures = 0  # times the event stream died and was restarted

    def use_config(self, config: Config) -> None:
        """Plan new calls on `config` from now on (a reload); calls in progress keep their flow.

        The daemon's count of outbound legs per trunk stays: legs up now still count against
        the new configuration's limits.
        """
        self.config = config
        if self.daemon is not None:
            self.daemon.config = config
            self.daemon.follow_config()

    async def start(self) -> None:
        """Connect; returns once the event stream is up (calls flow from then on)."""
        self._session = aiohttp.ClientSession()
        self.client = AriClient(
            self._ari.url,
            self._ari.username,
            self._ari.password,
            self._ari.app,
            session=self._session,
        )
        # Copies recorded messages off Asterisk and mails them, never in a call's task.
        self.voicemail = VoicemailService(
            self.config.settings, AriRecordings(self.client), self.clock
        )
        self.voicemail.start()
        self.daemon = CallDaemon(
            self.config,
            self.client,
            self.cdr,
            self.clock,
            desk=CollectorDesk(self.voicemail.collector),
            asterisk=self.asterisk,
            owns=self._owns,
            on_app_replaced=self._on_app_replaced,
            memory=self.memory,
            rng=self.rng,
            dnd=self.dnd,
        )
        self.stream = EventStream(
            self._ari.url,
            self._ari.username,
            self._ari.password,
            self._ari.app,
            self.daemon.on_event,
            on_connected=self.daemon.on_connected,
            on_disconnected=self.daemon.on_disconnected,
            on_bad_event=self.daemon.on_bad_event,
            heartbeat=self._heartbeat,
            session=self._session,
            clock=self.clock,
        )
        self._stream_task = asyncio.create_task(
            self._keep_stream_running(self.stream), name="ari-events"
        )
        await self.stream.wait_connected()
        log.info("connected to ARI", url=self._ari.url, app=self._ari.app)

    async def _keep_stream_running(self, stream: EventStream) -> None:
        """Run `stream` until `stop()`; if it ever dies, log why and run it again.

        Without events pbxd would look alive while every new call waited for a controller
        that never comes, so a failed stream is never left dead.
        """
        # Restart in-process, not exit for systemd: calls in progress keep controllers and timers.
        delay = STREAM_RESTART_S
        while not self._stopping:
            started = self.clock.monotonic()
            error: Exception | None = None
            try:
                await stream.run()
            except Exception as exc:
                error = exc
            if error is None and self._stopping:
                return
            if self.clock.monotonic() - started >= STREAM_HEALTHY_S:
                delay = STREAM_RESTART_S
            self.stream_failures += 1
            log.error(
                "ari event stream died; restarting it",
                url=self._ari.url,
                app=self._ari.app,
                error=repr(error) if error else "run() returned without stop()",
                restart_in_s=delay,
                failures=self.stream_failures,
                exc_info=error,
            )
            await self.clock.sleep(delay)
            delay = min(delay * 2, STREAM_RESTART_MAX_S)

    async def stop(self) -> None:
        """Stop reading events and driving calls; calls stay up on Asterisk for adoption."""
        self._stopping = True
        if self.stream is not None:
            await self.stream.stop()
        if self._stream_task is not None:
            # Still waiting to restart a failed stream: nothing left to wait for.
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream_task
        await self.dnd.flush()  # a flag just set is kept
        if self.daemon is not None:
            await self.daemon.stop()
        if isinstance(self.memory, RingMemory):
            # What the last calls taught is kept, unless the database is away: no hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MEMORY_FLUSH_SECONDS):
                    await self.memory.flush()
        if self.voicemail is not None:
            await self.voicemail.stop()  # its jobs are on disk: the next start goes on
        if self._session is not None:
            await self._session.close()
        log.info("call service stopped")
