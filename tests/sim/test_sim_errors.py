"""Error answers, authentication and robustness: Asterisk's statuses and messages, and a server
that survives bad input."""

from __future__ import annotations

import aiohttp
import pytest

from pbxd.sim import AriSimulator

from .conftest import SECRET, USER, Ari, EventReader

NOT_FOUND = {"message": "Channel not found"}


async def test_errors_capture_answers(sim: AriSimulator, ari: Ari) -> None:
    """errors.jsonl, call for call."""
    status, info = await ari.get("/asterisk/info")
    assert status == 200 and info["system"] == {
        "entity_id": "02:fc:00:00:00:01",
        "version": "22.10.1",
    }
    assert (await ari.get("/applications/pbxd"))[0] == 404  # no WebSocket yet
    assert await ari.get("/endpoints/PJSIP/alice") == (
        200,
        {"channel_ids": [], "resource": "alice", "state": "online", "technology": "PJSIP"},
    )
    assert await ari.post("/channels/nonexistent-id/answer") == (404, NOT_FOUND)
    assert await ari.delete("/channels/nonexistent-id") == (404, NOT_FOUND)
    assert await ari.post("/channels/create", app="pbxd", endpoint="PJSIP/nosuchendpoint") == (
        500,
        {"error": "Allocation failed"},
    )
    assert await ari.post("/bridges/nonexistent/addChannel", channel="x") == (
        404,
        {"message": "Bridge not found"},
    )
    assert await ari.post("/channels", endpoint="PJSIP/alice") == (
        400,
        {"message": "Application or extension must be specified"},
    )


