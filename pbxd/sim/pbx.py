"""The simulated Asterisk core: call legs, Stasis, dialing, bridges, playbacks, and their events.

Everything here runs synchronously on the event loop; the only asynchrony is timers taken from
the shared Clock (peer behaviour, dial timeouts, Stasis entry, media durations). Events are
built from the state at the moment they happen and handed to `publish(apps, event)`, which
must not block. The event sequences mirror the Asterisk 22.10.1 captures, including their
oddities (no Dial BUSY, a second ChannelHangupRequest when Stasis() returns on an inbound
channel, `cause: 32, soft: true` for client hangups). Of the many ChannelVarset events Asterisk
sends, the simulator sends those the captures show every time (STASISSTATUS around Stasis,
BRIDGEPEER/BRIDGEPVTCALLID in two-party bridges), so clients meet that noise here too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..clock import Clock
from .media import Heard, MediaLength, Outcome, SoundLibrary
from .model import (
    BRIDGE_TYPE_FLAGS,
    CAUSE_CALL_REJECTED,
    CAUSE_CONGESTION,
    CAUSE_INTERWORKING,
    CAUSE_NO_ANSWER,
    CAUSE_NORMAL_CLEARING,
    CAUSE_USER_BUSY,
    PRES_ALLOWED_NOT_SCREENED,
    SIP_BUSY_HERE,
    SIP_DECLINE,
    SIP_OK,
    SIP_REQUEST_TERMINATED,
    SIP_RINGING,
    SIP_SESSION_PROGRESS,
    SIP_TRYING,
    SOFTHANGUP_APPUNLOAD,
    SOFTHANGUP_EXPLICIT,
    CallerId,
    ChannelState,
    JsonDict,
    PlaybackState,
    SimBridge,
    SimChannel,
    SimEndpoint,
    SimPlayback,
    ari_time,
    cause_text,
    cause_to_sip,
    parse_presentation,
    presentation_name,
    presentation_text,
)
from .peers import DTMF_DURATION_MS, DTMF_INTERVAL, DialTarget, PeerScript, ScriptBook
from .presence import PresenceDesk
from .recordings import RecordingDesk

log = logging.getLogger(__name__)

Publish = Callable[[Iterable[str], JsonDict], None]
IsActive = Callable[[str], bool]

# Virtual delays of the SIP round trips Asterisk waits for (loopback in the captures: ~1 ms).
RING_DELAY = 0.001
PLAYBACK_START_DELAY = 0.001
# Channels kept after they are gone, for tests and dry runs to read (sip_responses, heard).
MAX_ENDED_CHANNELS = 10_000
# What a dialplan Playback() of a sound the simulator does not have lasts, in virtual seconds.
DEFAULT_SOUND_SECONDS = 1.0
# The Stasis() arguments of the shipped asterisk-conf/extensions.conf, before substitution
# (its Ringing() just before Stasis() is `inbound_call(..., ringing=True)`).
SHIPPED_STASIS_ARGS = ("${CALLERID(pres)}", "ringing")
# ... and of its [from-softphones] context, where softphones call out.
SHIPPED_OUTBOUND_STASIS_ARGS = ("outbound", "${CALLERID(pres)}")
# The priorities after Stasis() of every extension of the shipped [from-trunk] (priority:
# application, data), and its labels: what `continue` can send a caller back to.
SHIPPED_TRUNK_DIALPLAN: dict[int, tuple[str, str]] = {
    4: ("GotoIf", '$["${STASISSTATUS}" = "SUCCESS"]?done'),
    5: ("Log", "WARNING,pbxd unavailable (STASISSTATUS=${STASISSTATUS}) for call to ${EXTEN}"),
    6: ("Progress", ""),
    7: ("Playback", "all-circuits-busy-now,noanswer"),
    8: ("Congestion", "5"),
    9: ("Hangup", ""),
}
SHIPPED_TRUNK_LABELS = {"unavailable": 5, "done": 9}
SHIPPED_TRUNK_CONTEXT = "from-trunk"
# Congestion(5): how long it waits for the far end to hang up an answered call.
CONGESTION_WAIT = 5.0
_DIALPLAN_EXPRESSION = re.compile(r"\$\{([^}]*)\}")
# The shipped [from-trunk] extensions: _+X. and _X.
_SHIPPED_TRUNK_EXTEN = re.compile(r"\+?[0-9].+")


class AriError(Exception):
    """An ARI error answer: status plus Asterisk's `{"message": ...}` (or `{"error": ...}`)."""

    def __init__(self, status: int, message: str, *, key: str = "message") -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.key = key

    @property
    def body(self) -> JsonDict:
        return {self.key: self.message}


def allocation_failed() -> AriError:
    """ast_ari_response_alloc_failed(): what a failed channel request looks like."""
    return AriError(500, "Allocation failed", key="error")


@dataclass(frozen=True, slots=True)
class HangupStyle:
    """How a leg ends: the ChannelHangupRequest fields, then the final cause."""

    request: JsonDict
    cause: int


def client_hangup(cause: int) -> HangupStyle:
    """DELETE /channels/{id} (and ARI's dial timeout): a soft hangup, EXPLICIT flag as cause."""
    return HangupStyle({"cause": SOFTHANGUP_EXPLICIT, "soft": True}, cause)


