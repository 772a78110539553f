"""The ARI event WebSocket: read events for our Stasis app forever, reconnecting with backoff.

Asterisk drops a WebSocket whose reader stalls (~100 ms), so the reader never awaits user
code: each message is parsed and handed to the synchronous `on_event` (which must only
enqueue), and `on_connected` (call resync) runs as its own task after every (re)connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import structlog

from pbxd.ari._auth import basic_auth_header, without_credentials
from pbxd.ari.errors import AriEventError
from pbxd.ari.events import Event, parse_event
from pbxd.clock import Clock, RealClock
from pbxd.log import LogBudget
from pbxd.metrics import ARI_BAD_EVENTS

# Not pbxd.log.get_logger: its `logger=` initial value collides with structlog's wrap_logger.
log = structlog.get_logger(logger_name=__name__)

_T = TypeVar("_T")

OnEvent = Callable[[Event], None]
OnConnected = Callable[[], Awaitable[None]]
OnBadEvent = Callable[[dict[str, Any] | str, Exception], None]

# What a refused handshake most likely means, for the one log line per attempt.
_HANDSHAKE_HINTS = {
    401: "Asterisk refused the ARI username or password (ari.conf user, PBXD_ARI_PASSWORD)",
    403: "Asterisk refused the ARI username or password (ari.conf user, PBXD_ARI_PASSWORD)",
    404: "no ARI events endpoint yet (Asterisk starting, or ARI/HTTP disabled)",
    503: "ARI not ready (Asterisk starting)",
}


def events_url(base_url: str) -> str:
    """The event WebSocket URL for an ARI base URL: http://h:8088/ari -> ws://h:8088/ari/events."""
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url.removeprefix("https://")
    elif url.startswith("http://"):
        url = "ws://" + url.removeprefix("http://")
    return url + "/events"


