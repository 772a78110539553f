"""AriClient against a fake ARI server: request building, captures replayed, error mapping."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import aiohttp
import pytest

from pbxd.ari.client import AriClient
from pbxd.ari.errors import (
    AriBadRequest,
    AriConflict,
    AriError,
    AriNotFound,
    AriPreconditionFailed,
    AriServerError,
    AriUnavailable,
    AriUnprocessable,
    error_message,
)
from pbxd.ari.models import Application, AsteriskInfo, Bridge, Channel, Endpoint, Playback

from .fakes import APP, PASSWORD, USERNAME, FakeAri

CHANNEL: dict[str, Any] = {
    "accountcode": "",
    "caller": {"name": "Alice", "number": "alice"},
    "connected": {"name": "", "number": ""},
    "creationtime": "2026-11-23T19:02:30.665+0000",
    "dialplan": {
        "app_data": "",
        "app_name": "",
        "context": "from-internal",
        "exten": "s",
        "priority": 1,
    },
    "id": "1795460550.180",
    "language": "en",
    "name": "PJSIP/alice-00000020",
    "protocol_id": "737d6504",
    "state": "Down",
}
BRIDGE: dict[str, Any] = {
    "bridge_class": "stasis",
    "bridge_type": "mixing",
    "channels": [],
    "creationtime": "2026-11-23T19:02:56.069+0000",
    "creator": "Stasis",
    "id": "b6275166",
    "name": "",
    "technology": "simple_bridge",
    "video_mode": "talker",
}


@pytest.fixture
async def client(fake_ari: FakeAri) -> AsyncIterator[AriClient]:
    async with AriClient(fake_ari.base_url, USERNAME, PASSWORD, APP) as ari:
        yield ari


async def replay(ari: AriClient, method: str, path: str, params: dict[str, str]) -> object:
    """Make, through the public API, the call that produced a captured request."""
    parts = path.strip("/").split("/")
    match (method, parts):
        case ("POST", ["channels", "create"]):
            return await ari.create_channel(params["endpoint"], originator=params.get("originator"))
        case ("POST", ["channels"]):  # captured without app to provoke the 400
            return await ari.request("POST", "/channels", params=params)
        case ("POST", ["channels", channel_id, "answer"]):
            await ari.answer(channel_id)
        case ("POST", ["channels", channel_id, "ring"]):
            await ari.ring(channel_id)
        case ("POST", ["channels", channel_id, "dial"]):
            await ari.dial(channel_id, caller=params["caller"], timeout=int(params["timeout"]))
        case ("POST", ["channels", channel_id, "play"]):
            return await ari.play(channel_id, params["media"])
        case ("DELETE", ["channels", channel_id]):
            await ari.hangup(
                channel_id, reason=params.get("reason"), reason_code=params.get("reason_code")
            )
        case ("GET", ["channels", channel_id]):
            return await ari.get_channel(channel_id)
        case ("POST", ["bridges"]):
            return await ari.create_bridge(bridge_type=params["type"])
        case ("POST", ["bridges", bridge_id, "addChannel"]):
            await ari.add_channel(bridge_id, params["channel"].split(","))
        case ("DELETE", ["bridges", bridge_id]):
            await ari.destroy_bridge(bridge_id)
        case ("GET", ["bridges", bridge_id]):
            return await ari.get_bridge(bridge_id)
        case ("GET", ["asterisk", "info"]):
            return await ari.info()
        case ("GET", ["applications", name]):
            return await ari.get_application(name)
        case ("GET", ["endpoints", technology, resource]):
            return await ari.get_endpoint(technology, resource)
        case _:
            raise AssertionError(f"no client call for {method} {path}")
    return None  # the calls above that answer nothing


async def test_every_captured_request_is_reproduced(
    fake_ari: FakeAri, client: AriClient, capture_request: dict[str, Any]
) -> None:
    """The client sends what real pbxd traffic sent, and reads what Asterisk 22 answered."""
    status, body = capture_request["status"], capture_request["body"]
    fake_ari.respond(status, body)
    method, path, params = (capture_request[k] for k in ("method", "path", "params"))
    if status >= 400:
        with pytest.raises(AriError) as raised:
            await replay(client, method, path, params)
        assert raised.value.status == status
        assert raised.value.message == (body.get("message") or body.get("error"))
        assert (raised.value.method, raised.value.path) == (method, path)
    else:
        result = await replay(client, method, path, params)
        if body is None:
            assert result is None
        else:
            assert getattr(result, "id", None) == body.get("id")
    sent = fake_ari.requests[-1]
    assert (sent.method, sent.path, sent.query) == (method, path, params)


async def test_basic_auth_header_and_no_password_in_url(
    fake_ari: FakeAri, client: AriClient
) -> None:
    await client.answer("c1")
    sent = fake_ari.requests[0]
    expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert PASSWORD not in sent.url
    assert PASSWORD not in repr(client)


async def test_create_channel_sends_caller_id_as_variables_body(
    fake_ari: FakeAri, client: AriClient
) -> None:
    fake_ari.respond(200, CHANNEL)
    channel = await client.create_channel(
        "PJSIP/+33612345678@trunk-out",
        originator="in.1",
        channel_id="leg-1",
        app_args=["leg", "1"],
        formats=["ulaw", "alaw"],
        variables={"CALLERID(num)": "+33170000001", "CALLERID(name)": "Sales"},
    )
    assert isinstance(channel, Channel) and channel.id == CHANNEL["id"]
    sent = fake_ari.requests[0]
    assert (sent.method, sent.path) == ("POST", "/channels/create")
    assert sent.query == {
        "endpoint": "PJSIP/+33612345678@trunk-out",
        "app": APP,
        "appArgs": "leg,1",
        "channelId": "leg-1",
        "originator": "in.1",
        "formats": "ulaw,alaw",
    }
    assert sent.body == {"variables": {"CALLERID(num)": "+33170000001", "CALLERID(name)": "Sales"}}


async def test_create_channel_without_variables_sends_no_body(
    fake_ari: FakeAri, client: AriClient
) -> None:
    fake_ari.respond(200, CHANNEL)
    await client.create_channel("PJSIP/alice")
    assert fake_ari.requests[0].body is None
    assert fake_ari.requests[0].query == {"endpoint": "PJSIP/alice", "app": APP}


async def test_originate_defaults_to_our_app_and_dialplan_when_extension(
    fake_ari: FakeAri, client: AriClient
) -> None:
    fake_ari.respond(200, CHANNEL)
    fake_ari.respond(200, CHANNEL)
    await client.originate("PJSIP/alice", caller_id="Sales <+33170000001>", timeout=20)
    await client.originate("PJSIP/alice", context="from-internal", extension="100", priority=1)
    assert fake_ari.requests[0].query == {
        "endpoint": "PJSIP/alice",
        "app": APP,
        "callerId": "Sales <+33170000001>",
        "timeout": "20",
    }
    assert fake_ari.requests[1].query == {
        "endpoint": "PJSIP/alice",
        "context": "from-internal",
        "extension": "100",
        "priority": "1",
    }


async def test_channel_operations_paths(fake_ari: FakeAri, client: AriClient) -> None:
    await client.ring_stop("c.1")
    await client.progress("c.1")
    await client.hangup("c.1")
    await client.send_dtmf("c.1", "12#", duration=100)
    await client.continue_in_dialplan("c.1", context="fallback")
    await client.dial("c.2")
    sent = [(r.method, r.path, r.query) for r in fake_ari.requests]
    assert sent == [
        ("DELETE", "/channels/c.1/ring", {}),
        ("POST", "/channels/c.1/progress", {}),
        ("DELETE", "/channels/c.1", {}),
        ("POST", "/channels/c.1/dtmf", {"dtmf": "12#", "duration": "100"}),
        ("POST", "/channels/c.1/continue", {"context": "fallback"}),
        ("POST", "/channels/c.2/dial", {}),
    ]


async def test_channel_variables(fake_ari: FakeAri, client: AriClient) -> None:
    await client.set_variable("c.1", "PBXD_SCREENING", "accepted")
    fake_ari.respond(200, {"value": "accepted"})
    assert await client.get_variable("c.1", "PBXD_SCREENING") == "accepted"
    sent = [(r.method, r.path, r.query) for r in fake_ari.requests]
    assert sent == [
        ("POST", "/channels/c.1/variable", {"variable": "PBXD_SCREENING", "value": "accepted"}),
        ("GET", "/channels/c.1/variable", {"variable": "PBXD_SCREENING"}),
    ]
    # Asterisk's answer for a variable never set (or a channel gone).
    fake_ari.respond(404, {"message": "Provided variable was not found"})
    with pytest.raises(AriNotFound):
        await client.get_variable("c.1", "PBXD_SCREENING")
    fake_ari.respond(200, {"no": "value"})
    with pytest.raises(AriError, match="no string `value`"):
        await client.get_variable("c.1", "PBXD_SCREENING")


async def test_hangup_reason_and_code_are_exclusive(fake_ari: FakeAri, client: AriClient) -> None:
    with pytest.raises(ValueError, match="not both"):
        await client.hangup("c.1", reason="busy", reason_code=17)
    assert fake_ari.requests == []
    await client.hangup("c.1", reason_code=17)
    assert fake_ari.requests[0].query == {"reason_code": "17"}


async def test_play_several_media(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(
        201, {"id": "p1", "media_uri": "sound:a", "state": "queued", "target_uri": "channel:c"}
    )
    playback = await client.play("c", ["sound:a", "sound:b"], playback_id="p1", lang="fr")
    assert isinstance(playback, Playback) and playback.id == "p1"
    assert fake_ari.requests[0].query == {
        "media": "sound:a,sound:b",
        "playbackId": "p1",
        "lang": "fr",
    }


async def test_bridge_operations_and_booleans(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, BRIDGE)
    bridge = await client.create_bridge(bridge_id="b6275166", name="call-1")
    assert isinstance(bridge, Bridge) and bridge.technology == "simple_bridge"
    await client.add_channel("b6275166", "c.1", role="caller", absorb_dtmf=True, mute=False)
    await client.remove_channel("b6275166", ["c.1", "c.2"])
    fake_ari.respond(200, [BRIDGE, BRIDGE | {"id": "other"}])
    bridges = await client.list_bridges()
    assert [b.id for b in bridges] == ["b6275166", "other"]
    sent = [(r.method, r.path, r.query) for r in fake_ari.requests]
    assert sent == [
        ("POST", "/bridges", {"type": "mixing", "bridgeId": "b6275166", "name": "call-1"}),
        (
            "POST",
            "/bridges/b6275166/addChannel",
            {"channel": "c.1", "role": "caller", "absorbDTMF": "true", "mute": "false"},
        ),
        ("POST", "/bridges/b6275166/removeChannel", {"channel": "c.1,c.2"}),
        ("GET", "/bridges", {}),
    ]


async def test_applications_asterisk_endpoints(fake_ari: FakeAri, client: AriClient) -> None:
    app_body = {
        "name": APP,
        "channel_ids": ["c.1"],
        "bridge_ids": [],
        "endpoint_ids": [],
        "device_names": [],
        "events_allowed": [],
        "events_disallowed": [],
    }
    fake_ari.respond(200, app_body)
    fake_ari.respond(200, [app_body])
    fake_ari.respond(200, {"system": {"version": "22.10.1", "entity_id": "e"}})
    fake_ari.respond(200, {"asterisk_id": "e", "ping": "pong", "timestamp": "t"})
    fake_ari.respond(200, [{"technology": "PJSIP", "resource": "a/b", "channel_ids": []}])
    fake_ari.respond(200, {"technology": "PJSIP", "resource": "a/b", "channel_ids": []})
    fake_ari.respond(200, [CHANNEL])
    application = await client.get_application()
    assert isinstance(application, Application) and application.channel_ids == ("c.1",)
    assert [a.name for a in await client.list_applications()] == [APP]
    info = await client.info()
    assert isinstance(info, AsteriskInfo) and info.version == "22.10.1"
    assert (await client.ping()).ping == "pong"
    assert [e.resource for e in await client.list_endpoints("PJSIP")] == ["a/b"]
    endpoint = await client.get_endpoint("PJSIP", "a/b")
    assert isinstance(endpoint, Endpoint) and endpoint.state is None
    assert [c.id for c in await client.list_channels()] == [CHANNEL["id"]]
    paths = [r.path for r in fake_ari.requests]
    assert paths == [
        f"/applications/{APP}",
        "/applications",
        "/asterisk/info",
        "/asterisk/ping",
        "/endpoints/PJSIP",
        "/endpoints/PJSIP/a/b",  # decoded by the server; sent as a%2Fb, one segment
        "/channels",
    ]


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, {"message": "Application or extension must be specified"}, AriBadRequest, None),
        (404, {"message": "Channel not found"}, AriNotFound, None),
        (409, {"message": "Channel not in Stasis application"}, AriConflict, None),
        (412, {"message": "Channel in invalid state"}, AriPreconditionFailed, None),
        (422, {"message": "Channel not in this bridge"}, AriUnprocessable, None),
        (500, {"error": "Allocation failed"}, AriServerError, None),
        (503, "Service Unavailable", AriServerError, "Service Unavailable"),
        (401, {"error": "Authentication required"}, AriError, None),
        (404, "", AriNotFound, "Not Found"),
    ],
)
async def test_http_errors_map_to_exceptions(
    fake_ari: FakeAri,
    client: AriClient,
    status: int,
    body: Any,
    error: type[AriError],
    message: str | None,
) -> None:
    fake_ari.respond(status, body or None)
    with pytest.raises(error) as raised:
        await client.answer("c.1")
    assert type(raised.value) is error
    expected = message or body.get("message") or body.get("error")
    assert raised.value.message == expected
    assert raised.value.status == status
    assert str(raised.value) == f"ARI POST /channels/c.1/answer: HTTP {status}: {expected}"


def test_error_message_fallbacks() -> None:
    assert error_message('{"message": "Bridge not found"}') == "Bridge not found"
    assert error_message('{"error": "Allocation failed"}') == "Allocation failed"
    assert error_message("<html>bad gateway</html>\n") == "<html>bad gateway</html>"
    assert error_message('["odd"]') == '["odd"]'


async def test_malformed_response_is_an_ari_error(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, {key: v for key, v in CHANNEL.items() if key != "id"})
    with pytest.raises(AriError, match="missing required field 'id'") as raised:
        await client.get_channel("c.1")
    assert raised.value.path == "/channels/c.1"
    fake_ari.respond(200, "not json")
    with pytest.raises(AriError, match="invalid JSON"):
        await client.get_channel("c.1")
    fake_ari.respond(200, {"not": "a list"})
    with pytest.raises(AriError, match="expected a JSON list"):
        await client.list_channels()


async def test_connection_refused_is_unavailable(free_port: int) -> None:
    async with AriClient(f"http://127.0.0.1:{free_port}/ari", USERNAME, PASSWORD, APP) as ari:
        with pytest.raises(AriUnavailable) as raised:
            await ari.answer("c.1")
    assert raised.value.status is None
    assert (raised.value.method, raised.value.path) == ("POST", "/channels/c.1/answer")


async def test_timeout_is_unavailable(fake_ari: FakeAri) -> None:
    fake_ari.hold = asyncio.Event()
    async with AriClient(fake_ari.base_url, USERNAME, PASSWORD, APP, timeout=0.2) as ari:
        with pytest.raises(AriUnavailable, match="timed out"):
            await ari.answer("c.1")
    fake_ari.hold.set()


async def test_one_debug_line_per_request_without_secrets(
    fake_ari: FakeAri, client: AriClient, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    fake_ari.respond(404, {"message": "Channel not found"})
    with pytest.raises(AriNotFound):
        await client.answer("c.1")
    await client.ring("c.1")
    lines = [e for e in debug_logs if e["event"] == "ari_request"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("POST", "/channels/c.1/answer", 404),
        ("POST", "/channels/c.1/ring", 204),
    ]
    assert all(e["log_level"] == "debug" and e["elapsed_ms"] >= 0 for e in lines)
    assert PASSWORD not in repr(debug_logs)


async def test_shared_session_is_not_closed(fake_ari: FakeAri) -> None:
    async with aiohttp.ClientSession() as session:
        async with AriClient(fake_ari.base_url, USERNAME, PASSWORD, APP, session=session) as ari:
            await ari.answer("c.1")
        assert not session.closed
        assert fake_ari.requests[0].headers["Authorization"].startswith("Basic ")


async def test_credentials_in_the_url_are_dropped_not_logged(
    fake_ari: FakeAri, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    # aiohttp refuses URL credentials beside the Authorization header (ValueError, not AriError).
    url = fake_ari.base_url.replace("://", "://pbxd:url-secret@")
    async with AriClient(url, USERNAME, PASSWORD, APP) as ari:
        await ari.answer("c.1")
        assert "url-secret" not in ari.base_url and "url-secret" not in repr(ari)
    sent = fake_ari.requests[0].headers["Authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")).decode() == f"{USERNAME}:{PASSWORD}"
    assert debug_logs[0]["event"] == "ari_url_credentials_ignored"
    assert "url-secret" not in repr(debug_logs)


async def test_undecodable_or_absurd_bodies_are_ari_errors(
    fake_ari: FakeAri, client: AriClient
) -> None:
    fake_ari.respond(200, "[" * 100_000 + "]" * 100_000)  # RecursionError in json.loads
    with pytest.raises(AriError, match="invalid JSON") as raised:
        await client.get_channel("c.1")
    assert raised.value.status == 200
    fake_ari.respond(404, b'{"message": "Canal introuvable \xe9"}')  # Latin-1, not UTF-8
    with pytest.raises(AriNotFound, match="Canal introuvable"):
        await client.get_channel("c.1")
    fake_ari.respond(200, b"\xff\xfe")
    with pytest.raises(AriError, match="invalid JSON"):
        await client.get_channel("c.1")


async def test_unexpected_shape_keeps_the_http_status(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, {"not": "a list"})
    with pytest.raises(AriError, match="expected a JSON list") as raised:
        await client.list_channels()
    assert raised.value.status == 200
    fake_ari.respond(200, {"id": 5})
    with pytest.raises(AriError, match="unexpected response") as raised:
        await client.get_bridge("b.1")
    assert raised.value.status == 200
