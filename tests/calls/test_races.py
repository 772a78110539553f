"""The caller leaves while a request on its channel is in flight: Asterisk answers 404 a few
ms before the caller's ChannelDestroyed (with the real cause) reaches the daemon."""

from __future__ import annotations

from typing import Any

from pbxd.cdr.records import Disposition
from pbxd.sim import PeerScript

from .conftest import ALL_OFFLINE, MOBILE, RINGALL, CallLab, assert_no_errors


async def call_cancelled_during_ring(lab: CallLab, did: str, *, lose_events: bool) -> str:
    """A call whose caller CANCELs as the daemon's `ring` reaches Asterisk (404), its events
    trailing that answer, or lost (`lose_events`)."""
    call_id = await lab.call(did)
    lab.hangup_as_requested(call_id, "POST", f"/channels/{call_id}/ring", lose_events=lose_events)
    return call_id


async def test_caller_cancelling_during_ring_keeps_its_cause(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # No leg can be created, so nothing else keeps the call open; Asterisk 22 sends no
    # ChannelDestroyed for a caller that originated no leg: the CANCEL's cause (127) comes
    # with its ChannelHangupRequest, which trails the ring's 404.
    lab.sim.script(MOBILE[4], PeerScript(online=False))
    call_id = await call_cancelled_during_ring(lab, ALL_OFFLINE, lose_events=False)
    entry = await lab.finish(call_id)
    call = entry.call
    assert [r["status"] for r in lab.requests("POST", f"/channels/{call_id}/ring")] == [404]
    assert lab.final_cause(call_id) == 127
    assert call.disposition is Disposition.ABANDONED, lab.timeline(call_id)
    assert call.hangup_cause == 127, lab.timeline(call_id)
    assert call.ended_at is not None
    assert "vanished" not in lab.timeline(call_id)
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_caller_cancelling_during_ring_with_its_events_lost_is_closed_after_the_grace(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Same race, but nothing about the caller ever reaches the daemon: the legs are hung up
    # at once (never dialled), and the call closes once the grace is over.
    call_id = await call_cancelled_during_ring(lab, RINGALL, lose_events=True)
    entry = await lab.finish(call_id)
    call = entry.call
    assert [r["status"] for r in lab.requests("POST", f"/channels/{call_id}/ring")] == [404]
    assert lab.delivered_cause(call_id) is None  # the caller's events were lost
    assert call.disposition is Disposition.ABANDONED, lab.timeline(call_id)
    assert call.ended_at is not None and call.hangup_cause is None
    assert f"channel {call_id} vanished" in lab.timeline(call_id)
    assert [r for r in lab.sim.rest_log if str(r["path"]).endswith("/dial")] == []
    assert sorted((leg.target, leg.hangup_cause) for leg in entry.legs) == [
        ("alice", 16),
        ("bob", 16),
        ("dave", 16),
    ]
    assert not [
        line for line in logs if line["event"] == "ending without confirmation of every hangup"
    ]
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)
