"""The daemon keeps its calls and their CDRs through what real life throws at it: the event
WebSocket dropping, the daemon being killed and restarted, 404/409 races, bursts of calls,
trunk capacity, and garbage on the event stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update

from pbxd.ari import parse_event
from pbxd.cdr.records import Disposition
from pbxd.cdr.schema import CallRow, LegRow
from pbxd.sim import AriSimulator, PeerScript
from pbxd.sim.faults import EventHold, WebSocketHold

from .conftest import (
    HUNT,
    MOBILE,
    MOBILES,
    RINGALL,
    ROUTING_YAML,
    SECRET,
    SHORT,
    TIGHT_HUNT,
    USER,
    CallLab,
    LabFactory,
    add_lab_endpoints,
    assert_no_errors,
    lose_every_cdr_write,
    seconds,
    write_config,
)

SLACK = 1.5  # virtual seconds (see test_call_flows)


def bridged(lab: CallLab, call_id: str) -> bool:
    chan = lab.sim.channel(call_id)
    return chan is not None and chan.bridge_id is not None and len(lab.sim.bridges) >= 1


async def wait_bridged(lab: CallLab, call_id: str) -> None:
    await lab.wait_for(lambda: bridged(lab, call_id), what=f"{call_id} bridged")
    # ...and the daemon knows it (CDR answered_at queued).
    await lab.wait_for(
        lambda: call_id in lab.daemon.calls and lab.daemon.calls[call_id].state == "bridged",
        what="daemon bridged state",
    )


async def wait_reconnected(lab: CallLab, connections: int) -> None:
    service = lab.service
    assert service is not None and service.stream is not None
    stream = service.stream
    await lab.wait_for(
        lambda: stream.connections >= connections and stream.connected,
        what="event stream reconnected",
    )
    await lab.wait_for(lambda: not stream._tasks, what="resync after reconnection")


# ------------------------------------------------------------- WebSocket dropped


async def test_websocket_drop_mid_call_keeps_the_call(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    bridge_id = lab.sim.bridges[0].id

    lab.sim.drop_websockets()
    await wait_reconnected(lab, 2)
    # The resync is queued to the call's own task: wait until it asked about both channels.
    await lab.wait_for(
        lambda: all(lab.requests("GET", f"/channels/{c}") for c in (call_id, f"{call_id}-1")),
        what="resync after reconnection",
    )
    # Still bridged on Asterisk, nothing hung up by the resync.
    assert bridged(lab, call_id)
    assert lab.sim.bridge(bridge_id) is not None
    assert sorted(lab.sim.bridge(bridge_id).channels) == sorted(  # type: ignore[union-attr]
        [call_id, f"{call_id}-1"]
    )
    assert lab.daemon.calls[call_id].state == "bridged"
    untouched = {f"/channels/{call_id}", f"/channels/{call_id}-1"}  # the caller and alice
    assert [r for r in lab.requests("DELETE", "/channels/") if r["path"] in untouched] == []

    await lab.virtual_sleep(2)
    hangup_at = lab.clock.now()
    lab.sim.hangup(call_id)  # the caller's BYE arrives on the new WebSocket
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "alice"
    assert call.hangup_cause == 16
    assert call.ended_at is not None and abs(seconds(hangup_at, call.ended_at)) < SLACK
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["alice"].hangup_cause == 16
    assert legs["alice"].ended_at is not None
    assert lab.final_cause(f"{call_id}-1") == 16
    assert_no_errors(logs)


async def test_caller_hangs_up_while_websocket_is_down(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    answered_at = lab.clock.now()

    lab.sim.drop_websockets()
    hangup_at = lab.clock.now()
    lab.sim.hangup(call_id)  # its events go nowhere: no WebSocket holds the app
    assert lab.sim.channel(call_id) is None
    assert lab.sim.channel(f"{call_id}-1") is not None  # alice still up, bridged alone

    await wait_reconnected(lab, 2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.ended_at is not None
    # Closed by the resync: not before the hangup, and soon after it.
    assert call.ended_at >= hangup_at
    assert seconds(hangup_at, call.ended_at) < 5
    assert call.billsec is not None and call.billsec <= seconds(answered_at, call.ended_at) + 1
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["alice"].ended_at is not None
    assert lab.final_cause(f"{call_id}-1") == 16  # hung up by the daemon after the resync
    assert_no_errors(logs)


async def test_callee_answers_while_websocket_is_down(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The answer (ChannelStateChange Up) is lost; the resync finds bob Up and bridges him.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=2))
    call_id = await lab.call(RINGALL, hangup_after=6)
    await lab.wait_for(
        lambda: (
            all(lab.sim.channel(f"{call_id}-{i}") is not None for i in (1, 2, 3))
            and lab.daemon.calls[call_id].state == "ringing"
            and all(leg.state == "ringing" for leg in lab.daemon.calls[call_id].legs)
        ),
        what="legs ringing",
    )
    lab.sim.drop_websockets()
    await lab.virtual_sleep(2.5)  # bob answers in the dark
    assert lab.service is not None and lab.service.stream is not None
    await wait_reconnected(lab, 2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "bob"
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("alice", 26),
        ("bob", 16),
        ("dave", 26),
    ]
    assert_no_errors(logs)


async def test_hunt_leg_ends_while_websocket_is_down(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # alice goes busy while no WebSocket listens; the resync finds her gone and the hunt
    # moves on to bob, who answers.
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=1))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(HUNT, hangup_after=8)
    await lab.wait_for(
        lambda: (
            call_id in lab.daemon.calls and lab.daemon.calls[call_id].legs[0].state == "dialing"
        ),
        what="alice dialled",
    )
    lab.sim.drop_websockets()
    await lab.virtual_sleep(1.5)
    assert lab.sim.channel(f"{call_id}-1") is None  # alice busy, nobody told
    await wait_reconnected(lab, 2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    legs = {leg.target: leg for leg in entry.legs}
    assert set(legs) == {"alice", "bob"}
    assert legs["alice"].ended_at is not None and legs["alice"].answered_at is None
    assert legs["bob"].hangup_cause == 16
    assert_no_errors(logs)


async def test_legs_created_while_the_websocket_drops_end_the_call_cleanly(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The WebSocket drops right after the legs are created: they enter Stasis() with no
    # application connected, which fails, and Asterisk hangs them up unseen. The resync
    # finds them gone: the call fails (congestion, so the carrier may retry), no leak.
    # Asterisk's HTTP side stays down until the legs have failed to enter Stasis.
    down: list[WebSocketHold] = []

    def drop() -> None:
        down.append(lab.sim.faults.hold_websockets())
        lab.sim.faults.drop_websockets()

    lab.sim.faults.on_request("POST", "/channels/create", after=drop)
    call_id = await lab.call(RINGALL)
    await lab.wait_for(
        lambda: bool(down) and all(lab.sim.channel(f"{call_id}-{n}") is None for n in (1, 2, 3)),
        what="legs failed to enter Stasis",
    )
    down[0].release()
    await wait_reconnected(lab, 2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.FAILED, lab.timeline(call_id)
    assert call.hangup_cause == lab.final_cause(call_id) == 34
    assert [r for r in lab.sim.rest_log if str(r["path"]).endswith("/dial")] == []
    assert [(leg.target, leg.ended_at is not None) for leg in entry.legs] == [
        ("alice", True),
        ("bob", True),
        ("dave", True),
    ]
    assert_no_errors(logs)


async def test_asterisk_lost_mid_call_is_billed_up_to_the_drop(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Issue 8: Asterisk dies 2.5 s after the answer and is back 45 s later with none of the
    # call's channels. The call ended when the connection dropped, with a cause that says
    # so (38, network out of order), not billed for the outage.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.virtual_sleep(2.5)
    died_at = lab.clock.now()
    port = int(lab.url.rsplit(":", 1)[1].split("/")[0])
    await lab.sim.stop()
    await lab.virtual_sleep(45)
    restarted = AriSimulator(lab.clock, USER, SECRET)
    add_lab_endpoints(restarted)
    await restarted.start(port=port)
    lab.sim = restarted  # the fixture validates and stops the new one
    assert lab.service is not None and lab.service.daemon is not None
    daemon = lab.service.daemon
    await lab.wait_for(lambda: call_id not in daemon.calls, within=10, what="call closed")
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    assert call.hangup_cause == 38
    assert call.ended_at is not None and abs(seconds(died_at, call.ended_at)) < SLACK
    assert call.billsec is not None and call.billsec <= 4  # about 2.5 s, never the outage
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("alice", 26),
        ("bob", 38),
        ("dave", 26),
    ]
    assert [line["event"] for line in logs if line["event"] == "call_lost_with_asterisk"] == [
        "call_lost_with_asterisk"
    ]
    assert await lab.store.open_calls() == []


# ------------------------------------------------------------ daemon restarted


async def test_restart_adopts_a_bridged_call(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.store.flush()
    before = await lab.store.get_call(call_id)
    assert before is not None and before.call.answered_at is not None
    answered_at = before.call.answered_at

    await lab.kill_service()
    assert bridged(lab, call_id)  # nothing on Asterisk noticed
    store = await lab.reopen_store()
    assert [c.call_id for c in await store.open_calls()] == [call_id]
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted
    assert bridged(lab, call_id)  # adoption did not disturb the call

    await lab.virtual_sleep(2)
    hangup_at = lab.clock.now()
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "bob"
    assert call.answered_at == answered_at
    assert call.hangup_cause == 16
    assert call.ended_at is not None and abs(seconds(hangup_at, call.ended_at)) < SLACK
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["bob"].hangup_cause == 16
    assert legs["bob"].ended_at is not None
    assert abs(seconds(hangup_at, legs["bob"].ended_at)) < SLACK
    assert await store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_adopts_a_bridged_call_whose_answer_was_not_yet_written(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Killed within the CDR writer's batch interval: the database still says "ringing"
    # (no answer, the losers' legs open). Asterisk's bridge is what tells the truth.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    store = await lab.reopen_store()
    async with store.engine.begin() as conn:
        await conn.execute(
            update(CallRow)
            .where(CallRow.call_id == call_id)
            .values(answered_at=None, answered_by=None)
        )
        await conn.execute(
            update(LegRow).where(LegRow.call_id == call_id).values(answered_at=None, ended_at=None)
        )
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted
    assert bridged(lab, call_id)  # the conversation goes on

    await lab.virtual_sleep(1)
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "bob"
    assert call.answered_at is not None and call.ended_at is not None
    assert call.hangup_cause == 16
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["bob"].answered_at is not None and legs["bob"].hangup_cause == 16
    # alice and dave were hung up before the kill: closed, not left open forever.
    assert legs["alice"].ended_at is not None and legs["dave"].ended_at is not None
    assert legs["alice"].answered_at is None
    assert await store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_hangs_up_losers_still_ringing_as_answered_elsewhere(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The daemon died before its hangups of the losers (cause 26) reached Asterisk: alice
    # and dave still ring beside the bridged call. The restart ends them as answered
    # elsewhere, so their phones do not log a missed call.
    lost = lab.sim.faults.fail_requests(
        "DELETE",
        "/channels/*",
        404,
        {"message": "Channel not found"},
        params={"reason_code": "26"},
        times=None,
    )
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    assert lab.sim.channel(f"{call_id}-1") is not None  # alice still ringing
    await lab.kill_service()
    lost.cancel()
    await lab.reopen_store()
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.final_cause(f"{call_id}-1") == lab.final_cause(f"{call_id}-3") == 26
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "bob" and entry.call.hangup_cause == 16
    assert all(leg.ended_at is not None for leg in entry.legs)
    assert_no_errors(logs)


async def test_restart_adopted_external_leg_holds_its_trunk_slot(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # A mobile on carrier-fr answers; after a restart its leg still counts against the
    # trunk's max_outbound_legs until it ends.
    lab.sim.script(MOBILE[1], PeerScript(answer_after=1))
    call_id = await lab.call(MOBILES)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.trunk_legs("carrier-fr") == 1
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "m1"
    assert lab.daemon.trunk_legs("carrier-fr") == 0
    assert_no_errors(logs)


async def test_restart_adopted_call_ended_by_the_callee(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=4))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert entry.call.hangup_cause == 16, lab.timeline(call_id)
    assert lab.final_cause(call_id) == 16  # the daemon hung the caller up after bob left
    assert entry.call.billsec is not None and abs(entry.call.billsec - 4) <= 1
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_closes_a_call_that_ended_while_down(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    store = await lab.reopen_store()
    kill_at = lab.clock.now()
    lab.sim.hangup(call_id)  # nobody listening: bob stays up, alone in the bridge
    assert lab.sim.channel(f"{call_id}-2") is not None

    await lab.start_service()
    entry = await lab.finish(call_id, check_leaks=False)
    call = entry.call
    assert call.ended_at is not None, "CDR left open"
    assert call.answered_at is not None and call.started_at <= call.answered_at <= call.ended_at
    assert call.ended_at <= kill_at  # the best known time: nothing seen after the kill
    assert call.disposition is Disposition.ANSWERED
    assert all(leg.ended_at is not None for leg in entry.legs)
    assert await store.open_calls() == []
    assert lab.final_cause(f"{call_id}-2") == 16  # bob, alone in the bridge, hung up
    assert_no_errors(logs)
    lab.assert_nothing_leaked()  # ...and the bridge he was left in destroyed


def hangup_at_the_resync(
    lab: CallLab, channel_id: str, *, lose_events: bool, nth_get: int = 2
) -> None:
    """The far end of `channel_id` hangs up as the call's resync asks about it: on the
    `nth_get` GET of the channel (after a restart the recovery's comes first), which answers
    404 before the channel's events arrive, or with its events lost (`lose_events`)."""
    lab.hangup_as_requested(
        channel_id, "GET", f"/channels/{channel_id}", lose_events=lose_events, skip=nth_get - 1
    )


async def test_restart_caller_hanging_up_during_the_resync_keeps_its_cause(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The resync's GET answers 404 just before the caller's ChannelDestroyed (cause 16)
    # arrives: the call waits for that event instead of closing the CDR without a cause.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    hangup_at_the_resync(lab, call_id, lose_events=False)
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    assert call.hangup_cause == lab.final_cause(call_id) == 16, lab.timeline(call_id)
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["bob"].hangup_cause == 16 and legs["bob"].ended_at is not None
    assert "vanished" not in lab.timeline(call_id)
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_reconnection_caller_hanging_up_during_the_resync_keeps_its_cause(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The same race after a WebSocket reconnection: the resync's GET is the first one.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    hangup_at_the_resync(lab, call_id, lose_events=False, nth_get=1)
    lab.sim.drop_websockets()
    await wait_reconnected(lab, 2)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert entry.call.hangup_cause == lab.final_cause(call_id) == 16, lab.timeline(call_id)
    assert "vanished" not in lab.timeline(call_id)
    assert_no_errors(logs)


async def test_restart_caller_whose_hangup_events_are_lost_is_closed_after_the_grace(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Same, but Asterisk's events for the caller never come: the resync's 404 stands, the
    # call ends (bob hung up) once the grace is over, not at the 5 s end backstop.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    hangup_at_the_resync(lab, call_id, lose_events=True)
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert lab.delivered_cause(call_id) is None  # nothing about the caller reached the daemon
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.ended_at is not None and call.hangup_cause is None
    assert f"channel {call_id} vanished" in lab.timeline(call_id)
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["bob"].hangup_cause == lab.final_cause(f"{call_id}-2") == 16
    assert not [
        line for line in logs if line["event"] == "ending without confirmation of every hangup"
    ]
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def wait_ringing(lab: CallLab, call_id: str) -> None:
    await lab.wait_for(
        lambda: (
            call_id in lab.daemon.calls
            and lab.daemon.calls[call_id].legs[0].state in ("dialing", "ringing")
        ),
        what="ringing",
    )
    await lab.store.flush()


async def test_restart_adopts_a_ringing_call(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # The daemon dies while everyone rings; alice answers after the restart. The caller
    # never noticed: the call is answered and bridged by the new run.
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=4))
    call_id = await lab.call(RINGALL, hangup_after=8)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.virtual_sleep(1)
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "alice"
    assert call.hangup_cause == lab.final_cause(call_id) == 16
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("alice", 16),
        ("bob", 26),
        ("dave", 26),
    ]
    assert len(lab.requests("POST", "/channels/create")) == 3  # nobody called twice
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_goes_on_with_a_hunt_whose_leg_ended_meanwhile(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # alice goes busy while no daemon runs; the new run finds her gone and calls bob.
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=2))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(HUNT, hangup_after=8)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.virtual_sleep(2.5)
    assert lab.sim.channel(f"{call_id}-1") is None  # alice said busy to nobody
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    legs = {leg.target: leg for leg in entry.legs}
    assert set(legs) == {"alice", "bob"}
    assert legs["alice"].ended_at is not None and legs["alice"].answered_at is None
    assert legs["bob"].hangup_cause == 16
    assert [r["params"]["endpoint"] for r in lab.requests("POST", "/channels/create")] == [
        "PJSIP/alice",
        "PJSIP/bob",
    ]
    assert_no_errors(logs)


async def test_restart_rings_at_once_the_ringall_legs_never_created(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Killed while the legs were being created, the creates never reached Asterisk and the
    # legs' rows were lost with the last CDR batch. A ringall rings them all after the
    # restart, together: bob answers at once, alice and dave are not rung one by one first.
    stuck = lab.sim.faults.stall_requests("POST", "/channels/create", times=3)
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL, hangup_after=6)
    await lab.wait_for(lambda: stuck.applied == 3, what="creates sent")
    assert lab.sim.channels == [lab.sim.channel(call_id)]  # none carried out
    await lab.kill_service()
    store = await lab.reopen_store()
    async with store.engine.begin() as conn:
        await conn.execute(delete(LegRow).where(LegRow.call_id == call_id))
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("alice", 26),
        ("bob", 16),
        ("dave", 26),
    ]
    assert_no_errors(logs)


