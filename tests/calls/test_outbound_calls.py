"""Softphones calling out with the virtual number, through the daemon, against the simulator.

The softphone's context sends the call to `Stasis(pbxd,outbound,${CALLERID(pres)})` with the
number as typed; pbxd presents the virtual number to the carrier, bridges on the far end's
answer (its early media reaching the softphone), refuses a forbidden destination before any
channel exists, and lets emergency numbers out under the user's real identity. Each test runs
on SQLite and PostgreSQL (the `cdr_url` fixture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pbxd.cdr.records import Direction, Disposition
from pbxd.config.model import Config
from pbxd.sim import PRES_PROHIB_NOT_SCREENED, PeerScript

from .conftest import ROUTING_YAML, CallLab, LabFactory, assert_no_errors, write_config

VIRTUAL = "+33170000001"  # what alice and bob present
LONDON = "+442079460123"  # what dave presents, through carrier-uk
ALICE_LINE = "+33140000099"  # alice's own line: what emergency services get

OUTBOUND_YAML = """\
    outbound:
      reception:
        softphones: [alice, bob]
        outbound_number: 01 70 00 00 01
        emergency_caller_id: 01 40 00 00 99
        timeout: 20
      london-desk:
        softphones: [dave]
        outbound_number: +44 20 7946 0123
        may_dial: ["+4420"]
        withhold: true
        timeout: 20
