"""Whole calls through the daemon and the simulator: ringall, hunt, no answer, abandon,
rejections, offline targets, callee hanging up first. Every CDR is read back from the store
(SQLite and PostgreSQL) and the simulator must end with no channel and no bridge left."""

from __future__ import annotations

from typing import Any

import pytest

from pbxd.cdr.records import CallLogEntry, Disposition, LegRecord
from pbxd.sim import PeerScript

from .conftest import (
    ALL_OFFLINE,
    CALLER,
    HUNT,
    MOBILE,
    OFFLINE_FIRST,
    RESERVED,
    RINGALL,
    SHORT,
    TIGHT_HUNT,
    UNKNOWN,
    CallLab,
    assert_no_errors,
    seconds,
)

# Virtual seconds a moment may be off: the simulator's Stasis entry (0.2 s at speed 20) plus
# the REST round trips and socket latency of the daemon's reaction, scaled by the speed.
SLACK = 1.5


def legs_by_target(entry: CallLogEntry) -> dict[str, LegRecord]:
    return {leg.target: leg for leg in entry.legs}


def causes(entry: CallLogEntry) -> list[tuple[str, int | None]]:
    return [(leg.target, leg.hangup_cause) for leg in entry.legs]


def assert_times_ordered(entry: CallLogEntry) -> None:
    call = entry.call
    assert call.ended_at is not None
    assert call.started_at <= call.ended_at
    if call.answered_at is not None:
        assert call.started_at <= call.answered_at <= call.ended_at
    for leg in entry.legs:
        assert leg.ended_at is not None, f"leg {leg.target} left open"
        assert call.started_at <= leg.started_at <= leg.ended_at
        if leg.answered_at is not None:
            assert leg.started_at <= leg.answered_at <= leg.ended_at


def about(value: int | None, expected: int) -> bool:
    """A whole number of seconds, off by one at most (rounding of two latencies)."""
    return value is not None and abs(value - expected) <= 1


def near(value: float, expected: float, slack: float = SLACK) -> bool:
    return expected - 0.05 <= value <= expected + slack


# ------------------------------------------------------------------------ answered


