"""A caller who withheld their number (CLIR) stays withheld on every leg pbxd rings.

The call comes in as the shipped dialplan hands it over (`Stasis(pbxd,${CALLERID(pres)})`,
carrier PAI with `Privacy: id`: the real number, presentation prohib_not_screened), over real
sockets to the simulator. What each leg's INVITE would show is `SimChannel.presented`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pbxd.cdr.records import Disposition
from pbxd.sim import (
    PRES_ALLOWED_NOT_SCREENED,
    PRES_PROHIB_NOT_SCREENED,
    SHIPPED_STASIS_ARGS,
    CallerId,
    PeerScript,
)

from .conftest import CALLER, HUNT, MOBILE, MOBILES, RINGALL, CallLab, assert_no_errors

SOFTPHONE_LEGS = (1, 2, 3)  # alice, bob, dave on the ringall route


async def incoming(
    lab: CallLab,
    did: str,
    *,
    presentation: int = PRES_PROHIB_NOT_SCREENED,
    stasis_args: Sequence[str] = SHIPPED_STASIS_ARGS,
    trunk: str = "trunk-in",
    caller: str = CALLER,
    hangup_after: float = 3,
) -> str:
    return await lab.sim.inbound_call(
        did,
        caller,
        "Jean",
        trunk=trunk,
        hangup_after=hangup_after,
        presentation=presentation,
        stasis_args=stasis_args,
        ringing=tuple(stasis_args) == SHIPPED_STASIS_ARGS,  # the shipped Ringing() with it
    )


async def presented(lab: CallLab, call_id: str, legs: Sequence[int]) -> dict[int, CallerId]:
    """What each leg's INVITE showed, once every one of them is dialled."""

    def dialled() -> bool:
        channels = [lab.sim.channel(f"{call_id}-{n}") for n in legs]
        return all(c is not None and c.presented is not None for c in channels)

    await lab.wait_for(dialled, what="every leg dialled")
    out: dict[int, CallerId] = {}
    for n in legs:
        channel = lab.sim.channel(f"{call_id}-{n}")
        assert channel is not None and channel.presented is not None
        out[n] = channel.presented.copy()
    return out


