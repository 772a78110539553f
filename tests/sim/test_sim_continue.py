"""POST /channels/{id}/continue: Asterisk's checks and answers, then the caller leaving Stasis
and running the shipped [from-trunk] dialplan (the `unavailable` branch, or `done`)."""

from __future__ import annotations

from typing import Any

from pbxd.sim import AriSimulator

from .conftest import Ari, EventReader

DID, CALLER = "+33170000001", "+33612000001"
LOG_DATA = f"WARNING,pbxd unavailable (STASISSTATUS=SUCCESS) for call to {DID}"


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    """An event as (type, the fields that tell what happened, channel state)."""
    fields = ("dialplan_app", "dialplan_app_data", "cause", "soft", "tech_cause", "cause_txt")
    picked = tuple((k, event[k]) for k in fields if k in event)
    return (event["type"], picked, event["channel"]["state"])


async def test_unavailable_label_plays_then_congestion_34(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await sim.inbound_call(DID, CALLER)
    await events.next("StasisStart", caller)
    assert await ari.post(f"/channels/{caller}/continue", label="unavailable") == (204, None)
    await events.next("ChannelDestroyed", caller)
    assert [summary(e) for e in events.of(caller)] == [
        ("StasisStart", (), "Ring"),
        ("StasisEnd", (), "Ring"),
        ("ChannelDialplan", (("dialplan_app", "Log"), ("dialplan_app_data", LOG_DATA)), "Ring"),
        ("ChannelDialplan", (("dialplan_app", "Progress"), ("dialplan_app_data", "")), "Ring"),
        (
            "ChannelDialplan",
            (
                ("dialplan_app", "Playback"),
                ("dialplan_app_data", "all-circuits-busy-now,noanswer"),
            ),
            "Ring",
        ),
        ("ChannelDialplan", (("dialplan_app", "Congestion"), ("dialplan_app_data", "5")), "Ring"),
        ("ChannelStateChange", (), "Busy"),
        ("ChannelHangupRequest", (), "Busy"),
        ("ChannelHangupRequest", (("cause", 16), ("soft", True)), "Busy"),
        (
            "ChannelDestroyed",
            (("cause", 34), ("tech_cause", 503), ("cause_txt", "Circuit/channel congestion")),
            "Busy",
        ),
    ]
    # Stasis() returned SUCCESS, right after StasisEnd, before the dialplan went on.
    mine = [e for e in events.events if e.get("channel", {}).get("id") == caller]
    end = next(i for i, e in enumerate(mine) if e["type"] == "StasisEnd")
    assert (mine[end + 1]["type"], mine[end + 1]["variable"], mine[end + 1]["value"]) == (
        "ChannelVarset",
        "STASISSTATUS",
        "SUCCESS",
    )
    dialplan = [e["channel"]["dialplan"] for e in mine if e["type"] == "ChannelDialplan"]
    assert [(d["context"], d["exten"], d["priority"]) for d in dialplan] == [
        ("from-trunk", DID, 5),
        ("from-trunk", DID, 6),
        ("from-trunk", DID, 7),
        ("from-trunk", DID, 8),
    ]
    assert sim.channel(caller) is None


async def test_answered_caller_hears_congestion_then_normal_clearing(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await sim.inbound_call(DID, CALLER)
    await events.next("StasisStart", caller)
    assert await ari.post(f"/channels/{caller}/answer") == (204, None)
    # The label wins over the priority (9 would be Hangup()).
    assert await ari.post(f"/channels/{caller}/continue", label="unavailable", priority="9") == (
        204,
        None,
    )
    await events.next("ChannelDestroyed", caller, within=10)
    tail = [summary(e) for e in events.of(caller)][-3:]
    assert tail == [
        ("ChannelDialplan", (("dialplan_app", "Congestion"), ("dialplan_app_data", "5")), "Up"),
        ("ChannelHangupRequest", (("cause", 16), ("soft", True)), "Up"),
        ("ChannelDestroyed", (("cause", 16), ("cause_txt", "Normal Clearing")), "Up"),
    ]


async def test_done_label_and_next_priority_hang_up_normally(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    done = await sim.inbound_call(DID, CALLER)
    await events.next("StasisStart", done)
    assert await ari.post(f"/channels/{done}/continue", label="done") == (204, None)
    await events.next("ChannelDestroyed", done)
    assert [summary(e) for e in events.of(done)] == [
        ("StasisStart", (), "Ring"),
        ("StasisEnd", (), "Ring"),
        ("ChannelDialplan", (("dialplan_app", "Hangup"), ("dialplan_app_data", "")), "Ring"),
        ("ChannelHangupRequest", (("cause", 16), ("soft", True)), "Ring"),
        ("ChannelDestroyed", (("cause", 16), ("cause_txt", "Normal Clearing")), "Ring"),
    ]
    # Priority 4 is the GotoIf: STASISSTATUS is SUCCESS, so it jumps to `done`.
    gotoif = await sim.inbound_call(DID, CALLER)
    await events.next("StasisStart", gotoif)
    assert await ari.post(f"/channels/{gotoif}/continue", priority="4") == (204, None)
    await events.next("ChannelDestroyed", gotoif)
    apps = [
        (e["dialplan_app"], e["dialplan_app_data"])
        for e in events.of(gotoif)
        if e["type"] == "ChannelDialplan"
    ]
    assert apps == [("GotoIf", "1?done"), ("Hangup", "")]


async def test_continue_errors_in_asterisks_order(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    assert await ari.post("/channels/nope/continue", label="unavailable") == (
        404,
        {"message": "Channel not found"},
    )
    caller = await sim.inbound_call(DID, CALLER)
    await events.next("StasisStart", caller)
    # Not yet in Stasis (the created channel enters it a moment later), then Down in Stasis.
    leg = await ari.create("PJSIP/alice", originator=caller)
    assert await ari.post(f"/channels/{leg['id']}/continue") == (
        409,
        {"message": "Channel not in Stasis application"},
    )
    await events.next("StasisStart", leg["id"])
    assert await ari.post(f"/channels/{leg['id']}/continue", label="nolabel") == (
        412,
        {"message": "Channel in invalid state"},
    )
    assert await ari.post(f"/channels/{caller}/continue", label="nolabel") == (
        404,
        {"message": "Requested label can not be found"},
    )
    assert await ari.post(f"/channels/{caller}/continue", label="0") == (
        400,
        {"message": "Requested priority is illegal"},
    )
    # A label of another context is looked up there: from-internal has none.
    assert await ari.post(
        f"/channels/{caller}/continue", context="from-internal", label="unavailable"
    ) == (404, {"message": "Requested label can not be found"})
    # Valid for Asterisk, but outside the dialplan the simulator models.
    for params in ({}, {"context": "from-internal", "extension": "alice"}, {"priority": "2"}):
        assert await ari.post(f"/channels/{caller}/continue", **params) == (
            501,
            {"message": "Not implemented by the ARI simulator"},
        ), params
    assert sim.channel(caller) is not None
    assert [e["type"] for e in events.of(caller)] == ["StasisStart"]  # still in Stasis
    assert await ari.post(f"/channels/{caller}/continue", label="unavailable") == (204, None)
    await events.next("StasisEnd", caller)
    assert await ari.post(f"/channels/{caller}/continue", label="unavailable") == (
        409,
        {"message": "Channel not in Stasis application"},
    )
    await events.next("ChannelDestroyed", caller)
    assert await ari.delete(f"/channels/{leg['id']}") == (204, None)


async def test_caller_hanging_up_during_the_announcement(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.sound_seconds["sound:all-circuits-busy-now"] = 3600.0  # the caller hangs up first
    caller = await sim.inbound_call(DID, CALLER)
    await events.next("StasisStart", caller)
    assert await ari.post(f"/channels/{caller}/continue", label="unavailable") == (204, None)
    await events.next("ChannelDialplan", caller, where=lambda e: e["dialplan_app"] == "Playback")
    sim.hangup(caller)
    await events.next("ChannelDestroyed", caller)
    tail = [summary(e) for e in events.of(caller)][-4:]
    assert tail == [
        (
            "ChannelDialplan",
            (
                ("dialplan_app", "Playback"),
                ("dialplan_app_data", "all-circuits-busy-now,noanswer"),
            ),
            "Ring",
        ),
        ("ChannelHangupRequest", (("cause", 127), ("tech_cause", 487)), "Ring"),
        ("ChannelHangupRequest", (("cause", 16), ("soft", True), ("tech_cause", 487)), "Ring"),
        (
            "ChannelDestroyed",
            (("cause", 127), ("tech_cause", 487), ("cause_txt", "Interworking, unspecified")),
            "Ring",
        ),
    ]