async def test_ringall_answered_by_the_second_target(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # alice rings and never answers; bob answers after 2 s; dave rings; caller leaves at 6 s.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=2))
    call_id = await lab.call(RINGALL, hangup_after=6)
    await lab.wait_for(lambda: any(len(b.channels) == 2 for b in lab.sim.bridges), what="bridge")
    [bridge] = lab.sim.bridges
    assert sorted(bridge.channels) == sorted([call_id, f"{call_id}-2"])
    assert {c.id for c in lab.sim.channels} == {call_id, f"{call_id}-2"}  # others gone (26)

    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "bob"
    assert (call.did, call.caller_number, call.route, call.strategy, call.trunk) == (
        RINGALL,
        CALLER,
        "ringall",
        "ringall",
        "carrier-fr",
    )
    assert call.hangup_cause == 16  # the caller's BYE
    assert lab.final_cause(call_id) == 16
    assert causes(entry) == [("alice", 26), ("bob", 16), ("dave", 26)]
    assert [lab.final_cause(f"{call_id}-{i}") for i in (1, 2, 3)] == [26, 16, 26]
    legs = legs_by_target(entry)
    assert legs["bob"].answered_at is not None
    assert legs["alice"].answered_at is None and legs["dave"].answered_at is None
    assert_times_ordered(entry)
    assert near(seconds(call.started_at, call.answered_at), 2.0), lab.timeline(call_id)
    assert near(seconds(call.started_at, call.ended_at), 6.0)
    assert about(call.duration, 6)
    assert about(call.billsec, 3)
    # The losers were hung up the moment bob answered.
    for loser in ("alice", "dave"):
        assert abs(seconds(legs[loser].ended_at, legs["bob"].answered_at)) < SLACK
    assert_no_errors(logs)


async def test_hunt_first_busy_second_answers(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=1))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(HUNT, hangup_after=8)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "bob"
    # dave's turn never came: no leg, no channel ever created for him.
    assert causes(entry) == [("alice", 17), ("bob", 16)]
    assert lab.final_cause(f"{call_id}-1") == 17
    assert [r["params"]["endpoint"] for r in lab.requests("POST", "/channels/create")] == [
        "PJSIP/alice",
        "PJSIP/bob",
    ]
    legs = legs_by_target(entry)
    # bob is only called once alice said busy.
    assert legs["bob"].started_at >= legs["alice"].ended_at  # type: ignore[operator]
    assert near(seconds(call.started_at, call.answered_at), 2.0, 2 * SLACK)
    assert about(call.duration, 8)
    assert lab.final_cause(call_id) == 16
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_hunt_time_left_by_a_busy_target_goes_to_the_next(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # 6 + 6 + 6 s in a 10 s route: on paper dave never rings. alice is busy at 1 s, so bob
    # rings his full 6 s and dave gets what is left of the route, and answers.
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=1))
    lab.sim.script("PJSIP/dave", PeerScript(answer_after=1))
    call_id = await lab.call(TIGHT_HUNT, hangup_after=11)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "dave"
    assert causes(entry) == [("alice", 17), ("bob", 19), ("dave", 16)]
    dials = {
        leg: [
            r["params"]["timeout"] for r in lab.requests("POST", f"/channels/{call_id}-{leg}/dial")
        ]
        for leg in (2, 3)
    }
    assert dials[2] == ["6"]  # bob's own ring time, not the 4 s left on paper
    assert dials[3] in (["2"], ["3"])  # dave: what the route has left after ~7 s
    assert "caller" not in lab.requests("POST", f"/channels/{call_id}-2/dial")[0]["params"]
    legs = legs_by_target(entry)
    assert near(seconds(legs["bob"].started_at, legs["bob"].ended_at), 6.0)
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_hunt_route_timeout_cuts_the_last_turn(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Nobody answers: bob rings 6 s after alice's busy, dave the rest; the route gives up
    # at 10 s with its own reason.
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=1))
    call_id = await lab.call(TIGHT_HUNT)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.NO_ANSWER
    assert [t for t, _ in causes(entry)] == ["alice", "bob", "dave"]
    assert causes(entry)[:2] == [("alice", 17), ("bob", 19)]
    assert lab.final_cause(call_id) == 19  # the route's no-answer reason
    assert near(seconds(call.started_at, call.ended_at), 10.0)
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_callee_hangs_up_first(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=3))
    call_id = await lab.call(RINGALL)
    await lab.wait_for(lambda: bool(lab.sim.bridges), what="bridge")
    bridge_id = lab.sim.bridges[0].id
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "alice"
    # The daemon hung the caller up normally once alice left; the bridge, empty, waits idle
    # for the next call.
    assert lab.final_cause(call_id) == 16
    assert call.hangup_cause == 16
    assert causes(entry) == [("alice", 16), ("bob", 26), ("dave", 26)]
    bridge = lab.sim.bridge(bridge_id)
    assert bridge is not None and bridge.channels == [] and lab.daemon.bridges.idle == [bridge_id]
    assert lab.requests("DELETE", f"/bridges/{bridge_id}") == []
    assert about(call.billsec, 3)
    legs = legs_by_target(entry)
    assert legs["alice"].ended_at is not None and call.ended_at is not None
    assert abs(seconds(legs["alice"].ended_at, call.ended_at)) < SLACK
    assert_times_ordered(entry)
    assert_no_errors(logs)


# ----------------------------------------------------------------------- no answer