async def test_a_withheld_caller_rings_softphones_as_anonymous(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await incoming(lab, RINGALL)
    shown = await presented(lab, call_id, SOFTPHONE_LEGS)
    for n, identity in shown.items():
        assert (identity.name, identity.number) == ("Anonymous", "anonymous"), n
        # chan_pjsip leaves From as the endpoint's own user and sends no PAI to a phone.
        assert identity.presentation == PRES_PROHIB_NOT_SCREENED, n
        assert lab.created_variables[f"{call_id}-{n}"]["CONNECTEDLINE(pres,i)"] == (
            "prohib_not_screened"
        )
    assert all(CALLER not in vars_.values() for vars_ in lab.created_variables.values())
    entry = await lab.finish(call_id)
    # The operator still knows who called.
    assert entry.call.caller_number == CALLER
    assert entry.call.disposition is Disposition.ABANDONED
    assert_no_errors(logs)


async def test_a_withheld_caller_reaches_a_mobile_restricted(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Through the carrier the real number goes along (PAI, billing, emergency calls), but
    # restricted: trunk-out's trust_id_outbound sends `Privacy: id` and the carrier hides it.
    call_id = await incoming(lab, MOBILES)
    shown = await presented(lab, call_id, (1, 2))
    for n, identity in shown.items():
        assert identity.number == CALLER, n
        assert identity.presentation == PRES_PROHIB_NOT_SCREENED, n
    entry = await lab.finish(call_id)
    assert {leg.destination for leg in entry.legs} >= {
        f"PJSIP/{MOBILE[1]}@trunk-out",
        f"PJSIP/{MOBILE[2]}@trunk-out",
    }
    assert_no_errors(logs)


async def test_caller_id_policy_number_is_unchanged_but_drops_a_withheld_name(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The London number presents itself (it has no label): allowed, and not the caller's name.
    call_id = await incoming(lab, "02079460123", trunk="trunk-uk", caller="07700900123")
    shown = await presented(lab, call_id, (1,))
    assert shown[1] == CallerId("", "+442079460123")
    assert shown[1].presentation == PRES_ALLOWED_NOT_SCREENED
    assert "CONNECTEDLINE(pres,i)" not in lab.created_variables[f"{call_id}-1"]
    entry = await lab.finish(call_id)
    assert entry.call.caller_number == "+447700900123"
    assert_no_errors(logs)


@pytest.mark.parametrize(
    ("stasis_args", "presentation"),
    [
        ((), PRES_ALLOWED_NOT_SCREENED),  # plain Stasis(pbxd): an older dialplan
        (SHIPPED_STASIS_ARGS, PRES_ALLOWED_NOT_SCREENED),
        # A dialplan passing something else: pbxd cannot know, reads allowed, refuses nothing.
        (("sales",), PRES_PROHIB_NOT_SCREENED),
        # Digits to str.isdigit() but not 0-9: once a crash (no CDR) or a guess (`٣٢` = 32).
        (("²",), PRES_ALLOWED_NOT_SCREENED),
        (("٣٢",), PRES_ALLOWED_NOT_SCREENED),
    ],
)
async def test_a_caller_read_as_allowed_is_shown_and_answered(
    logs: list[dict[str, Any]],
    lab: CallLab,
    stasis_args: tuple[str, ...],
    presentation: int,
) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await incoming(
        lab, RINGALL, presentation=presentation, stasis_args=stasis_args, hangup_after=4
    )
    shown = await presented(lab, call_id, SOFTPHONE_LEGS)
    assert {(i.name, i.number, i.presentation) for i in shown.values()} == {
        ("Jean", CALLER, PRES_ALLOWED_NOT_SCREENED)
    }
    assert all("CONNECTEDLINE(pres,i)" not in v for v in lab.created_variables.values())
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED
    assert entry.call.answered_by == "bob"
    assert_no_errors(logs)


async def test_an_odd_prohib_argument_is_read_as_withheld(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await incoming(lab, RINGALL, stasis_args=("prohibited_by_carrier",))
    shown = await presented(lab, call_id, SOFTPHONE_LEGS)
    assert {(i.number, i.presentation) for i in shown.values()} == {
        ("anonymous", PRES_PROHIB_NOT_SCREENED)
    }
    await lab.finish(call_id)
    assert_no_errors(logs)


async def test_a_withheld_hunt_adopted_after_a_restart_stays_withheld(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # pbxd dies while alice rings; the next run goes on with bob, who must not see the number.
    lab.sim.script("PJSIP/alice", PeerScript(busy_after=2))
    call_id = await incoming(lab, HUNT, hangup_after=5)
    await lab.wait_for(
        lambda: (
            call_id in lab.daemon.calls
            and bool(lab.requests("POST", f"/channels/{call_id}-1/dial"))
        ),
        what="alice dialled",
    )
    await lab.store.flush()  # the call's rows are written: the restart adopts it
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    shown = await presented(lab, call_id, (2,))
    assert (shown[2].number, shown[2].presentation) == ("anonymous", PRES_PROHIB_NOT_SCREENED)
    entry = await lab.finish(call_id)
    assert [leg.target for leg in entry.legs][:2] == ["alice", "bob"]
    assert_no_errors(logs)


async def test_a_call_pbxd_fails_to_handle_still_gets_a_cdr(
    lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever breaks the handling of a StasisStart, the caller goes back to the dialplan
    # and the call is on record (failed), instead of vanishing from the call log.
    def broken(*_: object) -> None:
        raise RuntimeError("a planner bug")

    monkeypatch.setattr("pbxd.calls.daemon.plan_call", broken)
    call_id = await incoming(lab, RINGALL, stasis_args=("²",), hangup_after=2)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.FAILED
    assert (entry.call.did, entry.call.caller_number) == (RINGALL, CALLER)
    sent_back = lab.requests("POST", f"/channels/{call_id}/continue")
    assert [r["params"].get("label") for r in sent_back] == ["unavailable"]
