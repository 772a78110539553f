"""The simulator's fault-injection API (`sim.faults`): what tests use instead of patching it."""

from __future__ import annotations

import asyncio

import pytest

from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator, PeerScript

from .conftest import Ari, EventReader

DID, CALLER_NUM = "+33170000001", "+33612000001"


async def test_held_events_are_sent_in_order_when_released(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    caller = await sim.inbound_call(DID, CALLER_NUM)
    await events.next("StasisStart", caller)
    hold = sim.faults.hold_events(caller)
    other = await sim.inbound_call(DID, "+33612000002")
    assert (await ari.post(f"/channels/{caller}/answer"))[0] == 204
    await events.next("StasisStart", other)  # events about other channels still flow
    await clock.advance(1)
    assert [e["type"] for e in events.of(caller)] == ["StasisStart"]
    assert len(hold.held) == 1 and hold.held[0][1]["type"] == "ChannelStateChange"
    hold.release(after=0.5)
    await clock.advance(0.4)
    assert [e["type"] for e in events.of(caller)] == ["StasisStart"]
    await events.next("ChannelStateChange", caller)
    assert clock.monotonic() == pytest.approx(1.5)
    # Held events are logged when they are sent, not when they happened.
    assert [e["data"]["type"] for e in sim.event_log][-1] == "ChannelStateChange"


async def test_discarded_events_are_never_sent(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    caller = await sim.inbound_call(DID, CALLER_NUM)
    await events.next("StasisStart", caller)
    hold = sim.faults.hold_events()  # every event
    sim.hangup(caller)
    hold.discard()
    await clock.advance(1)
    assert sim.channel(caller) is None
    assert [e["type"] for e in events.of(caller)] == ["StasisStart"]
    later = await sim.inbound_call(DID, CALLER_NUM)  # a hold ended is gone for good
    await events.next("StasisStart", later)


async def test_failed_requests_are_answered_and_not_carried_out(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await sim.inbound_call(DID, CALLER_NUM)
    await events.next("StasisStart", caller)
    rule = sim.faults.fail_requests(
        "POST", "/channels/*/answer", 500, {"message": "Allocation failed"}, skip=1, times=1
    )
    second = await sim.inbound_call(DID, "+33612000002")
    await events.next("StasisStart", second)
    assert (await ari.post(f"/channels/{caller}/answer"))[0] == 204  # skipped
    assert await ari.post(f"/channels/{second}/answer") == (500, {"message": "Allocation failed"})
    chan = sim.channel(second)
    assert chan is not None and chan.state == "Ring"  # not carried out
    assert (await ari.post(f"/channels/{second}/answer"))[0] == 204  # times=1: spent
    assert rule.applied == 1 and rule.spent
    assert [r["status"] for r in sim.rest_log if r["path"].endswith("/answer")] == [204, 500, 204]


async def test_failed_requests_can_match_parameters(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    legs = [await ari.create("PJSIP/alice"), await ari.create("PJSIP/bob")]
    for leg in legs:
        await events.next("StasisStart", leg["id"])
    sim.faults.fail_requests(
        "DELETE",
        "/channels/*",
        404,
        {"message": "Channel not found"},
        params={"reason_code": "26"},
        times=None,
    )
    assert (await ari.delete(f"/channels/{legs[0]['id']}", reason_code="26"))[0] == 404
    assert (await ari.delete(f"/channels/{legs[1]['id']}", reason_code="16"))[0] == 204
    assert sim.channel(legs[0]["id"]) is not None
    await events.next("ChannelDestroyed", legs[1]["id"])


async def test_actions_run_before_and_after_a_request(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    # An app watching the whole channel (as once it originated a leg) gets its ChannelDestroyed.
    sim.pbx.stasis_only_subscriptions = False
    # The caller hangs up as `ring` reaches Asterisk: the ring answers 404.
    caller = await sim.inbound_call(DID, CALLER_NUM)
    await events.next("StasisStart", caller)
    seen: list[str] = []
    sim.faults.on_request(
        "POST",
        f"/channels/{caller}/ring",
        before=lambda: sim.hangup(caller),
        after=lambda: seen.append(f"after, channel there: {sim.channel(caller) is not None}"),
    )
    assert await ari.post(f"/channels/{caller}/ring") == (404, {"message": "Channel not found"})
    assert seen == ["after, channel there: False"]
    await events.next("ChannelDestroyed", caller)


async def test_stalled_request_is_never_carried_out(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    sim.faults.stall_requests("POST", "/channels/create")
    pending = asyncio.ensure_future(
        ari.post("/channels/create", endpoint="PJSIP/alice", app="pbxd")
    )
    with pytest.raises(TimeoutError):
        await clock.run_until(lambda: False, within=5)
    assert sim.channels == []
    sim.faults.clear()  # what the simulator's stop does
    assert (await pending)[0] == 503


async def test_an_action_on_an_event(sim: AriSimulator, ari: Ari, events: EventReader) -> None:
    # As alice's answer is sent, the caller hangs up.
    sim.script("PJSIP/alice", PeerScript(answer_after=1))
    caller = await sim.inbound_call(DID, CALLER_NUM)
    await events.next("StasisStart", caller)
    leg = await ari.create("PJSIP/alice", originator=caller)
    await events.next("StasisStart", leg["id"])
    sim.faults.on_event(
        "ChannelStateChange",
        lambda: sim.hangup(caller),
        channel_id=leg["id"],
        where=lambda e: e["channel"]["state"] == "Up",
    )
    await ari.post(f"/channels/{leg['id']}/dial", caller=caller)
    await events.next("ChannelDestroyed", caller)
    types = [(e["type"], e.get("channel", {}).get("state")) for e in events.of(leg["id"])]
    assert ("ChannelStateChange", "Up") in types
    up = next(i for i, e in enumerate(events.events) if e.get("channel", {}).get("state") == "Up")
    hangup = next(
        i
        for i, e in enumerate(events.events)
        if e["type"] == "ChannelHangupRequest" and e["channel"]["id"] == caller
    )
    assert hangup == up + 1  # right after the answer, before anything else


async def test_delayed_stasis_start(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    sim.faults.delay_stasis_start(2.0, channel_id="late")
    leg = await ari.create("PJSIP/alice", channelId="late")
    other = await ari.create("PJSIP/bob")
    created = clock.monotonic()
    await events.next("StasisStart", other["id"])
    assert clock.monotonic() - created < 0.1
    await events.next("StasisStart", leg["id"])
    assert clock.monotonic() - created == pytest.approx(2.0, abs=0.02)
    # Meanwhile, a dial gets Asterisk's 409: the channel is not in Stasis yet.


async def test_held_websockets_wait_until_released(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    sim.faults.drop_websockets()
    hold = sim.faults.hold_websockets()
    await clock.run_until(lambda: events.ended)
    connecting = clock.drive(ari.events())
    with pytest.raises(TimeoutError):
        await clock.run_until(lambda: sim.hub.is_active("pbxd"), within=5)
    hold.release()
    again = await connecting
    await clock.drive(sim.wait_connected())
    await again.close()
