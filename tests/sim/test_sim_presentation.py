"""Caller presentation in the simulator: a withheld caller's Stasis args, CONNECTEDLINE(pres).

Asterisk has the presentation on every party but ARI's Channel model does not show it: the
dialplan passes it as a Stasis argument, and a leg's connected-line presentation decides
what chan_pjsip puts in From/PAI (`SimChannel.presented`).
"""

from __future__ import annotations

import pytest

from pbxd.sim import (
    PRES_ALLOWED_NOT_SCREENED,
    PRES_NUMBER_NOT_AVAILABLE,
    PRES_PROHIB_NOT_SCREENED,
    SHIPPED_STASIS_ARGS,
    AriSimulator,
    CallerId,
)
from pbxd.sim.model import parse_presentation, presentation_name

from .conftest import Ari, EventReader

DID, CALLER_NUM = "+33170000001", "+33612000001"


async def test_plain_stasis_has_no_args_by_default(sim: AriSimulator, events: EventReader) -> None:
    # The captures were recorded with `Stasis(pbxd)`: replays rely on this default.
    caller = await sim.inbound_call(DID, CALLER_NUM, "Jean")
    start = await events.next("StasisStart", caller)
    assert start["args"] == []
    assert start["channel"]["dialplan"]["app_data"] == "pbxd"
    chan = sim.channel(caller)
    assert chan is not None and chan.caller.presentation == PRES_ALLOWED_NOT_SCREENED


@pytest.mark.parametrize(
    ("presentation", "expected"),
    [
        (PRES_ALLOWED_NOT_SCREENED, "allowed_not_screened"),
        (PRES_PROHIB_NOT_SCREENED, "prohib_not_screened"),
        (35, "prohib"),
        (1, "allowed_passed_screen"),
    ],
)
async def test_the_shipped_dialplan_passes_callerid_pres(
    sim: AriSimulator, events: EventReader, presentation: int, expected: str
) -> None:
    caller = await sim.inbound_call(
        DID,
        CALLER_NUM,
        "Jean",
        presentation=presentation,
        stasis_args=SHIPPED_STASIS_ARGS,
        ringing=True,
    )
    start = await events.next("StasisStart", caller)
    assert start["args"] == [expected, "ringing"]
    assert start["channel"]["dialplan"]["app_data"] == f"pbxd,{expected},ringing"
    # A withheld caller's number is still the real one (carrier PAI + Privacy: id).
    assert start["channel"]["caller"] == {"name": "Jean", "number": CALLER_NUM}


async def test_a_caller_with_no_identity_is_unavailable(
    sim: AriSimulator, events: EventReader
) -> None:
    caller = await sim.inbound_call(DID, "", "", stasis_args=SHIPPED_STASIS_ARGS, ringing=True)
    start = await events.next("StasisStart", caller)
    assert start["args"] == ["unavailable", "ringing"]


async def test_stasis_args_are_substituted_and_split_as_the_dialplan_does(
    sim: AriSimulator, events: EventReader
) -> None:
    caller = await sim.inbound_call(
        DID,
        CALLER_NUM,
        "Jean",
        stasis_args=("${EXTEN}", "${CALLERID(num)}", "x${NOT_SET}y", "a,b"),
    )
    start = await events.next("StasisStart", caller)
    assert start["args"] == [DID, CALLER_NUM, "xy", "a", "b"]


