"""Event parsing: every event of every real Asterisk 22 capture, and malformed input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pbxd.ari import events as ev
from pbxd.ari.errors import AriEventError
from pbxd.ari.models import Channel

from .fakes import CAPTURES


def _first_event(event_type: str) -> dict[str, Any]:
    for path in sorted(CAPTURES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["kind"] == "event" and record["data"]["type"] == event_type:
                return copy.deepcopy(record["data"])
    raise LookupError(event_type)


def test_every_captured_event_parses_to_its_class(capture_event: dict[str, Any]) -> None:
    data = capture_event["data"]
    event = ev.parse_event(data)
    assert type(event).__name__ == data["type"]  # no captured type falls to UnknownEvent
    assert event.type == data["type"]
    assert event.application == data["application"] == "pbxd"
    assert event.asterisk_id == data["asterisk_id"]
    assert event.timestamp.tzinfo is not None
    assert event.timestamp.isoformat(timespec="milliseconds") == (data["timestamp"][:-5] + "+00:00")
    for key in ("channel", "peer"):
        if key in data:
            assert data[key]["id"] in event.channel_ids()


def test_stasis_start_fields() -> None:
    data = _first_event("StasisStart")
    data["args"] = ["dialed", "+33170000001"]
    event = ev.parse_event(data)
    assert isinstance(event, ev.StasisStart)
    assert event.args == ("dialed", "+33170000001")
    assert event.replace_channel is None
    assert event.channel.creationtime == datetime.fromisoformat(data["channel"]["creationtime"])
    assert event.channel_ids() == (data["channel"]["id"],)


def test_dial_names_peer_then_caller() -> None:
    data = _first_event("Dial")
    caller = copy.deepcopy(data["peer"])
    caller["id"] = "caller-1"
    data["caller"] = caller
    event = ev.parse_event(data)
    assert isinstance(event, ev.Dial)
    assert event.channel_ids() == (data["peer"]["id"], "caller-1")
    assert event.caller is not None and event.caller.id == "caller-1"
    assert event.forwarded is None


def test_dial_without_caller_names_only_the_peer() -> None:
    data = _first_event("Dial")
    event = ev.parse_event(data)
    assert isinstance(event, ev.Dial)
    assert event.caller is None
    assert event.channel_ids() == (data["peer"]["id"],)


def test_hangup_request_and_destroyed_causes() -> None:
    request = ev.parse_event(_first_event("ChannelHangupRequest"))
    assert isinstance(request, ev.ChannelHangupRequest)
    assert request.cause == 127 and request.tech_cause == 487 and request.soft is False
    destroyed = ev.parse_event(_first_event("ChannelDestroyed"))
    assert isinstance(destroyed, ev.ChannelDestroyed)
    assert isinstance(destroyed.cause, int) and destroyed.cause_txt


def test_bridge_events_name_the_channel() -> None:
    entered = _first_event("ChannelEnteredBridge")
    event = ev.parse_event(entered)
    assert isinstance(event, ev.ChannelEnteredBridge)
    assert event.channel_ids() == (entered["channel"]["id"],)
    assert event.bridge.id == entered["bridge"]["id"]
    del entered["channel"]  # optional in the Swagger model
    assert ev.parse_event(entered).channel_ids() == ()
    left = ev.parse_event(_first_event("ChannelLeftBridge"))
    assert isinstance(left, ev.ChannelLeftBridge)
    assert left.channel_ids() == (left.channel.id,)
    destroyed = _first_event("BridgeDestroyed")
    destroyed["bridge"]["channels"] = ["a", "b"]
    assert ev.parse_event(destroyed).channel_ids() == ("a", "b")


def test_playback_events_name_the_target_channel() -> None:
    data = _first_event("PlaybackStarted")
    event = ev.parse_event(data)
    assert isinstance(event, ev.PlaybackStarted)
    assert event.channel_ids() == (data["playback"]["target_uri"].removeprefix("channel:"),)
    data["playback"]["target_uri"] = "bridge:b1"
    assert ev.parse_event(data).channel_ids() == ()


def test_dtmf_and_dialplan_events() -> None:
    dtmf = ev.parse_event(_first_event("ChannelDtmfReceived"))
    assert isinstance(dtmf, ev.ChannelDtmfReceived)
    assert (dtmf.digit, dtmf.duration_ms) == ("1", 160)
    dialplan = ev.parse_event(_first_event("ChannelDialplan"))
    assert isinstance(dialplan, ev.ChannelDialplan)
    assert (dialplan.dialplan_app, dialplan.dialplan_app_data) == ("Stasis", "pbxd")


def test_global_varset_has_no_channel() -> None:
    data = _first_event("ChannelVarset")
    del data["channel"]
    event = ev.parse_event(data)
    assert isinstance(event, ev.ChannelVarset)
    assert event.channel is None and event.channel_ids() == ()


def test_caller_id_event() -> None:
    data = _first_event("ChannelConnectedLine")
    data.update(type="ChannelCallerId", caller_presentation=0, caller_presentation_txt="Allowed")
    event = ev.parse_event(data)
    assert isinstance(event, ev.ChannelCallerId)
    assert event.caller_presentation_txt == "Allowed"


def test_unknown_event_keeps_raw_and_finds_its_channel() -> None:
    data = _first_event("StasisEnd")
    data["type"] = "ChannelHold"
    event = ev.parse_event(data)
    assert isinstance(event, ev.UnknownEvent)
    assert event.type == "ChannelHold"
    assert event.raw is data
    assert event.channel_ids() == (data["channel"]["id"],)
    bare = ev.parse_event(
        {"type": "ApplicationReplaced", "application": "pbxd", "timestamp": data["timestamp"]}
    )
    assert isinstance(bare, ev.UnknownEvent) and bare.channel_ids() == ()


def test_newer_asterisk_extra_fields_are_ignored() -> None:
    data = _first_event("StasisStart")
    data["shiny_new_field"] = {"x": 1}
    data["channel"]["tenantid"] = "t1"
    data["channel"]["channelvars"] = {"A": "b"}
    assert isinstance(ev.parse_event(data), ev.StasisStart)


def test_older_asterisk_without_protocol_id() -> None:
    data = _first_event("StasisStart")
    del data["channel"]["protocol_id"]
    event = ev.parse_event(data)
    assert isinstance(event, ev.StasisStart)
    assert event.channel.protocol_id == ""


def _broken(event_type: str, change: str) -> Any:
    data = _first_event(event_type)
    exec(change, {"data": data})
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a JSON object, got list"),
        ("StasisStart", "expected a JSON object, got str"),
        ({"application": "pbxd"}, "missing or non-string 'type'"),
        ({"type": 7}, "missing or non-string 'type'"),
        (_broken("StasisStart", "del data['timestamp']"), "missing required field 'timestamp'"),
        (_broken("StasisStart", "data['timestamp'] = 'yesterday'"), "invalid date 'yesterday'"),
        (_broken("StasisStart", "data['timestamp'] = '2026-11-23T19:02:21'"), "no UTC offset"),
        (_broken("StasisStart", "del data['application']"), "missing required field"),
        (_broken("StasisStart", "del data['channel']"), "StasisStart: missing required field"),
        (_broken("StasisStart", "data['channel'] = 'x'"), "channel: expected an object, got str"),
        (_broken("StasisStart", "del data['channel']['id']"), "StasisStart.channel: missing"),
        (_broken("StasisStart", "data['channel']['caller']['number'] = 33"), "caller.number"),
        (_broken("StasisStart", "data['args'] = [1]"), "StasisStart.args: expected a list"),
        (_broken("Dial", "del data['dialstatus']"), "Dial: missing required field 'dialstatus'"),
        (_broken("Dial", "data['peer']['dialplan']['priority'] = '1'"), "priority"),
        (_broken("ChannelDestroyed", "data['cause'] = None"), "cause: expected an integer"),
        (_broken("ChannelHangupRequest", "data['soft'] = 'yes'"), "soft: expected a boolean"),
        (_broken("ChannelDtmfReceived", "data['duration_ms'] = True"), "duration_ms"),
        (_broken("BridgeDestroyed", "data['bridge']['channels'] = 'a'"), "channels"),
        (_broken("PlaybackFinished", "del data['playback']['state']"), "playback: missing"),
    ],
)
def test_malformed_events_raise_a_clear_error(data: Any, message: str) -> None:
    with pytest.raises(AriEventError) as raised:
        ev.parse_event(data)
    assert message in str(raised.value)


def test_event_objects_are_frozen() -> None:
    event = ev.parse_event(_first_event("StasisEnd"))
    with pytest.raises(AttributeError):
        event.application = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")  # slotted: cheap on the hot path


def test_timestamps_are_utc_aware() -> None:
    event = ev.parse_event(_first_event("StasisEnd"))
    assert event.timestamp.utcoffset() is not None
    assert event.timestamp.astimezone(UTC).tzinfo is UTC
    assert isinstance(event, ev.StasisEnd) and isinstance(event.channel, Channel)