"""


@pytest.fixture
def lab_config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "config", routing=ROUTING_YAML + OUTBOUND_YAML)


def creates(lab: CallLab) -> list[str]:
    """Every endpoint pbxd sent to channels/create."""
    return [str(r["params"].get("endpoint")) for r in lab.requests("POST", "/channels/create")]


def order_of(lab: CallLab, *what: tuple[str, str]) -> list[int]:
    """The position in the REST log of the first request matching each (method, path part)."""
    positions = []
    for method, part in what:
        found = [
            i for i, r in enumerate(lab.sim.rest_log) if r["method"] == method and part in r["path"]
        ]
        assert found, f"no {method} {part}"
        positions.append(found[0])
    return positions


async def test_a_softphone_call_goes_out_presenting_the_virtual_number(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=4, hangup_after=30))
    call_id = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    entry = await lab.finish(call_id)

    assert creates(lab) == ["PJSIP/+33612345678@trunk-out"]
    leg = entry.legs[0]
    variables = lab.created_variables[leg.leg_id]
    assert variables["CONNECTEDLINE(num,i)"] == VIRTUAL
    assert variables["CALLERID(num)"] == VIRTUAL
    assert "CONNECTEDLINE(pres,i)" not in variables
    far_end = lab.sim.channel_history(leg.leg_id)
    assert far_end is not None and far_end.presented is not None
    assert far_end.presented.number == VIRTUAL  # the carrier's From / PAI: never "alice"
    call = entry.call
    assert call.direction is Direction.OUTBOUND
    assert (call.did, call.caller_number, call.dialled) == (VIRTUAL, "alice", "+33612345678")
    assert call.presented == VIRTUAL and not call.emergency
    assert call.disposition is Disposition.ANSWERED
    assert call.billsec == 30
    # In the virtual number's call log, beside its inbound calls.
    log_entries = await lab.store.call_log(VIRTUAL)
    assert [e.call.call_id for e in log_entries] == [call_id]
    assert_no_errors(logs)


async def test_the_softphone_hears_the_carriers_early_media_before_the_answer(
    lab: CallLab,
) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(progress_after=1, answer_after=6, hangup_after=5))
    call_id = await lab.sim.softphone_call("bob", "0612345678")
    await lab.wait_for(
        lambda: (c := lab.sim.channel(call_id)) is not None and c.early_media,
        within=5,
        what="183 to the softphone",
    )
    softphone = lab.sim.channel(call_id)
    assert softphone is not None and not softphone.answered
    create, bridge, add, dial = order_of(
        lab,
        ("POST", "/channels/create"),
        ("POST", "/bridges"),
        ("POST", "/addChannel"),
        ("POST", "/dial"),
    )
    assert create < bridge < add < dial  # bridged before the INVITE: early media flows
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert entry.call.billsec == 5


@pytest.mark.parametrize(
    ("script", "cause", "disposition"),
    [
        (PeerScript(busy_after=2), 17, Disposition.BUSY),
        (PeerScript(reject_after=1, reject_cause=1), 1, Disposition.FAILED),  # 404
        (PeerScript(reject_after=1, reject_cause=34), 34, Disposition.FAILED),  # 503
        (PeerScript(), 19, Disposition.NO_ANSWER),  # rings out after the 20 s timeout
    ],
    ids=["busy", "404", "503", "no-answer"],
)
async def test_the_carriers_refusal_reaches_the_softphone(
    lab: CallLab, script: PeerScript, cause: int, disposition: Disposition
) -> None:
    lab.sim.script("PJSIP/trunk-out", script)
    call_id = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    entry = await lab.finish(call_id)

    assert entry.call.disposition is disposition
    assert entry.call.answered_at is None and entry.call.billsec == 0
    assert lab.final_cause(call_id) == cause


@pytest.mark.parametrize(
    ("dialled", "why"),
    [
        ("+44 20 7946 0000", "outside the allowed destinations"),  # carrier-fr: +33 only
        ("00 882 1000 0001", "outside the allowed destinations"),  # satellite, international
        ("08 99 12 34 56", "denied destination"),  # FR premium rate, under the allowed +33
    ],
)
async def test_a_forbidden_destination_is_refused_before_any_channel(
    logs: list[dict[str, Any]], lab: CallLab, dialled: str, why: str
) -> None:
    call_id = await lab.sim.softphone_call("alice", dialled)
    entry = await lab.finish(call_id)

    assert creates(lab) == []
    assert lab.requests("POST", "/bridges") == []
    assert lab.final_cause(call_id) == 52  # outgoing calls barred
    call = entry.call
    assert call.disposition is Disposition.REJECTED
    assert call.direction is Direction.OUTBOUND and call.did == VIRTUAL
    assert call.dialled is not None and call.dialled.startswith("+")
    assert entry.legs == []
    refusals = [line for line in logs if line.get("event") == "call rejected"]
    assert len(refusals) == 1 and why in refusals[0]["detail"]


async def test_a_user_narrowed_to_london_cannot_call_the_rest_of_the_uk(lab: CallLab) -> None:
    lab.sim.script("PJSIP/trunk-uk", PeerScript(answer_after=2, hangup_after=3))
    allowed = await lab.sim.softphone_call("dave", "+44 20 7946 0999")
    entry = await lab.finish(allowed)
    assert creates(lab) == ["PJSIP/+442079460999@trunk-uk"]
    assert entry.call.did == LONDON
    refused = await lab.sim.softphone_call("dave", "+44 161 496 0000")
    entry = await lab.finish(refused)
    assert creates(lab) == ["PJSIP/+442079460999@trunk-uk"]
    assert entry.call.disposition is Disposition.REJECTED


async def test_a_softphone_without_outbound_rights_is_refused(lab: CallLab) -> None:
    lab.sim.add_endpoint("PJSIP", "eve", caller_name="Eve", caller_number="eve")
    call_id = await lab.sim.softphone_call("eve", "06 12 34 56 78")
    entry = await lab.finish(call_id)
    assert creates(lab) == []
    assert lab.final_cause(call_id) == 21
    assert entry.call.disposition is Disposition.REJECTED


async def test_clir_withholds_the_virtual_number_and_an_emergency_call_never_does(
    lab: CallLab,
) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=2))
    withheld = await lab.sim.softphone_call("alice", "*31*0612345678")
    by_phone = await lab.sim.softphone_call(
        "bob", "0612345679", presentation=PRES_PROHIB_NOT_SCREENED
    )
    emergency = await lab.sim.softphone_call("alice", "112")
    entries = {c: await lab.finish(c) for c in (withheld, by_phone, emergency)}

    for call_id in (withheld, by_phone):
        leg = entries[call_id].legs[0]
        variables = lab.created_variables[leg.leg_id]
        assert variables["CONNECTEDLINE(num,i)"] == VIRTUAL  # the carrier still needs it (PAI)
        assert variables["CONNECTEDLINE(pres,i)"] == "prohib_not_screened"
    leg = entries[emergency].legs[0]
    assert leg.destination == "PJSIP/112@trunk-out"
    variables = lab.created_variables[leg.leg_id]
    assert variables["CONNECTEDLINE(num,i)"] == ALICE_LINE
    assert "CONNECTEDLINE(pres,i)" not in variables
    call = entries[emergency].call
    assert call.emergency and call.dialled == "112" and call.presented == ALICE_LINE
    # carrier-fr carries at most 2 legs and two calls held them: 112 went out anyway.
    assert call.disposition is Disposition.ANSWERED


async def test_dave_withholds_by_default_but_not_for_999(lab: CallLab) -> None:
    lab.sim.script("PJSIP/trunk-uk", PeerScript(answer_after=1, hangup_after=2))
    ordinary = await lab.sim.softphone_call("dave", "020 7946 0999")
    emergency = await lab.sim.softphone_call("dave", "999")
    first, second = await lab.finish(ordinary), await lab.finish(emergency)
    assert lab.created_variables[first.legs[0].leg_id]["CONNECTEDLINE(pres,i)"] == (
        "prohib_not_screened"
    )
    assert second.legs[0].destination == "PJSIP/999@trunk-uk"
    assert "CONNECTEDLINE(pres,i)" not in lab.created_variables[second.legs[0].leg_id]


async def test_an_inbound_call_to_the_same_number_is_still_inbound(
    lab: CallLab, make_lab: LabFactory
) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
    call_id = await lab.call(VIRTUAL)
    entry = await lab.finish(call_id)
    assert entry.call.direction is Direction.INBOUND
    assert entry.call.dialled is None