async def test_connectedline_pres_reaches_the_presented_identity_without_an_event(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await sim.inbound_call(DID, CALLER_NUM, "Jean", presentation=PRES_PROHIB_NOT_SCREENED)
    await events.next("StasisStart", caller)
    body = {
        "variables": {
            "CONNECTEDLINE(num,i)": "anonymous",
            "CONNECTEDLINE(name,i)": "Anonymous",
            "CONNECTEDLINE(pres,i)": "prohib_not_screened",
        }
    }
    status, leg = await ari.post(
        "/channels/create", body, endpoint="PJSIP/alice", app="pbxd", originator=caller
    )
    assert status == 200
    await events.next("StasisStart", leg["id"])
    seen = [e["type"] for e in events.events if (e.get("channel") or {}).get("id") == leg["id"]]
    # Asterisk compares connected name/number only: the pres write raises no event.
    assert seen.count("ChannelConnectedLine") == 2
    assert (await ari.post(f"/channels/{leg['id']}/dial"))[0] == 204
    chan = sim.channel(leg["id"])
    assert chan is not None and chan.presented is not None
    assert chan.presented == CallerId("Anonymous", "anonymous")
    assert chan.presented.presentation == PRES_PROHIB_NOT_SCREENED
    # ARI's CallerID model has no presentation.
    assert leg["connected"] == {"name": "Anonymous", "number": "anonymous"}


async def test_a_leg_without_pres_is_presented_allowed(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    body = {"variables": {"CONNECTEDLINE(num,i)": CALLER_NUM}}
    status, leg = await ari.post("/channels/create", body, endpoint="PJSIP/bob", app="pbxd")
    assert status == 200
    await events.next("StasisStart", leg["id"])
    assert (await ari.post(f"/channels/{leg['id']}/dial"))[0] == 204
    chan = sim.channel(leg["id"])
    assert chan is not None and chan.presented is not None
    assert chan.presented.presentation == PRES_ALLOWED_NOT_SCREENED


async def test_dial_with_caller_copies_the_callers_presentation(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    # `dial?caller=` copies the whole caller party (ast_connected_line_copy_from_caller).
    caller = await sim.inbound_call(DID, CALLER_NUM, "Jean", presentation=PRES_PROHIB_NOT_SCREENED)
    await events.next("StasisStart", caller)
    status, leg = await ari.post("/channels/create", endpoint="PJSIP/dave", app="pbxd")
    assert status == 200
    await events.next("StasisStart", leg["id"])
    assert (await ari.post(f"/channels/{leg['id']}/dial", caller=caller))[0] == 204
    chan = sim.channel(leg["id"])
    assert chan is not None and chan.presented is not None
    assert chan.presented.number == CALLER_NUM
    assert chan.presented.presentation == PRES_PROHIB_NOT_SCREENED


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("prohib_not_screened", 32),
        ("PROHIB", 35),
        (" allowed ", 3),
        ("unavailable", PRES_NUMBER_NOT_AVAILABLE),
        ("33", 33),  # a leading digit: atoi, as func_callerid.c
        ("1x", 1),
        ("bogus", None),  # Asterisk logs an error and leaves the value unchanged
        ("", None),
    ],
)
def test_parse_presentation_as_func_callerid(value: str, code: int | None) -> None:
    assert parse_presentation(value) == code


def test_presentation_names() -> None:
    assert presentation_name(32) == "prohib_not_screened"
    assert presentation_name(99) == "unknown"


async def test_dial_with_caller_copies_the_presentation_even_with_the_same_number(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await sim.inbound_call(DID, CALLER_NUM, "Jean", presentation=PRES_PROHIB_NOT_SCREENED)
    await events.next("StasisStart", caller)
    body = {"variables": {"CONNECTEDLINE(num,i)": CALLER_NUM, "CONNECTEDLINE(name,i)": "Jean"}}
    status, leg = await ari.post("/channels/create", body, endpoint="PJSIP/bob", app="pbxd")
    assert status == 200
    await events.next("StasisStart", leg["id"])
    before = len(events.events)
    assert (await ari.post(f"/channels/{leg['id']}/dial", caller=caller))[0] == 204
    chan = sim.channel(leg["id"])
    assert chan is not None and chan.presented is not None
    assert chan.presented.presentation == PRES_PROHIB_NOT_SCREENED
    await events.next("Dial", leg["id"])
    assert "ChannelConnectedLine" not in [e["type"] for e in events.events[before:]]
