"""Fault injection: what a test asks the simulator to get wrong, through `AriSimulator.faults`.

Real Asterisk loses races that a well-behaved simulator never would: its WebSocket lags its
REST answers, a request meets a channel that hung up a moment before, the HTTP side restarts.
Tests bring those about here, by name, instead of patching the simulator's internals:

- `hold_events(channel_id=None)`: events (about one channel, or all) are kept back until
  the hold is released (in order, optionally some virtual seconds later) or discarded.
- `fail_requests(method, path, status, body)`: matching requests are answered that way and
  not carried out. `stall_requests(...)`: never answered nor carried out (a request still in
  flight when the daemon dies). `on_request(..., before=, after=)`: run an action just before
  a matching request is carried out, or just after (its answer not yet sent).
- `on_event(event_type, action, channel_id=, where=)`: run an action just after such an
  event is sent.
- `drop_websockets()`: close every event WebSocket; `hold_websockets()`: new ones wait,
  unanswered, until released (Asterisk's HTTP side still down).
- `delay_stasis_start(seconds, channel_id=None)`: a created channel enters Stasis that much
  later than it would (the first one created, or the one with that id).

Paths are matched with shell wildcards against the path after `/ari` (`/channels/*/ring`);
`params` must all be present with those values; `skip` lets that many matching requests
through first; `times` is how many are affected (None: all). Every action runs on the event
loop at that exact point, so with a VirtualClock what happens is the same on every run.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..clock import Clock
from .model import JsonDict

if TYPE_CHECKING:
    from .server import AriSimulator

Action = Callable[[], object]


def event_subject(event: JsonDict) -> str | None:
    """The channel an event is about: its `channel` (Dial: its `peer`)."""
    subject = event.get("peer") if event.get("type") == "Dial" else event.get("channel")
    if isinstance(subject, dict):
        value = subject.get("id")
        return value if isinstance(value, str) else None
    return None


@dataclass
class RequestRule:
    """Which requests a fault applies to, and what it does to them."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    skip: int = 0
    times: int | None = 1
    before: Action | None = None
    after: Action | None = None
    reply: tuple[int, JsonDict | None] | None = None
    stall: bool = False
    matched: int = 0  # matching requests seen so far
    applied: int = 0  # of which this rule acted on

    def matches(self, method: str, path: str, query: Mapping[str, list[str]]) -> bool:
        if method.upper() != self.method.upper() or not fnmatch.fnmatchcase(path, self.path):
            return False
        return all(value in query.get(key, []) for key, value in self.params.items())

    @property
    def spent(self) -> bool:
        return self.times is not None and self.applied >= self.times

    def cancel(self) -> None:
        """Stop applying this rule."""
        self.times = self.applied


class EventHold:
    """Events kept back by `SimFaults.hold_events`."""

    def __init__(self, faults: SimFaults, channel_id: str | None) -> None:
        self._faults = faults
        self.channel_id = channel_id
        self.held: list[tuple[list[str], JsonDict]] = []
        self.active = True

    def covers(self, event: JsonDict) -> bool:
        return self.active and (self.channel_id is None or event_subject(event) == self.channel_id)

    def release(self, after: float = 0.0) -> None:
        """End the hold and send what it kept, in order (`after` virtual seconds from now)."""
        self.active = False
        held, self.held = self.held, []
        if after > 0:
            self._faults.clock.call_later(after, lambda: self._faults.resend(held))
        else:
            self._faults.resend(held)

    def discard(self) -> None:
        """End the hold; what it kept is lost, as if the WebSocket had dropped it."""
        self.active = False
        self.held = []


class WebSocketHold:
    """New event WebSockets wait, unanswered, until `release()`."""

    def __init__(self) -> None:
        self._open = asyncio.Event()

    def release(self) -> None:
        self._open.set()

    @property
    def released(self) -> bool:
        return self._open.is_set()

    async def wait(self) -> None:
        await self._open.wait()


@dataclass
class _EventTrigger:
    event_type: str
    channel_id: str | None
    where: Callable[[JsonDict], bool] | None
    action: Action
    times: int | None


@dataclass
class _StasisDelay:
    seconds: float
    channel_id: str | None
    times: int | None


