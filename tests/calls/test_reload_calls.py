"""A reload with calls up, against the simulator on a virtual clock (SQLite, then PostgreSQL).

Calls in progress finish on the flow they were planned with, new calls take the new routing,
a refused configuration changes nothing, and the outbound legs up on a trunk still count
against its limit after the swap. The configuration is compiled in a child process as in
production (`compile_elsewhere`): virtual time stands still meanwhile.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pbxd.cdr.records import Disposition
from pbxd.config.reload import ReloadResult, RunningConfig

from .conftest import (
    HUNT,
    MOBILE,
    MOBILES,
    ROUTING_YAML,
    TRUNKS_YAML,
    CallLab,
    assert_no_errors,
)


def _config_dir(lab: CallLab) -> Path:
    return lab.config.settings.config_path.parent


def _rewrite(lab: CallLab, name: str, text: str, old: str, new: str) -> None:
    """Write `text` with `old` replaced by `new` (exactly once) as the lab's file `name`."""
    assert text.count(old) == 1, old
    (_config_dir(lab) / name).write_text(textwrap.dedent(text.replace(old, new)), encoding="utf-8")


async def _reload(lab: CallLab) -> tuple[RunningConfig, ReloadResult]:
    """Reload the lab's files into its running daemon, as SIGHUP does."""
    assert lab.service is not None
    running = RunningConfig(lab.config)
    running.on_swap(lab.service.use_config)
    return running, await running.reload()


def _leg_targets(lab: CallLab, call_id: str) -> list[str]:
    """The endpoints pbxd dialled for one call, in order."""
    return [
        str(r["params"]["endpoint"])
        for r in lab.requests("POST", "/channels/create")
        if str(r["params"].get("channelId", "")).startswith(f"{call_id}-")
    ]


# The text of the lab's hunt route, as the routing file has it.
HUNT_ROUTE = ROUTING_YAML[
    ROUTING_YAML.index("      - name: hunt\n") : ROUTING_YAML.index("      - name: offline-first")
]
NEW_HUNT_ROUTE = """\
      - name: front-desk
        numbers: [01 70 00 00 02]
        strategy: ringall
        targets: [dave]
        timeout: 6
"""


@pytest.mark.timeout(180)  # a child process compiles: slow on a loaded machine
async def test_a_call_ringing_during_a_reload_finishes_on_its_flow_new_calls_take_the_new(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    old_call = await lab.call(HUNT, "+33612000001")
    await lab.wait_for(lambda: len(lab.sim.channels) == 2, what="alice ringing")
    _rewrite(lab, "routing/main.yaml", ROUTING_YAML, HUNT_ROUTE, NEW_HUNT_ROUTE)

    running, result = await _reload(lab)

    assert result.accepted, result.as_dict()
    assert lab.daemon.config is running.current and "front-desk" in running.current.routes
    new_call = await lab.call(HUNT, "+33612000002")
    old_entry = await lab.finish(old_call)
    new_entry = await lab.store.get_call(new_call)
    assert new_entry is not None
    # The ringing call walked its own hunt to the end: alice, then bob, then dave.
    assert _leg_targets(lab, old_call) == ["PJSIP/alice", "PJSIP/bob", "PJSIP/dave"]
    assert old_entry.call.route == "hunt"
    assert lab.final_cause(old_call) == 17  # its own no-answer: busy
    # The new call rang the new route's only target, for the new route's time.
    assert _leg_targets(lab, new_call) == ["PJSIP/dave"]
    assert new_entry.call.route == "front-desk"
    assert new_entry.call.disposition is Disposition.NO_ANSWER
    assert lab.final_cause(new_call) != 17
    assert_no_errors(logs)


@pytest.mark.timeout(180)  # a child process compiles: slow on a loaded machine
async def test_a_refused_configuration_leaves_new_calls_on_the_running_one(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    before = lab.daemon.config
    _rewrite(lab, "routing/main.yaml", ROUTING_YAML, HUNT_ROUTE, NEW_HUNT_ROUTE)
    _rewrite(lab, "sip-trunks.yaml", TRUNKS_YAML, "max_outbound_legs: 2", "max_outbound_legs: x")

    _, result = await _reload(lab)

    assert not result.accepted
    assert [str(d).split(": ")[0].rsplit(":", 2)[0] for d in result.errors] == [
        str(_config_dir(lab) / "sip-trunks.yaml")
    ]
    assert lab.daemon.config is before
    call_id = await lab.call(HUNT)
    entry = await lab.finish(call_id)
    assert entry.call.route == "hunt"
    assert _leg_targets(lab, call_id) == ["PJSIP/alice", "PJSIP/bob", "PJSIP/dave"]
    refused = [line for line in logs if line["event"] == "config_reload_refused"]
    assert len(refused) == 1
    errors = [line["diagnostic"] for line in logs if line["event"] == "config_error"]
    assert len(errors) == 1 and "sip-trunks.yaml:" in errors[0]


@pytest.mark.timeout(180)  # a child process compiles: slow on a loaded machine
async def test_outbound_legs_up_on_a_trunk_still_count_after_a_reload(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Three mobiles on carrier-fr, which allows 2 outbound legs: the first call holds both.
    first = await lab.call(MOBILES, "+33612000001", hangup_after=4)
    await lab.wait_for(lambda: len(lab.sim.channels) == 3, what="caller + 2 legs")
    assert lab.daemon.trunk_legs("carrier-fr") == 2
    _rewrite(lab, "sip-trunks.yaml", TRUNKS_YAML, "max_outbound_legs: 2", "max_outbound_legs: 3")

    running, result = await _reload(lab)

    assert result.accepted and running.current.trunks["carrier-fr"].max_outbound_legs == 3
    # The two legs up still count: the new limit leaves room for one more, not three.
    assert lab.daemon.trunk_legs("carrier-fr") == 2
    second = await lab.call(MOBILES, "+33612000002", hangup_after=2)
    await lab.wait_for(lambda: len(lab.sim.channels) == 5, what="second caller + 1 leg")
    await lab.virtual_sleep(0.5)
    assert lab.daemon.trunk_legs("carrier-fr") == 3
    assert _leg_targets(lab, second) == [f"PJSIP/{MOBILE[1]}@trunk-out"]
    await lab.finish(first)
    assert lab.daemon.trunk_legs("carrier-fr") == 0  # every slot given back after the swap
    refused = [line for line in logs if line["event"] == "trunk at capacity: leg not placed"]
    assert [(line["trunk"], line["target"]) for line in refused] == [
        ("carrier-fr", "m3"),  # the first call's third mobile, before the reload
        ("carrier-fr", "m2"),  # the second call's: one slot left of three
        ("carrier-fr", "m3"),
    ]
