"""Event WebSockets: reconnection keeps the calls (ws_reconnect.jsonl), app ownership, fan-out."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pbxd.sim import AriSimulator, PeerScript

from .conftest import Ari, EventReader


async def test_drop_and_reconnect_keeps_channels_and_bridges(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("PJSIP/alice", PeerScript(answer_after=0.5))
    caller = await sim.inbound_call("+33170000001", "+33612000001", "Caller", hangup_after=6.0)
    await events.next("StasisStart", caller)
    _, bridge = await ari.post("/bridges", type="mixing")
    alice = await ari.create("PJSIP/alice", originator=caller)
    await events.next("StasisStart", alice["id"])
    await ari.post(f"/channels/{alice['id']}/dial", caller=caller, timeout="15")
    await events.next("Dial", alice["id"], where=lambda e: e["dialstatus"] == "ANSWER")
    await ari.post(f"/channels/{caller}/answer")
    await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=f"{caller},{alice['id']}")
    await events.next("ChannelConnectedLine", caller)

    sim.drop_websockets()
    await ari.clock.run_until(lambda: events.ended)  # the reader ends when the server closes
    assert events.ws.closed
    # While no WebSocket holds the app, its events are dropped, but the call stays up.
    delivered = len(sim.event_log)
    sim.send_dtmf(alice["id"], "5")  # plain mixing bridge: no event anyway
    await ari.post(f"/channels/{alice['id']}/play", media="sound:beep")
    await ari.clock.advance(1.0)  # the beep plays out unseen
    assert len(sim.event_log) == delivered
    status, app = await ari.get("/applications/pbxd")
    assert status == 200
    assert app["channel_ids"] == [caller, alice["id"]] and app["bridge_ids"] == [bridge["id"]]

    again = await ari.events()
    await ari.clock.drive(sim.wait_connected())
    status, live = await ari.get(f"/bridges/{bridge['id']}")
    assert live["channels"] == [caller, alice["id"]] and live["technology"] == "native_rtp"
    status, chan = await ari.get(f"/channels/{caller}")
    assert chan["state"] == "Up" and chan["connected"] == {"name": "Alice", "number": "alice"}
    # Later events arrive on the new WebSocket: the caller hangs up (BYE).
    await again.next("StasisEnd", caller, within=10)
    left = await again.next("ChannelLeftBridge", caller)
    assert left["application"] == "pbxd" and left["bridge"]["channels"] == [alice["id"]]
    await again.close()


async def test_second_websocket_replaces_the_first(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    second = await ari.events()
    replaced = await events.next("ApplicationReplaced")
    assert replaced["application"] == "pbxd"
    caller = await sim.inbound_call("+33170000001", "+33612000001")
    await second.next("StasisStart", caller)
    assert not [e for e in events.events if e["type"] == "StasisStart"]
    await second.close()


async def test_events_go_only_to_the_owning_app(sim: AriSimulator, ari: Ari) -> None:
    both = await ari.events("pbxd,other")
    other_only = await ari.events("other")  # replaces `other` on the first socket
    await both.next("ApplicationReplaced", where=lambda e: e["application"] == "other")
    await ari.clock.drive(sim.wait_connected("pbxd"))
    mine = await sim.inbound_call("+33170000001", "+33612000001", app="pbxd")
    theirs = await sim.inbound_call("+33170000002", "+33612000002", app="other")
    start_mine = await both.next("StasisStart", mine)
    start_theirs = await other_only.next("StasisStart", theirs)
    assert start_mine["application"] == "pbxd" and start_theirs["application"] == "other"
    await ari.clock.advance(1.0)
    assert not [e for e in both.events if e["type"] == "StasisStart" and e is not start_mine]
    assert not [e for e in other_only.events if e.get("channel", {}).get("id") == mine]
    await both.close()
    await other_only.close()


async def test_inbound_call_without_websocket_fails_silently(sim: AriSimulator) -> None:
    channel_id = await sim.inbound_call("+33170000001", "+33612000001")
    assert sim.channel(channel_id) is None  # Stasis() refused the inactive app
    assert sim.event_log == []


async def test_events_websocket_needs_an_app(sim: AriSimulator, ari: Ari) -> None:
    url = sim.base_url.replace("http", "ws") + "/events"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await ari.session.ws_connect(url)
    assert info.value.status == 400
    async with ari.session.get(sim.base_url + "/events", params={"app": "pbxd"}) as resp:
        assert resp.status == 426  # not an upgrade request


async def test_slow_client_does_not_block_the_simulator(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    """Events are queued per socket: publishing thousands is immediate."""
    caller = await sim.inbound_call("+33170000001", "+33612000001")
    await events.next("StasisStart", caller)
    chan = sim.channel(caller)
    assert chan is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(2000):
        sim.pbx.dtmf_received(chan, "1")
    assert loop.time() - started < 5.0  # no socket write awaited (a loaded machine: ~1.5 s)
    await events.next(
        "ChannelDtmfReceived",
        caller,
        where=lambda e: sum(x["type"] == "ChannelDtmfReceived" for x in events.events) >= 2000,
        within=20,
    )
    assert sim.event_log[-1]["data"]["type"] == "ChannelDtmfReceived"
