"""The states of a call, of its caller's channel and of its legs, and their transitions.

A transition not in the tables is a bug, raised as `IllegalTransition` where it happens:
each object's state is the one answer to "where does it stand?" (no flags beside it).
"""

from __future__ import annotations

from enum import StrEnum


class IllegalTransition(RuntimeError):
    """A state change the tables do not allow."""


class CallState(StrEnum):
    """Where a call stands."""

    STARTING = "starting"
    RINGING = "ringing"  # a ring step runs: legs ring, the caller hears ringing
    PLAYING = "playing"  # a play step runs (early media or answered)
    RECORDING = "recording"  # a voicemail step runs
    MENU = "menu"  # a menu step runs: prompts to the caller, waiting for keys
    ANSWERING = "answering"  # a leg answered: answering the caller, bridging
    BRIDGED = "bridged"
    ENDING = "ending"  # hangups sent; waiting for Asterisk to confirm every channel gone
    ENDED = "ended"


_STEPS = {CallState.RINGING, CallState.PLAYING, CallState.RECORDING, CallState.MENU}
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.STARTING: frozenset({*_STEPS, CallState.ENDING}),
    CallState.RINGING: frozenset({*_STEPS, CallState.ANSWERING, CallState.ENDING}),
    CallState.PLAYING: frozenset({*_STEPS, CallState.ENDING}),
    CallState.RECORDING: frozenset({*_STEPS, CallState.ENDING}),
    CallState.MENU: frozenset({*_STEPS, CallState.ENDING}),
    CallState.ANSWERING: frozenset({CallState.BRIDGED, CallState.ENDING}),
    CallState.BRIDGED: frozenset({CallState.ENDING}),
    CallState.ENDING: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class CallerState(StrEnum):
    """The inbound channel: in Stasis, gone from it, or freed by Asterisk."""

    PRESENT = "present"
    LEAVING = "leaving"  # the caller hung up (ChannelHangupRequest); StasisEnd follows
    GONE = "gone"  # StasisEnd (or a REST 404): its ChannelDestroyed may still come
    DESTROYED = "destroyed"


CALLER_TRANSITIONS: dict[CallerState, frozenset[CallerState]] = {
    CallerState.PRESENT: frozenset({CallerState.LEAVING, CallerState.GONE, CallerState.DESTROYED}),
    CallerState.LEAVING: frozenset({CallerState.GONE, CallerState.DESTROYED}),
    CallerState.GONE: frozenset({CallerState.DESTROYED}),
    CallerState.DESTROYED: frozenset(),
}


class LegState(StrEnum):
    """Where one outbound leg stands."""

    WAITING = "waiting"  # its turn has not come
    CREATING = "creating"  # channels/create sent; dialled once its StasisStart arrives
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDING = "ending"  # we hung it up; its ChannelDestroyed will say when it is gone
    ENDED = "ended"  # gone (or never had a channel)

    @property
    def live(self) -> bool:
        """True while the leg has (or is getting) a channel on Asterisk."""
        return self not in (LegState.WAITING, LegState.ENDED)


LEG_TRANSITIONS: dict[LegState, frozenset[LegState]] = {
    LegState.WAITING: frozenset({LegState.CREATING, LegState.ENDED}),
    LegState.CREATING: frozenset(
        {LegState.DIALING, LegState.ANSWERED, LegState.ENDING, LegState.ENDED}
    ),
    LegState.DIALING: frozenset(
        {LegState.RINGING, LegState.ANSWERED, LegState.ENDING, LegState.ENDED}
    ),
    LegState.RINGING: frozenset({LegState.ANSWERED, LegState.ENDING, LegState.ENDED}),
    LegState.ANSWERED: frozenset({LegState.ENDING, LegState.ENDED}),
    LegState.ENDING: frozenset({LegState.ENDED}),
    LegState.ENDED: frozenset(),
}


def check(table: dict[StrEnum, frozenset[StrEnum]] | object, old: StrEnum, new: StrEnum) -> None:
    """Raise IllegalTransition unless `table` allows old -> new."""
    allowed = table.get(old, frozenset()) if isinstance(table, dict) else frozenset()
    if new not in allowed:
        raise IllegalTransition(f"{type(old).__name__}: {old} -> {new}")
