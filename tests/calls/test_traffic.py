"""What one call costs Asterisk: the requests pbxd sends and the events it is sent.

Counts are deterministic (the simulator and the daemon share a virtual clock), so issue 12's
targets for a two-leg ringall call are checked here, in the steady state (a call before it left
its bridge idle, as every call but the first finds one); timings are bench/calls.py's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable

import pytest

from pbxd.cdr.records import CallLogEntry, Disposition
from pbxd.sim import PeerScript

from .conftest import SHORT, CallLab

MAX_EVENTS = 20
MAX_REQUESTS = 8


def traffic(lab: CallLab, since: tuple[int, int]) -> tuple[Counter[str], Counter[str]]:
    """Events delivered and requests received since `since` (lengths of the two logs)."""
    events = Counter(str(e["data"]["type"]) for e in lab.sim.event_log[since[0] :])
    requests: Counter[str] = Counter()
    for r in lab.sim.rest_log[since[1] :]:
        parts = str(r["path"]).split("/")
        shape = "/".join(p if i % 2 or i == 0 else "{id}" for i, p in enumerate(parts))
        requests[f"{r['method']} {shape}"] += 1
    return events, requests


async def what_a_call_costs(
    lab: CallLab, placed: Awaitable[str]
) -> tuple[CallLogEntry, Counter[str], Counter[str], list[str]]:
    """Place a call (`placed` places it: the simulator's call id), let it end: its CDR, the
    events and requests since it was placed, and the kinds of its journal's rows."""
    since = len(lab.sim.event_log), len(lab.sim.rest_log)
    call_id = await placed
    entry = await lab.finish(call_id)
    events, requests = traffic(lab, since)
    rows = [e.kind for e in await lab.store.events_of(call_id)]
    return entry, events, requests, rows


async def two_leg_ringall(
    lab: CallLab, *, caller_leaves: bool, shipped_dialplan: bool = True
) -> tuple[int, int, str]:
    """One answered call to alice and bob (bob answers after 1 s; one side hangs up after 3 s),
    through the shipped dialplan unless told otherwise, after one such call that leaves its
    bridge idle: (events, requests, breakdown)."""
    await answered_call(lab, caller_leaves=caller_leaves, shipped_dialplan=shipped_dialplan)
    _, events, requests = await answered_call(
        lab, caller_leaves=caller_leaves, shipped_dialplan=shipped_dialplan
    )
    return sum(events.values()), sum(requests.values()), f"{events}\n{requests}"


async def answered_call(
    lab: CallLab, *, caller_leaves: bool, shipped_dialplan: bool
) -> tuple[str, Counter[str], Counter[str]]:
    """The two-leg ringall call of `two_leg_ringall`: its id, events and requests."""
    lab.sim.script(
        "PJSIP/bob", PeerScript(answer_after=1, hangup_after=None if caller_leaves else 3)
    )
    since = len(lab.sim.event_log), len(lab.sim.rest_log)
    call_id = await lab.call(
        SHORT, hangup_after=4 if caller_leaves else None, shipped_dialplan=shipped_dialplan
    )
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    events, requests = traffic(lab, since)
    return call_id, events, requests


@pytest.mark.parametrize("caller_leaves", [False, True], ids=["callee_hangs_up", "caller_hangs_up"])
async def test_events_per_two_leg_ringall_call(lab: CallLab, caller_leaves: bool) -> None:
    events, _, breakdown = await two_leg_ringall(lab, caller_leaves=caller_leaves)
    # 3 StasisStart, 3 StasisEnd, 3 ChannelDestroyed, 4 ChannelHangupRequest,
    # 4 ChannelStateChange (two legs Ringing, bob Up, caller Up); 51 without the filter.
    assert events == 17, breakdown
    assert events <= MAX_EVENTS


@pytest.mark.parametrize("caller_leaves", [False, True], ids=["callee_hangs_up", "caller_hangs_up"])
async def test_the_dialplans_ringing_saves_the_ring_request(
    lab: CallLab, caller_leaves: bool
) -> None:
    # Same call, through a plain Stasis(pbxd) and through the shipped dialplan (each finding
    # the bridge of the call before it idle).
    await answered_call(lab, caller_leaves=caller_leaves, shipped_dialplan=False)
    plain_id, _, plain = await answered_call(
        lab, caller_leaves=caller_leaves, shipped_dialplan=False
    )
    plain_cdr = (await lab.store.get_call(plain_id)).call
    shipped_id, _, shipped = await answered_call(
        lab, caller_leaves=caller_leaves, shipped_dialplan=True
    )
    shipped_cdr = (await lab.store.get_call(shipped_id)).call
    assert plain - shipped == Counter({"POST /channels/{id}/ring": 1}), f"{plain}\n{shipped}"
    assert shipped - plain == Counter()
    # The caller is sent the same SIP (180 once, then 200) and the CDRs read the same.
    for call_id in (plain_id, shipped_id):
        chan = lab.sim.channel_history(call_id)
        assert chan is not None and chan.sip_responses[:3] == [100, 180, 200], call_id
        assert chan.sip_responses.count(180) == 1
    for field in ("disposition", "answered_by", "duration", "billsec", "path", "hangup_cause"):
        assert getattr(plain_cdr, field) == getattr(shipped_cdr, field), field


@pytest.mark.parametrize("caller_leaves", [False, True], ids=["callee_hangs_up", "caller_hangs_up"])
async def test_requests_per_two_leg_ringall_call(lab: CallLab, caller_leaves: bool) -> None:
    _, requests, breakdown = await two_leg_ringall(lab, caller_leaves=caller_leaves)
    # 2 create, 2 dial, the loser's and the last hangup, answer, addChannel (11 before: the
    # ring is the dialplan's, the bridge the call before's).
    assert requests == 8, breakdown
    assert requests <= MAX_REQUESTS


async def test_calls_take_turns_in_one_bridge_and_the_first_creates_it(lab: CallLab) -> None:
    first, _, made = await answered_call(lab, caller_leaves=False, shipped_dialplan=True)
    second, _, reused = await answered_call(lab, caller_leaves=True, shipped_dialplan=True)
    assert made["POST /bridges"] == 1 and reused["POST /bridges"] == 0
    assert made["DELETE /bridges/{id}"] == reused["DELETE /bridges/{id}"] == 0
    added = [
        str(r["path"]).split("/")[2]
        for r in lab.sim.rest_log
        if str(r["path"]).endswith("/addChannel")
    ]
    assert len(added) == 2 and added[0] == added[1], added
    # Idle between calls, empty, and ours: named apart from any call.
    [bridge] = lab.sim.bridges
    assert bridge.id == added[0] and bridge.channels == [] and first not in bridge.id
    assert second not in bridge.id and lab.daemon.bridges.idle == [bridge.id]
    # Stopping the daemon destroys the idle bridges: nothing is left on Asterisk.
    await lab.kill_service()  # a clean stop of the service
    assert lab.sim.bridges == []


async def test_a_pooled_bridge_gone_behind_our_back_is_replaced(lab: CallLab) -> None:
    await answered_call(lab, caller_leaves=False, shipped_dialplan=True)
    [gone] = lab.daemon.bridges.idle
    bridge = lab.sim.bridge(gone)
    assert bridge is not None
    lab.sim.pbx.destroy_bridge(bridge)  # an admin's `bridge destroy`, say
    call_id, _, requests = await answered_call(lab, caller_leaves=False, shipped_dialplan=True)
    assert requests["POST /bridges/{id}/addChannel"] == 2  # 404 from the old one, then the new
    assert requests["POST /bridges"] == 1
    [bridge] = lab.sim.bridges
    assert bridge.id != gone and lab.daemon.bridges.idle == [bridge.id], lab.timeline(call_id)