class SimFaults:
    """The simulator's fault-injection API (see the module docstring)."""

    def __init__(self, sim: AriSimulator, clock: Clock) -> None:
        self._sim = sim
        self.clock = clock
        self.requests: list[RequestRule] = []
        self._holds: list[EventHold] = []
        self._triggers: list[_EventTrigger] = []
        self._stasis_delays: list[_StasisDelay] = []
        self._ws_holds: list[WebSocketHold] = []
        self._stop = asyncio.Event()

    # ---------------------------------------------------------------- events
    def hold_events(self, channel_id: str | None = None) -> EventHold:
        """Keep back every event about `channel_id` (None: every event) from now on."""
        hold = EventHold(self, channel_id)
        self._holds.append(hold)
        return hold

    def on_event(
        self,
        event_type: str,
        action: Action,
        *,
        channel_id: str | None = None,
        where: Callable[[JsonDict], bool] | None = None,
        times: int | None = 1,
    ) -> None:
        """Run `action` just after an event of that type (about that channel, for which
        `where(event)` holds) is sent."""
        self._triggers.append(_EventTrigger(event_type, channel_id, where, action, times))

    # -------------------------------------------------------------- requests
    def fail_requests(
        self,
        method: str,
        path: str,
        status: int,
        body: JsonDict | None = None,
        *,
        params: Mapping[str, str] | None = None,
        skip: int = 0,
        times: int | None = 1,
    ) -> RequestRule:
        """Answer matching requests with `status` and `body` without carrying them out."""
        return self._add(
            RequestRule(method, path, dict(params or {}), skip, times, reply=(status, body))
        )

    def stall_requests(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        skip: int = 0,
        times: int | None = 1,
    ) -> RequestRule:
        """Never answer nor carry out matching requests (the simulator's stop ends them)."""
        return self._add(RequestRule(method, path, dict(params or {}), skip, times, stall=True))

    def on_request(
        self,
        method: str,
        path: str,
        *,
        before: Action | None = None,
        after: Action | None = None,
        params: Mapping[str, str] | None = None,
        skip: int = 0,
        times: int | None = 1,
    ) -> RequestRule:
        """Run `before` just before a matching request is carried out, `after` just after
        (its answer not sent yet). Either may be a coroutine function."""
        return self._add(
            RequestRule(method, path, dict(params or {}), skip, times, before=before, after=after)
        )

    # ------------------------------------------------------------ WebSockets
    def drop_websockets(self) -> None:
        """Close every event WebSocket (Asterisk's HTTP side restarting); calls stay up."""
        self._sim.drop_websockets()

    def hold_websockets(self) -> WebSocketHold:
        """New event WebSockets wait, unanswered, until the hold is released."""
        hold = WebSocketHold()
        self._ws_holds.append(hold)
        return hold

    # ---------------------------------------------------------------- Stasis
    def delay_stasis_start(
        self, seconds: float, *, channel_id: str | None = None, times: int | None = 1
    ) -> None:
        """Created channels (that one, or the next `times`) enter Stasis `seconds` later."""
        self._stasis_delays.append(_StasisDelay(seconds, channel_id, times))

    def clear(self) -> None:
        """Forget every fault; stalled requests and held WebSockets give up (simulator stop)."""
        self._stop.set()
        for hold in self._ws_holds:
            hold.release()
        for event_hold in self._holds:
            event_hold.discard()
        self.requests.clear()
        self._holds.clear()
        self._triggers.clear()
        self._stasis_delays.clear()
        self._ws_holds.clear()

    # ------------------------------------------------ hooks for the simulator
    def keeps_back(self, apps: Iterable[str], event: JsonDict) -> bool:
        """EventHub gate: True when a hold took the event."""
        self._holds = [hold for hold in self._holds if hold.active]
        for hold in self._holds:
            if hold.covers(event):
                hold.held.append((list(apps), event))
                return True
        return False

    def resend(self, held: list[tuple[list[str], JsonDict]]) -> None:
        for apps, event in held:
            self._sim.hub.publish(apps, event)

    def sent(self, message: JsonDict) -> None:
        """An event went out: fire the triggers waiting for it."""
        for trigger in list(self._triggers):
            if trigger.event_type != message.get("type"):
                continue
            if trigger.channel_id is not None and event_subject(message) != trigger.channel_id:
                continue
            if trigger.where is not None and not trigger.where(message):
                continue
            if trigger.times is not None:
                trigger.times -= 1
                if trigger.times <= 0:
                    self._triggers.remove(trigger)
            trigger.action()

    def request_rule(
        self, method: str, path: str, query: Mapping[str, list[str]]
    ) -> RequestRule | None:
        """The rule that acts on this request, if any (counting it as seen)."""
        for rule in self.requests:
            if rule.spent or not rule.matches(method, path, query):
                continue
            rule.matched += 1
            if rule.matched <= rule.skip:
                continue
            rule.applied += 1
            return rule
        return None

    async def run(self, action: Action | None) -> None:
        if action is None:
            return
        result = action()
        if inspect.isawaitable(result):
            await result

    async def stalled(self) -> None:
        """Wait until the simulator stops."""
        await self._stop.wait()

    async def websockets_open(self) -> None:
        """Wait while a WebSocket hold is in force."""
        for hold in list(self._ws_holds):
            await hold.wait()

    def stasis_delay(self, channel_id: str) -> float:
        """Extra virtual seconds before this created channel enters Stasis."""
        for delay in self._stasis_delays:
            if delay.channel_id not in (None, channel_id):
                continue
            if delay.times is not None:
                delay.times -= 1
                if delay.times <= 0:
                    self._stasis_delays.remove(delay)
            return delay.seconds
        return 0.0

    def _add(self, rule: RequestRule) -> RequestRule:
        self.requests.append(rule)
        return rule


__all__ = ["EventHold", "RequestRule", "SimFaults", "WebSocketHold", "event_subject"]
