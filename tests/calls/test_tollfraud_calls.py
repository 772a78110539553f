"""Toll fraud at run time, against the simulator: a leg pbxd must not dial is never created
(and the call log says why), and an answered leg is cut at its maximum duration."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxd.cdr.records import Disposition
from pbxd.cdr.reports import format_table
from pbxd.config.model import Config, Target
from pbxd.dialplan import plan as plan_module
from pbxd.sim import PeerScript

from .conftest import (
    MOBILES,
    RINGALL,
    ROUTING_YAML,
    CallLab,
    LabFactory,
    assert_no_errors,
    seconds,
    write_config,
)

SECOND_DESTINATION = "PJSIP/{number}@trunk-out&Local/+882100000001@from-internal"


def swap_target(config: Config, target: Target) -> None:
    """Put `target` in place of its namesake in every route, bypassing `pbxd check`."""
    config.targets[target.name] = target
    for name, route in list(config.routes.items()):
        ring = tuple(
            dataclasses.replace(r, target=target) if r.target.name == target.name else r
            for r in route.targets
        )
        new = dataclasses.replace(route, targets=ring)
        config.routes[name] = new
        for number, routed in list(config.route_of_number.items()):
            if routed is route:
                config.route_of_number[number] = new


def hangups(lab: CallLab, channel_id: str) -> list[dict[str, Any]]:
    """pbxd's DELETE /channels/{channel_id} requests (that channel only)."""
    return [
        r
        for r in lab.requests("DELETE", f"/channels/{channel_id}")
        if r["path"].endswith(channel_id)
    ]


def creates(lab: CallLab) -> list[str]:
    """Every endpoint pbxd sent to channels/create."""
    return [str(r["params"].get("endpoint")) for r in lab.requests("POST", "/channels/create")]


@pytest.fixture(params=["planner", "last-check"])
def check_point(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """`last-check`: a planner that forgot its check; the one before channels/create holds."""
    if request.param == "last-check":
        monkeypatch.setattr(plan_module, "endpoint_refusal", lambda *_: None)
    return str(request.param)


async def test_a_second_destination_in_the_dial_template_is_never_dialled(
    logs: list[dict[str, Any]], make_lab: LabFactory, lab_config: Config, check_point: str
) -> None:
    trunk = lab_config.trunks["carrier-fr"]
    lab_config.trunks["carrier-fr"] = dataclasses.replace(trunk, dial_template=SECOND_DESTINATION)
    lab = await make_lab(lab_config)
    call_id = await lab.call(MOBILES)
    entry = await lab.finish(call_id)

    assert creates(lab) == []
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("m1", 52),
        ("m2", 52),
        ("m3", 52),
    ]
    assert entry.call.disposition is Disposition.FAILED
    barred = [line for line in logs if line["event"] == "leg_barred"]
    assert len(barred) == 3 and "is not PJSIP/<number>@<endpoint>" in barred[0]["why"]
    table = format_table([entry], ZoneInfo("UTC"))
    assert "3: m1 barred, m2 barred, m3 barred" in table
    timeline = lab.timeline(call_id)
    assert "m1: not rung, barred:" in timeline
    assert_no_errors(logs)


async def test_a_softphone_that_is_a_premium_number_is_never_dialled(
    logs: list[dict[str, Any]], make_lab: LabFactory, lab_config: Config, check_point: str
) -> None:
    swap_target(lab_config, Target("alice", endpoint="PJSIP/+19005551234@trunk-out"))
    lab = await make_lab(lab_config)
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL, hangup_after=6)
    entry = await lab.finish(call_id)

    assert sorted(creates(lab)) == ["PJSIP/bob", "PJSIP/dave"]
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["alice"].hangup_cause == 52 and legs["alice"].answered_at is None
    assert entry.call.answered_by == "bob"  # the rest of the route rang as usual
    assert_no_errors(logs)