async def test_restart_keeps_the_route_timeout_of_the_first_run(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # tight-hunt: 6 s a target, 10 s the route. Killed while alice rings, restarted 2 s
    # later: bob gets what is left of the 10 s counted from the call's start, not a new 10 s.
    call_id = await lab.call(TIGHT_HUNT)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.virtual_sleep(2)
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.NO_ANSWER, lab.timeline(call_id)
    assert abs(seconds(call.started_at, call.ended_at) - 10) < SLACK, lab.timeline(call_id)
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [("alice", 19), ("bob", 19)]
    assert_no_errors(logs)


async def test_restart_with_asterisk_clock_ahead_keeps_the_route_timeout(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # tight-hunt (6 s a target, 10 s the route), its CDR start 30 s ahead of our clock (as
    # Asterisk's event timestamps are when its clock is ahead): the route left after the
    # restart is at most 10 s, not 40, so dave's turn never comes.
    call_id = await lab.call(TIGHT_HUNT)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    store = await lab.reopen_store()
    async with store.engine.begin() as conn:
        await conn.execute(
            update(CallRow)
            .where(CallRow.call_id == call_id)
            .values(started_at=lab.clock.now() + timedelta(seconds=30))
        )
    await lab.start_service()
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.NO_ANSWER, lab.timeline(call_id)
    assert [leg.target for leg in entry.legs] == ["alice", "bob"], lab.timeline(call_id)
    assert_no_errors(logs)


async def test_restart_after_the_route_timeout_gives_up_at_once(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The 5 s route ran out while the daemon was down (its legs rang out, cause 19): the
    # new run ends the call with the route's reason as soon as it finds it.
    call_id = await lab.call(SHORT)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.virtual_sleep(6)
    restart_at = lab.clock.now()
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.NO_ANSWER, lab.timeline(call_id)
    assert call.answered_at is None
    assert call.hangup_cause == lab.final_cause(call_id) == 19
    assert call.ended_at is not None and call.ended_at >= restart_at
    assert [leg.ended_at is not None and leg.answered_at is None for leg in entry.legs] == [
        True,
        True,
    ]
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_with_another_route_closes_a_ringing_call(
    logs: list[dict[str, Any]], lab: CallLab, tmp_path: Path
) -> None:
    # The admin changed the number's route before the restart: the legs rung may no
    # longer be the route's, so the call is hung up, its CDR closed when that happens.
    call_id = await lab.call(RINGALL)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    lab.config = write_config(
        tmp_path / "v2", routing=ROUTING_YAML.replace("- name: ringall\n", "- name: front-desk\n")
    )
    await lab.virtual_sleep(3)
    restart_at = lab.clock.now()
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.FAILED
    assert call.route == "ringall"  # the route it rang under
    assert lab.final_cause(call_id) == 16
    assert call.ended_at is not None and call.ended_at >= restart_at  # not when last seen
    assert call.duration is not None and call.duration >= 3
    for leg in entry.legs:
        assert leg.ended_at is not None and leg.ended_at >= restart_at
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_with_another_strategy_closes_a_ringing_call(
    logs: list[dict[str, Any]], lab: CallLab, tmp_path: Path
) -> None:
    # Same route name, but the hunt became a ringall: the call is not driven by a plan it
    # did not start with (its CDR says hunt), it is closed like a changed route.
    call_id = await lab.call(HUNT)
    await wait_ringing(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    hunt = "- name: hunt\n        numbers: [01 70 00 00 02]\n        strategy: hunt\n"
    assert hunt in ROUTING_YAML
    lab.config = write_config(
        tmp_path / "v2",
        routing=ROUTING_YAML.replace(hunt, hunt.replace("strategy: hunt", "strategy: ringall")),
    )
    await lab.start_service()
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.FAILED, lab.timeline(call_id)
    assert entry.call.strategy == "hunt"
    assert lab.final_cause(call_id) == 16
    assert [r["params"]["endpoint"] for r in lab.requests("POST", "/channels/create")] == [
        "PJSIP/alice"
    ]
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_takes_a_ringing_caller_whose_cdr_was_never_written(
    logs: list[dict[str, Any]], lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No open row, so recovery knows nothing; the sweep of the app's channels finds the
    # caller still ringing and its three legs: the legs are hung up, the call is routed
    # again from the caller's channel (its start: when Asterisk created it) and answered.
    lose_every_cdr_write(lab, monkeypatch)
    call_id = await lab.call(RINGALL)
    await wait_ringing(lab, call_id)
    caller = lab.sim.channel(call_id)
    assert caller is not None
    created = caller.creationtime
    await lab.kill_service()
    await lab.reopen_store()
    assert await lab.store.open_calls() == []
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    await lab.start_service()
    await wait_bridged(lab, call_id)
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob" and call.hangup_cause == 16
    assert abs(seconds(created, call.started_at)) < 0.01
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("alice", 26),
        ("bob", 16),
        ("dave", 26),
    ]
    # The first run's legs were hung up by the sweep before the new ones took their ids.
    assert [e["cause"] for e in lab.events("ChannelDestroyed", f"{call_id}-1")] == [16, 26]
    assert len(lab.requests("POST", "/channels/create")) == 6
    assert_no_errors(logs)


async def test_restart_sweep_leaves_a_call_whose_stasis_start_is_in_flight(
    logs: list[dict[str, Any]], lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new call enters Stasis as the sweep lists the app's channels; its StasisStart
    # reaches pbxd only after that answer. It is this run's call, not a stranded one.
    await lab.kill_service()
    await lab.reopen_store()
    holds: list[EventHold] = []
    new_call: list[str] = []

    async def a_call_arrives() -> None:
        holds.append(lab.sim.faults.hold_events())
        new_call.append(await lab.call(RINGALL, hangup_after=8))

    lab.sim.faults.on_request(
        "GET",
        "/applications/pbxd",
        before=a_call_arrives,
        after=lambda: holds[0].release(after=0.01),
    )
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    await lab.start_service()
    [call_id] = new_call
    listed = lab.requests("GET", "/applications/pbxd")
    assert call_id in listed[-1]["body"]["channel_ids"]  # the restarted run's listing
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert entry.call.answered_by == "alice"
    assert not [line for line in logs if str(line["event"]).startswith("stranded")]
    assert len(lab.requests("POST", "/channels/create")) == 3
    assert_no_errors(logs)


async def test_restart_adopts_a_bridged_call_whose_cdr_was_never_written(
    logs: list[dict[str, Any]], lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bridged with bob, but nothing written (issue 8: a crash before the batch, or a
    # database outage at a stop). Asterisk's bridge, its channels and the Stasis
    # arguments of bob's leg (`pbxd-leg,<call id>`) say whose call it is: it is adopted,
    # never hung up, and its CDR is written from what Asterisk knows.
    lose_every_cdr_write(lab, monkeypatch)
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted
    assert bridged(lab, call_id)  # the conversation goes on
    assert lab.requests("POST", f"/channels/{call_id}/continue") == []
    await lab.virtual_sleep(1)
    hangup_at = lab.clock.now()
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob" and call.hangup_cause == 16
    assert call.route == "ringall" and call.did == RINGALL
    assert call.ended_at is not None and abs(seconds(hangup_at, call.ended_at)) < SLACK
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [("bob", 16)]
    assert lab.final_cause(f"{call_id}-2") == 16
    assert await lab.store.open_calls() == []
    assert not [line for line in logs if line.get("log_level") in ("error", "critical")]


async def test_restart_sweep_leaves_an_adopted_call_alone(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # A call with its CDR is adopted (claimed), so the sweep does not touch it.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await wait_bridged(lab, call_id)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    assert lab.requests("GET", "/applications/pbxd")
    assert bridged(lab, call_id)
    assert not [line for line in logs if str(line["event"]).startswith("stranded")]
    lab.sim.hangup(call_id)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "bob"
    assert_no_errors(logs)


# ---------------------------------------------------------------------- races


async def test_caller_hangs_up_at_the_moment_of_answer(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # As bob's answer is sent to the daemon, the caller's BYE/CANCEL is processed: the
    # daemon's answer/bridge requests get 404; that is a race, not an error.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    lab.sim.faults.on_event(
        "ChannelStateChange",
        lambda: lab.sim.hangup(call_id),
        channel_id=f"{call_id}-2",
        where=lambda event: event["channel"]["state"] == "Up",
    )
    entry = await lab.finish(call_id)
    call = entry.call
    assert lab.final_cause(call_id) == 127  # CANCEL: never answered
    assert call.disposition is Disposition.ABANDONED
    assert call.answered_at is None and call.answered_by is None and call.billsec == 0
    assert call.hangup_cause == 127
    assert call.ended_at is not None
    assert all(leg.ended_at is not None for leg in entry.legs)
    answer = lab.requests("POST", f"/channels/{call_id}/answer")
    assert [r["status"] for r in answer] == [404]
    assert_no_errors(logs)


async def test_caller_hangs_up_between_create_and_the_legs_stasis_start(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The caller's CANCEL lands right after the legs were created, before any of them
    # entered Stasis: nothing is dialled, every leg is hung up, the call is abandoned.
    call_id = await lab.call(RINGALL)
    lab.sim.faults.on_request(
        "POST", "/channels/create", after=lambda: lab.sim.hangup(call_id), skip=2
    )
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ABANDONED, lab.timeline(call_id)
    assert call.hangup_cause == lab.final_cause(call_id) == 127  # CANCEL
    assert [r for r in lab.sim.rest_log if str(r["path"]).endswith("/dial")] == []
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("alice", 16),
        ("bob", 16),
        ("dave", 16),
    ]
    assert all(leg.ended_at is not None and leg.answered_at is None for leg in entry.legs)
    assert lab.daemon.calls == {}
    assert_no_errors(logs)


async def test_hangup_of_a_leg_already_gone_is_quiet(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # alice answers and bob goes busy at the same virtual instant: the daemon's hangup of bob
    # (cause 26) may meet a channel already destroyed (404).
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    lab.sim.script("PJSIP/bob", PeerScript(busy_after=1))
    lab.sim.script("PJSIP/dave", PeerScript(answer_after=1))  # a second answer, too late
    call_id = await lab.call(RINGALL, hangup_after=4)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert entry.call.answered_by in ("alice", "dave")
    causes = {leg.target: leg.hangup_cause for leg in entry.legs}
    # bob's busy and alice's answer race: either bob was busy first (17), or the daemon hung
    # him up as answered elsewhere (26) and his busy met a channel already gone.
    assert causes["bob"] in (17, 26)
    assert sorted(c or 0 for t, c in causes.items() if t != "bob") == [16, 26]
    assert_no_errors(logs)


# ------------------------------------------------------------------ capacity


async def test_burst_of_concurrent_calls(logs: list[dict[str, Any]], make_lab: LabFactory) -> None:
    # 25 calls at once (75 legs), all arriving at the same virtual instant.
    lab = await make_lab()
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    count = 25
    call_ids = await asyncio.gather(
        *(lab.call(RINGALL, f"+336120000{i:02d}", hangup_after=8) for i in range(count))
    )
    assert len(set(call_ids)) == count
    await lab.wait_for(lambda: len(lab.sim.bridges) == count, what="every call bridged")
    await lab.settle(20)
    lab.assert_nothing_leaked()
    # Every bridge went back to the pool, for the calls to come.
    assert len(lab.daemon.bridges.idle) == count
    log = await lab.store.call_log(RINGALL)
    assert sorted(e.call.call_id for e in log) == sorted(call_ids)
    for entry in log:
        assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(entry.call.call_id)
        assert entry.call.answered_by == "bob"
        assert entry.call.ended_at is not None
        assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
            ("alice", 26),
            ("bob", 16),
            ("dave", 26),
        ]
    assert {e.call.caller_number for e in log} == {f"+336120000{i:02d}" for i in range(count)}
    assert lab.daemon.calls == {}
    assert_no_errors(logs)


async def test_trunk_max_outbound_legs(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # Three mobiles on carrier-fr, which allows 2 outbound legs: the third is never created.
    call_id = await lab.call(MOBILES, hangup_after=2)
    await lab.wait_for(lambda: len(lab.sim.channels) == 3, what="caller + 2 legs")
    await lab.virtual_sleep(0.5)
    assert lab.daemon.trunk_legs("carrier-fr") == 2
    creates = lab.requests("POST", "/channels/create")
    assert [r["params"]["endpoint"] for r in creates] == [
        f"PJSIP/{MOBILE[1]}@trunk-out",
        f"PJSIP/{MOBILE[2]}@trunk-out",
    ]
    # A second call meanwhile gets no leg on the trunk at all.
    second = await lab.call(MOBILES, "+33612000002")
    entry = await lab.finish(call_id)
    other = await lab.store.get_call(second)
    assert other is not None
    assert len(lab.requests("POST", "/channels/create")) == 2
    assert entry.call.disposition is Disposition.ABANDONED
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["m3"].hangup_cause is None and legs["m3"].answered_at is None
    assert other.call.disposition is Disposition.FAILED
    assert lab.final_cause(second) == 34
    assert lab.daemon.trunk_legs("carrier-fr") == 0  # every slot given back
    refused = [line for line in logs if line["event"] == "trunk at capacity: leg not placed"]
    assert [(line["trunk"], line["target"]) for line in refused] == [
        ("carrier-fr", "m3"),
        ("carrier-fr", "m1"),
        ("carrier-fr", "m2"),
        ("carrier-fr", "m3"),
    ]
    assert_no_errors(logs)


async def test_trunk_slots_are_given_back(lab: CallLab) -> None:
    # Each call takes both slots (m3 is refused), and gives them back when m1 and m2 end.
    lab.sim.script(MOBILE[1], PeerScript(busy_after=0.5))
    lab.sim.script(MOBILE[2], PeerScript(busy_after=1))
    for attempt in range(1, 4):
        call_id = await lab.call(MOBILES)
        entry = await lab.finish(call_id)
        # Busy, busy, and one not placed: nobody was free, so the caller hears busy.
        assert entry.call.disposition is Disposition.BUSY, lab.timeline(call_id)
        assert lab.final_cause(call_id) == 17
        assert {leg.target: leg.hangup_cause for leg in entry.legs} == {
            "m1": 17,
            "m2": 17,
            "m3": None,
        }
        assert lab.daemon.trunk_legs("carrier-fr") == 0
        assert len(lab.requests("POST", "/channels/create")) == 2 * attempt


# ------------------------------------------------------------------- garbage


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "application": "pbxd",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        **fields,
    }


async def test_garbage_events_do_not_kill_the_daemon(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    daemon = lab.daemon
    for raw, error in [
        ("not json at all", ValueError("Expecting value")),
        ("[1, 2, 3]", ValueError("expected a JSON object")),
        ({"type": 42}, ValueError("missing or non-string 'type' field")),
    ]:
        daemon.on_bad_event(raw, error)
    weird = [
        _event(type="SomethingNew", whatever=[1, 2]),
        _event(type="ChannelDestroyed", channel=_channel("nobody"), cause=16, cause_txt="x"),
        _event(type="StasisEnd", channel=_channel("nobody")),
        _event(type="StasisStart", channel=_channel("ghost-1"), args=["pbxd-leg", "ghost"]),
        _event(type="StasisStart", channel=_channel("other-app"), args=[], application="other"),
        _event(
            type="Dial",
            dialstatus="ANSWER",
            dialstring="x",
            forward="",
            peer=_channel("nobody-2"),
        ),
    ]
    for data in weird:
        daemon.on_event(parse_event(data))
    assert daemon.bad_events == 3
    await lab.settle()

    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL, hangup_after=6)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert entry.call.answered_by == "alice"
    errors = [line for line in logs if line.get("log_level") == "error"]
    assert errors == []


def _channel(channel_id: str) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": "PJSIP/trunk-in-00000099",
        "state": "Ring",
        "protocol_id": "",
        "caller": {"name": "", "number": "junk\x00"},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {
            "context": "from-trunk",
            "exten": "+33170000001",
            "priority": 1,
            "app_name": "Stasis",
            "app_data": "pbxd",
        },
        "creationtime": "2026-01-01T00:00:00.000+0000",
        "language": "en",
    }


# --------------------------------------------------------------- startup race


async def test_startup_race_no_resync_of_calls_started_after_connecting(
    make_lab: LabFactory,
) -> None:
    # Recovery on the first connection takes a moment (a slow database); a call placed
    # meanwhile lost no event and must not be "resynced" as if it had.
    lab = await make_lab(start=False)
    real_open_calls = lab.cdr_view.open_calls
    released = asyncio.Event()

    async def slow_open_calls(server: str | None = None) -> list[Any]:
        await released.wait()  # virtual time goes on meanwhile: patched above the hold
        return await real_open_calls(server)

    lab.cdr_view.open_calls = slow_open_calls  # type: ignore[method-assign]
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    await lab.start_service(wait_recovery=False)
    call_id = await lab.call(RINGALL, hangup_after=6)
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call started")
    released.set()
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert lab.requests("GET", f"/channels/{call_id}") == []


async def test_startup_race_a_call_that_ended_during_recovery_is_left_alone(
    logs: list[dict[str, Any]], make_lab: LabFactory
) -> None:
    # Recovery read the open calls while one of this run's calls was still up; by the time
    # it gets to that row the call has ended (its final snapshot maybe not committed).
    # Recovery must not "close" it again with a guessed end over the real CDR.
    lab = await make_lab(start=False)
    real_open_calls = lab.store.open_calls
    released = asyncio.Event()
    stale: list[Any] = []

    async def slow_open_calls(server: str | None = None) -> list[Any]:
        await released.wait()  # virtual time goes on meanwhile: patched above the hold
        return stale

    lab.cdr_view.open_calls = slow_open_calls  # type: ignore[method-assign]
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    await lab.start_service(wait_recovery=False)
    # Up long enough (8 virtual s) to be read as open even on a loaded machine.
    call_id = await lab.call(RINGALL, hangup_after=8)
    await wait_bridged(lab, call_id)
    await lab.store.flush()
    stale.extend(await real_open_calls())
    assert [c.call_id for c in stale] == [call_id]
    await lab.wait_for(lambda: call_id not in lab.daemon.calls, what="call ended")
    await lab.store.flush()
    ended = await lab.store.get_call(call_id)
    assert ended is not None and ended.call.ended_at is not None

    released.set()
    await lab.clock.drive(lab.daemon.recovered.wait())
    entry = await lab.finish(call_id)
    assert entry.call == ended.call  # untouched by recovery
    assert entry.call.hangup_cause == 16  # the caller's BYE
    assert entry.call.disposition is Disposition.ANSWERED
    assert_no_errors(logs)
