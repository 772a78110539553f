"""The call daemon: routes ARI events to one controller per call, and survives anything.

It owns the map channel id -> controller, the per-trunk count of outbound legs, and the
recovery of calls left open by a previous run (adopt those still bridged, ringing, in a
menu, hearing an announcement or in voicemail under the same route, close the rest: a call
through still keying among them, its keys never journaled), then the sweep of channels in
Stasis that no call claims (a crash before the first CDR batch leaves no row to recover from).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog

from pbxd.ari import (
    AriClient,
    AriError,
    AriNotFound,
    AriUnprocessable,
    AsteriskInfo,
    Bridge,
    Channel,
    EndpointStateChange,
    Event,
    StasisStart,
)
from pbxd.calls import ids
from pbxd.calls.bridges import BridgePool
from pbxd.calls.dnd import DoNotDisturb
from pbxd.calls.journal import (
    Bridged,
    CallAdopted,
    Journal,
    JournalEvent,
    JournalSink,
    LegScreened,
    MenuPrompted,
    PlanWarned,
    Position,
    PromptStarted,
    StepEntered,
    event_of_record,
    replay,
    unrecorded_playbacks_from,
)
from pbxd.calls.limits import PlanGuard
from pbxd.calls.presence import Presence, endpoint_key
from pbxd.calls.roster import MemoryStore, Roster
from pbxd.calls.session import CallSession, Leg, Resync
from pbxd.calls.states import CallState, LegState
from pbxd.calls.steps.base import StepHandler
from pbxd.calls.steps.menu import MenuHandler
from pbxd.calls.steps.play import PlayHandler
from pbxd.calls.steps.ring import RingHandler, found_leg_states
from pbxd.calls.steps.voicemail import MessageDesk, VoicemailHandler
from pbxd.calls.strategies import NO_STANDING, Slot, rotated, strategy_of
from pbxd.cdr.records import (
    CallEventRecord,
    CallRecord,
    Direction,
    Disposition,
    LegRecord,
    PathStep,
    StepKind,
    StepOutcome,
)
from pbxd.clock import Clock
from pbxd.config.destinations import bare_softphone
from pbxd.config.model import Config
from pbxd.dialplan import CallFacts, Decision, Flow, LegPlan, RingStep, plan_call
from pbxd.dialplan.flow import MenuStep, PlayStep, VoicemailStep
from pbxd.dialplan.outcome import ANSWERED_ELSEWHERE, CAUSE_OF_REASON
from pbxd.dialplan.plan import max_call_duration
from pbxd.vocabulary import HangupReason

log = structlog.get_logger("pbxd.daemon")

# What the call log shows beside a step a restart could not take up.
RESTART_LABEL = "pbxd restarted"
# The ARI events pbxd acts on: Asterisk is asked for these only (`PUT .../eventFilter`, at
# every connection). The rest (ChannelVarset, ChannelDialplan, caller-ID, bridge and Dial
# events) was most of a call's traffic. A handler of another event type must add it here.
EVENTS_USED: tuple[str, ...] = (
    "StasisStart",
    "StasisEnd",
    "ChannelStateChange",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "PlaybackFinished",
    # Menus, confirm calls, a call through's PIN and number (none while bridged: no
    # dtmf_events).
    "ChannelDtmfReceived",
    "RecordingFinished",
    "RecordingFailed",
    "EndpointStateChange",  # a softphone registered or dropped (presence-aware ringing)
    # Another WebSocket took the app (the other pbxd of a pair): Asterisk filters it too.
    "ApplicationReplaced",
)
# The priority label in extensions.conf where a call goes when pbxd cannot take it.
FALLBACK_LABEL = "unavailable"
# States of an inbound channel not answered yet (its caller still hears ringing).
UNANSWERED_STATES = frozenset({"Ring", "Ringing"})
# A StasisStart already sent when the sweep lists the app's channels arrives within this.
SWEEP_GRACE_SECONDS = 0.5
# How long the sweep waits for a stranded leg it hung up to be gone before reusing its id.
SWEEP_LEG_GONE_SECONDS = 2.0
# Asking Asterisk who it is, while it cannot say yet: backoff from the first to the last.
IDENTIFY_RETRY_S = 0.1
IDENTIFY_RETRY_MAX_S = 5.0


class CdrStoreLike(JournalSink, Protocol):
    """What recovery needs from the CDR store, beyond writing."""

    async def open_calls(self, server: str | None = None) -> list[CallRecord]:
        """Calls with no end time (of `server` only, when given)."""
        ...

    async def legs_of(self, call_id: str) -> list[LegRecord]:
        """The legs of a call."""
        ...


@dataclass
class CallDaemon:
    """Turns ARI events into calls. One instance per Asterisk connection."""

    config: Config
    ari: AriClient
    cdr: CdrStoreLike
    clock: Clock
    desk: MessageDesk | None = None  # the voicemail back office
    memory: MemoryStore | None = None  # strategies' memory and do-not-disturb (the CDR DB)
    dnd: DoNotDisturb = field(default_factory=DoNotDisturb)  # shared with the HTTP API
    rng: random.Random = field(default_factory=random.Random)  # random and weighted orders
    on_call_finished: Callable[[CallSession], None] | None = None
    calls: dict[str, CallSession] = field(default_factory=dict)
    _by_channel: dict[str, CallSession] = field(default_factory=dict)
    connection: int = 0  # bumped at each (re)connection; calls note the one they started on
    _trunk_legs: dict[str, int] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    # Calls this run took while recovery was reading: never "recovered", even once ended.
    _taken_during_recovery: set[str] = field(default_factory=set)
    # Channels whose StasisStart arrived while the sweep runs (None: no sweep running).
    _seen_starting: set[str] | None = None
    bad_events: int = 0
    lost_at: datetime | None = None  # when the event stream dropped (None while it is up)
    # Who the Asterisk is (GET /asterisk/info): asked at the first connection unless given.
    asterisk: AsteriskInfo | None = None
    # An active/standby pair's lease (pbxd.ha): events are ignored once it ran out.
    owns: Callable[[], bool] | None = None
    # Told when Asterisk gives our Stasis app to another WebSocket (ApplicationReplaced).
    on_app_replaced: Callable[[], None] | None = None
    fenced_events: int = 0  # events ignored because the lease had run out
    # Whether Asterisk took our event filter at the last connection (None: not asked yet).
    events_filtered: bool | None = None
    _filter_refusal_logged: bool = False
    roster: Roster = field(init=False)
    plan_guard: PlanGuard | None = field(init=False, default=None)
    bridges: BridgePool = field(init=False)  # idle mixing bridges the calls share

    def __post_init__(self) -> None:
        self.bridges = BridgePool(self.ari)
        # A store that reads usage (the CDR store) enforces plans; a bare sink cannot.
        if hasattr(self.cdr, "billables_of"):
            self.plan_guard = PlanGuard(self.cdr, self.calls.values)  # type: ignore[arg-type]
        self.dnd.attach(self.memory)
        self.roster = Roster(
            presence=Presence(),
            dnd=self.dnd,
            memory=self.memory,
            rng=self.rng,
            on_call=self.target_on_call,
            spawn=self._spawn,
        )

    def target_on_call(self, target: str) -> bool:
        """Whether `target` answered a call of this daemon that is still going on."""
        return any(
            session.winner is not None
            and session.winner.plan.target == target
            and session.state in (CallState.ANSWERING, CallState.BRIDGED)
            for session in self.calls.values()
        )

    # ------------------------------------------------------------ ChannelDirectory

    def claim(self, channel_id: str, session: CallSession) -> None:
        """Route this channel's events to `session`."""
        self._by_channel[channel_id] = session

    def release(self, channel_id: str) -> None:
        """Stop routing this channel's events."""
        self._by_channel.pop(channel_id, None)

    def take_trunk_slot(self, trunk: str) -> bool:
        """Reserve an outbound leg on `trunk` unless it is at its configured maximum."""
        limit = self.config.trunks[trunk].max_outbound_legs if trunk in self.config.trunks else 0
        used = self._trunk_legs.get(trunk, 0)
        if used >= limit:
            return False
        self._trunk_legs[trunk] = used + 1
        return True

    def give_trunk_slot(self, trunk: str) -> None:
        """Free a slot taken with `take_trunk_slot` or `hold_trunk_slot`."""
        self._trunk_legs[trunk] = max(0, self._trunk_legs.get(trunk, 0) - 1)

    def hold_trunk_slot(self, trunk: str) -> None:
        """Count a leg that exists already (adopted), even above the maximum."""
        self._trunk_legs[trunk] = self._trunk_legs.get(trunk, 0) + 1

    def trunk_legs(self, trunk: str) -> int:
        """Outbound legs in use on `trunk` now."""
        return self._trunk_legs.get(trunk, 0)

    # ------------------------------------------------------------ events

    def on_event(self, event: Event) -> None:
        """Called by the event stream for each event; must return at once."""
        if self.owns is not None and not self.owns():
            # Fenced: the other pbxd of the pair may own the app now; it recovers the calls.
            self.fenced_events += 1
            return
        try:
            self._route(event)
        except Exception:
            # One bad event must never stop the stream or other calls.
            self.bad_events += 1
            log.exception("event handling failed", event_type=event.type)
            if isinstance(event, StasisStart) and event.channel.id not in self._by_channel:
                self._record_unhandled(event)
                # Never strand a caller: the dialplan's fallback (label `unavailable`) takes it.
                self._spawn(self._back_to_dialplan(event.channel.id), "fallback")

    def _record_unhandled(self, event: StasisStart) -> None:
        """Every inbound call gets a CDR, even one pbxd failed to handle: a failed row."""
        channel = event.channel
        try:
            self.cdr.record_call(
                CallRecord(
                    call_id=channel.id,
                    did=channel.dialplan.exten[:64],
                    started_at=event.timestamp,
                    caller_number=channel.caller.number[:64] or None,
                    caller_name=channel.caller.name[:80] or None,
                    ended_at=max(self.clock.now(), event.timestamp),
                    disposition=Disposition.FAILED,
                    server=self.server,
                )
            )
        except Exception:
            log.exception("cdr of an unhandled call failed", channel=channel.id)

    def on_bad_event(self, raw: object, error: Exception) -> None:
        """A message that is not a valid ARI event: count it, nothing else."""
        # The stream logs it already (rate-limited, ari_bad_event): one flood, one budget.
        self.bad_events += 1

    def _route(self, event: Event) -> None:
        if event.application != self.ari.app:
            return
        if event.type == "ApplicationReplaced":
            self._app_replaced()
            return
        if isinstance(event, EndpointStateChange):
            self._endpoint_state(event)
            return
        for channel_id in event.channel_ids():
            session = self._by_channel.get(channel_id)
            if session is not None:
                session.deliver(event)
                return
        if isinstance(event, StasisStart):
            if self._seen_starting is not None:
                self._seen_starting.add(event.channel.id)
            self._stasis_start(event)

    def _app_replaced(self) -> None:
        """Another WebSocket took our Stasis app: Asterisk sends this one no more events."""
        if self.on_app_replaced is not None:
            log.info("ari_app_replaced", app=self.ari.app, hint="the pair's other pbxd took over")
            self.on_app_replaced()
            return
        log.error(
            "ari_app_replaced",
            app=self.ari.app,
            hint="another client registered the same Stasis app: run one pbxd per app and "
            "Asterisk, or two as a pair (ha: {mode: active-standby})",
        )

    def _endpoint_state(self, event: EndpointStateChange) -> None:
        """A softphone registered or dropped (or its channels changed: same state, no log)."""
        endpoint = event.endpoint
        previous = self.roster.presence.update(endpoint)
        if previous != endpoint.state:
            log.info(
                "endpoint_state",
                endpoint=endpoint_key(endpoint.technology, endpoint.resource),
                state=endpoint.state,
                previous=previous,
            )

    def follow_config(self) -> None:
        """After a reload (`self.config` replaced): the new softphones' registrations are
        followed."""
        self._spawn(self.follow_presence(), "presence after reload")

    def softphones(self) -> list[str]:
        """The endpoints of the configuration's softphone targets (`PJSIP/alice`), sorted."""
        endpoints = (t.endpoint for t in self.config.targets.values() if t.endpoint)
        return sorted({e for e in endpoints if bare_softphone(e)})

    async def follow_presence(self) -> None:
        """Subscribe to the softphones' endpoint events, then read their states.

        In this order, so a registration between the two is never missed; at every
        (re)connection, since states may have changed while the stream was down. An
        endpoint Asterisk does not know (missing from pjsip.conf) is said once, and offline.
        """
        watched = self.softphones()
        if not watched:
            return
        try:
            try:
                await self.ari.subscribe([f"endpoint:{e}" for e in watched])
            except AriUnprocessable:
                # One unknown endpoint refuses the whole request: subscribe one by one.
                for endpoint in watched:
                    try:
                        await self.ari.subscribe(f"endpoint:{endpoint}")
                    except AriUnprocessable:
                        log.warning("softphone_unknown_to_asterisk", endpoint=endpoint)
            endpoints = await self.ari.list_endpoints()
        except Exception as exc:
            # Never in the way of recovery: without presence, everyone rings as before.
            self.roster.presence.forget()
            log.warning("presence_unavailable", error=repr(exc))
            return
        self.roster.presence.reload(endpoints, watched)
        log.info("presence_loaded", online=len(self.roster.presence.online()), watched=len(watched))

    def _stasis_start(self, event: StasisStart, *, swept: bool = False) -> None:
        channel = event.channel
        if event.args and event.args[0] == ids.LEG_MARK:
            # A leg of a call this process does not know (left by a previous run): drop it.
            log.warning("orphan leg hung up", channel=channel.id)
            self._spawn(self._hangup_quietly(channel.id), f"orphan {channel.id}")
            return
        facts = CallFacts(
            channel_id=channel.id,
            channel_name=channel.name,
            called=channel.dialplan.exten,
            caller_number=channel.caller.number,
            caller_name=channel.caller.name,
            stasis_args=event.args,  # the caller's presentation (ARI's Channel has none)
            now=self.clock.now(),
        )
        decision = plan_call(facts, self.config)
        # Its start: when Asterisk saw the call, not when we got to it.
        record = record_of_call(
            channel.id, decision, event.timestamp, self.server or event.asterisk_id
        )
        session = CallSession(
            call_id=channel.id,
            flow=decision,
            journal=Journal(record, self.cdr),
            ari=self.ari,
            clock=self.clock,
            directory=self,
            desk=self.desk,
            roster=self.roster,
            limits=self.plan_guard,
            bridges=self.bridges,
        )
        # A caller swept up after a restart may have heard anything since its Ringing().
        session.caller.ringing = facts.rung_by_dialplan and not swept
        self.claim(channel.id, session)
        self._start(session)

    def _start(self, session: CallSession) -> None:
        session.connection = self.connection
        self.calls[session.call_id] = session
        if not self.recovered.is_set():
            self._taken_during_recovery.add(session.call_id)

        session.on_finished = self._finished  # a bound method: no closure and cells per call
        self._spawn(session.run(), "call")

    def _finished(self, done: CallSession) -> None:
        """A call's task ends: forget the call."""
        self.calls.pop(done.call_id, None)
        if self.plan_guard is not None:
            self.plan_guard.ended(done)
        if self.on_call_finished is not None:
            self.on_call_finished(done)

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _back_to_dialplan(self, channel_id: str) -> None:
        try:
            await self.ari.continue_in_dialplan(channel_id, label=FALLBACK_LABEL)
        except AriError as exc:
            log.warning(
                "could not return the call to the dialplan; hanging up",
                channel=channel_id,
                status=exc.status,
            )
            await self._hangup_quietly(channel_id)

    async def _hangup_quietly(self, channel_id: str, *, reason_code: int | None = None) -> None:
        try:
            if reason_code is not None:
                await self.ari.hangup(channel_id, reason_code=reason_code)
            else:
                await self.ari.hangup(channel_id, reason=str(HangupReason.NORMAL))
        except AriError as exc:
            log.info("hangup of stray channel failed", channel=channel_id, status=exc.status)

    # ------------------------------------------------------------ (re)connection

    async def on_connected(self) -> None:
        """After each WebSocket (re)connection: recover (and sweep) once; later, resync.

        Only calls that existed while the socket was down can have lost events; a call
        that started on this connection has seen all of its own.
        """
        self.connection += 1
        if self.asterisk is None:
            self._identified(await identify_asterisk(self.ari, self.clock))
        await self.ask_for_events()
        await self.follow_presence()
        if self.roster.dnd is not None:
            await self.roster.dnd.load()
        if not self.recovered.is_set():
            try:
                await self.recover_open_calls()
                await self.sweep_stranded_channels()
            finally:
                self.recovered.set()
                self._taken_during_recovery.clear()
            return
        lost, self.lost_at = self.lost_at, None
        restarted = await self._asterisk_started() if lost is not None else None
        if restarted is not None and lost is not None and restarted >= lost:
            self.bridges.forget()  # Asterisk restarted meanwhile: its bridges went with it
        for session in list(self.calls.values()):
            if session.connection < self.connection:
                session.deliver(Resync(lost_at=_end_of_lost_call(session, lost, restarted)))

    async def ask_for_events(self) -> None:
        """Ask Asterisk for the events pbxd uses only; where it cannot filter, take them all.

        Asterisk before 13.26/16.3 has no such resource (404); a refusal of any kind (400,
        501, no answer) leaves every event coming, which pbxd handles as before: logged once.
        """
        try:
            await self.ari.filter_events(EVENTS_USED)
        except Exception as exc:  # AriError, or anything else: never in recovery's way
            self.events_filtered = False
            if not self._filter_refusal_logged:
                self._filter_refusal_logged = True
                log.warning(
                    "ari_event_filter_refused",
                    status=getattr(exc, "status", None),
                    message=getattr(exc, "message", repr(exc)),
                    consequence="every ARI event is received (more traffic, same calls)",
                )
            return
        self.events_filtered = True
        log.debug("ari_event_filter_set", allowed=len(EVENTS_USED))

    def on_disconnected(self) -> None:
        """The event stream dropped: note the moment (a call Asterisk lost meanwhile ends then)."""
        if self.lost_at is None:
            self.lost_at = self.clock.now()
            if self.calls:  # the moment matters only to calls in progress
                log.info("ari_connection_lost", calls=len(self.calls))

    @property
    def server(self) -> str | None:
        """How CDRs name this daemon's Asterisk (AsteriskInfo.server); None until known."""
        return self.asterisk.server if self.asterisk is not None else None

    def _identified(self, info: AsteriskInfo) -> None:
        """Who ARI is; calls that arrived before it was known had only the event's entity id."""
        self.asterisk = info
        for session in self.calls.values():
            if session.record.server in (None, info.entity_id):
                session.record.server = info.server

    async def _asterisk_started(self) -> datetime | None:
        """When Asterisk (re)started, as it says; None when it cannot say."""
        try:
            return (await self.ari.info()).startup_time
        except AriError as exc:
            log.warning("could not read Asterisk's start time", status=exc.status)
            return None

    async def recover_open_calls(self) -> None:
        """Adopt calls a previous run left bridged or ringing; close the CDRs of the others."""
        try:
            # Only this Asterisk's: another server's open calls are alive under its own pbxd.
            open_calls = await self.cdr.open_calls(server=self.server)
        except Exception:
            log.exception("could not read open calls; recovery skipped")
            return
        for record in open_calls:
            # Ours, perhaps already ended with its last snapshot not yet committed.
            if record.call_id in self.calls or record.call_id in self._taken_during_recovery:
                continue
            try:
                await self._recover(record)
            except AriError as exc:
                log.warning(
                    "recovery of a call failed",
                    call_id=record.call_id,
                    status=exc.status,
                    message=exc.message,
                )
                await self._unstrand(record.call_id)
            except Exception:
                # One odd record must not keep the others open: it is retried next start.
                log.exception("recovery of a call failed", call_id=record.call_id)
                await self._unstrand(record.call_id)

    async def sweep_stranded_channels(self) -> None:
        """Handle the channels Asterisk says our app holds that no call claims.

        A crash before the first CDR batch committed leaves a call without an open row,
        which recovery never sees: its legs are hung up, a caller still ringing is taken
        as a new call, anything else goes back to the dialplan's `unavailable` label.
        """
        self._seen_starting = set()
        try:
            try:
                app = await self.ari.get_application()
            except AriError as exc:
                log.warning("could not list the app's channels; sweep skipped", status=exc.status)
                return
            stray = [c for c in app.channel_ids if c not in self._by_channel]
            bridges = [b for b in app.bridge_ids if self._unclaimed_bridge(b)]
            if not stray and not bridges:
                return
            # A brand-new call's StasisStart may be in flight: let it claim its channel first.
            await self.clock.sleep(SWEEP_GRACE_SECONDS)
            channels: list[Channel] = []
            for channel_id in stray:
                if channel_id in self._by_channel or channel_id in self._seen_starting:
                    continue
                channel = await self._channel(channel_id)
                if channel is not None:
                    channels.append(channel)
            # A call answered and bridged is adopted from Asterisk's own state, row or not.
            adopted_legs: set[str] = set()
            for channel in channels:
                if channel.state == "Up" and not _is_our_leg(channel):
                    adopted_legs |= await self._adopt_bridged_without_record(channel)
            channels = [c for c in channels if c.id not in adopted_legs]
            legs = [c for c in channels if _is_our_leg(c)]
            for leg in legs:
                log.warning("stranded leg hung up", channel=leg.id)
                await self._hangup_quietly(leg.id)
            if legs:
                await self._wait_gone([leg.id for leg in legs])
            for channel in channels:
                if channel in legs or channel.id in self._by_channel:
                    continue
                await self._sweep_one(channel)
            for bridge_id in bridges:
                if ids.is_pooled_bridge(bridge_id):
                    if self._unclaimed_bridge(bridge_id):
                        await self._adopt_idle_bridge(bridge_id)
                    continue
                call_id = ids.call_of_bridge(bridge_id)
                if call_id is not None and call_id not in self.calls:
                    log.warning("stranded bridge destroyed", bridge=bridge_id)
                    with contextlib.suppress(AriNotFound):  # gone with its last channel
                        await self.ari.destroy_bridge(bridge_id)
        except Exception:
            log.exception("sweep of stranded channels failed")
        finally:
            self._seen_starting = None

    def _unclaimed_bridge(self, bridge_id: str) -> bool:
        """A bridge of our app that no call of this run uses and the pool does not hold."""
        if ids.is_pooled_bridge(bridge_id):
            used = {session.bridge_id for session in self.calls.values()}
            return bridge_id not in used and bridge_id not in self.bridges.idle
        return ids.call_of_bridge(bridge_id) not in self.calls

    async def _adopt_idle_bridge(self, bridge_id: str) -> None:
        """A pooled bridge a previous run left: idle again if empty, else destroyed (what was
        in it was swept)."""
        try:
            bridge = await self.ari.get_bridge(bridge_id)
        except AriNotFound:
            return
        if bridge.channels:
            log.warning("stranded bridge destroyed", bridge=bridge_id)
            await self.bridges.destroy(bridge_id)
            return
        await self.bridges.give_back(bridge_id)

    async def _bridge_holding(self, channel_id: str, known: str | None = None) -> Bridge | None:
        """The bridge Asterisk has `channel_id` in: `known` (the call's journal says) if so,
        else found among all of them (a bridge calls share has no call's id)."""
        if known is not None:
            try:
                bridge = await self.ari.get_bridge(known)
            except AriNotFound:
                pass
            else:
                if channel_id in bridge.channels:
                    return bridge
        for bridge in await self.ari.list_bridges():
            if channel_id in bridge.channels:
                return bridge
        return None

    async def _adopt_bridged_without_record(self, caller: Channel) -> set[str]:
        """Adopt a caller Asterisk has bridged with one of its legs; the ids of what it took.

        Its CDR rows were lost (a crash before the batch, a database outage at a stop): the
        call's bridge, its channels and the Stasis arguments of its leg say enough.
        """
        bridge = await self._bridge_holding(caller.id)
        if bridge is None:
            return set()
        bridge_id = bridge.id
        others = [c for c in bridge.channels if c != caller.id]
        if len(others) != 1:
            return set()
        leg = await self._channel(others[0])
        if leg is None or leg.state != "Up":
            return set()
        # Asterisk keeps the Stasis arguments our legs were created with: `pbxd-leg,<call>`.
        if ids.call_of_stasis_args(_stasis_args(leg)) != caller.id:
            return set()
        decision = self._plan_again(caller)
        target = self._target_of_channel(leg, decision)
        record = record_of_call(caller.id, decision, caller.creationtime, self.server)
        record.route = decision.route if isinstance(decision, Flow) else None
        # Nothing says when it was answered: the leg's creation is the earliest it can be.
        record.answered_at, record.answered_by = leg.creationtime, target
        planned = _planned_leg(decision if isinstance(decision, Flow) else None, target)
        winner = LegRecord(
            leg_id=leg.id,
            call_id=caller.id,
            target=target,
            # What was dialled (a forwarded leg counts against the plan by its trunk).
            destination=planned.dial_string if planned is not None else leg.name,
            started_at=leg.creationtime,
            answered_at=leg.creationtime,
        )
        log.warning("adopting bridged call without CDR", call_id=caller.id, did=record.did)
        self.cdr.record_call(record)
        self.cdr.record_leg(winner)
        self._start(self._adopt_bridged(record, winner, bridge_id, [winner], [], caller))
        return {caller.id, leg.id}

    def _plan_again(self, caller: Channel) -> Decision:
        """Plan a call found on Asterisk from its caller's channel, as its StasisStart did."""
        return plan_call(
            CallFacts(
                channel_id=caller.id,
                channel_name=caller.name,
                called=caller.dialplan.exten,
                caller_number=caller.caller.number,
                caller_name=caller.caller.name,
                stasis_args=_stasis_args(caller),  # a withheld caller stays withheld
                now=self.clock.now(),
            ),
            self.config,
        )

    def _target_of_channel(self, channel: Channel, decision: Decision) -> str:
        """The target a leg's channel rings: the softphone on its endpoint (`PJSIP/bob-0000001a`),
        else the one leg `decision` plans through that trunk (`PJSIP/trunk-out-0000001b`
        names the trunk only); the endpoint itself when that says no more."""
        endpoint = channel.name.rsplit("-", 1)[0]
        for target in self.config.targets.values():
            if target.endpoint == endpoint:
                return target.name
        flow = decision if isinstance(decision, Flow) else None
        through = {leg.target for leg in _planned_legs(flow) if _dial_endpoint(leg) == endpoint}
        return through.pop() if len(through) == 1 else endpoint

    def _trunk_of_destination(self, destination: str) -> str | None:
        """The trunk whose legs go out through the endpoint a dial string or channel names."""
        if "@" in destination:  # a dial string: `PJSIP/+33612345678@trunk-out`
            endpoint = destination.rsplit("@", 1)[-1]
        else:  # a channel's name: `PJSIP/trunk-out-0000001b`
            endpoint = destination.partition("/")[2].rsplit("-", 1)[0]
        for trunk in self.config.trunks.values():
            if trunk.outbound_endpoint == endpoint:
                return trunk.name
        return None

    async def _sweep_one(self, channel: Channel) -> None:
        """A stranded caller: planned anew if still ringing, else back to the dialplan."""
        if channel.state in UNANSWERED_STATES:
            log.warning("stranded caller taken as a new call", channel=channel.id)
            # Its call began when Asterisk created the channel, not now; its Stasis() args
            # (after the app's name in app_data) are what its StasisStart carried.
            self._stasis_start(
                StasisStart(
                    timestamp=channel.creationtime,
                    application=self.ari.app,
                    channel=channel,
                    args=_stasis_args(channel),
                ),
                swept=True,
            )
            return
        log.warning("stranded channel sent back to the dialplan", channel=channel.id)
        await self._back_to_dialplan(channel.id)

    async def _wait_gone(self, channel_ids: list[str]) -> None:
        """Until Asterisk no longer has these channels (bounded), then let their events pass."""
        deadline = self.clock.monotonic() + SWEEP_LEG_GONE_SECONDS
        pending = list(channel_ids)
        while pending and self.clock.monotonic() < deadline:
            pending = [c for c in pending if await self._channel(c) is not None]
            if pending:
                await self.clock.sleep(0.05)
        # Their ChannelDestroyed must not reach a new call reusing the same leg ids.
        await self.clock.sleep(SWEEP_GRACE_SECONDS)

    async def _unstrand(self, channel_id: str) -> None:
        """After a failed recovery, a caller still ringing goes to the dialplan's fallback.

        Nobody would drive it otherwise; a bridged call is left talking (retried next start).
        """
        try:
            if await self._channel_state(channel_id) in UNANSWERED_STATES:
                await self._back_to_dialplan(channel_id)
        except Exception:
            log.exception("could not hand a stranded caller back", channel=channel_id)

    async def _events_of(self, call_id: str) -> tuple[list[JournalEvent], int]:
        """The call's journal as stored (empty from a store that keeps none) and the highest
        sequence number stored: events of a kind this version does not know count there."""
        read = getattr(self.cdr, "events_of", None)
        if read is None:
            return [], 0
        stored: list[CallEventRecord] = await read(call_id)
        events = [event_of_record(record) for record in stored]
        last_seq = max((record.seq for record in stored), default=0)
        return [event for event in events if event is not None], last_seq

    async def _recover(self, record: CallRecord) -> None:
        record.server = record.server or self.server  # a row older than `calls.server`
        # Three independent reads: at once, so a ringing caller waits as little as possible.
        legs, (events, last_seq), caller = await asyncio.gather(
            self.cdr.legs_of(record.call_id),
            self._events_of(record.call_id),
            self._channel(record.call_id),
        )
        position = replay(events)
        live = [leg for leg in legs if leg.ended_at is None]
        caller_up = caller.state if caller is not None else None
        # The bridge the journal names (a shared one), else the call's own (`<call>-bridge`).
        journaled = [e.bridge for e in events if isinstance(e, Bridged)]
        bridge_id = journaled[-1] if journaled else ids.bridge_id(record.call_id)
        bridge = None
        if caller_up == "Up":
            bridge = await self._bridge_holding(record.call_id, bridge_id)
        winner = await self._bridged_partner(record, legs, bridge) if bridge is not None else None
        if bridge is not None and winner is not None:
            bridge_id = bridge.id
            log.info("adopting bridged call", call_id=record.call_id, did=record.did)
            # The last CDR batch may not have been committed before the crash: Asterisk's
            # bridge says who answered; the latest moment we know stands in for when.
            known = best_end_time(record, legs)
            winner.answered_at = winner.answered_at or record.answered_at or known
            winner.ended_at = None
            record.answered_at = record.answered_at or winner.answered_at
            record.answered_by = record.answered_by or winner.target
            record.disposition = None
            self.cdr.record_call(record)
            self.cdr.record_leg(winner)
            # Losers hung up as the call was answered: close them, they never come back;
            # one still ringing is told it was answered elsewhere, like at the answer.
            losers = [leg for leg in live if leg is not winner]
            await self._close_legs(losers, known, reason_code=ANSWERED_ELSEWHERE)
            adopted = self._adopt_bridged(
                record, winner, bridge_id, legs, events, caller, last_seq=last_seq
            )
            self._start(adopted)
            return
        if caller is not None and _driven_by_pbxd(record, caller, position):
            waiting = await self._adopt_waiting(
                record, legs, live, caller, events, position, last_seq
            )
            if waiting is not None:
                self._start(waiting)
                return
        # Gone, or left half-set-up by the crash: end what remains and close the books.
        known = best_end_time(record, legs)
        if caller_up is not None and _kind_of_step(events, position.step) is StepKind.CALL_THROUGH:
            # Not taken up: what the mobile keyed (a PIN) is never journaled, so nothing says
            # whether it keys its PIN or the number; asking again would take one for the other.
            record.add_step(PathStep(StepKind.CALL_THROUGH, StepOutcome.REFUSED, RESTART_LABEL))
            log.info("call_through_not_adopted", call_id=record.call_id, did=record.did)
        if caller_up is not None:
            await self._hangup_quietly(record.call_id)
            record.hangup_cause = record.hangup_cause or CAUSE_OF_REASON[HangupReason.NORMAL]
        await self._close_legs(live, known)
        # A shared bridge may be another call's by now: the sweep keeps it if empty.
        if not ids.is_pooled_bridge(bridge_id):
            with contextlib.suppress(AriNotFound):  # usually destroyed with its last channel
                await self.ari.destroy_bridge(bridge_id)
        # A caller still there ends now, as we hang it up; one already gone, when last seen.
        end = self.clock.now() if caller_up is not None else known
        record.ended_at = max(end, known)
        if record.disposition is None or record.disposition is Disposition.ANSWERED:
            record.disposition = Disposition.ANSWERED if record.answered_at else Disposition.FAILED
        self.cdr.record_call(record)
        log.info(
            "closed call left open by a previous run",
            call_id=record.call_id,
            did=record.did,
            still_there=caller_up is not None,
            ended_at=record.ended_at.isoformat(),
        )

    def _adopted_session(
        self,
        record: CallRecord,
        legs: list[LegRecord],
        events: list[JournalEvent],
        last_seq: int,
    ) -> CallSession:
        """A session taking back a call a previous run left on Asterisk; its new events are
        numbered after `last_seq`, the highest stored (of any kind, known to us or not)."""
        journal = Journal(record, self.cdr, legs={leg.leg_id: leg for leg in legs})
        journal.seq = max(last_seq, len(events))  # never over a stored event
        journal.take_up(events)
        numbers = [n for n in (ids.leg_number(leg.leg_id) for leg in legs) if n is not None]
        session = CallSession(
            call_id=record.call_id,
            flow=None,
            journal=journal,
            ari=self.ari,
            clock=self.clock,
            directory=self,
            adopted=True,
            desk=self.desk,
            roster=self.roster,
            limits=self.plan_guard,
            bridges=self.bridges,
        )
        session.legs_made = max(numbers, default=0)
        # The previous run's prompts may still play under its ids: ours are others, and the
        # journal says which, for the run after this one.
        session.playbacks_made = ids.adopted_playbacks_from()
        session.unrecorded_from = unrecorded_playbacks_from(events, record.call_id)
        journal.add(CallAdopted(self.clock.now(), session.playbacks_made))
        return session

    def _flow_of_adopted(self, record: CallRecord, caller: Channel | None) -> Flow | None:
        """The flow a call found bridged was planned with (its plan's limits watch it again);
        None when the configuration changed under the call."""
        decision = self._plan_again(caller) if caller is not None else None
        if not isinstance(decision, Flow) or (decision.did, decision.route) != (
            record.did,
            record.route,
        ):
            return None
        return decision

    def _adopt_bridged(
        self,
        record: CallRecord,
        winner: LegRecord,
        bridge_id: str,
        legs: list[LegRecord],
        events: list[JournalEvent],
        caller: Channel | None = None,
        *,
        last_seq: int = 0,
    ) -> CallSession:
        """A session for a call found bridged after a restart; it completes the CDR, and its
        number's plan watches it as it watched the call before the restart (a caller warned
        then is not warned again)."""
        session = self._adopted_session(record, legs, events, last_seq)
        session.state = CallState.BRIDGED  # as found: the session starts there
        session.bridge_id = bridge_id
        session.plan_warned = any(isinstance(event, PlanWarned) for event in events)
        flow = self._flow_of_adopted(record, caller)
        if flow is not None:
            session.flow = flow
        target = self.config.targets.get(winner.target)
        # A leg adopted without its row is named after its channel: the trunk it went out on.
        trunk = (
            target.trunk if target is not None else self._trunk_of_destination(winner.destination)
        )
        trunk = trunk if trunk in self.config.trunks else None
        plan = _planned_leg(flow, winner.target) or LegPlan(
            target=winner.target,
            dial_string=winner.destination,
            trunk=trunk,
            ring_time=1,
            caller_id_number=record.caller_number or "",
            caller_id_name=record.caller_name or "",
            # Its route's and trunk's limit, counted from its answer before the restart.
            max_duration=max_call_duration(
                self.config.routes.get(record.route or ""),
                self.config.trunks.get(trunk) if trunk else None,
            ),
        )
        leg = Leg(plan, winner.leg_id, step="", state=LegState.ANSWERED)
        if trunk is not None:
            self.hold_trunk_slot(trunk)  # the channel exists: it counts, even above the maximum
        session.legs.append(leg)
        session.winner = leg
        return session

    async def _adopt_waiting(
        self,
        record: CallRecord,
        legs: list[LegRecord],
        live: list[LegRecord],
        caller: Channel,
        events: list[JournalEvent],
        position: Position,
        last_seq: int,
    ) -> CallSession | None:
        """A session for a caller still in its flow (ringing, in a menu, an announcement or
        voicemail); None when the flow cannot be taken up where it stood.

        Where the call stood (which step, which legs it made) is read from its journal; the
        step itself from the configuration, which must not have changed.
        """
        decision = self._plan_again(caller)
        if not isinstance(decision, Flow) or decision.route != record.route:
            return None  # the configuration changed under the call: do not guess
        # A journal says which step the call is in; a row written by an older pbxd: the first.
        step_name = position.step if events else decision.start
        step = decision.steps.get(step_name) if step_name is not None else None
        if isinstance(step, MenuStep) and caller.state == "Up":
            return await self._adopt_in_step(record, legs, live, decision, step, events, last_seq)
        if isinstance(step, PlayStep | VoicemailStep):
            return await self._adopt_in_step(record, legs, live, decision, step, events, last_seq)
        if isinstance(step, RingStep) and str(step.strategy) == record.strategy:
            return await self._adopt_ringing(
                record, legs, decision, step, events, position, last_seq
            )
        return None

    async def _adopt_in_step(
        self,
        record: CallRecord,
        legs: list[LegRecord],
        live: list[LegRecord],
        flow: Flow,
        step: MenuStep | PlayStep | VoicemailStep,
        events: list[JournalEvent],
        last_seq: int,
    ) -> CallSession:
        """A session for a caller a previous run left in a menu (the prompt it hears goes on,
        or the menu plays again; the failures counted before still count), hearing an
        announcement (heard to its end, then the flow goes on) or in voicemail (the message
        goes on and is kept): each handler's `resume` says how."""
        # Legs of an earlier step that the crash left open are over.
        await self._close_legs(live, best_end_time(record, legs))
        log.info(
            "adopting call in a step",
            call_id=record.call_id,
            did=record.did,
            step=step.name,
            kind=str(step.kind),
        )
        session = self._adopted_session(record, legs, events, last_seq)
        session.flow = flow
        session.step_name = step.name
        handler: StepHandler[Any]
        if isinstance(step, MenuStep):
            session.state = CallState.MENU  # as found: the session starts there
            handler = MenuHandler.adopt(step, session, last_prompt(events, step.name, MenuPrompted))
        elif isinstance(step, PlayStep):
            session.state = CallState.PLAYING
            handler = PlayHandler.adopt(
                step, session, last_prompt(events, step.name, PromptStarted)
            )
        else:
            session.state = CallState.RECORDING
            handler = VoicemailHandler.adopt(
                step, session, last_prompt(events, step.name, PromptStarted)
            )
        session.handler = handler
        return session

    async def _adopt_ringing(
        self,
        record: CallRecord,
        legs: list[LegRecord],
        decision: Flow,
        step: RingStep,
        events: list[JournalEvent],
        position: Position,
        last_seq: int,
    ) -> CallSession | None:
        """A session for a caller still ringing in `step`; None when its legs are not the
        step's (another route under the same name)."""
        first = position.first_leg if events else 1
        slots = adopted_slots(step, first, legs)
        planned = {
            ids.leg_id(record.call_id, first + index): step.legs[slot.plan].target
            for index, slot in enumerate(slots)
        }
        if any(planned.get(leg.leg_id) != leg.target for leg in legs):
            return None  # legs the step does not know, or for other targets: another route
        by_id = {leg.leg_id: leg for leg in legs}
        known = best_end_time(record, legs)
        channel_states: dict[str, str | None] = {}
        ended: dict[str, int | None] = {}
        states = await asyncio.gather(*(self._channel_state(c) for c in planned))
        for channel_id, state in zip(planned, states, strict=True):
            leg = by_id.get(channel_id)
            channel_states[channel_id] = state
            if leg is not None and state is None:
                if leg.ended_at is None:
                    leg.ended_at = known  # ended while nobody listened
                    self.cdr.record_leg(leg)
                ended[channel_id] = leg.hangup_cause
        # The step's start by our clock (the journal), else Asterisk's: at most the whole step.
        began = position.step_entered if events and position.step_entered else record.started_at
        elapsed = (self.clock.now() - began).total_seconds()
        elapsed = min(max(0.0, elapsed), float(step.timeout))
        log.info("adopting ringing call", call_id=record.call_id, did=record.did)
        session = self._adopted_session(record, legs, events, last_seq)
        session.flow = decision
        session.state = CallState.RINGING  # as found: the session starts there
        session.step_name = step.name
        adopted = [
            Leg(step.legs[slot.plan], channel_id, step.name, turn=slot.turn)
            for slot, channel_id in zip(slots, planned, strict=True)
        ]
        found_leg_states(adopted, channel_states, ended)
        verdicts = {e.leg: e.verdict for e in events if isinstance(e, LegScreened)}
        screened: dict[str, str | None] = {}
        for adopted_leg in adopted:
            channel_id = adopted_leg.channel_id
            plan = adopted_leg.plan
            if channel_states[channel_id] == "Up" and (plan.whisper or plan.confirm):
                # Answered and screened before the restart: its screening is taken up.
                known_leg = by_id.get(channel_id)
                if known_leg is not None and known_leg.answered_at is not None:
                    adopted_leg.state = LegState.ANSWERED
                screened[channel_id] = verdicts.get(channel_id)
        for adopted_leg in adopted:
            if adopted_leg.holds_trunk_slot and adopted_leg.plan.trunk is not None:
                self.hold_trunk_slot(adopted_leg.plan.trunk)
        session.legs.extend(adopted)
        session.legs_made = max(session.legs_made, first + len(slots) - 1)
        session.handler = RingHandler.adopt(step, session, adopted, elapsed, screened)
        return session

    async def _bridged_partner(
        self, record: CallRecord, legs: list[LegRecord], bridge: Bridge
    ) -> LegRecord | None:
        """The leg Asterisk still has in the call's bridge with the caller, both Up."""
        if record.call_id not in bridge.channels:
            return None
        by_id = {leg.leg_id: leg for leg in legs}
        partners = [by_id[c] for c in bridge.channels if c in by_id]
        if len(partners) != 1 or await self._channel_state(partners[0].leg_id) != "Up":
            return None
        return partners[0]

    async def _close_legs(
        self, legs: list[LegRecord], known: datetime, *, reason_code: int | None = None
    ) -> None:
        """Hang up what is left of open legs and close their records."""
        for leg in legs:
            still_there = await self._channel_state(leg.leg_id) is not None
            if still_there:
                await self._hangup_quietly(leg.leg_id, reason_code=reason_code)
            leg.ended_at = self.clock.now() if still_there else known
            self.cdr.record_leg(leg)

    async def _channel(self, channel_id: str) -> Channel | None:
        try:
            return await self.ari.get_channel(channel_id)
        except AriNotFound:
            return None

    async def _channel_state(self, channel_id: str) -> str | None:
        channel = await self._channel(channel_id)
        return channel.state if channel is not None else None

    # ------------------------------------------------------------ status

    def describe(self) -> str:
        """Every call in progress, as a person reads it."""
        if not self.calls:
            return "no call in progress"
        return "\n".join(c.describe() for c in self.calls.values())

    async def wait_idle(self) -> None:
        """Wait until every call has ended (used by `pbxd simulate` and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Stop driving calls; they stay up on Asterisk and are adopted on the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.owns is None or self.owns():  # a fenced daemon leaves Asterisk to its peer
            await self.bridges.drain()


async def identify_asterisk(client: AriClient, clock: Clock) -> AsteriskInfo:
    """`GET /asterisk/info`, retried with backoff while Asterisk is away (starting, down)."""
    delay = IDENTIFY_RETRY_S
    while True:
        try:
            info = await client.info()
        except AriError as exc:
            log.warning("asterisk_info_unavailable", error=str(exc), retry_in_s=delay)
            await clock.sleep(delay)
            delay = min(delay * 2, IDENTIFY_RETRY_MAX_S)
            continue
        log.info(
            "asterisk_identified",
            server=info.server,
            entity_id=info.entity_id,
            system_name=info.system_name,
            version=info.version,
        )
        return info


def adopted_slots(step: RingStep, first: int, stored: list[LegRecord]) -> list[Slot]:
    """The legs a ring step left by a previous run made, in order, from its stored legs.

    A hunt in an order of its own (round robin, longest idle, random…) chose it at entry
    from memory that has moved on since: the legs it made say that order, the targets not
    rung yet follow round from the last one made. The other strategies' order is the
    written one.
    """
    rule = strategy_of(step.strategy)
    slots = rule.arrange(step.legs, NO_STANDING, random.Random(0))
    if not step.strategy.one_at_a_time:
        return slots
    index_of = {plan.target: i for i, plan in enumerate(step.legs)}
    made = sorted(
        (n, leg.target)
        for leg in stored
        if (n := ids.leg_number(leg.leg_id)) is not None and n >= first
    )
    order = list(dict.fromkeys(index_of[t] for _, t in made if t in index_of))
    # The rest round from the last one made (a round robin's own order).
    after = order[-1] + 1 if order else 0
    order += [i for i in rotated(len(step.legs), after) if i not in order]
    return [Slot(plan, turn) for turn, plan in enumerate(order)]


def _driven_by_pbxd(record: CallRecord, caller: Channel, position: Position) -> bool:
    """A caller pbxd's flow still drives (not found bridged): ringing, or answered by pbxd
    itself (a menu), or answered for a target the journal never saw bridged (a callee who
    accepted a confirm call just before the restart)."""
    if caller.state in UNANSWERED_STATES:
        return record.answered_at is None
    if caller.state != "Up" or position.last_seen is None:
        return False  # an answered call with no journal: nothing says where it stood
    return record.answered_by is None or position.bridged_leg is None


# What a step journals of its prompt: a menu's, an announcement's or a greeting's.
PromptT = TypeVar("PromptT", MenuPrompted, PromptStarted)


def last_prompt(events: list[JournalEvent], step: str, kind: type[PromptT]) -> PromptT | None:
    """The last prompt `step` journaled since the call last entered it, if any."""
    last: PromptT | None = None
    for event in events:
        if isinstance(event, StepEntered) and event.step == step:
            last = None  # a step entered again starts afresh
        elif isinstance(event, kind) and event.step == step:
            last = event
    return last


def _kind_of_step(events: list[JournalEvent], step: str | None) -> StepKind | None:
    """The kind of the step named `step` the journal last entered."""
    kinds = {event.step: event.step_kind for event in events if isinstance(event, StepEntered)}
    return kinds.get(step) if step is not None else None


def _end_of_lost_call(
    session: CallSession, lost: datetime | None, restarted: datetime | None
) -> datetime | None:
    """When a call whose channels vanished with Asterisk ended: the drop, or the restart
    if Asterisk restarted during the call and that came first."""
    if lost is None:
        return None
    if restarted is not None and restarted > session.record.started_at:
        return min(lost, restarted)
    return lost


def _stasis_args(channel: Channel) -> tuple[str, ...]:
    """The arguments of the Stasis() application a channel is in (app_data: `app,args...`)."""
    if channel.dialplan.app_name != "Stasis" or not channel.dialplan.app_data:
        return ()
    return tuple(channel.dialplan.app_data.split(",")[1:])


def _is_our_leg(channel: Channel) -> bool:
    """A leg pbxd created: its id is `<call id>-<n>`, or it entered Stasis as `pbxd-leg`."""
    return ids.is_leg_id(channel.id) or _stasis_args(channel)[:1] == (ids.LEG_MARK,)


def best_end_time(record: CallRecord, legs: list[LegRecord]) -> datetime:
    """The latest moment we know the call was still alive: what a closed CDR says."""
    moments = [record.started_at]
    if record.answered_at is not None:
        moments.append(record.answered_at)
    for leg in legs:
        moments += [t for t in (leg.started_at, leg.answered_at, leg.ended_at) if t is not None]
    return max(moments)


def record_of_call(
    call_id: str, decision: Decision, started_at: datetime, server: str | None
) -> CallRecord:
    """A new call's CDR as its plan makes it (a call going out says what it dialled)."""
    record = CallRecord(
        call_id=call_id,
        did=decision.did,
        started_at=started_at,
        caller_number=decision.caller_number,
        caller_name=decision.caller_name or None,
        trunk=decision.trunk,
        server=server,
    )
    call_out = decision.call_out
    if call_out is not None:
        record.direction = Direction.OUTBOUND
        record.dialled, record.presented = call_out.dialled, call_out.presented
        record.emergency = call_out.emergency
    return record


def _planned_legs(flow: Flow | None) -> list[LegPlan]:
    """Every leg `flow`'s ring steps plan."""
    steps = flow.steps.values() if flow is not None else ()
    return [leg for step in steps if isinstance(step, RingStep) for leg in step.legs]


def _planned_leg(flow: Flow | None, target: str) -> LegPlan | None:
    """The leg `flow` plans to `target` (its trunk, limits and identity), if one."""
    return next((leg for leg in _planned_legs(flow) if leg.target == target), None)


def _dial_endpoint(leg: LegPlan) -> str:
    """The endpoint a leg's channel is named after: `PJSIP/trunk-out` for
    `PJSIP/+33612345678@trunk-out`, `PJSIP/bob` for `PJSIP/bob`."""
    technology, _, resource = leg.dial_string.partition("/")
    return f"{technology}/{resource.rsplit('@', 1)[-1]}"
