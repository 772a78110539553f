"""Call through: a registered mobile rings an access number, keys its PIN then `#`, the
number it calls then `#`, and the call goes out presenting the virtual number, by the same
rules as a softphone's (through the daemon, on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pbxd.cdr.records import Direction, Disposition, StepKind, StepOutcome
from pbxd.config.model import Config
from pbxd.sim import PeerScript

from .conftest import ROUTING_YAML, CallLab, assert_no_errors, write_config

ACCESS = "+33170000003"  # the access number (its route never runs)
MOBILE = "+33600000042"  # the CEO's registered mobile
VIRTUAL = "+33170000001"  # what the people called see

CALL_THROUGH_YAML = """\
    outbound:
      ceo:
        softphones: [carol]
        outbound_number: 01 70 00 00 01
        mobiles: [06 00 00 00 42]
        pin: "4321"
        timeout: 20
    call_through:
      numbers: [01 70 00 00 03]
      timeout: 10
"""


@pytest.fixture
def lab_config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "config", routing=ROUTING_YAML + CALL_THROUGH_YAML)


def creates(lab: CallLab) -> list[str]:
    return [str(r["params"].get("endpoint")) for r in lab.requests("POST", "/channels/create")]


async def call_through(lab: CallLab, *keys: tuple[float, str], caller: str = MOBILE) -> str:
    """The mobile rings the access number and keys `keys` (seconds after the answer)."""
    return await lab.sim.inbound_call(
        ACCESS, caller, "CEO", trunk="trunk-in", script=PeerScript(keys=keys)
    )


async def test_a_registered_mobile_calls_out_with_the_virtual_number(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=2, hangup_after=30))
    call_id = await call_through(lab, (1.0, "4321#"), (3.0, "06 12 34 56 78#".replace(" ", "")))
    entry = await lab.finish(call_id)

    assert creates(lab) == ["PJSIP/+33612345678@trunk-out"]
    leg = entry.legs[0]
    assert lab.created_variables[leg.leg_id]["CONNECTEDLINE(num,i)"] == VIRTUAL
    call = entry.call
    assert (call.direction, call.did, call.caller_number) == (Direction.OUTBOUND, VIRTUAL, MOBILE)
    assert (call.dialled, call.presented) == ("+33612345678", VIRTUAL)
    assert call.disposition is Disposition.ANSWERED and leg.answered_at is not None
    first = call.path[0]
    assert (first.kind, first.outcome) == (StepKind.CALL_THROUGH, StepOutcome.CHOSEN)
    # The PIN is in no log line.
    assert not any("4321" in str(line) for line in logs)
    assert_no_errors(logs)


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        (((1.0, "1234#"), (3.0, "0612345678#")), "wrong PIN"),
        (((1.0, "4321#"), (3.0, "00493012345678#")), "outside the allowed destinations"),
        (((1.0, "4321#"), (3.0, "0899123456#")), "denied destination"),
        (((1.0, "4321#"),), "no key in time"),
    ],
)
async def test_a_refused_call_through_never_creates_a_channel(
    lab: CallLab, keys: tuple[tuple[float, str], ...], why: str
) -> None:
    call_id = await call_through(lab, *keys)
    entry = await lab.finish(call_id)
    assert creates(lab) == []
    assert lab.final_cause(call_id) == 21
    assert why in lab.timeline(call_id)
    assert entry.call.path[0].kind is StepKind.CALL_THROUGH


async def test_an_unknown_mobile_is_refused_unanswered(lab: CallLab) -> None:
    call_id = await call_through(lab, (1.0, "4321#"), caller="+33600000043")
    entry = await lab.finish(call_id)
    assert entry.call.answered_at is None
    assert creates(lab) == [] and lab.final_cause(call_id) == 21


async def test_an_emergency_number_goes_out_from_a_mobile_too(lab: CallLab) -> None:
    lab.sim.script("PJSIP/112@trunk-out", PeerScript(answer_after=1, hangup_after=5))
    call_id = await call_through(lab, (1.0, "4321#"), (3.0, "112#"))
    entry = await lab.finish(call_id)
    assert creates(lab) == ["PJSIP/112@trunk-out"]
    assert entry.call.emergency
