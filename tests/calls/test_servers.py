"""Several Asterisk servers on one CDR database: each call row names its server, each pbxd
settles only its own server's calls, and a number's call log merges them all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from pbxd.cdr.records import CallRecord, Disposition
from pbxd.sim import PeerScript

from .conftest import APP, RINGALL, SECRET, USER, CallLab, LabFactory, assert_no_errors

PARIS = "02:fc:00:00:00:01"  # the simulator's default entity id


async def test_a_call_row_names_its_asterisk_by_entity_id_when_it_has_no_system_name(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL, hangup_after=5)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert entry.call.server == PARIS
    # What ARI stamps on every event is the same identity.
    assert {e["asterisk_id"] for e in lab.events("StasisStart", call_id)} == {PARIS}
    assert_no_errors(logs)


async def test_a_call_row_names_its_asterisk_by_system_name(make_lab: LabFactory) -> None:
    lab = await make_lab(asterisk_id="02:fc:00:00:00:02", system_name="ast-lyon")
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL, hangup_after=5)
    # Asterisk prefixes its uniqueids with the system name: ids stay unique across servers.
    assert call_id.startswith("ast-lyon-")
    entry = await lab.finish(call_id)
    assert entry.call.server == "ast-lyon"
    assert {leg.leg_id.split("-")[0] for leg in entry.legs} == {"ast"}


async def test_two_servers_one_database_each_pbxd_recovers_only_its_own_calls(
    logs: list[dict[str, Any]], make_lab: LabFactory
) -> None:
    paris = await make_lab(system_name="ast-paris")
    lyon = await make_lab(asterisk_id="02:fc:00:00:00:02", system_name="ast-lyon")
    for lab in (paris, lyon):
        lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    done = []
    for lab in (paris, lyon):
        call_id = await lab.call(RINGALL, hangup_after=5)
        done.append(await lab.finish(call_id))
    assert [e.call.server for e in done] == ["ast-paris", "ast-lyon"]

    # A call Lyon's pbxd still has open (its Asterisk is alive, its pbxd busy with it).
    started = done[1].call.started_at + timedelta(minutes=1)
    lyon_open = CallRecord("ast-lyon-1.9", RINGALL, started, server="ast-lyon")
    lyon.store.record_call(lyon_open)
    await lyon.store.flush()

    # Paris's pbxd restarts: its recovery must not touch Lyon's call.
    await paris.kill_service()
    await paris.start_service()
    assert paris.requests("GET", f"/channels/{lyon_open.call_id}") == []
    entry = await paris.store.get_call(lyon_open.call_id)
    assert entry is not None and entry.call.ended_at is None and entry.call.disposition is None

    # Lyon's pbxd restarts: its own call is closed (its Asterisk has no such channel).
    await lyon.kill_service()
    await lyon.start_service()
    await lyon.store.flush()
    entry = await lyon.store.get_call(lyon_open.call_id)
    assert entry is not None and entry.call.ended_at is not None
    assert entry.call.disposition is Disposition.FAILED

    # The number's call log has both servers' calls (the two labs' clocks start together).
    log = await paris.store.call_log(RINGALL)
    assert log[0].call.call_id == lyon_open.call_id
    assert {(e.call.call_id, e.call.server) for e in log[1:]} == {
        (done[1].call.call_id, "ast-lyon"),
        (done[0].call.call_id, "ast-paris"),
    }
    assert_no_errors(logs)


async def test_a_rival_websocket_for_the_app_is_reported_and_fences_a_pair(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Asterisk gives the app to the newest WebSocket and tells the old one (ApplicationReplaced,
    # which pbxd's event filter lets through).
    replaced: list[bool] = []
    lab.daemon.on_app_replaced = lambda: replaced.append(True)
    headers = {"Authorization": aiohttp.encode_basic_auth(USER, SECRET)}
    ws_url = lab.url.replace("http://", "ws://") + f"/events?app={APP}"
    async with aiohttp.ClientSession(headers=headers) as session:
        rival = await session.ws_connect(ws_url)
        await lab.wait_for(lambda: bool(replaced), what="ApplicationReplaced")
        await rival.close()
    assert replaced == [True]
    assert [e["log_level"] for e in logs if e["event"] == "ari_app_replaced"] == ["info"]


async def test_a_rival_websocket_without_a_pair_is_an_error_in_the_log(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    headers = {"Authorization": aiohttp.encode_basic_auth(USER, SECRET)}
    ws_url = lab.url.replace("http://", "ws://") + f"/events?app={APP}"
    async with aiohttp.ClientSession(headers=headers) as session:
        rival = await session.ws_connect(ws_url)
        await lab.wait_for(
            lambda: any(e["event"] == "ari_app_replaced" for e in logs), what="the log line"
        )
        await rival.close()
    [line] = [e for e in logs if e["event"] == "ari_app_replaced"]
    assert line["log_level"] == "error" and "ha: {mode: active-standby}" in line["hint"]
