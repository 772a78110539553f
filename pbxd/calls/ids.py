"""Every id pbxd gives Asterisk for a call: its legs, its bridge, its playbacks, its recordings.

One module, so "is this channel ours, and whose?" has one answer. The call id is the inbound
channel's id (Asterisk's `<epoch>.<seq>`); everything else is derived from it, except the
bridges calls share one after another (`pooled_bridge_id`), found by their channels.
"""

from __future__ import annotations

import re
import uuid

# Stasis arguments of our legs (`appArgs` = `pbxd-leg,<call id>`): a leg's StasisStart is
# never taken for a call, and Asterisk itself keeps (in the channel's dialplan app_data)
# which call a leg belongs to, so a restart finds it with no CDR row and no extra variable
# (each variable set would cost Asterisk a ChannelVarset event per leg).
LEG_MARK = "pbxd-leg"
# Our outbound legs' channel ids: `<call id>-<n>` (n short: never a UUID's last group).
_LEG_ID = re.compile(r"^(?P<call>.+)-(?P<n>[0-9]{1,3})$")
_BRIDGE_SUFFIX = "-bridge"
_POOLED_PREFIX = "pbxd-bridge-"


def leg_id(call_id: str, number: int) -> str:
    """The channel id of the call's `number`th leg (1-based, across every ring step)."""
    return f"{call_id}-{number}"


def leg_number(channel_id: str) -> int | None:
    """The `n` of a leg id `<call id>-<n>`, or None for a channel that is not one of ours."""
    match = _LEG_ID.match(channel_id)
    return int(match["n"]) if match else None


def call_of_leg(channel_id: str) -> str | None:
    """The call id a leg id belongs to, or None."""
    match = _LEG_ID.match(channel_id)
    return match["call"] if match else None


def is_leg_id(channel_id: str) -> bool:
    """True for a channel id of the form `<call id>-<n>`."""
    return _LEG_ID.match(channel_id) is not None


def leg_app_args(call_id: str) -> tuple[str, str]:
    """The Stasis arguments a leg is created with."""
    return (LEG_MARK, call_id)


def call_of_stasis_args(args: tuple[str, ...]) -> str | None:
    """The call a channel in Stasis with `args` is a leg of (None: not one of our legs)."""
    return args[1] if len(args) >= 2 and args[0] == LEG_MARK else None


def bridge_id(call_id: str) -> str:
    """The id of the call's mixing bridge."""
    return f"{call_id}{_BRIDGE_SUFFIX}"


def call_of_bridge(bridge: str) -> str | None:
    """The call id a bridge id belongs to, or None for a bridge that is not one of ours."""
    return bridge.removesuffix(_BRIDGE_SUFFIX) if bridge.endswith(_BRIDGE_SUFFIX) else None


def pooled_bridge_id() -> str:
    """A new id for a bridge calls share one after another (`pbxd.calls.bridges`): its own,
    never a call's, and unique across restarts and the two daemons of a pair."""
    return f"{_POOLED_PREFIX}{uuid.uuid4().hex}"


def is_pooled_bridge(bridge: str) -> bool:
    """True for a bridge id made by `pooled_bridge_id`."""
    return bridge.startswith(_POOLED_PREFIX)


def playback_id(call_id: str, number: int) -> str:
    """The id of the call's `number`th playback."""
    return f"{call_id}-play-{number}"


def playback_number(call_id: str, playback: str) -> int | None:
    """The `number` of one of the call's playback ids (`playback_id`); None for another id."""
    prefix = f"{call_id}-play-"
    number = playback.removeprefix(prefix)
    return int(number) if playback.startswith(prefix) and number.isdigit() else None


def screening_playback_id(leg: str, *, again: bool = False) -> str:
    """The id of a leg's screening prompt (whisper, press 1): the leg's own, so a restart
    finds it still playing; `again`: a prompt played by a run that adopted the call."""
    return f"{leg}-screen-again" if again else f"{leg}-screen"


def screening_playback_ids(leg: str) -> tuple[str, str]:
    """Both ids a leg's screening prompt may have (see `screening_playback_id`)."""
    return screening_playback_id(leg), screening_playback_id(leg, again=True)


def adopted_playbacks_from() -> int:
    """Where a call adopted after a restart numbers its playbacks from: a range of its own
    (random, 1,000 wide), so no id collides with a prompt of a run before still playing."""
    return (uuid.uuid4().int % 999_000 + 1_000) * 1_000


def recording_name(call_id: str, step: str) -> str:
    """The name of the recording a voicemail step makes (unique per call and step)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", step)
    return f"pbxd-vm-{call_id}-{safe}"
