"""The daemon keeps its calls and their CDRs through what real life throws at it: the event
WebSocket dropping, the daemon being killed and restarted, 404/409 races, bursts of calls,
trunk capacity, and garbage on the event stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pbxd.ari import parse_event
from pbxd.cdr.records import Disposition
from pbxd.sim import PeerScript

from .conftest import (
    HUNT,
    MOBILE,
    MOBILES,
    RINGALL,
    CallLab,
    LabFactory,
    assert_no_errors,
    seconds,
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
    # Still bridged on Asterisk, nothing hung up by the resync.
    assert bridged(lab, call_id)
    assert lab.sim.bridge(bridge_id) is not None
    assert sorted(lab.sim.bridge(bridge_id).channels) == sorted(  # type: ignore[union-attr]
        [call_id, f"{call_id}-1"]
    )
    assert lab.daemon.calls[call_id].state == "bridged"
    assert lab.requests("GET", f"/channels/{call_id}"), "no resync after reconnection"

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
    assert entry.call.hangup_cause == 16
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


async def test_restart_closes_a_call_that_was_ringing(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await lab.call(RINGALL)
    await lab.wait_for(
        lambda: (
            call_id in lab.daemon.calls
            and all(leg.state == "ringing" for leg in lab.daemon.calls[call_id].legs)
        ),
        what="ringing",
    )
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    entry = await lab.finish(call_id)  # the caller and the legs are hung up, not stranded
    assert entry.call.ended_at is not None
    assert entry.call.answered_at is None
    assert entry.call.disposition is not Disposition.ANSWERED
    assert all(leg.ended_at is not None for leg in entry.legs)
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


# ---------------------------------------------------------------------- races


async def test_caller_hangs_up_at_the_moment_of_answer(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # As bob's answer is sent to the daemon, the caller's BYE/CANCEL is processed: the
    # daemon's answer/bridge requests get 404; that is a race, not an error.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    caller: list[str] = []
    forward = lab.sim.hub.on_delivered
    loop = asyncio.get_running_loop()

    def on_delivered(message: dict[str, Any]) -> None:
        if forward is not None:
            forward(message)
        chan = message.get("channel") or {}
        if (
            message["type"] == "ChannelStateChange"
            and chan.get("state") == "Up"
            and chan.get("id", "").endswith("-2")
        ):
            loop.call_soon(lab.sim.hangup, caller[0])

    lab.sim.hub.on_delivered = on_delivered
    caller.append(await lab.call(RINGALL))
    call_id = caller[0]
    entry = await lab.finish(call_id)
    call = entry.call
    assert lab.final_cause(call_id) == 127  # CANCEL: never answered
    assert call.disposition in (Disposition.ABANDONED, Disposition.ANSWERED)
    assert call.ended_at is not None
    assert all(leg.ended_at is not None for leg in entry.legs)
    answer = lab.requests("POST", f"/channels/{call_id}/answer")
    assert [r["status"] for r in answer] == [404]
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
    # 25 calls at once (75 legs): the daemon takes ~100 ms of real time to set them all up,
    # so this one runs at speed 10 to keep every answer well before the callers leave.
    lab = await make_lab(speed=10)
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    count = 25
    call_ids = await asyncio.gather(
        *(lab.call(RINGALL, f"+336120000{i:02d}", hangup_after=8) for i in range(count))
    )
    assert len(set(call_ids)) == count
    await lab.wait_for(lambda: len(lab.sim.bridges) == count, what="every call bridged")
    await lab.settle(20)
    assert lab.sim.channels == [] and lab.sim.bridges == []
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
    real_open_calls = lab.store.open_calls
    released = asyncio.Event()

    async def slow_open_calls() -> list[Any]:
        await released.wait()
        return await real_open_calls()

    lab.store.open_calls = slow_open_calls  # type: ignore[method-assign]
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    await lab.start_service(wait_recovery=False)
    call_id = await lab.call(RINGALL, hangup_after=6)
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call started")
    released.set()
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert lab.requests("GET", f"/channels/{call_id}") == []
