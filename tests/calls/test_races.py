"""The caller leaves while a request on its channel is in flight: Asterisk answers 404 a few
ms before the caller's ChannelDestroyed (with the real cause) reaches the daemon."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pbxd.ari import AriClient
from pbxd.cdr.records import Disposition
from pbxd.sim import PeerScript

from .conftest import ALL_OFFLINE, MOBILE, RINGALL, CallLab, assert_no_errors


def cancel_during_ring(lab: CallLab, monkeypatch: pytest.MonkeyPatch, *, lose_events: bool) -> None:
    """The caller CANCELs as the daemon's `ring` is sent, so the ring answers 404.

    The caller's events are held back until that 404 has answered (as Asterisk's WebSocket
    lags its REST answers by a few ms), or never sent (`lose_events`).
    """
    held: list[tuple[Any, dict[str, Any]]] = []
    holding: list[str] = []
    publish = lab.sim.pbx._publish

    def hold(apps: Any, event: dict[str, Any]) -> None:
        if holding and (event.get("channel") or {}).get("id") == holding[0]:
            held.append((apps, event))
            return
        publish(apps, event)

    def release() -> None:
        holding.clear()
        if not lose_events:
            for apps, event in held:
                publish(apps, event)

    lab.sim.pbx._publish = hold  # type: ignore[method-assign]
    ring = AriClient.ring

    async def ring_as_the_caller_cancels(client: AriClient, channel_id: str) -> None:
        holding.append(channel_id)
        lab.sim.hangup(channel_id)
        try:
            await ring(client, channel_id)
        finally:
            asyncio.get_running_loop().call_soon(release)

    monkeypatch.setattr(AriClient, "ring", ring_as_the_caller_cancels)


async def test_caller_cancelling_during_ring_keeps_its_cause(
    logs: list[dict[str, Any]], lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No leg can be created, so nothing else keeps the call open: the CDR must wait for the
    # caller's ChannelDestroyed (127, CANCEL) that trails the ring's 404.
    lab.sim.script(MOBILE[4], PeerScript(online=False))
    cancel_during_ring(lab, monkeypatch, lose_events=False)
    call_id = await lab.call(ALL_OFFLINE)
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
    logs: list[dict[str, Any]], lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same race, but nothing about the caller ever reaches the daemon: the legs are hung up
    # at once (never dialled), and the call closes once the grace is over.
    cancel_during_ring(lab, monkeypatch, lose_events=True)
    call_id = await lab.call(RINGALL)
    entry = await lab.finish(call_id)
    call = entry.call
    assert [r["status"] for r in lab.requests("POST", f"/channels/{call_id}/ring")] == [404]
    assert lab.final_cause(call_id) is None  # the caller's events were lost
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