class EventStream:
    """Reads ARI events for one Stasis application, reconnecting forever until `stop()`.

    Backoff between attempts starts at `backoff_initial` seconds and doubles up to
    `backoff_max`; it is reset once a connection has stayed up `healthy_after` seconds.
    `clock` paces the backoff (tests inject a recording clock). An `on_event` call taking
    `slow_handler` seconds or more is logged: Asterisk drops a reader stalled for ~100 ms.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        on_event: OnEvent,
        *,
        on_connected: OnConnected | None = None,
        on_disconnected: Callable[[], None] | None = None,
        on_bad_event: OnBadEvent | None = None,
        heartbeat: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        healthy_after: float = 5.0,
        connect_timeout: float = 10.0,
        slow_handler: float = 0.05,
        bad_event_budget: LogBudget | None = None,
    ) -> None:
        base_url, had_credentials = without_credentials(base_url)
        self.url = events_url(base_url)
        self.app = app
        if had_credentials:
            log.warning("ari_url_credentials_ignored", url=self.url)
        self._headers = basic_auth_header(username, password)
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_bad_event = on_bad_event
        self._heartbeat = heartbeat if heartbeat > 0 else None
        self._session = session
        self._clock: Clock = clock or RealClock()
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._healthy_after = healthy_after
        self._connect_timeout = connect_timeout
        self._slow_handler = slow_handler
        # 50,000 garbage messages once wrote 20 MB of warnings: the metric counts them all.
        self._bad_event_budget = bad_event_budget or LogBudget(burst=10, interval=60.0)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._running = False
        self._finished = asyncio.Event()
        self._phase: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # successful connections so far, for health reports and tests

    def __repr__(self) -> str:
        return f"EventStream(url={self.url!r}, app={self.app!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._ws is not None and not self._ws.closed

    async def wait_connected(self) -> None:
        """Return once the WebSocket is open (at once if it already is)."""
        await self._connected.wait()

    async def stop(self) -> None:
        """End `run()`: close the WebSocket, abandon any backoff, and wait for `run()` to return.

        A stopped stream stays stopped; calling `stop()` before `run()` makes `run()` return.
        """
        self._stopping = True
        if self._phase is not None:
            self._phase.cancel()
        if self._running:
            await self._finished.wait()

    async def run(self) -> None:
        """Connect, read events and reconnect forever, until `stop()` is called."""
        if self._running:
            raise RuntimeError("EventStream.run() is already running")
        self._running = True
        self._finished.clear()
        session = self._session or aiohttp.ClientSession()
        delay = self._backoff_initial
        attempt = 0
        try:
            while not self._stopping:
                attempt += 1
                outcome = await self._interruptible(self._connect(session))
                if outcome is None:  # stopped while connecting
                    break
                ws, error = outcome
                if ws is not None and self._stopping:  # stop() came as the handshake ended
                    await ws.close()
                    break
                if ws is not None:
                    log.info("ari_events_connected", url=self.url, app=self.app, attempt=attempt)
                    self.connections += 1
                    started = self._clock.monotonic()
                    try:
                        await self._interruptible(self._read(ws))
                    except Exception:
                        # Whatever broke the reader, the cure is a fresh connection.
                        log.exception("ari_events_reader_failed", url=self.url)
                    if self._clock.monotonic() - started >= self._healthy_after:
                        delay, attempt = self._backoff_initial, 0  # a healthy run resets backoff
                    error = f"connection closed (code {ws.close_code})"
                if self._stopping:
                    break
                # One line per attempt: which attempt comes next, after how long, and why.
                log.warning(
                    "ari_events_retry",
                    url=self.url,
                    attempt=attempt + 1,
                    delay_s=delay,
                    error=error,
                )
                await self._interruptible(self._clock.sleep(delay))
                delay = min(delay * 2, self._backoff_max)
        finally:
            await self._cancel_tasks()
            if self._session is None:
                await session.close()
            self._running = False
            self._finished.set()
            log.info("ari_events_stopped", url=self.url)

    async def _interruptible(self, coro: Coroutine[Any, Any, _T]) -> _T | None:
        """Run one phase (connect, read, backoff) as a task `stop()` can cancel; None if it did."""
        task = asyncio.create_task(coro)
        self._phase = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()  # run() itself was cancelled: take the phase down with it
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise
        finally:
            self._phase = None
        return None if task.cancelled() else task.result()

    async def _connect(
        self, session: aiohttp.ClientSession
    ) -> tuple[aiohttp.ClientWebSocketResponse | None, str]:
        """One connection attempt: the WebSocket, or None and why it failed."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await session.ws_connect(
                    self.url,
                    params={"app": self.app},
                    headers=self._headers,
                    heartbeat=self._heartbeat,
                )
        except aiohttp.WSServerHandshakeError as exc:
            # 401/404/503 while Asterisk boots: keep retrying.
            hint = _HANDSHAKE_HINTS.get(exc.status, exc.message)
            return None, f"HTTP {exc.status}: {hint}"
        except TimeoutError:
            return None, "connect timed out"
        except Exception as exc:
            # Connection refused, DNS, or anything unforeseen: a retry line, never a dead stream.
            return None, f"{type(exc).__name__}: {exc}"
        return ws, ""

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Dispatch every message until the WebSocket closes; never awaits user code."""
        self._ws = ws
        self._connected.set()
        if self._on_connected is not None:
            task = asyncio.create_task(self._run_on_connected(self._on_connected))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    text = message.data[:300].decode("utf-8", "replace")
                    self._bad_event(text, ValueError("binary WebSocket message"), "binary")
                elif message.type is aiohttp.WSMsgType.ERROR:
                    log.warning("ari_events_error", url=self.url, error=repr(message.data))
                    break
        finally:
            self._connected.clear()
            self._ws = None
            if self._on_disconnected is not None:
                try:
                    self._on_disconnected()  # the moment events stop: calls lost end there
                except Exception:
                    log.exception("ari_on_disconnected_failed", url=self.url)
            await ws.close()

    def _dispatch(self, text: str) -> None:
        """Parse one message and hand the event to `on_event`; bad input is reported, not fatal."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
            self._bad_event(text, exc, "json")
            return
        try:
            event = parse_event(data)
        except Exception as exc:
            # AriEventError, or a shape the parser did not foresee: bad input either way.
            error = exc if isinstance(exc, AriEventError) else AriEventError(f"ARI event: {exc!r}")
            self._bad_event(data if isinstance(data, dict) else text, error, "event")
            return
        started = time.perf_counter()
        try:
            self._on_event(event)
        except Exception:
            # A bug in a handler must not cost us the stream (and every other call).
            log.exception("ari_event_handler_failed", event_type=event.type)
        elapsed = time.perf_counter() - started
        if elapsed >= self._slow_handler:
            log.warning(
                "ari_event_handler_slow", event_type=event.type, elapsed_ms=round(elapsed * 1000, 1)
            )

    def _bad_event(self, message: dict[str, Any] | str, error: Exception, kind: str) -> None:
        ARI_BAD_EVENTS.labels(kind=kind).inc()
        held = self._bad_event_budget.take(self._clock.monotonic())
        if held is not None:
            log.warning(
                "ari_bad_event",
                url=self.url,
                kind=kind,
                error=str(error)[:300],
                message=str(message)[:300],
                suppressed=held,  # bad events not logged since the previous line
            )
        if self._on_bad_event is not None:
            try:
                self._on_bad_event(message, error)
            except Exception:
                log.exception("ari_bad_event_handler_failed")

    async def _run_on_connected(self, on_connected: OnConnected) -> None:
        try:
            await on_connected()
        except Exception:
            log.exception("ari_on_connected_failed", url=self.url)

    async def _cancel_tasks(self) -> None:
        """Cancel `on_connected` tasks still running when the stream stops."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
