"""Presence-aware ringing through the daemon and the simulator (SQLite and PostgreSQL):
softphones followed over ARI (subscription, GET /endpoints at each connection,
EndpointStateChange), offline ones skipped without a channel, `skip_busy`, do-not-disturb
(kept in the database across restarts), and a step whose every target is skipped going to
its `unavailable` branch at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pbxd.cdr.memory import RingMemory
from pbxd.cdr.records import CallLogEntry, Disposition
from pbxd.config.reload import RunningConfig
from pbxd.sim import PeerScript

from .conftest import CallLab, LabFactory, assert_no_errors, seconds, write_config
from .test_resilience import wait_reconnected

SALES = "+33170000001"  # alice alone
SUPPORT = "+33170000002"  # hunt alice, bob 5 s each, skip_busy; unavailable: hang up busy
OFFLINE_HUNT = "+33170000003"  # hunt carol (offline), bob, dave 5 s each
FRONT = "+33170000004"  # ringall alice, bob, dave

TRUNKS = """\
    trunks:
      carrier-fr:
        inbound_endpoint: trunk-in
        dial: "PJSIP/{number}@trunk-out"
        allowed_destinations: ["+33"]
        country: FR
        numbers:
          - number: 01 70 00 00 01
          - number: 01 70 00 00 02
          - number: 01 70 00 00 03
          - number: 01 70 00 00 04
"""

ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      dave: {softphone: PJSIP/dave}
      carol: {softphone: PJSIP/carol}
    routes:
      - name: sales
        numbers: [01 70 00 00 01]
        targets: [alice]
        timeout: 30
      - name: support
        numbers: [01 70 00 00 02]
        strategy: hunt
        skip_busy: true
        ring_time: 5
        timeout: 20
        targets: [alice, bob]
        unavailable: {hangup: busy}
      - name: offline-hunt
        numbers: [01 70 00 00 03]
        strategy: hunt
        ring_time: 5
        timeout: 20
        targets: [carol, bob, dave]
      - name: front
        numbers: [01 70 00 00 04]
        targets: [alice, bob, dave]
        timeout: 10
"""


@pytest.fixture
async def plab(make_lab: LabFactory, tmp_path: Path) -> CallLab:
    return await make_lab(write_config(tmp_path / "presence", TRUNKS, ROUTING))


def rung(lab: CallLab) -> list[str]:
    """The endpoints the daemon asked Asterisk to create a channel to, in order."""
    return [r["params"]["endpoint"] for r in lab.requests("POST", "/channels/create")]


def skipped(entry: CallLogEntry) -> list[str]:
    """Targets of legs that never had a channel (ended the moment they started)."""
    return [leg.target for leg in entry.legs if leg.started_at == leg.ended_at]


def offline(lab: CallLab, endpoint: str) -> bool:
    return bool(lab.daemon.roster.presence.is_offline(endpoint))


# ------------------------------------------------------------------------ following ARI


async def test_the_daemon_follows_the_softphones_over_ari(plab: CallLab) -> None:
    [subscribe] = plab.requests("POST", "/applications/pbxd/subscription")
    assert subscribe["status"] == 200
    assert sorted(subscribe["params"]["eventSource"].split(",")) == [
        "endpoint:PJSIP/alice",
        "endpoint:PJSIP/bob",
        "endpoint:PJSIP/carol",
        "endpoint:PJSIP/dave",
    ]
    assert [r["status"] for r in plab.requests("GET", "/endpoints")] == [200]
    assert offline(plab, "PJSIP/carol") and not offline(plab, "PJSIP/alice")


async def test_an_offline_softphone_costs_a_hunt_no_time(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    plab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=2))
    call_id = await plab.call(OFFLINE_HUNT)
    entry = await plab.finish(call_id)
    assert entry.call.answered_by == "bob"
    assert rung(plab) == ["PJSIP/bob"]  # no channel asked for carol: no 500, no turn lost
    assert skipped(entry) == ["carol"]
    bob = entry.legs[1]
    assert seconds(entry.call.started_at, bob.started_at) < 0.5
    assert "carol: not rung, its softphone is offline" in plab.timeline(call_id)
    assert [line["why"] for line in logs if line["event"] == "leg_skipped"] == ["offline"]
    assert_no_errors(logs)


async def test_a_softphone_registering_and_dropping_mid_day(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    plab.sim.register("carol")
    await plab.wait_for(lambda: not offline(plab, "PJSIP/carol"), what="carol online")
    plab.sim.script("PJSIP/carol", PeerScript(answer_after=1, hangup_after=1))
    first = await plab.finish(await plab.call(OFFLINE_HUNT))
    assert first.call.answered_by == "carol"

    plab.sim.unregister("carol")
    plab.sim.unregister("alice")
    await plab.wait_for(lambda: offline(plab, "PJSIP/alice"), what="alice offline")
    plab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=1))
    second = await plab.finish(await plab.call(FRONT))
    assert second.call.answered_by == "bob"
    assert skipped(second) == ["alice"]
    assert rung(plab) == ["PJSIP/carol", "PJSIP/bob", "PJSIP/dave"]
    assert [
        (line["endpoint"], line["state"]) for line in logs if line["event"] == "endpoint_state"
    ] == [
        ("PJSIP/carol", "online"),
        ("PJSIP/carol", "offline"),
        ("PJSIP/alice", "offline"),
    ]
    assert_no_errors(logs)


