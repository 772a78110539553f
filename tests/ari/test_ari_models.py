"""REST resource models: every body of the real captures, dates, tolerance and strictness."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pbxd.ari.errors import AriParseError
from pbxd.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    Bridge,
    Channel,
    Endpoint,
    Playback,
)

CHANNEL: dict[str, Any] = {
    "accountcode": "",
    "caller": {"name": "Caller", "number": "+33612000001"},
    "connected": {"name": "", "number": ""},
    "creationtime": "2026-11-23T19:02:30.663+0000",
    "dialplan": {
        "app_data": "pbxd",
        "app_name": "Stasis",
        "context": "from-trunk",
        "exten": "+33170000001",
        "priority": 1,
    },
    "id": "1795460550.178",
    "language": "en",
    "name": "PJSIP/trunk-in-0000001f",
    "protocol_id": "1-15477@127.0.0.1",
    "state": "Ring",
}


def _model_for(method: str, path: str) -> Callable[[Any], object] | None:
    """Which model a successful captured REST answer holds."""
    parts = path.strip("/").split("/")
    if parts[0] == "channels":
        return Playback.from_json if parts[-1] == "play" else Channel.from_json
    return {
        "bridges": Bridge.from_json,
        "asterisk": AsteriskInfo.from_json,
        "applications": Application.from_json,
        "endpoints": Endpoint.from_json,
    }.get(parts[0])


def test_every_captured_rest_body_parses(capture_resource: dict[str, Any]) -> None:
    body = capture_resource["body"]
    parse = _model_for(capture_resource["method"], capture_resource["path"])
    assert parse is not None, capture_resource["path"]
    model = parse(body)
    for key in ("id", "name", "state", "technology", "resource"):
        if key in body and hasattr(model, key):
            assert getattr(model, key) == body[key]


def test_channel_fields_and_aware_dates() -> None:
    channel = Channel.from_json(CHANNEL)
    assert channel.caller.number == "+33612000001"
    assert channel.dialplan.exten == "+33170000001" and channel.dialplan.priority == 1
    assert channel.creationtime == datetime(2026, 11, 23, 19, 2, 30, 663000, tzinfo=UTC)
    assert channel.protocol_id == "1-15477@127.0.0.1"


def test_dates_with_a_non_utc_offset_keep_it() -> None:
    data = copy.deepcopy(CHANNEL) | {"creationtime": "2026-11-23T20:02:30.663+0100"}
    created = Channel.from_json(data).creationtime
    assert created.utcoffset() == timedelta(hours=1)
    assert created.astimezone(UTC) == Channel.from_json(CHANNEL).creationtime


def test_extra_fields_are_tolerated() -> None:
    data = copy.deepcopy(CHANNEL) | {"tenantid": "x", "caller_rdnis": "", "future": [1]}
    assert Channel.from_json(data).id == CHANNEL["id"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", None, "Channel: missing required field 'id'"),
        ("state", 3, "Channel.state: expected a string, got int"),
        ("caller", "Bob", "Channel.caller: expected an object, got str"),
        ("creationtime", "2026-11-23", "no UTC offset"),
        ("creationtime", "soon", "Channel.creationtime: invalid date 'soon'"),
    ],
)
def test_channel_missing_or_mistyped_fields_are_named(field: str, value: Any, message: str) -> None:
    data = copy.deepcopy(CHANNEL)
    if value is None:
        del data[field]
    else:
        data[field] = value
    with pytest.raises(AriParseError, match=message):
        Channel.from_json(data)


def test_nested_field_errors_name_the_path() -> None:
    data = copy.deepcopy(CHANNEL)
    del data["dialplan"]["context"]
    with pytest.raises(AriParseError, match=r"Channel\.dialplan: missing required field 'context'"):
        Channel.from_json(data)
    with pytest.raises(AriParseError, match="expected a JSON object, got list"):
        Channel.from_json([])


def test_asterisk_info_subset() -> None:
    info = AsteriskInfo.from_json(
        {
            "build": {"date": "2026-11-23 18:41:17 UTC", "os": "Linux"},
            "config": {"default_language": "en", "name": "", "setid": {"group": "", "user": ""}},
            "status": {
                "last_reload_time": "2026-11-23T18:59:18.471+0000",
                "startup_time": "2026-11-23T18:57:31.909+0000",
            },
            "system": {"entity_id": "02:fc:00:00:00:01", "version": "22.10.1"},
        }
    )
    assert (info.version, info.entity_id, info.default_language) == (
        "22.10.1",
        "02:fc:00:00:00:01",
        "en",
    )
    assert info.startup_time == datetime(2026, 11, 23, 18, 57, 31, 909000, tzinfo=UTC)
    assert info.build_date == "2026-11-23 18:41:17 UTC"
    with pytest.raises(AriParseError, match="missing required field 'system'"):
        AsteriskInfo.from_json({"build": {}})


def test_playback_target_channel() -> None:
    playback = Playback.from_json(
        {"id": "p1", "media_uri": "sound:beep", "state": "queued", "target_uri": "channel:c.1"}
    )
    assert playback.channel_id == "c.1" and playback.language is None
    bridge_playback = Playback.from_json(
        {"id": "p2", "media_uri": "sound:beep", "state": "queued", "target_uri": "bridge:b"}
    )
    assert bridge_playback.channel_id is None


def test_small_models() -> None:
    endpoint = Endpoint.from_json({"technology": "PJSIP", "resource": "carol", "channel_ids": []})
    assert endpoint.state is None and endpoint.channel_ids == ()
    app = Application.from_json(
        {
            "name": "pbxd",
            "channel_ids": ["a"],
            "bridge_ids": ["b"],
            "endpoint_ids": [],
            "device_names": [],
        }
    )
    assert app.channel_ids == ("a",) and app.bridge_ids == ("b",)
    assert app.events_allowed == app.events_disallowed == ()  # before Asterisk 13.26/16.3
    filtered = Application.from_json(
        {
            "name": "pbxd",
            "channel_ids": [],
            "bridge_ids": [],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}],
            "events_disallowed": [{"type": "Dial"}],
        }
    )
    assert filtered.events_allowed == ("StasisStart", "StasisEnd")
    assert filtered.events_disallowed == ("Dial",)
    with pytest.raises(AriParseError):
        Application.from_json({**filtered_json(), "events_allowed": "StasisStart"})
    ping = AsteriskPing.from_json(
        {"asterisk_id": "x", "ping": "pong", "timestamp": "2026-11-23T19:02:30.663+0000"}
    )
    assert ping.ping == "pong"
    bridge = Bridge.from_json(
        {
            "id": "b",
            "technology": "simple_bridge",
            "bridge_type": "mixing",
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": "",
            "channels": [],
        }
    )
    assert bridge.creationtime is None and bridge.video_mode is None
    with pytest.raises(AttributeError):
        bridge.id = "other"  # type: ignore[misc]


def filtered_json() -> dict[str, object]:
    """An Application as Asterisk 22 sends it (no filter set)."""
    return {
        "name": "pbxd",
        "channel_ids": [],
        "bridge_ids": [],
        "endpoint_ids": [],
        "device_names": [],
        "events_allowed": [],
        "events_disallowed": [],
    }