async def test_application_listed_while_connected(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    assert await ari.get("/applications/pbxd") == (
        200,
        {
            "bridge_ids": [],
            "channel_ids": [],
            "device_names": [],
            "endpoint_ids": [],
            "events_allowed": [],
            "events_disallowed": [],
            "name": "pbxd",
        },
    )
    status, apps = await ari.get("/applications")
    assert status == 200 and [a["name"] for a in apps] == ["pbxd"]


async def test_dial_before_stasis_start_is_409(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    """race_dial_before_stasisstart.jsonl: the channel enters Stasis just after create returns."""
    caller = await sim.inbound_call("+33170000001", "+33612000001", "Caller")
    await events.next("StasisStart", caller)
    leg = await ari.create("PJSIP/bob", originator=caller)
    status, body = await ari.post(f"/channels/{leg['id']}/dial", caller=caller, timeout="3")
    assert (status, body) == (409, {"message": "Channel not in Stasis application"})
    await events.next("StasisStart", leg["id"])
    # Once in Stasis, the same dial works; a second dial is refused (not Down any more).
    assert (await ari.post(f"/channels/{leg['id']}/dial", caller=caller))[0] == 204
    await events.next("Dial", leg["id"], where=lambda e: e["dialstatus"] == "RINGING")
    assert await ari.post(f"/channels/{leg['id']}/dial", caller=caller) == (
        409,
        {"message": "Channel is not in the 'Down' state"},
    )
    # Dialing the inbound channel: not created by ARI.
    assert await ari.post(f"/channels/{caller}/dial") == (
        409,
        {"message": "Channel is not in the 'Down' state"},
    )


async def test_hangup_reason_validation(sim: AriSimulator, ari: Ari, events: EventReader) -> None:
    # An app watching the whole channel (as once it originated a leg) gets its ChannelDestroyed.
    sim.pbx.stasis_only_subscriptions = False
    caller = await sim.inbound_call("+33170000001", "+33612000001")
    await events.next("StasisStart", caller)
    assert await ari.delete(f"/channels/{caller}", reason="bogus") == (
        400,
        {"message": "Invalid reason for hangup reason provided"},
    )
    assert await ari.delete(f"/channels/{caller}", reason_code="abc") == (
        400,
        {"message": "Invalid reason for hangup reason code provided"},
    )
    assert await ari.delete(f"/channels/{caller}", reason="busy", reason_code="17") == (
        400,
        {"message": "The reason and reason_code can't both be specified"},
    )
    assert sim.channel(caller) is not None  # none of those hung up
    assert await ari.delete(f"/channels/{caller}", reason="congestion") == (204, None)
    destroyed = await events.next("ChannelDestroyed", caller)
    assert (destroyed["cause"], destroyed["cause_txt"], destroyed["tech_cause"]) == (
        34,
        "Circuit/channel congestion",
        503,
    )


async def test_state_and_stasis_preconditions(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await sim.inbound_call("+33170000001", "+33612000001")
    await events.next("StasisStart", caller)
    leg = await ari.create("PJSIP/alice", originator=caller)
    await events.next("StasisStart", leg["id"])
    for path in ("answer", "ring", "play?media=sound:beep"):
        route, _, query = path.partition("?")
        params = dict([query.split("=")]) if query else {}
        assert await ari.post(f"/channels/{leg['id']}/{route}", **params) == (
            412,
            {"message": "Channel in invalid state"},
        ), path
    _, bridge = await ari.post("/bridges")
    assert bridge["bridge_type"] == "mixing" and bridge["technology"] == "simple_bridge"
    assert await ari.post(f"/bridges/{bridge['id']}/addChannel", channel="nope") == (
        400,
        {"message": "Channel not found"},
    )
    assert await ari.post(f"/bridges/{bridge['id']}/addChannel") == (
        400,
        {"message": "Missing parameter channel"},
    )
    assert await ari.post(f"/bridges/{bridge['id']}/removeChannel", channel=caller) == (
        422,
        {"message": "Channel not in this bridge"},
    )
    # A channel that exists but is not in Stasis: created, Stasis not entered yet.
    fresh = await ari.create("PJSIP/dave")
    assert await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=fresh["id"]) == (
        422,
        {"message": "Channel not in Stasis application"},
    )
    assert (await ari.post("/bridges", bridgeId=bridge["id"]))[0] == 409
    assert await ari.post("/bridges", type="bogus") == (500, {"message": "Unable to create bridge"})


async def test_authentication(sim: AriSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.base_url + "/asterisk/ping") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="Asterisk REST Interface"'
            assert await resp.json() == {"message": "Authentication required"}
        bad = {"Authorization": aiohttp.encode_basic_auth(USER, "wrong")}
        async with session.get(sim.base_url + "/asterisk/ping", headers=bad) as resp:
            assert resp.status == 401
        params = {"api_key": f"{USER}:{SECRET}"}
        async with session.get(sim.base_url + "/asterisk/ping", params=params) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["ping"] == "pong" and body["asterisk_id"] == "02:fc:00:00:00:01"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(sim.base_url.replace("http", "ws") + "/events?app=pbxd")
        assert info.value.status == 401
    pings = [(r["status"], r["params"]) for r in sim.rest_log if r["path"] == "/asterisk/ping"]
    assert pings == [(401, {}), (401, {}), (200, {})]  # the api_key never reaches the log
    assert sim.rest_log[-1]["path"] == "/events" and sim.rest_log[-1]["status"] == 401


async def test_routing_errors(sim: AriSimulator, ari: Ari) -> None:
    assert await ari.get("/nosuchthing") == (404, {"message": "Resource not found"})
    assert await ari.get("/channels/x/dial/extra") == (404, {"message": "Resource not found"})
    assert await ari.call("PUT", "/channels") == (405, {"message": "Invalid method"})
    async with ari.session.options(sim.base_url + "/channels") as resp:
        assert resp.status == 204 and resp.headers["Allow"] == "OPTIONS, GET, POST"
    assert await ari.post("/channels/externalMedia") == (
        501,
        {"message": "Not implemented by the ARI simulator"},
    )
    assert await ari.get("/endpoints/PJSIP/nobody") == (404, {"message": "Endpoint not found"})
    assert await ari.get("/bridges/nope") == (404, {"message": "Bridge not found"})
    assert await ari.delete("/bridges/nope") == (404, {"message": "Bridge not found"})
    assert await ari.get("/channels/nope") == (404, NOT_FOUND)
    assert (await ari.get("/channels"))[0] == 200
    status, endpoints = await ari.get("/endpoints/PJSIP")
    assert status == 200 and {e["resource"] for e in endpoints} >= {"alice", "carol"}


async def test_malformed_input_never_kills_the_server(sim: AriSimulator, ari: Ari) -> None:
    url = sim.base_url + "/channels/create?endpoint=PJSIP/alice&app=pbxd"
    headers = {"Content-Type": "application/json"}
    async with ari.session.post(url, data=b"{not json", headers=headers) as resp:
        assert resp.status == 400
        assert await resp.json() == {"message": "Error parsing request body"}
    assert await ari.post("/channels/create", {"variables": {"X": 1}}, endpoint="PJSIP/alice") == (
        400,
        {"message": "Only string values in the 'variables' object allowed"},
    )
    assert await ari.post("/channels/create", app="pbxd") == (
        400,
        {"message": "Endpoint must be specified"},
    )
    assert await ari.post("/channels/create", app="pbxd", endpoint="alice") == (
        400,
        {"message": "Invalid endpoint specified"},
    )
    # atoi() semantics for ints, as Asterisk's generated glue: a bad timeout reads as 0.
    status, _ = await ari.post("/channels", endpoint="PJSIP/bob", app="pbxd", timeout="soon")
    assert status == 200
    # Body fields fill parameters (Asterisk's parse_body).
    status, chan = await ari.post("/channels/create", {"endpoint": "PJSIP/dave", "app": "pbxd"})
    assert status == 200 and chan["name"].startswith("PJSIP/dave-")
    assert (await ari.get("/asterisk/ping"))[0] == 200


async def test_internal_error_is_a_500_not_a_crash(
    sim: AriSimulator, ari: Ari, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(_req: object) -> None:
        raise RuntimeError("simulated bug")

    with monkeypatch.context() as patch:
        patch.setattr(sim.rest, "dispatch", boom)
        assert await ari.get("/endpoints") == (500, {"message": "Internal Server Error"})
    assert "simulated bug" in caplog.text
    assert (await ari.get("/asterisk/ping"))[0] == 200


@pytest.mark.parametrize(
    ("reason", "cause", "text"),
    [
        ("normal", 16, "Normal Clearing"),
        ("busy", 17, "User busy"),
        ("congestion", 34, "Circuit/channel congestion"),
        ("no_answer", 19, "User alerting, no answer"),
        ("timeout", 18, "No user responding"),
        ("rejected", 21, "Call Rejected"),
        ("unallocated", 1, "Unallocated (unassigned) number"),
        ("normal_unspecified", 31, "Normal, unspecified"),
        ("number_incomplete", 28, "Invalid number format"),
        ("codec_mismatch", 58, "Bearer capability not available"),
        ("interworking", 127, "Interworking, unspecified"),
        ("failure", 38, "Network out of order"),
        ("answered_elsewhere", 26, "Answered elsewhere"),
    ],
)
async def test_every_hangup_reason_maps_to_asterisks_cause(
    sim: AriSimulator, ari: Ari, events: EventReader, reason: str, cause: int, text: str
) -> None:
    leg = await ari.create("PJSIP/alice")
    await events.next("StasisStart", leg["id"])
    assert (await ari.delete(f"/channels/{leg['id']}", reason=reason))[0] == 204
    destroyed = await events.next("ChannelDestroyed", leg["id"])
    assert (destroyed["cause"], destroyed["cause_txt"]) == (cause, text)
    assert "tech_cause" not in destroyed  # never dialed: no SIP final response