async def test_states_missed_while_disconnected_are_read_again(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    plab.sim.drop_websockets()
    plab.sim.unregister("bob")  # nobody hears of it: no WebSocket holds the app
    plab.sim.register("carol")
    await wait_reconnected(plab, 2)
    assert offline(plab, "PJSIP/bob") and not offline(plab, "PJSIP/carol")
    assert len(plab.requests("GET", "/endpoints")) == 2
    assert len(plab.requests("POST", "/applications/pbxd/subscription")) == 2
    assert_no_errors(logs)


async def test_a_registration_asterisk_has_not_reported_yet_still_fails_cleanly(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    # alice reads online but her phone is gone: Asterisk answers 500, as before presence.
    plab.sim.script("PJSIP/alice", PeerScript(online=False))
    plab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=1))
    entry = await plab.finish(await plab.call(SUPPORT))
    assert [r["status"] for r in plab.requests("POST", "/channels/create")] == [500, 200]
    assert entry.call.answered_by == "bob"
    assert_no_errors(logs)


# ------------------------------------------------------------------------ skip_busy, dnd


async def test_skip_busy_passes_over_a_target_on_a_call(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    plab.sim.script("PJSIP/alice", PeerScript(answer_after=0.5))
    plab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=1))
    busy_with = await plab.call(SALES, hangup_after=10)  # alice talks for 10 s
    await plab.wait_for(lambda: bool(plab.sim.bridges), what="alice bridged")
    call_id = await plab.call(SUPPORT)
    await plab.wait_for(lambda: call_id in plab.finished, what="support call over")
    entry = await plab.finish(call_id)
    assert entry.call.answered_by == "bob"
    assert skipped(entry) == ["alice"]
    assert "alice: not rung, already on a call" in plab.timeline(call_id)
    first = await plab.store.get_call(busy_with)
    assert first is not None and first.call.answered_by == "alice"
    assert_no_errors(logs)


async def test_do_not_disturb_is_kept_across_restarts(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    assert plab.service is not None
    assert plab.service.dnd.set("alice", True, by="adam", at=plab.clock.now())
    assert not plab.service.dnd.set("alice", True, by="eve", at=plab.clock.now())  # on already
    plab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=1))
    first = await plab.finish(await plab.call(SUPPORT))
    assert skipped(first) == ["alice"] and first.call.answered_by == "bob"
    assert "alice: not rung, do-not-disturb" in plab.timeline(first.call.call_id)

    await plab.kill_service()  # the flag is written before the service stops
    service = await plab.start_service()
    assert service.dnd.is_on("alice")
    change = service.dnd.change("alice")
    assert change is not None and change.by == "adam"
    service.dnd.set("alice", False, by="adam", at=plab.clock.now())
    plab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=1))
    second = await plab.finish(await plab.call(SUPPORT))
    assert second.call.answered_by == "alice" and skipped(second) == []
    await service.dnd.flush()
    assert await RingMemory(plab.store.engine).dnd() == {}
    assert_no_errors(logs)


async def test_every_target_skipped_goes_to_unavailable_at_once(
    logs: list[dict[str, Any]], plab: CallLab
) -> None:
    assert plab.service is not None
    plab.service.dnd.set("alice", True, by="adam", at=plab.clock.now())
    plab.sim.unregister("bob")
    await plab.wait_for(lambda: offline(plab, "PJSIP/bob"), what="bob offline")
    call_id = await plab.call(SUPPORT)
    entry = await plab.finish(call_id)
    assert rung(plab) == []
    assert skipped(entry) == ["alice", "bob"]
    assert plab.final_cause(call_id) == 17  # `unavailable: {hangup: busy}`
    assert entry.call.disposition is not Disposition.ANSWERED
    assert entry.call.duration is not None and entry.call.duration <= 1
    assert_no_errors(logs)


@pytest.mark.timeout(180)  # a child process compiles: slow on a loaded machine
async def test_a_reload_follows_new_softphones(logs: list[dict[str, Any]], plab: CallLab) -> None:
    # erin joins the routing (and Asterisk): her registration is followed from the reload.
    plab.sim.add_endpoint("PJSIP", "erin", caller_name="Erin", caller_number="erin")
    routing = plab.config.settings.routing_dir / "main.yaml"
    text = routing.read_text(encoding="utf-8")
    carol = "  carol: {softphone: PJSIP/carol}\n"
    text = text.replace(carol, carol + "  erin: {softphone: PJSIP/erin}\n")
    text = text.replace("targets: [alice, bob, dave]", "targets: [alice, bob, dave, erin]")
    routing.write_text(text, encoding="utf-8")
    assert plab.service is not None
    running = RunningConfig(plab.config)
    running.on_swap(plab.service.use_config)
    result = await running.reload()
    assert result.accepted, result
    subscriptions = "/applications/pbxd/subscription"
    await plab.wait_for(lambda: len(plab.requests("POST", subscriptions)) == 2, what="again")
    assert "endpoint:PJSIP/erin" in plab.requests("POST", subscriptions)[1]["params"]["eventSource"]
    plab.sim.unregister("erin")
    await plab.wait_for(lambda: offline(plab, "PJSIP/erin"), what="erin offline")
    assert_no_errors(logs)