class SimPbx:
    """Asterisk's channels, bridges and playbacks for one simulator."""

    def __init__(
        self,
        clock: Clock,
        publish: Publish,
        is_active: IsActive,
        *,
        asterisk_id: str,
        system_name: str = "",
        stasis_delay: float,
        extra_stasis_delay: Callable[[str], float] | None = None,
    ) -> None:
        self.clock = clock
        self.asterisk_id = asterisk_id
        self.system_name = system_name
        self.stasis_delay = stasis_delay
        # Fault injection: more virtual seconds before a created channel enters Stasis.
        self._extra_stasis_delay = extra_stasis_delay or (lambda _channel_id: 0.0)
        # Asterisk 22: a lone inbound channel's events stop at StasisEnd (no ChannelDestroyed).
        # False keeps the older simulator's ChannelDestroyed, which today's daemon still needs.
        self.stasis_only_subscriptions = True  # Asterisk 22 (see AriSimulator)
        self._publish = publish
        self._is_active = is_active
        self.endpoints: dict[tuple[str, str], SimEndpoint] = {}
        self.channels: dict[str, SimChannel] = {}
        self.bridges: dict[str, SimBridge] = {}
        self.playbacks: dict[str, SimPlayback] = {}
        self.scripts = ScriptBook()
        # Lengths by full media URI, checked before the sounds (kept for existing callers).
        self.sound_seconds: dict[str, float] = {}
        self.sounds = SoundLibrary()
        self.recordings = RecordingDesk(self)
        self.presence = PresenceDesk(self)
        self.ended: dict[str, SimChannel] = {}  # the last MAX_ENDED_CHANNELS gone, oldest first
        self._snoop_seq = 0  # Snoop/<id>-<8 hex digits>: one counter for all snoops
        # Per target (`channel:<id>` / `bridge:<id>`): playbacks in order, the first one active.
        self._playback_queues: dict[str, list[SimPlayback]] = {}
        self._unique_seq = 100  # uniqueid suffix, `<epoch>.<seq>` (PJSIP legs use two each)
        self._name_seq = 0  # the 8-hex-digit channel name suffix
        self._inbound_seq = 15000  # SIPp Call-ID counter of the carrier
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ helpers
    def _event(self, event_type: str, **fields: object) -> JsonDict:
        return {
            "type": event_type,
            "timestamp": ari_time(self.clock.now()),
            "asterisk_id": self.asterisk_id,
            **fields,
        }

    def _emit_channel(self, chan: SimChannel, event_type: str, **fields: object) -> None:
        self._publish(list(chan.apps), self._event(event_type, channel=chan.to_json(), **fields))

    def publish_channel_event(self, chan: SimChannel, event_type: str, **fields: object) -> None:
        """An event about `chan` (media modules: recordings) to the apps watching it."""
        self._publish(list(chan.apps), self._event(event_type, **fields))

    def publish_event(self, apps: Iterable[str], event_type: str, **fields: object) -> None:
        """An event about no channel (endpoints, devices) to `apps`."""
        self._publish(apps, self._event(event_type, **fields))

    def later(self, chan: SimChannel, delay: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay` virtual seconds unless the channel is gone by then."""
        self._later(chan, delay, action)

    def _varset(self, chan: SimChannel, variable: str, value: str) -> None:
        """pbx_builtin_setvar_helper(): the variable changes and ChannelVarset says so."""
        chan.variables[variable] = value
        self._emit_channel(chan, "ChannelVarset", variable=variable, value=value)

    def _later(
        self, chan: SimChannel, delay: float, action: Callable[[], None], *, dial: bool = False
    ) -> None:
        """Run `action` after `delay` virtual seconds unless the channel is gone by then."""

        def fire() -> None:
            if chan.destroyed:
                return
            try:
                action()
            except Exception:  # a simulator bug must not kill the event loop's timer
                log.exception("simulator timer failed on channel %s", chan.id)

        handle = self.clock.call_later(max(0.0, delay), fire)
        (chan.dial_timers if dial else chan.timers).append(handle)

    def _new_uniqueid(self) -> str:
        self._unique_seq += 2
        unique = f"{int(self.clock.now().timestamp())}.{self._unique_seq}"
        # Asterisk prefixes its uniqueids with asterisk.conf's `systemname` when one is set.
        return f"{self.system_name}-{unique}" if self.system_name else unique

    def _new_name(self, technology: str, resource: str) -> str:
        self._name_seq += 1
        return f"{technology}/{resource}-{self._name_seq:08x}"

    def _register(self, chan: SimChannel) -> None:
        self.channels[chan.id] = chan
        self._idle.clear()

    async def wait_idle(self) -> None:
        """Return once no channel is left."""
        while self.channels:
            await self._idle.wait()

    def endpoint(self, technology: str, resource: str) -> SimEndpoint | None:
        """The configured endpoint (technology is case-insensitive, like Asterisk's)."""
        return self.endpoints.get((technology.lower(), resource))

    def channels_of(self, endpoint: SimEndpoint) -> list[str]:
        return [c.id for c in self.channels.values() if c.endpoint is endpoint]

    def get_channel(self, channel_id: str) -> SimChannel:
        """A live channel, else 404 Channel not found."""
        chan = self.channels.get(channel_id)
        if chan is None:
            raise AriError(404, "Channel not found")
        return chan

    def control(self, channel_id: str) -> SimChannel:
        """find_control(): a channel in Stasis, else 404 / 409."""
        chan = self.get_channel(channel_id)
        if chan.stasis_app is None:
            raise AriError(409, "Channel not in Stasis application")
        return chan

    # ---------------------------------------------------------------- endpoints
    def add_endpoint(
        self,
        technology: str,
        resource: str,
        *,
        online: bool = True,
        caller_name: str = "",
        caller_number: str = "",
        context: str | None = None,
        codec: str = "ulaw",
    ) -> SimEndpoint:
        """Configure an endpoint; trunks (`trunk*`) get context from-trunk like the lab's."""
        if context is None:
            context = "from-trunk" if resource.startswith("trunk") else "from-internal"
        ep = SimEndpoint(
            technology=technology,
            resource=resource,
            online=online,
            caller=CallerId(caller_name, caller_number),
            context=context,
            codec=codec,
        )
        self.endpoints[(technology.lower(), resource)] = ep
        return ep

    # ------------------------------------------------------------------- stasis
    def _enter_stasis(self, chan: SimChannel, app: str, args: list[str]) -> None:
        """The Stasis() application starts on the channel (StasisStart)."""
        if chan.destroyed:
            return
        if not app or not self._is_active(app):
            # Stasis() refuses an unregistered/inactive app and the channel hangs up.
            log.warning("Stasis app %r not active: hanging up %s", app, chan.name)
            self._teardown(chan, HangupStyle({}, CAUSE_NORMAL_CLEARING), silent=True)
            return
        chan.app_name = "Stasis"
        chan.app_data = ",".join([app, *args])
        chan.apps.setdefault(app, None)
        if not chan.via_dialplan:
            # pbx_exec(Stasis) on a channel the app already watches: ChannelDialplan first.
            self._emit_channel(
                chan,
                "ChannelDialplan",
                dialplan_app=chan.app_name,
                dialplan_app_data=chan.app_data,
            )
            # Stasis() clears its status variable first; the app sees it (not on inbound
            # channels, which the app only watches from StasisStart on).
            self._varset(chan, "STASISSTATUS", "")
        chan.stasis_app = app
        self._emit_channel(chan, "StasisStart", args=list(args))

    # ----------------------------------------------------------------- channels
    def inbound_call(
        self,
        did: str,
        caller_number: str,
        caller_name: str,
        *,
        trunk: str,
        app: str,
        hangup_after: float | None,
        dtmf: str = "",
        dtmf_after: float = 0.5,
        presentation: int = PRES_ALLOWED_NOT_SCREENED,
        stasis_args: Sequence[str] = (),
        script: PeerScript | None = None,
        ringing: bool = False,
    ) -> SimChannel:
        """An INVITE from the carrier on `trunk`: dialplan `from-trunk` sends it to Stasis(app).

        `presentation`: the caller's, as chan_pjsip reads it (PAI with `Privacy: id` ->
        prohib_not_screened). `stasis_args`: the dialplan's Stasis() arguments after the app,
        `${CALLERID(...)}`/`${EXTEN}` substituted as pbx_substitute_variables would; none by
        default, as in the captures (plain `Stasis(pbxd)`). `ringing`: the dialplan runs
        Ringing() first (the shipped one does): 180 before Stasis, with no event (the app does
        not watch the channel yet, and chan_pjsip leaves an inbound channel's state at Ring).
        """
        endpoint = self.endpoint("PJSIP", trunk)
        if endpoint is None:
            endpoint = self.add_endpoint("PJSIP", trunk, context="from-trunk")
        self._inbound_seq += 1
        chan = SimChannel(
            id=self._new_uniqueid(),
            name=self._new_name(endpoint.technology, endpoint.resource),
            protocol_id=f"1-{self._inbound_seq}@127.0.0.1",
            endpoint=endpoint,
            direction="inbound",
            creationtime=self.clock.now(),
            state="Ring",
            caller=CallerId(caller_name, caller_number, presentation),
            context=endpoint.context,
            exten=did,
            via_dialplan=True,
            script=script or PeerScript(dtmf=dtmf, dtmf_after=dtmf_after),
            stasis_only=self.stasis_only_subscriptions,
            sip_responses=[SIP_TRYING, SIP_RINGING] if ringing else [SIP_TRYING],
        )
        chan.apps[app] = None
        self._register(chan)
        args = ",".join(substitute(arg, chan) for arg in stasis_args)
        # Stasis() splits its (substituted) data on commas, as app_stasis's AST_STANDARD_APP_ARGS.
        self._enter_stasis(chan, app, args.split(",") if stasis_args else [])
        if hangup_after is not None:
            self._later(chan, hangup_after, lambda: self.remote_hangup(chan))
        return chan

    def create_channel(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str,
        channel_id: str | None,
        originator: SimChannel | None,
        variables: dict[str, str],
    ) -> SimChannel:
        """POST /channels/create: a Down channel that enters Stasis a moment later."""
        chan = self._request_channel(endpoint, channel_id)
        if app:
            chan.apps[app] = None
            if originator is not None:
                originator.apps.setdefault(app, None)
                originator.stasis_only = False  # the app now watches it until it is gone
        args = app_args.split(",") if app_args else []
        self._register(chan)
        # Set once the app is subscribed to the channel: it sees each change.
        self.set_variables(chan, variables)
        # The channel thread runs Stasis() just after the REST answer: a `dial` sent before
        # the client has seen StasisStart gets 409 (race_dial_before_stasisstart.jsonl).
        delay = self.stasis_delay + self._extra_stasis_delay(chan.id)
        self._later(chan, delay, lambda: self._enter_stasis(chan, app, args))
        return chan

    def _request_channel(self, endpoint: str, channel_id: str | None) -> SimChannel:
        """ast_request(): resolve the endpoint and build the Down channel (not yet registered)."""
        target = DialTarget.parse(endpoint)
        if target is None:
            raise AriError(400, "Invalid endpoint specified")
        ep = self.endpoint(target.technology, target.endpoint)
        script = self.scripts.lookup(target)
        if ep is None or not ep.online or not script.online:
            raise allocation_failed()
        if channel_id and channel_id in self.channels:
            raise AriError(409, "Channel with given unique ID already exists")
        chan = SimChannel(
            id=channel_id or self._new_uniqueid(),
            name=self._new_name(ep.technology, ep.resource),
            protocol_id=str(uuid.uuid4()),
            endpoint=ep,
            direction="outbound",
            creationtime=self.clock.now(),
            state="Down",
            caller=ep.caller.copy(),
            context=ep.context,
            dialstring=target.dialstring,
            script=script,
        )
        return chan

    def set_variables(self, chan: SimChannel, variables: dict[str, str]) -> None:
        """ast_set_variables(): a plain variable raises ChannelVarset; a caller-ID function
        publishes a new snapshot, which the app sees as ChannelCallerId/ChannelConnectedLine."""
        for name, value in variables.items():
            caller, connected = chan.caller.copy(), chan.connected.copy()
            if not apply_variables(chan, {name: value}):
                self._varset(chan, name, value)
                continue
            if chan.caller != caller:
                self._emit_channel(
                    chan,
                    "ChannelCallerId",
                    caller_presentation=chan.caller.combined_presentation,
                    caller_presentation_txt=presentation_text(chan.caller.combined_presentation),
                )
            if chan.connected != connected:
                self._emit_channel(chan, "ChannelConnectedLine")

    def originate(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str,
        caller_id: CallerId | None,
        timeout: int,
        channel_id: str | None,
        variables: dict[str, str],
    ) -> SimChannel:
        """POST /channels: dial at once; the channel enters Stasis(app) when answered."""
        chan = self._request_channel(endpoint, channel_id)
        chan.originated = True
        if caller_id is not None:
            chan.caller = caller_id.copy()
            chan.connected = caller_id.copy()
        # Before the app subscribes to the channel: no event for these.
        for name, value in variables.items():
            if not apply_variables(chan, {name: value}):
                chan.variables[name] = value
        if app:
            chan.apps[app] = None
        self._register(chan)
        args = app_args.split(",") if app_args else []
        dial_timeout = timeout if timeout > 0 else 30
        if timeout == -1:
            dial_timeout = 0
        self._later(chan, 0.0, lambda: self._start_dial(chan, dial_timeout, app, args))
        return chan

    def snoop(self, target: SimChannel, app: str, args: list[str], snoop_id: str) -> SimChannel:
        """POST /channels/{id}/snoop (validated): a channel already Up that enters Stasis(app)
        at once, with no ChannelDialplan; the app watches it only while in Stasis (no
        ChannelDestroyed, snoop_whisper.jsonl). It hangs up when its target does."""
        if snoop_id and snoop_id in self.channels:
            raise AriError(409, "Channel with given unique ID already exists")
        self._snoop_seq += 1
        chan = SimChannel(
            id=snoop_id or self._new_uniqueid(),
            name=f"Snoop/{target.id}-{self._snoop_seq:08x}",
            protocol_id="",
            endpoint=SimEndpoint("Snoop", target.id, context="default"),
            direction="outbound",
            creationtime=self.clock.now(),
            state="Up",
            caller=CallerId(),
            context="default",
            via_dialplan=True,
            stasis_only=True,
            answered=True,
        )
        chan.apps[app] = None
        target.snoops.append(chan)
        self._register(chan)
        # The answer shows it before Stasis; its StasisStart follows in the same millisecond.
        self._later(chan, 0.0, lambda: self._enter_stasis(chan, app, args))
        return chan

    # ------------------------------------------------------------------ dialing
    def dial(self, chan: SimChannel, caller: SimChannel | None, timeout: int) -> None:
        """POST /channels/{id}/dial on a created channel (already validated)."""
        if chan.state not in ("Down", "Rsrved"):
            raise AriError(409, "Channel is not in the 'Down' state")
        if chan.dialstring is None:
            raise AriError(409, "Dialing a channel not created by ARI")
        if caller is not None:
            chan.language = caller.language
            changed = chan.connected != caller.caller
            # The whole party is copied (presentation too); an event only if name/number moved.
            chan.connected = caller.caller.copy()
            if changed:
                self._emit_channel(chan, "ChannelConnectedLine")
        self._start_dial(chan, timeout, None, [])

    def _dial_event(self, chan: SimChannel, status: str, dialstring: str = "") -> None:
        self._publish(
            list(chan.apps),
            self._event(
                "Dial",
                dialstatus=status,
                dialstring=dialstring,
                forward="",
                peer=chan.to_json(),
            ),
        )

    def _start_dial(
        self,
        chan: SimChannel,
        timeout: int,
        stasis_app: str | None,
        stasis_args: list[str],
    ) -> None:
        """Send the INVITE and play the callee's script."""
        chan.dialed = True
        chan.presented = chan.connected.copy()
        self._dial_event(chan, "", chan.dialstring or "")
        script = (chan.script or self.scripts.default).as_dialled()
        chan.script = script
        if timeout > 0:
            self._later(chan, float(timeout), lambda: self._dial_timeout(chan), dial=True)
        busy_first = script.busy_after is not None and (
            script.answer_after is None or script.busy_after <= script.answer_after
        )
        if busy_first and script.busy_after is not None:
            self._later(chan, script.busy_after, lambda: self._callee_busy(chan), dial=True)
            return
        self._later(chan, RING_DELAY, lambda: self._callee_ringing(chan), dial=True)
        if script.progress_after is not None:
            self._later(chan, script.progress_after, lambda: self._callee_progress(chan), dial=True)
        if script.reject_after is not None and (
            script.answer_after is None or script.reject_after < script.answer_after
        ):
            cause = script.reject_cause
            self._later(
                chan, script.reject_after, lambda: self._callee_rejects(chan, cause), dial=True
            )
            return
        if script.answer_after is not None:
            self._later(
                chan,
                max(script.answer_after, RING_DELAY),
                lambda: self._callee_answer(chan, stasis_app, stasis_args),
                dial=True,
            )

    def _set_state(self, chan: SimChannel, state: ChannelState) -> None:
        if chan.state != state:
            chan.state = state
            self._emit_channel(chan, "ChannelStateChange")

    def _callee_ringing(self, chan: SimChannel) -> None:
        """180 Ringing: the state changes, then Dial RINGING (the majority order in captures)."""
        if chan.state not in ("Down", "Rsrved"):
            return
        self._set_state(chan, "Ringing")
        self._dial_event(chan, "RINGING")

    def _callee_progress(self, chan: SimChannel) -> None:
        """183 Session Progress with SDP from the far end: its early media reaches whoever is
        bridged with the channel (an unanswered caller gets 183 too: bridge_channel passes
        AST_CONTROL_PROGRESS on)."""
        if chan.state == "Up" or chan.hanging_up:
            return
        chan.sip_responses.append(SIP_SESSION_PROGRESS)
        bridge = self.bridges.get(chan.bridge_id or "")
        for other_id in bridge.channels if bridge is not None else []:
            other = self.channels.get(other_id)
            if other is not None and other is not chan and not other.answered:
                other.sip_responses.append(SIP_SESSION_PROGRESS)

    def _callee_rejects(self, chan: SimChannel, cause: int) -> None:
        """A final error response from the far end (404, 503...): hung up with its cause."""
        if chan.state == "Up" or chan.hanging_up:
            return
        self._teardown(chan, HangupStyle({"cause": cause}, cause))

    def _callee_answer(
        self, chan: SimChannel, stasis_app: str | None, stasis_args: list[str]
    ) -> None:
        """200 OK from the callee."""
        if chan.state == "Up" or chan.hanging_up:
            return
        self._mark_answered(chan)
        self._set_state(chan, "Up")
        self._dial_event(chan, "ANSWER")
        if chan.originated:
            if stasis_app:
                self._enter_stasis(chan, stasis_app, stasis_args)
            else:
                # Originated into the dialplan, which the simulator does not model: it ends.
                self._teardown(chan, HangupStyle({}, CAUSE_NORMAL_CLEARING))
                return
        self._after_answer(chan, from_peer=True)

    def _mark_answered(self, chan: SimChannel) -> None:
        chan.answered = True
        chan.cancel_dial_timers()  # no dial timeout or late ringing once answered

    def _after_answer(self, chan: SimChannel, *, from_peer: bool) -> None:
        """Post-answer behaviour: queued connected line, scripted DTMF and hangup."""
        if chan.pending_connected is not None:
            pending, chan.pending_connected = chan.pending_connected, None
            if pending != chan.connected:
                chan.connected = pending
                self._emit_channel(chan, "ChannelConnectedLine")
        script = chan.script
        if script is None:
            return
        for at, digits in script.presses:
            self.send_dtmf(chan, digits, at)
        if from_peer and script.hangup_after is not None:
            self._later(chan, script.hangup_after, lambda: self.remote_hangup(chan))

    def _callee_busy(self, chan: SimChannel) -> None:
        """486 Busy Here: no Dial BUSY event, just the hangup with cause 17 (busy.jsonl)."""
        chan.tech_cause = SIP_BUSY_HERE
        if chan.originated:
            self._dial_event(chan, "BUSY")
        self._teardown(
            chan,
            HangupStyle({"cause": CAUSE_USER_BUSY, "tech_cause": SIP_BUSY_HERE}, CAUSE_USER_BUSY),
        )

    def _dial_timeout(self, chan: SimChannel) -> None:
        """ARI's dial timeout: Asterisk hangs the leg up with cause 19 (noanswer.jsonl)."""
        if chan.state == "Up":
            return
        if chan.originated:
            self._dial_event(chan, "NOANSWER")
        self._teardown(chan, client_hangup(CAUSE_NO_ANSWER))

    # ------------------------------------------------------------------ answer
    def answer(self, chan: SimChannel) -> None:
        """POST /channels/{id}/answer on an inbound channel (state already checked)."""
        if chan.state == "Up":
            return
        self._mark_answered(chan)
        if chan.direction == "inbound":
            chan.sip_responses.append(SIP_OK)
        self._set_state(chan, "Up")
        self._after_answer(chan, from_peer=False)

    def indicate(self, chan: SimChannel, indication: str) -> None:
        """POST /channels/{id}/ring or /progress on a channel (state already checked): the
        caller gets 180 Ringing, or 183 once early media has started (early_media_playback)."""
        if chan.direction != "inbound" or chan.answered:
            return
        if indication == "progress" or (indication == "ring" and chan.early_media):
            chan.sip_responses.append(SIP_SESSION_PROGRESS)
        elif indication == "ring":
            chan.sip_responses.append(SIP_RINGING)

    # ----------------------------------------------------------------- hangups
    def hangup(self, chan: SimChannel, cause: int) -> None:
        """DELETE /channels/{id}: soft hangup with the given cause."""
        self._teardown(chan, client_hangup(cause))

    def remote_hangup(self, chan: SimChannel) -> None:
        """The far end hangs up: BYE once answered, CANCEL (inbound, 127) before."""
        if chan.hanging_up or chan.destroyed:
            return
        if chan.state == "Up":
            # A caller's BYE carries no cause in ChannelHangupRequest, a callee's says 16.
            request: JsonDict = {} if chan.direction == "inbound" else {"cause": 16}
            self._teardown(chan, HangupStyle(request, CAUSE_NORMAL_CLEARING))
        elif chan.direction == "inbound":
            chan.tech_cause = SIP_REQUEST_TERMINATED
            self._teardown(
                chan,
                HangupStyle(
                    {"cause": CAUSE_INTERWORKING, "tech_cause": SIP_REQUEST_TERMINATED},
                    CAUSE_INTERWORKING,
                ),
            )
        else:
            # A callee declining before answering: 603 Decline, which PJSIP maps to cause 21.
            chan.tech_cause = SIP_DECLINE
            self._teardown(
                chan,
                HangupStyle(
                    {"cause": CAUSE_CALL_REJECTED, "tech_cause": SIP_DECLINE}, CAUSE_CALL_REJECTED
                ),
            )

    def _teardown(self, chan: SimChannel, style: HangupStyle, *, silent: bool = False) -> None:
        """HangupRequest, [PlaybackFinished], [LeftBridge], [StasisEnd], [2nd HangupRequest],
        ChannelDestroyed: the burst every captured hangup produces."""
        if chan.hanging_up or chan.destroyed:
            return
        chan.hanging_up = True
        chan.cancel_timers()
        if not silent:
            self._emit_channel(chan, "ChannelHangupRequest", **style.request)
        self._stop_playbacks(f"channel:{chan.id}", state="failed")
        self.recordings.channel_gone(chan)
        for snoop in chan.snoops:
            self._teardown(snoop, HangupStyle({}, CAUSE_NORMAL_CLEARING))
        if chan.bridge_id is not None:
            bridge = self.bridges.get(chan.bridge_id)
            if bridge is not None:
                self._leave_bridge(chan, bridge)
        # The PBX running the channel ends it with a soft hangup of its own (APPUNLOAD).
        pbx_ends = chan.in_dialplan
        if chan.stasis_app is not None:
            chan.stasis_app = None
            self._emit_channel(chan, "StasisEnd")
            if chan.stasis_only:
                chan.apps.clear()  # Stasis was the app's only reason to watch this channel
            self._varset(chan, "STASISSTATUS", "SUCCESS")
            pbx_ends = chan.via_dialplan
        if pbx_ends:
            second: JsonDict = {"cause": SOFTHANGUP_APPUNLOAD, "soft": True}
            if chan.tech_cause is not None:
                second["tech_cause"] = chan.tech_cause
            self._emit_channel(chan, "ChannelHangupRequest", **second)
        tech_cause = chan.tech_cause
        if (
            tech_cause is None
            and not chan.answered
            and (chan.direction == "inbound" or chan.dialed)
        ):
            # The unanswered INVITE gets a final response mapped from the cause.
            tech_cause = cause_to_sip(style.cause)
        if chan.direction == "inbound" and not chan.answered:
            # chan_pjsip answers an INVITE it ends with no SIP mapping 603 Decline.
            chan.sip_responses.append(tech_cause or SIP_DECLINE)
        chan.app_name = ""
        chan.app_data = ""
        fields: JsonDict = {"cause": style.cause, "cause_txt": cause_text(style.cause)}
        if tech_cause is not None:
            fields["tech_cause"] = tech_cause
        chan.destroyed = True
        chan.hangup_cause = style.cause
        self.channels.pop(chan.id, None)
        self.ended[chan.id] = chan  # what its far end heard stays readable after the call
        if len(self.ended) > MAX_ENDED_CHANNELS:
            self.ended.pop(next(iter(self.ended)))
        self._emit_channel(chan, "ChannelDestroyed", **fields)
        if not self.channels:
            self._idle.set()

    # ------------------------------------------------------ back to the dialplan
    @staticmethod
    def dialplan_label(context: str, exten: str, label: str) -> int | None:
        """ast_findlabel_extension() in the shipped dialplan: the label's priority, or None."""
        if context == SHIPPED_TRUNK_CONTEXT and _SHIPPED_TRUNK_EXTEN.fullmatch(exten):
            return SHIPPED_TRUNK_LABELS.get(label)
        return None

    def continue_in_dialplan(
        self, chan: SimChannel, context: str, exten: str, priority: int
    ) -> None:
        """POST /channels/{id}/continue (validated): the channel leaves Stasis just after the
        answer and runs the dialplan from there; only the shipped [from-trunk] is modelled."""
        if (
            context != SHIPPED_TRUNK_CONTEXT
            or not _SHIPPED_TRUNK_EXTEN.fullmatch(exten)
            or priority not in SHIPPED_TRUNK_DIALPLAN
        ):
            raise AriError(501, "Not implemented by the ARI simulator")
        self._later(chan, 0.0, lambda: self._leave_stasis(chan, context, exten, priority))

    def _leave_stasis(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        """The continue command runs: StasisEnd, Stasis() returns SUCCESS, the PBX goes on."""
        if chan.stasis_app is None or chan.hanging_up:
            return
        self._stop_playbacks(f"channel:{chan.id}")
        if chan.bridge_id is not None:
            bridge = self.bridges.get(chan.bridge_id)
            if bridge is not None:
                self._leave_bridge(chan, bridge)
        chan.stasis_app = None
        chan.in_dialplan = True
        # The captures show the app still hears of a channel after its StasisEnd (STASISSTATUS,
        # hangup requests, ChannelDestroyed): it stays subscribed until the channel is gone.
        self._emit_channel(chan, "StasisEnd")
        self._varset(chan, "STASISSTATUS", "SUCCESS")
        chan.context, chan.exten = context, exten
        self._run_priority(chan, priority)

    def _run_priority(self, chan: SimChannel, priority: int) -> None:
        """pbx_exec() of one priority of the shipped [from-trunk], then the next one."""
        if chan.destroyed or chan.hanging_up:
            return
        app, data = SHIPPED_TRUNK_DIALPLAN[priority]
        status = chan.variables.get("STASISSTATUS", "")
        if app == "GotoIf":
            # pbx_substitute_variables evaluates the $[...] expression before GotoIf runs.
            data = f"{1 if status == 'SUCCESS' else 0}?done"
        chan.priority, chan.app_name, chan.app_data = priority, app, substitute(data, chan)
        self._emit_channel(
            chan, "ChannelDialplan", dialplan_app=app, dialplan_app_data=chan.app_data
        )
        if app == "GotoIf":
            target = SHIPPED_TRUNK_LABELS["done"] if status == "SUCCESS" else priority + 1
            self._run_priority(chan, target)
        elif app in ("Log", "Progress"):
            self._run_priority(chan, priority + 1)
        elif app == "Playback":
            seconds = self.media_seconds(f"sound:{data.split(',')[0]}") or DEFAULT_SOUND_SECONDS
            self._later(chan, seconds, lambda: self._run_priority(chan, priority + 1))
        elif app == "Congestion":
            self._congestion(chan)
        else:
            # Hangup(): ast_softhangup_nolock publishes no request; the PBX's APPUNLOAD follows.
            self._teardown(chan, HangupStyle({}, CAUSE_NORMAL_CLEARING), silent=True)

    def _congestion(self, chan: SimChannel) -> None:
        """Congestion(5): unanswered, cause 34, state Busy and a 503 that ends the INVITE (the
        channel then hangs up, no cause in the request); answered, 5 s of tone, then hangup."""
        if chan.state == "Up":
            self._later(
                chan,
                CONGESTION_WAIT,
                lambda: self._teardown(chan, HangupStyle({}, CAUSE_NORMAL_CLEARING), silent=True),
            )
            return
        self._set_state(chan, "Busy")
        self._later(
            chan, RING_DELAY, lambda: self._teardown(chan, HangupStyle({}, CAUSE_CONGESTION))
        )

    # -------------------------------------------------------------------- DTMF
    def send_dtmf(self, chan: SimChannel, digits: str, start: float = 0.0) -> None:
        """The far end presses `digits`, the first after `start` s, then every DTMF_INTERVAL."""
        for i, digit in enumerate(digits):
            self._later(
                chan,
                start + i * DTMF_INTERVAL,
                functools.partial(self.dtmf_received, chan, digit),
            )

    def dtmf_received(self, chan: SimChannel, digit: str) -> None:
        """A digit from the far end: reported while in Stasis, unless bridged without
        dtmf_events (the bridge then passes DTMF through silently)."""
        if chan.stasis_app is None or chan.hanging_up:
            return
        if chan.bridge_id is not None:
            bridge = self.bridges.get(chan.bridge_id)
            if bridge is not None and not bridge.dtmf_events:
                return
        self._emit_channel(chan, "ChannelDtmfReceived", digit=digit, duration_ms=DTMF_DURATION_MS)
        self.recordings.key_pressed(chan, digit)

    # ----------------------------------------------------------------- bridges
    def create_bridge(self, type_param: str, bridge_id: str | None, name: str) -> SimBridge:
        """POST /bridges: stasis_app_bridge_create()."""
        if bridge_id and bridge_id in self.bridges:
            raise AriError(409, f"Bridge with id '{bridge_id}' already exists")
        tokens = [t.strip() for t in (type_param or "mixing").split(",")]
        mixing = holding = False
        native = True
        video_mode = "talker"
        for token in tokens:
            if token == "mixing":
                mixing = True
                native = True
            elif token == "holding":
                holding = True
            elif token in ("dtmf_events", "proxy_media"):
                native = False  # capabilities &= ~NATIVE: audio must reach the core
            elif token == "video_sfu":
                video_mode = "sfu"
            elif token == "video_single":
                video_mode = "single"
        if not mixing and not holding:
            raise AriError(500, "Unable to create bridge")
        bridge = SimBridge(
            id=bridge_id or str(uuid.uuid4()),
            name=name,
            flags=frozenset(t for t in tokens if t in BRIDGE_TYPE_FLAGS),
            creationtime=self.clock.now(),
            native_capable=native and not holding,
            video_mode=video_mode,
        )
        if holding and not mixing:
            bridge.technology = "holding_bridge"
        self.bridges[bridge.id] = bridge
        return bridge

    def get_bridge(self, bridge_id: str) -> SimBridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None:
            raise AriError(404, "Bridge not found")
        return bridge

    def _bridge_event(
        self, event_type: str, bridge: SimBridge, chan: SimChannel | None = None
    ) -> None:
        apps = dict(bridge.apps)
        fields: JsonDict = {"bridge": bridge.to_json()}
        if chan is not None:
            apps.update(chan.apps)
            fields["channel"] = chan.to_json()
        self._publish(list(apps), self._event(event_type, **fields))

    def add_to_bridge(self, bridge: SimBridge, chans: list[SimChannel], inhibit_colp: bool) -> None:
        """POST /bridges/{id}/addChannel with channels already validated."""
        for chan in chans:
            chan.inhibit_colp = inhibit_colp
            if chan.bridge_id == bridge.id or chan.destroyed:
                continue
            if chan.bridge_id is not None:
                old = self.bridges.get(chan.bridge_id)
                if old is not None:
                    self._leave_bridge(chan, old)
            bridge.channels.append(chan.id)
            chan.bridge_id = bridge.id
            for app in chan.apps:
                bridge.apps.setdefault(app, None)
            self._bridge_event("ChannelEnteredBridge", bridge, chan)
            self._bridge_reconfigured(bridge)

    def _bridge_reconfigured(self, bridge: SimBridge) -> None:
        """After a join: smart-bridge technology and the two-party connected-line exchange."""
        if bridge.holding or len(bridge.channels) != 2:
            return
        members = [self.channels[c] for c in bridge.channels if c in self.channels]
        if len(members) != 2:
            return
        # The newcomer first, as in the captures; then the connected-line exchange.
        for chan, other in ((members[1], members[0]), (members[0], members[1])):
            self._varset(chan, "BRIDGEPEER", other.name)
            self._varset(chan, "BRIDGEPVTCALLID", other.protocol_id)
        same_codec = members[0].endpoint.codec == members[1].endpoint.codec
        if bridge.native_capable and same_codec and all(m.state == "Up" for m in members):
            bridge.technology = "native_rtp"  # shows in later snapshots (ws_reconnect.jsonl)
        for chan, other in ((members[0], members[1]), (members[1], members[0])):
            if other.inhibit_colp:
                continue
            update = other.caller.copy()
            if chan.state != "Up":
                # Queued as a frame the unanswered leg only reads once up (offline_then_mobile).
                chan.pending_connected = update
            elif update != chan.connected:
                chan.connected = update
                self._emit_channel(chan, "ChannelConnectedLine")

    def _leave_bridge(self, chan: SimChannel, bridge: SimBridge) -> None:
        """ChannelLeftBridge shows the bridge without the channel, technology not yet redone."""
        if chan.id in bridge.channels:
            bridge.channels.remove(chan.id)
        chan.bridge_id = None
        if chan.variables.get("BRIDGEPEER"):
            # The bridge clears what it set, before the leave is reported.
            self._varset(chan, "BRIDGEPEER", "")
            self._varset(chan, "BRIDGEPVTCALLID", "")
        self._bridge_event("ChannelLeftBridge", bridge, chan)
        if len(bridge.channels) < 2 and not bridge.holding:
            bridge.technology = "simple_bridge"

    def remove_from_bridge(self, bridge: SimBridge, chans: list[SimChannel]) -> None:
        for chan in chans:
            self._leave_bridge(chan, bridge)

    def destroy_bridge(self, bridge: SimBridge) -> None:
        """DELETE /bridges/{id}: members leave (they stay in Stasis), then BridgeDestroyed."""
        self._stop_playbacks(f"bridge:{bridge.id}")
        for channel_id in list(bridge.channels):
            chan = self.channels.get(channel_id)
            if chan is not None:
                self._leave_bridge(chan, bridge)
        self.bridges.pop(bridge.id, None)
        self._bridge_event("BridgeDestroyed", bridge)

    # --------------------------------------------------------------- playbacks
    def is_playing(self, target_uri: str) -> bool:
        """Whether a playback is queued or playing on the channel or bridge."""
        return bool(self._playback_queues.get(target_uri))

    def media_length(self, media: str) -> MediaLength:
        """How one media URI plays here (`sound_seconds` overrides, then the sounds)."""
        if media in self.sound_seconds:
            return MediaLength(Outcome.PLAYS, self.sound_seconds[media])
        scheme, _, name = media.partition(":")
        stored = self.recordings.stored_seconds(name) if scheme == "recording" else None
        return self.sounds.length(media, stored)

    def media_seconds(self, media: str) -> float | None:
        """How long one media URI plays; None for media that fails or plays until stopped."""
        length = self.media_length(media)
        return length.seconds if length.outcome is Outcome.PLAYS else None

    def play(
        self, target_uri: str, media: list[str], language: str, playback_id: str
    ) -> SimPlayback:
        """Queue media on a channel or bridge; PlaybackStarted follows the 201 answer."""
        if playback_id and playback_id in self.playbacks:
            raise AriError(500, "Failed to queue media for playback")
        playback = SimPlayback(
            id=playback_id or str(uuid.uuid4()),
            media=media,
            target_uri=target_uri,
            language=language,
        )
        self.playbacks[playback.id] = playback
        queue = self._playback_queues.setdefault(target_uri, [])
        queue.append(playback)
        if len(queue) == 1:  # otherwise it starts when the one before it finishes
            self._schedule_playback(playback, PLAYBACK_START_DELAY, start=True)
        return playback

    def _apps_of(self, target_uri: str) -> list[str]:
        kind, _, ident = target_uri.partition(":")
        if kind == "channel" and ident in self.channels:
            return list(self.channels[ident].apps)
        if kind == "bridge" and ident in self.bridges:
            return list(self.bridges[ident].apps)
        return []

    def _playback_event(self, event_type: str, playback: SimPlayback) -> None:
        self._publish(
            self._apps_of(playback.target_uri),
            self._event(event_type, playback=playback.to_json()),
        )

    def _schedule_playback(self, playback: SimPlayback, delay: float, *, start: bool) -> None:
        def step() -> None:
            try:
                self._playback_step(playback, start=start)
            except Exception:  # a simulator bug must not kill the event loop's timer
                log.exception("simulator playback %s failed", playback.id)

        playback.timer = self.clock.call_later(delay, step)

    def _playback_step(self, playback: SimPlayback, *, start: bool) -> None:
        """A medium starts (start=True) or has played out (then the next one, or the end)."""
        if playback.state in ("done", "failed"):
            return
        if not start:
            self._heard_until_now(playback, complete=True)
            if playback.index + 1 >= len(playback.media):
                playback.state = "done"
                self._finish_playback(playback)
                return
            # Continuing still names the medium that ended, with the next as next_media_uri.
            playback.state = "continuing"
            self._playback_event("PlaybackContinuing", playback)
            playback.index += 1
        media = playback.media[playback.index]
        length = self.media_length(media)
        playback.state = "playing"
        self._playback_event("PlaybackStarted", playback)
        if length.outcome is Outcome.FAILS:
            playback.state = "failed"  # a missing file: Finished in the same millisecond
            self._finish_playback(playback)
            return
        if length.outcome is Outcome.VANISHES:
            # An unknown scheme: the playback is gone without a PlaybackFinished.
            self._finish_playback(playback, silent=True)
            return
        self._media_started(playback, media)
        if length.outcome is Outcome.PLAYS:
            self._schedule_playback(playback, length.seconds, start=False)

    def _media_started(self, playback: SimPlayback, media: str) -> None:
        """The far end hears it: early media (183 with SDP) when the channel is unanswered."""
        kind, _, ident = playback.target_uri.partition(":")
        chan = self.channels.get(ident) if kind == "channel" else None
        if chan is None:
            return
        early = chan.state != "Up"
        if early and chan.direction == "inbound":
            chan.sip_responses.append(SIP_SESSION_PROGRESS)
        chan.heard.append(Heard(media, early, self.clock.monotonic()))
        playback.heard = chan.heard[-1]

    def _heard_until_now(self, playback: SimPlayback, *, complete: bool = False) -> None:
        heard = playback.heard
        if heard is not None:
            heard.seconds = self.clock.monotonic() - heard.started
            heard.complete = complete
            playback.heard = None

    def _finish_playback(self, playback: SimPlayback, *, silent: bool = False) -> None:
        if playback.timer is not None:
            playback.timer.cancel()
            playback.timer = None
        self._heard_until_now(playback)
        if not silent:
            self._playback_event("PlaybackFinished", playback)
        self.playbacks.pop(playback.id, None)
        queue = self._playback_queues.get(playback.target_uri, [])
        if playback in queue:
            queue.remove(playback)
        if queue:
            self._schedule_playback(queue[0], PLAYBACK_START_DELAY, start=True)
        else:
            self._playback_queues.pop(playback.target_uri, None)
            self.recordings.media_idle(playback.target_uri)

    def stop_playback(self, playback: SimPlayback) -> None:
        """DELETE /playbacks/{id}: a queued one is dropped, the active one finishes (done)."""
        queue = self._playback_queues.get(playback.target_uri, [])
        if playback in queue and queue[0] is not playback:
            queue.remove(playback)
            self.playbacks.pop(playback.id, None)
            return
        if playback.state not in ("done", "failed"):
            playback.state = "done"
        self._finish_playback(playback)

    def _stop_playbacks(self, target_uri: str, *, state: PlaybackState = "done") -> None:
        """The target goes away: the active playback finishes with `state` (a channel hanging
        up mid-prompt: failed, ivr_menu_dtmf), queued ones are dropped."""
        queue = self._playback_queues.pop(target_uri, [])
        for i, playback in enumerate(queue):
            self.playbacks.pop(playback.id, None)
            if playback.timer is not None:
                playback.timer.cancel()
                playback.timer = None
            self._heard_until_now(playback)
            if i == 0 and playback.state in ("playing", "continuing"):
                playback.state = state
                self._playback_event("PlaybackFinished", playback)

    # ----------------------------------------------------------------- teardown
    def shutdown(self) -> None:
        """Cancel every timer (simulator stopping); no events."""
        for chan in self.channels.values():
            chan.cancel_timers()
        for playback in self.playbacks.values():
            if playback.timer is not None:
                playback.timer.cancel()
        self.recordings.shutdown()


def substitute(text: str, chan: SimChannel) -> str:
    """pbx_substitute_variables() for what the modelled dialplan hands to applications:
    `${EXTEN}`, channel variables and `${CALLERID(num|name|all|pres)}`; anything else expands
    to nothing, as an unset variable."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1).replace(" ", "")
        if expression == "EXTEN":
            return chan.exten
        if expression in chan.variables:
            return chan.variables[expression]
        function, _, datatype = expression.partition("(")
        if function.upper() != "CALLERID":
            return ""
        datatype = datatype.removesuffix(")").lower()
        if datatype in ("num", "number"):
            return chan.caller.number
        if datatype == "name":
            return chan.caller.name
        if datatype == "all":
            return f'"{chan.caller.name}" <{chan.caller.number}>'
        if datatype.startswith("pres") or datatype in ("num-pres", "name-pres"):
            return presentation_name(chan.caller.combined_presentation)
        return ""

    return _DIALPLAN_EXPRESSION.sub(value, text)


def apply_variables(chan: SimChannel, variables: dict[str, str]) -> bool:
    """The caller-ID dialplan functions among `variables`: CALLERID(num/name/all/pres) and
    CONNECTEDLINE(num/name/all/pres[,i]) change the channel's parties; True if all were functions
    (a `NAME(...)` is a function write, never a plain variable, as in pbx_builtin_setvar_helper)."""
    functions = True
    for key, value in variables.items():
        name = key.replace(" ", "").upper()
        if not name.endswith(")"):
            functions = False
            continue
        function, _, datatype = name.partition("(")
        datatype = datatype.removesuffix(")").split(",")[0]
        if function == "CALLERID":
            party = chan.caller
        elif function == "CONNECTEDLINE":
            party = chan.connected
        else:
            continue
        if datatype == "NUM":
            party.number = value
        elif datatype == "NAME":
            party.name = value
        elif datatype == "ALL":
            parsed = parse_caller_id(value)
            party.name, party.number = parsed.name, parsed.number
        elif datatype.startswith("PRES"):
            presentation = parse_presentation(value)
            if presentation is not None:  # else Asterisk logs an error, value unchanged
                party.presentation = presentation
    return functions


def parse_caller_id(text: str) -> CallerId:
    """ast_callerid_parse(): `"Name" <num>`, `Name <num>`, or a bare number/name."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return CallerId(name.strip().strip('"'), number.strip())
    if text and all(ch in "0123456789+*#-() " for ch in text):
        return CallerId("", text.replace(" ", ""))
    return CallerId(text.strip('"'), "")