async def test_an_external_number_on_a_denied_prefix_is_never_dialled(
    logs: list[dict[str, Any]], make_lab: LabFactory, lab_config: Config, check_point: str
) -> None:
    # +33 is allowed; +3389 (premium-rate) is denied by default.
    swap_target(lab_config, Target("m2", number="+33899123456", trunk="carrier-fr"))
    lab = await make_lab(lab_config)
    call_id = await lab.call(MOBILES, hangup_after=2)
    entry = await lab.finish(call_id)

    assert sorted(creates(lab)) == ["PJSIP/+33612345671@trunk-out", "PJSIP/+33612345673@trunk-out"]
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["m2"].hangup_cause == 52
    [barred] = [line for line in logs if line["event"] == "leg_barred"]
    assert barred["why"] == "+33899123456 is a denied destination: +3389 is premium-rate (FR 089)"
    assert_no_errors(logs)


# ------------------------------------------------------------------- maximum call duration


def short_calls_config(directory: Path) -> Config:
    """The lab's configuration with the ringall route cut after 3 s answered."""
    routing = textwrap.dedent(ROUTING_YAML).replace(
        "    ring_time: 8\n    timeout: 10\n",
        "    ring_time: 8\n    timeout: 10\n    max_call_duration: 3\n",
    )
    assert "max_call_duration: 3" in routing
    return write_config(directory, routing=routing)


async def test_an_answered_leg_is_hung_up_at_its_maximum_duration(
    logs: list[dict[str, Any]], make_lab: LabFactory, tmp_path: Path
) -> None:
    lab = await make_lab(short_calls_config(tmp_path / "short"))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)  # nobody ever hangs up
    entry = await lab.finish(call_id)

    call = entry.call
    assert call.disposition is Disposition.ANSWERED and call.answered_by == "bob"
    bob = {leg.target: leg for leg in entry.legs}["bob"]
    assert 3.0 <= seconds(bob.answered_at, bob.ended_at) < 4.5
    assert call.billsec is not None and 3 <= call.billsec <= 4
    # Both sides hung up by pbxd with Q.850 102, which the call log shows.
    for channel in (call_id, f"{call_id}-2"):
        [hangup] = hangups(lab, channel)
        assert hangup["params"] == {"reason_code": "102"}
    assert (call.hangup_cause, bob.hangup_cause) == (102, 102)
    [cut] = [line for line in logs if line["event"] == "leg_max_duration"]
    assert (cut["target"], cut["max_duration"]) == ("bob", 3)
    table = format_table([entry], ZoneInfo("UTC"))
    assert "bob answered, cut at max duration" in table
    assert "102 (timer expired: max call duration)" in table
    assert_no_errors(logs)


async def test_a_call_that_ends_first_is_not_cut(
    logs: list[dict[str, Any]], make_lab: LabFactory, tmp_path: Path
) -> None:
    lab = await make_lab(short_calls_config(tmp_path / "short"))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL, hangup_after=3)  # 2 s answered, under the 3 s limit
    entry = await lab.finish(call_id)
    await lab.virtual_sleep(3)  # past the limit: the timer must be gone with the call

    assert entry.call.hangup_cause == 16
    assert [line for line in logs if line["event"] == "leg_max_duration"] == []
    assert hangups(lab, call_id) == []
    assert_no_errors(logs)


async def test_a_call_adopted_after_a_restart_keeps_its_maximum_duration(
    logs: list[dict[str, Any]], make_lab: LabFactory, tmp_path: Path
) -> None:
    lab = await make_lab(short_calls_config(tmp_path / "short"))
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1))
    call_id = await lab.call(RINGALL)
    await lab.wait_for(
        lambda: call_id in lab.daemon.calls and lab.daemon.calls[call_id].state == "bridged",
        what="bridged",
    )
    await lab.store.flush()
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    entry = await lab.finish(call_id)

    # Counted from the answer before the restart, with the route's 3 s, not the default 4 h.
    bob = {leg.target: leg for leg in entry.legs}["bob"]
    assert 3.0 <= seconds(bob.answered_at, bob.ended_at) < 4.5
    assert (entry.call.hangup_cause, bob.hangup_cause) == (102, 102)
    assert_no_errors(logs)