async def test_hunt_nobody_answers_every_ring_time_over(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Each target rings 4 s (Asterisk's dial timeout ends it, cause 19), one after the other;
    # the route (20 s) never times out; its no-answer reason is `busy`.
    call_id = await lab.call(HUNT)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.NO_ANSWER
    assert call.answered_at is None and call.answered_by is None
    assert causes(entry) == [("alice", 19), ("bob", 19), ("dave", 19)]
    assert lab.final_cause(call_id) == 17  # hung up with the route's reason: busy
    assert call.hangup_cause == 17
    assert call.billsec == 0
    ends = [leg.ended_at for leg in entry.legs]
    starts = [leg.started_at for leg in entry.legs]
    for previous_end, start in zip(ends, starts[1:], strict=False):
        assert previous_end is not None and start >= previous_end
    for leg in entry.legs:
        assert near(seconds(leg.started_at, leg.ended_at), 4.0)
    assert 12 <= (call.duration or 0) <= 15
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_route_timeout_before_ring_times(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # alice and bob would ring 20 s, but the route gives up at 5 s: no answer (cause 19).
    call_id = await lab.call(SHORT)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.NO_ANSWER
    assert lab.final_cause(call_id) == 19
    assert call.hangup_cause == 19
    assert causes(entry) == [("alice", 19), ("bob", 19)]
    assert near(seconds(call.started_at, call.ended_at), 5.0)
    assert about(call.duration, 5)
    assert call.billsec == 0
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_example_support_line_nobody_answers_caller_gets_busy(
    logs: list[dict[str, Any]], make_lab: Any
) -> None:
    from .conftest import example_config

    lab: CallLab = await make_lab(example_config())
    call_id = await lab.call("+33972100001")
    entry = await lab.finish(call_id)
    call = entry.call
    # bob 15 s, carol offline (no channel), the on-call mobile 20 s; then `busy`.
    assert call.disposition is Disposition.NO_ANSWER
    assert causes(entry) == [("bob", 19), ("carol", None), ("support-mobile", 19)]
    assert lab.final_cause(call_id) == 17
    legs = legs_by_target(entry)
    assert near(seconds(legs["bob"].started_at, legs["bob"].ended_at), 15.0, 2 * SLACK)
    assert near(
        seconds(legs["support-mobile"].started_at, legs["support-mobile"].ended_at),
        20.0,
        2 * SLACK,
    )
    assert 35 <= (call.duration or 0) <= 38
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_caller_id_policy_number_presents_the_did(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The London number forwards to a French mobile showing the London number.
    call_id = await lab.call("02079460123", "07700900123", "Tom", trunk="trunk-uk", hangup_after=2)
    await lab.wait_for(lambda: lab.sim.channel(f"{call_id}-1") is not None, what="leg created")
    leg_channel = lab.sim.channel(f"{call_id}-1")
    assert leg_channel is not None
    assert leg_channel.caller.number == "+442079460123"
    # chan_pjsip sends the connected line in From: set to the DID at create (`i`: no update
    # frame), and never overwritten by a dial `caller` with the real caller's number.
    assert lab.created_variables[f"{call_id}-1"] == {
        "CALLERID(num)": "+442079460123",
        "CONNECTEDLINE(num,i)": "+442079460123",
        "CALLERID(name)": "Tom",
        "CONNECTEDLINE(name,i)": "Tom",
    }
    await lab.wait_for(lambda: bool(lab.requests("POST", f"/channels/{call_id}-1/dial")))
    assert "caller" not in lab.requests("POST", f"/channels/{call_id}-1/dial")[0]["params"]
    assert leg_channel.connected.number != "07700900123"
    entry = await lab.finish(call_id)
    assert entry.call.did == "+442079460123"
    assert entry.call.caller_number == "+447700900123"  # the CDR keeps the real caller
    assert entry.call.trunk == "carrier-uk"
    assert [(leg.target, leg.destination) for leg in entry.legs] == [
        ("m1", "PJSIP/+33612345671@trunk-out")
    ]
    assert entry.call.disposition is Disposition.ABANDONED
    assert_no_errors(logs)


async def test_caller_id_policy_caller_presents_the_caller(lab: CallLab) -> None:
    call_id = await lab.call("0170000001", "0612000001", "Jean", hangup_after=1)
    await lab.wait_for(lambda: lab.sim.channel(f"{call_id}-3") is not None, what="legs created")
    for index in (1, 2, 3):
        chan = lab.sim.channel(f"{call_id}-{index}")
        assert chan is not None
        assert (chan.caller.number, chan.caller.name) == (CALLER, "Jean")
    entry = await lab.finish(call_id)
    assert entry.call.caller_number == CALLER
    assert entry.call.did == RINGALL


# ------------------------------------------------------------------------- abandon


async def test_caller_hangs_up_while_ringing(logs: list[dict[str, Any]], lab: CallLab) -> None:
    call_id = await lab.call(RINGALL, hangup_after=3)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ABANDONED
    assert lab.final_cause(call_id) == 127  # CANCEL
    assert call.hangup_cause == 127
    assert call.answered_at is None and call.billsec == 0
    assert near(seconds(call.started_at, call.ended_at), 3.0)
    assert causes(entry) == [("alice", 16), ("bob", 16), ("dave", 16)]
    for leg in entry.legs:
        assert leg.answered_at is None
        assert abs(seconds(leg.ended_at, call.ended_at)) < SLACK
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_caller_hangs_up_during_a_hunt_gap(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # alice busy at 1 s; the caller leaves while bob rings.
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=1))
    call_id = await lab.call(HUNT, hangup_after=4)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ABANDONED
    assert causes(entry) == [("alice", 17), ("bob", 16)]
    assert lab.final_cause(call_id) == 127
    assert len(lab.requests("POST", "/channels/create")) == 2  # dave never called
    assert_no_errors(logs)


# ------------------------------------------------------------------------ rejected


@pytest.mark.parametrize(("did", "written"), [(UNKNOWN, UNKNOWN), (RESERVED, RESERVED)])
async def test_unallocated_numbers_are_rejected(
    logs: list[dict[str, Any]], lab: CallLab, did: str, written: str
) -> None:
    call_id = await lab.call(did)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.REJECTED
    assert call.did == written
    assert entry.legs == []
    assert lab.requests("POST", "/channels/create") == []
    assert lab.requests("POST", f"/channels/{call_id}/answer") == []
    [hangup] = lab.requests("DELETE", f"/channels/{call_id}")
    assert hangup["params"] == {"reason": "unallocated"}
    assert lab.final_cause(call_id) == 1
    # As on Asterisk 22, no ChannelDestroyed follows the StasisEnd of a caller that
    # originated no leg: the call ends on its StasisEnd, with the cause our hangup asked for.
    assert lab.delivered_cause(call_id) is None
    assert lab.events("StasisEnd", call_id)
    assert call.hangup_cause == 1
    assert call.ended_at is not None and call.answered_at is None
    assert call.duration == 0 and call.billsec == 0
    assert call.route is None
    assert not [line for line in logs if line.get("log_level") == "error"]
    assert not [line for line in logs if "without confirmation" in str(line.get("event"))]


async def test_rejected_national_form_is_logged_in_e164(lab: CallLab) -> None:
    call_id = await lab.call("0199999999")
    entry = await lab.finish(call_id)
    assert entry.call.did == UNKNOWN
    assert [e.call.call_id for e in await lab.store.call_log(UNKNOWN)] == [call_id]


# ------------------------------------------------------------------------- offline


async def test_offline_target_then_next_answers(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=2))
    call_id = await lab.call(OFFLINE_FIRST)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "bob"
    # carol's softphone is not registered: skipped without asking Asterisk (no 500).
    [bob_create] = lab.requests("POST", "/channels/create")
    assert bob_create["status"] == 200 and bob_create["params"]["endpoint"] == "PJSIP/bob"
    legs = legs_by_target(entry)
    assert legs["carol"].hangup_cause is None  # never had a channel
    assert legs["carol"].answered_at is None and legs["carol"].ended_at is not None
    assert legs["bob"].hangup_cause == 16
    # No ring time lost on carol: bob is called at once.
    assert near(seconds(call.started_at, legs["bob"].started_at), 0.0)
    assert about(call.billsec, 2)
    assert lab.final_cause(call_id) == 16
    assert_times_ordered(entry)
    assert_no_errors(logs)


async def test_every_target_offline_fails(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script(MOBILE[4], PeerScript(online=False))
    call_id = await lab.call(ALL_OFFLINE)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.FAILED
    assert causes(entry) == [("carol", None), ("m4", None)]
    assert lab.final_cause(call_id) == 34  # congestion: the carrier may try elsewhere
    assert call.hangup_cause == 34
    # carol is skipped as offline; the mobile's carrier leg fails on Asterisk.
    assert [r["status"] for r in lab.requests("POST", "/channels/create")] == [500]
    assert call.duration is not None and call.duration <= 1
    assert_times_ordered(entry)
    assert_no_errors(logs)


# ------------------------------------------------------------------------ describe


async def test_describe_prints_each_call_and_its_legs(lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=1))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=2))
    assert lab.daemon.describe() == "no call in progress"
    call_id = await lab.call(HUNT, hangup_after=6)
    await lab.wait_for(
        lambda: (
            call_id in lab.daemon.calls and lab.daemon.calls[call_id].legs[1].state == "ringing"
        ),
        what="bob ringing",
    )
    ringing = lab.daemon.describe().splitlines()
    assert ringing == [
        f"call {call_id} to {HUNT} from {CALLER}: ringing, route hunt (hunt)",
        "  leg alice [PJSIP/alice]: ended cause 17",
        "  leg bob [PJSIP/bob]: ringing",
        "  leg dave [PJSIP/dave]: waiting",
    ]
    await lab.wait_for(lambda: lab.daemon.calls[call_id].state == "bridged", what="bridged")
    bridged = str(lab.daemon.calls[call_id]).splitlines()
    assert bridged[0].endswith(": bridged, route hunt (hunt)")
    assert bridged[2] == "  leg bob [PJSIP/bob]: answered"
    assert bridged[-1] == f"  bridge {lab.daemon.calls[call_id].bridge_id}"
    assert bridged[-1].startswith("  bridge pbxd-bridge-")
    await lab.finish(call_id)
    assert lab.daemon.describe() == "no call in progress"
