"""Event WebSockets: which connection owns which Stasis application, and non-blocking delivery.

Like Asterisk's res_ari event sessions: an application is registered by the WebSocket that
names it in `app=`; a second WebSocket for the same application replaces the first (which gets
ApplicationReplaced); while no WebSocket holds an application its events are dropped, but its
channels and bridges stay in Stasis (ws_reconnect.jsonl). Each WebSocket has its own queue and
writer task, so a slow client never blocks the simulator.

Each application's event filter (`event_filter.py`) is applied as Asterisk's
stasis_app_message_handler applies it, to every event at the moment it is sent. Like res_stasis's
app object, the filter outlives a WebSocket while the app still holds channels, bridges or
subscriptions, and is forgotten with an app that holds nothing once no WebSocket owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable

from aiohttp import WSCloseCode, web

from .event_filter import EventFilter
from .model import JsonDict

log = logging.getLogger(__name__)

# A client that lets this many events pile up is cut off rather than eating memory.
MAX_QUEUED_EVENTS = 50_000


class EventSession:
    """One `/ari/events` WebSocket and its outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse, apps: list[str]) -> None:
        self.ws = ws
        self.apps: dict[str, None] = dict.fromkeys(apps)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        """Start sending (after the handshake); events queued before are sent first."""
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def send(self, message: JsonDict) -> None:
        """Queue one event; never blocks."""
        if self.closed:
            return
        if self._queue.qsize() >= MAX_QUEUED_EVENTS:
            log.warning("event WebSocket not reading: %d events queued, closing", MAX_QUEUED_EVENTS)
            self.close()
            return
        self._queue.put_nowait(json.dumps(message))

    async def _write_loop(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                break
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:  # peer gone mid-send
                log.debug("event WebSocket send failed: %s", exc)
                break
        with contextlib.suppress(Exception):
            await self.ws.close(code=WSCloseCode.GOING_AWAY)

    def close(self) -> None:
        """Stop sending and close the socket (from any context; returns at once)."""
        if self.closed:
            return
        self.closed = True
        # The writer sends what is queued, then closes; a socket still in its handshake
        # closes as soon as its writer starts.
        self._queue.put_nowait(None)

    async def wait_closed(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer


class EventHub:
    """Application registry and event fan-out."""

    def __init__(self, make_event: Callable[[str, str], JsonDict]) -> None:
        # make_event(type, app) builds an app-level event such as ApplicationReplaced.
        self._make_event = make_event
        self._owner: dict[str, EventSession] = {}
        self.sessions: list[EventSession] = []
        self.on_delivered: Callable[[JsonDict], None] | None = None
        # Fault injection: True keeps an event back (it is neither logged nor sent).
        self.gate: Callable[[list[str], JsonDict], bool] | None = None
        # Whether an app holds channels, bridges or subscriptions (keeps its filter alive).
        self.in_use: Callable[[str], bool] = lambda app: False
        self.filters: dict[str, EventFilter] = {}
        self._changed = asyncio.Event()

    def is_active(self, app: str) -> bool:
        """An application is active while a WebSocket holds it."""
        return app in self._owner

    @property
    def active_apps(self) -> list[str]:
        return list(self._owner)

    def register(self, session: EventSession) -> None:
        """Attach the session's apps, replacing any WebSocket that held one of them."""
        self.sessions.append(session)
        for app in session.apps:
            old = self._owner.get(app)
            if old is not None and old is not session:
                old.apps.pop(app, None)
                event = self._make_event("ApplicationReplaced", app)
                if self.allows(app, event):
                    old.send(event)
            elif old is None:
                self._forget_if_idle(app)
            self._owner[app] = session
        self._notify()

    def unregister(self, session: EventSession) -> None:
        """The WebSocket is gone: its apps become inactive (their channels stay in Stasis)."""
        if session in self.sessions:
            self.sessions.remove(session)
        for app in list(session.apps):
            if self._owner.get(app) is session:
                del self._owner[app]
                self._forget_if_idle(app)
        self._notify()

    def filter_of(self, app: str) -> EventFilter:
        """The app's event filter (created empty: every event allowed)."""
        return self.filters.setdefault(app, EventFilter())

    def allows(self, app: str, event: JsonDict) -> bool:
        """Whether the app's filter lets this event through."""
        found = self.filters.get(app)
        return found is None or found.allows(str(event.get("type", "")))

    def _forget_if_idle(self, app: str) -> None:
        """res_stasis drops an app object holding nothing (and its filter) once inactive."""
        if not self.in_use(app):
            self.filters.pop(app, None)

    def publish(self, apps: Iterable[str], event: JsonDict) -> None:
        """Send `event` to each app's WebSocket, with its `application` set; others drop it."""
        apps = list(dict.fromkeys(apps))
        if self.gate is not None and self.gate(apps, event):
            return
        for app in apps:
            session = self._owner.get(app)
            if session is None or not self.allows(app, event):
                continue
            message = {**event, "application": app}
            session.send(message)
            if self.on_delivered is not None:  # after: what it triggers is queued behind it
                self.on_delivered(message)

    def drop_all(self) -> list[EventSession]:
        """Close every WebSocket now (apps inactive at once); returns the sessions closed."""
        dropped = list(self.sessions)
        for session in dropped:
            self.unregister(session)
            session.close()
        return dropped

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_active(self, app: str) -> None:
        """Return once a WebSocket holds `app`."""
        while not self.is_active(app):
            await self._changed.wait()
