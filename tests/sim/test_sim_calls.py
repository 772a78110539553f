"""Call flows through the simulator over real sockets: each PeerScript behaviour, inbound
CANCEL/BYE, bridges, DTMF, playback, caller ID, with the event sequences of the captures."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator, PeerScript

from .conftest import Ari, EventReader

DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
DID, CALLER_NUM = "+33170000001", "+33612000001"


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """Event types with the facts that matter: `Dial:RINGING`, `ChannelStateChange:Up`..."""
    out = []
    for e in events:
        if e["type"] == "Dial":
            out.append(f"Dial:{e['dialstatus']}")
        elif e["type"] == "ChannelStateChange":
            out.append(f"ChannelStateChange:{e['channel']['state']}")
        elif e["type"] in ("ChannelHangupRequest", "ChannelDestroyed") and "cause" in e:
            out.append(f"{e['type']}:{e['cause']}")
        else:
            out.append(e["type"])
    return out


async def incoming(sim: AriSimulator, events: EventReader, **kw: Any) -> str:
    caller = await sim.inbound_call(DID, CALLER_NUM, "Caller", **kw)
    await events.next("StasisStart", caller)
    return caller


async def dial_leg(
    ari: Ari, events: EventReader, endpoint: str, caller: str, dial_timeout: str = "15"
) -> str:
    leg = await ari.create(endpoint, originator=caller)
    await events.next("StasisStart", leg["id"])
    status, _ = await ari.post(f"/channels/{leg['id']}/dial", caller=caller, timeout=dial_timeout)
    assert status == 204
    return str(leg["id"])


async def test_inbound_call_snapshot(sim: AriSimulator, events: EventReader) -> None:
    caller = await sim.inbound_call(DID, CALLER_NUM, "Caller")
    start = await events.next("StasisStart", caller)
    chan = start["channel"]
    assert re.fullmatch(r"\d{10}\.\d+", caller)
    assert re.fullmatch(r"PJSIP/trunk-in-[0-9a-f]{8}", chan["name"])
    assert chan["state"] == "Ring"
    assert chan["caller"] == {"name": "Caller", "number": CALLER_NUM}
    assert chan["dialplan"] == {
        "app_data": "pbxd",
        "app_name": "Stasis",
        "context": "from-trunk",
        "exten": DID,
        "priority": 1,
    }
    assert start["args"] == [] and start["application"] == "pbxd"
    assert DATE.match(start["timestamp"]) and DATE.match(chan["creationtime"])
    assert start["asterisk_id"] == "02:fc:00:00:00:01"


async def test_answer_after_rings_then_answers(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    sim.script("PJSIP/alice", PeerScript(answer_after=1.0))
    caller = await incoming(sim, events)
    leg = await dial_leg(ari, events, "PJSIP/alice", caller)
    t0 = clock.monotonic()
    up = await events.next("Dial", leg, where=lambda e: e["dialstatus"] == "ANSWER")
    assert clock.monotonic() - t0 == pytest.approx(1.0, abs=0.002)
    assert kinds(events.of(leg)) == [
        "ChannelDialplan",
        "StasisStart",
        "ChannelConnectedLine",
        "Dial:",
        "ChannelStateChange:Ringing",
        "Dial:RINGING",
        "ChannelStateChange:Up",
        "Dial:ANSWER",
    ]
    first_dial = events.of(leg)[3]
    assert first_dial["dialstring"] == "alice" and first_dial["forward"] == ""
    assert "caller" not in first_dial  # Asterisk 22's ARI dial publishes no caller
    assert up["peer"]["connected"] == {"name": "Caller", "number": CALLER_NUM}
    assert up["peer"]["caller"] == {"name": "Alice", "number": "alice"}


async def test_busy_after_rejects_with_cause_17(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("PJSIP/alice", PeerScript(busy_after=0.3))
    caller = await incoming(sim, events)
    leg = await dial_leg(ari, events, "PJSIP/alice", caller)
    destroyed = await events.next("ChannelDestroyed", leg)
    assert destroyed["cause"] == 17 and destroyed["cause_txt"] == "User busy"
    assert destroyed["tech_cause"] == 486
    assert kinds(events.of(leg))[2:] == [
        "ChannelConnectedLine",
        "Dial:",
        "ChannelHangupRequest:17",
        "StasisEnd",
        "ChannelDestroyed:17",
    ]
    # Then the client rejects the caller as busy (busy.jsonl).
    assert (await ari.delete(f"/channels/{caller}", reason="busy"))[0] == 204
    end = await events.next("ChannelDestroyed", caller)
    assert (end["cause"], end["cause_txt"], end["tech_cause"]) == (17, "User busy", 486)
    assert kinds(events.of(caller)) == [
        "StasisStart",
        "ChannelHangupRequest:32",
        "StasisEnd",
        "ChannelHangupRequest:16",
        "ChannelDestroyed:17",
    ]


async def test_hangup_after_callee_sends_bye(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    sim.script("PJSIP/dave", PeerScript(answer_after=0.5, hangup_after=2.0))
    caller = await incoming(sim, events)
    leg = await dial_leg(ari, events, "PJSIP/dave", caller)
    await events.next("Dial", leg, where=lambda e: e["dialstatus"] == "ANSWER")
    t_answer = clock.monotonic()
    destroyed = await events.next("ChannelDestroyed", leg)
    assert clock.monotonic() - t_answer == pytest.approx(2.0, abs=0.002)
    assert destroyed["cause"] == 16 and "tech_cause" not in destroyed
    request = [e for e in events.of(leg) if e["type"] == "ChannelHangupRequest"]
    assert len(request) == 1 and request[0]["cause"] == 16 and "soft" not in request[0]


async def test_unscripted_rings_until_dial_timeout(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    caller = await incoming(sim, events)
    leg = await dial_leg(ari, events, "PJSIP/bob", caller, dial_timeout="3")
    t0 = clock.monotonic()
    destroyed = await events.next("ChannelDestroyed", leg, within=10)
    assert clock.monotonic() - t0 == pytest.approx(3.0, abs=0.002)
    assert (destroyed["cause"], destroyed["cause_txt"], destroyed["tech_cause"]) == (
        19,
        "User alerting, no answer",
        480,
    )
    assert kinds(events.of(leg))[-3:] == [
        "ChannelHangupRequest:32",
        "StasisEnd",
        "ChannelDestroyed:19",
    ]
    assert "Dial:NOANSWER" not in kinds(events.of(leg))


async def test_ringing_forever_without_timeout(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    caller = await incoming(sim, events)
    leg = await dial_leg(ari, events, "PJSIP/bob", caller, dial_timeout="0")
    await events.next("Dial", leg, where=lambda e: e["dialstatus"] == "RINGING")
    await clock.advance(5.0)
    chan = sim.channel(leg)
    assert chan is not None and chan.state == "Ringing"
    status, body = await ari.get(f"/channels/{leg}")
    assert status == 200 and body["state"] == "Ringing"


async def test_dtmf_reported_only_with_dtmf_events_bridge(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("PJSIP/dave", PeerScript(answer_after=0.2, dtmf="12#", dtmf_after=0.5))
    sim.script("PJSIP/alice", PeerScript(answer_after=0.2, dtmf="9", dtmf_after=0.5))
    caller = await incoming(sim, events)
    await ari.post(f"/channels/{caller}/answer")
    _, dtmf_bridge = await ari.post("/bridges", type="mixing,dtmf_events")
    dave = await dial_leg(ari, events, "PJSIP/dave", caller)
    await events.next("Dial", dave, where=lambda e: e["dialstatus"] == "ANSWER")
    await ari.post(f"/bridges/{dtmf_bridge['id']}/addChannel", channel=f"{caller},{dave}")
    await events.next("ChannelDtmfReceived", dave, where=lambda e: e["digit"] == "#")
    digits = [e["digit"] for e in events.of(dave) if e["type"] == "ChannelDtmfReceived"]
    assert digits == ["1", "2", "#"]
    assert all(
        e["duration_ms"] == 160 for e in events.of(dave) if e["type"] == "ChannelDtmfReceived"
    )
    # A plain mixing bridge passes DTMF through without events.
    _, plain = await ari.post("/bridges", type="mixing")
    caller2 = await incoming(sim, events)
    await ari.post(f"/channels/{caller2}/answer")
    alice = await dial_leg(ari, events, "PJSIP/alice", caller2)
    await events.next("Dial", alice, where=lambda e: e["dialstatus"] == "ANSWER")
    await ari.post(f"/bridges/{plain['id']}/addChannel", channel=f"{caller2},{alice}")
    mark = len(events.events)
    await ari.delete(f"/channels/{alice}")  # sync point well after the digit would come
    await events.next("ChannelDestroyed", alice, start=mark)
    assert not [e for e in events.of(alice) if e["type"] == "ChannelDtmfReceived"]


async def test_inbound_cancel_before_answer(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    # An app watching the whole channel (as once it originated a leg) gets its ChannelDestroyed.
    sim.pbx.stasis_only_subscriptions = False
    caller = await incoming(sim, events, hangup_after=1.0)
    await ari.post(f"/channels/{caller}/ring")
    destroyed = await events.next("ChannelDestroyed", caller)
    assert (destroyed["cause"], destroyed["cause_txt"], destroyed["tech_cause"]) == (
        127,
        "Interworking, unspecified",
        487,
    )
    requests = [e for e in events.of(caller) if e["type"] == "ChannelHangupRequest"]
    assert [(r.get("cause"), r.get("soft"), r.get("tech_cause")) for r in requests] == [
        (127, None, 487),
        (16, True, 487),
    ]
    assert destroyed["channel"]["dialplan"]["app_name"] == ""


async def test_inbound_bye_after_answer(sim: AriSimulator, ari: Ari, events: EventReader) -> None:
    # An app watching the whole channel (as once it originated a leg) gets its ChannelDestroyed.
    sim.pbx.stasis_only_subscriptions = False
    caller = await incoming(sim, events, hangup_after=1.0)
    await ari.post(f"/channels/{caller}/answer")
    destroyed = await events.next("ChannelDestroyed", caller)
    assert destroyed["cause"] == 16 and "tech_cause" not in destroyed
    first = next(e for e in events.of(caller) if e["type"] == "ChannelHangupRequest")
    assert "cause" not in first  # the caller's BYE: no cause in Asterisk 22's event
    assert kinds(events.of(caller)) == [
        "StasisStart",
        "ChannelStateChange:Up",
        "ChannelHangupRequest",
        "StasisEnd",
        "ChannelHangupRequest:16",
        "ChannelDestroyed:16",
    ]


async def test_ringall_bridge_flow(sim: AriSimulator, ari: Ari, events: EventReader) -> None:
    sim.script("PJSIP/alice", PeerScript(answer_after=1.0))
    caller = await incoming(sim, events, hangup_after=4.0)
    _, bridge = await ari.post("/bridges", type="mixing")
    alice = await dial_leg(ari, events, "PJSIP/alice", caller)
    bob = await dial_leg(ari, events, "PJSIP/bob", caller)
    await events.next("Dial", alice, where=lambda e: e["dialstatus"] == "ANSWER")
    assert (await ari.delete(f"/channels/{bob}", reason_code="26"))[0] == 204
    assert (await ari.post(f"/channels/{caller}/answer"))[0] == 204
    status, _ = await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=f"{caller},{alice}")
    assert status == 204
    colp = await events.next("ChannelConnectedLine", caller)
    assert colp["channel"]["connected"] == {"name": "Alice", "number": "alice"}
    entered = [e for e in events.events if e["type"] == "ChannelEnteredBridge"]
    assert [e["bridge"]["channels"] for e in entered] == [[caller], [caller, alice]]
    status, live = await ari.get(f"/bridges/{bridge['id']}")
    assert live["technology"] == "native_rtp" and live["channels"] == [caller, alice]
    bob_end = await events.next("ChannelDestroyed", bob)
    assert (bob_end["cause"], bob_end["cause_txt"]) == (26, "Answered elsewhere")
    await events.next("StasisEnd", caller, within=10)
    left = await events.next("ChannelLeftBridge", caller)
    assert left["bridge"]["channels"] == [alice] and left["bridge"]["technology"] == "native_rtp"
    await ari.delete(f"/channels/{alice}")
    left2 = await events.next("ChannelLeftBridge", alice)
    assert left2["bridge"]["technology"] == "simple_bridge" and left2["bridge"]["channels"] == []
    assert (await ari.delete(f"/bridges/{bridge['id']}"))[0] == 204
    destroyed = await events.next("BridgeDestroyed")
    assert destroyed["bridge"]["id"] == bridge["id"]
    assert (await ari.get(f"/bridges/{bridge['id']}"))[0] == 404


async def test_trunk_number_script_and_early_media_bridge(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("+33612345678", PeerScript(answer_after=1.0))
    caller = await incoming(sim, events)
    await ari.post(f"/channels/{caller}/answer")
    _, bridge = await ari.post("/bridges", type="mixing")
    await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=caller)
    mobile = await ari.create("PJSIP/+33612345678@trunk-out", originator=caller)
    assert re.fullmatch(r"PJSIP/trunk-out-[0-9a-f]{8}", mobile["name"])
    assert mobile["caller"] == {"name": "", "number": ""}
    assert mobile["dialplan"]["context"] == "from-trunk"
    await events.next("StasisStart", mobile["id"])
    await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=mobile["id"])
    entered = await events.next("ChannelEnteredBridge", mobile["id"])
    assert entered["channel"]["state"] == "Down"
    await ari.post(f"/channels/{mobile['id']}/dial", caller=caller, timeout="15")
    dial = await events.next("Dial", mobile["id"])
    assert dial["dialstring"] == "+33612345678@trunk-out"
    await events.next("Dial", mobile["id"], where=lambda e: e["dialstatus"] == "ANSWER")
    # Empty caller ID on the trunk leg: no connected-line change for the caller.
    assert not [e for e in events.of(caller) if e["type"] == "ChannelConnectedLine"]
    status, body = await ari.get("/endpoints/PJSIP/trunk-out")
    assert status == 200 and body["channel_ids"] == [mobile["id"]]


async def test_offline_and_unknown_endpoints_fail_allocation(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("PJSIP/alice", PeerScript(online=False))
    for endpoint in ("PJSIP/carol", "PJSIP/nosuchendpoint", "PJSIP/alice"):
        status, body = await ari.post("/channels/create", endpoint=endpoint, app="pbxd")
        assert (status, body) == (500, {"error": "Allocation failed"}), endpoint
    status, body = await ari.get("/endpoints/PJSIP/carol")
    assert (status, body["state"]) == (200, "offline")
    assert (await ari.get("/endpoints/PJSIP/nosuchendpoint"))[0] == 404
    assert sim.channels == []


async def test_callerid_variables_override_endpoint(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    body = {"variables": {"CALLERID(num)": "+33170000001", "CALLERID(name)": "Acme"}}
    status, chan = await ari.post(
        "/channels/create", body, endpoint="PJSIP/+33600000000@trunk-out", app="pbxd"
    )
    assert status == 200
    assert chan["caller"] == {"name": "Acme", "number": "+33170000001"}
    status, chan2 = await ari.post("/channels/create", endpoint="PJSIP/alice", app="pbxd")
    assert chan2["caller"] == {"name": "Alice", "number": "alice"}


async def test_variables_at_create_are_seen_by_the_app(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    """The app is subscribed before ast_set_variables(): each caller-ID function write is a
    new snapshot (ChannelCallerId / ChannelConnectedLine), a plain variable a ChannelVarset."""
    body = {
        "variables": {
            "CALLERID(num)": DID,
            "CONNECTEDLINE(num,i)": DID,
            "PBXD_CALL": "call-1",
        }
    }
    status, leg = await ari.post("/channels/create", body, endpoint="PJSIP/alice", app="pbxd")
    assert status == 200
    await events.next("StasisStart", leg["id"])
    seen = [e for e in events.events if (e.get("channel") or {}).get("id") == leg["id"]]
    assert [e["type"] for e in seen] == [
        "ChannelCallerId",
        "ChannelConnectedLine",
        "ChannelVarset",
        "ChannelDialplan",
        "ChannelVarset",
        "StasisStart",
    ]
    caller_id = seen[0]
    assert caller_id["channel"]["caller"] == {"name": "Alice", "number": DID}
    assert (caller_id["caller_presentation"], caller_id["caller_presentation_txt"]) == (
        0,
        "Presentation Allowed, Not Screened",
    )
    assert seen[1]["channel"]["connected"] == {"name": "", "number": DID}
    assert (seen[2]["variable"], seen[2]["value"]) == ("PBXD_CALL", "call-1")
    assert (seen[4]["variable"], seen[4]["value"]) == ("STASISSTATUS", "")
    assert await ari.get(f"/channels/{leg['id']}/variable", variable="PBXD_CALL") == (
        200,
        {"value": "call-1"},
    )


async def test_the_callee_is_presented_the_connected_line_not_the_caller_id(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    """chan_pjsip puts the connected line in the INVITE's From; `dial?caller=` copies the
    inbound caller into it, whatever CALLERID() the leg was given."""
    caller = await incoming(sim, events)
    body = {"variables": {"CALLERID(num)": DID, "CALLERID(name)": "Acme"}}
    status, leg = await ari.post(
        "/channels/create", body, endpoint="PJSIP/+33600000000@trunk-out", app="pbxd"
    )
    assert status == 200
    await events.next("StasisStart", leg["id"])
    assert (await ari.post(f"/channels/{leg['id']}/dial", caller=caller))[0] == 204
    chan = sim.channel(leg["id"])
    assert chan is not None and chan.presented is not None
    assert (chan.caller.number, chan.presented.number) == (DID, CALLER_NUM)

    # Presenting the virtual number: the connected line set at create, dialled without caller.
    body = {"variables": {"CONNECTEDLINE(num,i)": DID, "CONNECTEDLINE(name,i)": "Acme"}}
    status, leg = await ari.post(
        "/channels/create", body, endpoint="PJSIP/+33600000001@trunk-out", app="pbxd"
    )
    assert status == 200 and leg["connected"] == {"name": "Acme", "number": DID}
    await events.next("StasisStart", leg["id"])
    assert (await ari.post(f"/channels/{leg['id']}/dial"))[0] == 204
    chan = sim.channel(leg["id"])
    assert chan is not None and chan.presented is not None
    assert (chan.presented.name, chan.presented.number) == ("Acme", DID)


async def test_playback_events(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    caller = await incoming(sim, events)
    await ari.post(f"/channels/{caller}/answer")
    t0 = clock.monotonic()
    status, playback = await ari.post(f"/channels/{caller}/play", media="sound:beep")
    assert status == 201
    assert playback["state"] == "queued" and playback["target_uri"] == f"channel:{caller}"
    assert set(playback) == {"id", "language", "media_uri", "state", "target_uri"}
    started = await events.next("PlaybackStarted")
    finished = await events.next("PlaybackFinished")
    assert started["playback"]["state"] == "playing" and finished["playback"]["state"] == "done"
    assert started["playback"]["id"] == finished["playback"]["id"] == playback["id"]
    assert clock.monotonic() - t0 == pytest.approx(0.42, abs=0.002)  # sound:beep's length
    assert (await ari.get(f"/playbacks/{playback['id']}"))[0] == 404


async def test_playback_stops_when_channel_hangs_up(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    # An app watching the whole channel (as once it originated a leg) gets its ChannelDestroyed.
    sim.pbx.stasis_only_subscriptions = False
    caller = await incoming(sim, events)
    await ari.post(f"/channels/{caller}/answer")
    assert (await ari.post(f"/channels/{caller}/play", media="tone:ring"))[0] == 201
    await events.next("PlaybackStarted")
    await ari.delete(f"/channels/{caller}")
    await events.next("ChannelDestroyed", caller)
    order = [e["type"] for e in events.events if e["type"] != "ChannelStateChange"]
    assert order.index("PlaybackFinished") < order.index("StasisEnd")


async def test_originate_with_app_enters_stasis_on_answer(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("PJSIP/alice", PeerScript(answer_after=0.5))
    status, chan = await ari.post("/channels", endpoint="PJSIP/alice", app="pbxd")
    assert status == 200 and chan["state"] == "Down"
    start = await events.next("StasisStart", chan["id"])
    assert start["channel"]["state"] == "Up"
    assert kinds(events.of(chan["id"])) == [
        "Dial:",
        "ChannelStateChange:Ringing",
        "Dial:RINGING",
        "ChannelStateChange:Up",
        "Dial:ANSWER",
        "ChannelDialplan",
        "StasisStart",
    ]


async def test_event_timestamps_are_the_clocks_time(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    # Timestamps come from the simulator's clock: 2 virtual seconds read as 2 seconds,
    # however little real time they took. (`pbxd simulate` relies on it with a ScaledClock.)
    sim.script("PJSIP/alice", PeerScript(answer_after=2.0))
    status, chan = await ari.post("/channels", endpoint="PJSIP/alice", app="pbxd")
    assert status == 200
    answer = await events.next("Dial", chan["id"], where=lambda e: e["dialstatus"] == "ANSWER")
    first = await events.next("Dial", chan["id"])
    fmt = "%Y-%m-%dT%H:%M:%S.%f%z"
    dt = (
        datetime.strptime(answer["timestamp"], fmt) - datetime.strptime(first["timestamp"], fmt)
    ).total_seconds()
    assert dt == pytest.approx(2.0, abs=0.002)
    assert datetime.strptime(answer["timestamp"], fmt) == clock.now().replace(
        microsecond=clock.now().microsecond // 1000 * 1000
    )


async def test_caller_dtmf_and_far_end_actions(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await incoming(sim, events, dtmf="12", dtmf_after=0.5)
    await ari.post(f"/channels/{caller}/answer")  # digits come only once answered
    await events.next("ChannelDtmfReceived", caller, where=lambda e: e["digit"] == "2")
    sim.send_dtmf(caller, "#")
    await events.next("ChannelDtmfReceived", caller, where=lambda e: e["digit"] == "#")
    digits = [e["digit"] for e in events.of(caller) if e["type"] == "ChannelDtmfReceived"]
    assert digits == ["1", "2", "#"]
    # A leg the far end declines before answering: 603, cause 21.
    leg = await dial_leg(ari, events, "PJSIP/bob", caller)
    await events.next("Dial", leg, where=lambda e: e["dialstatus"] == "RINGING")
    sim.hangup(leg)
    declined = await events.next("ChannelDestroyed", leg)
    assert (declined["cause"], declined["tech_cause"]) == (21, 603)
    sim.hangup(caller)  # the caller's BYE
    assert (await events.next("ChannelDestroyed", caller))["cause"] == 16
    await events.clock.drive(sim.wait_until_idle())
    assert sim.channels == []


async def test_number_script_matches_uri_dial_strings(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.script("+33698765432", PeerScript(online=False))
    status, body = await ari.post(
        "/channels/create", app="pbxd", endpoint="PJSIP/trunk-out/sip:+33698765432@carrier"
    )
    assert (status, body) == (500, {"error": "Allocation failed"})
    assert (
        await ari.post("/channels/create", app="pbxd", endpoint="PJSIP/+33600000000@trunk-out")
    )[0] == 200
