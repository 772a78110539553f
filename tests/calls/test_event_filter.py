"""pbxd asks Asterisk for the events it uses only, at every connection, and carries on with
every event where Asterisk cannot filter (an older Asterisk, or an error answer)."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from pbxd.calls.daemon import EVENTS_USED
from pbxd.cdr.records import Disposition
from pbxd.sim import PeerScript

from .conftest import REPO, SHORT, CallLab, LabFactory, assert_no_errors
from .test_resilience import wait_reconnected

FILTER = "/applications/pbxd/eventFilter"
REFERENCE = REPO / "tests" / "ari_conformance" / "data" / "ari-22.10.1.json"


def filter_requests(lab: CallLab) -> list[dict[str, Any]]:
    return [r for r in lab.sim.rest_log if r["method"] == "PUT" and r["path"] == FILTER]


def refusals(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == "ari_event_filter_refused"]


async def answered_call(lab: CallLab) -> str:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=2))
    call_id = await lab.call(SHORT)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    legs = {leg.target: leg for leg in entry.legs}
    assert legs["bob"].answered_at is not None
    return call_id


async def test_the_filter_is_set_at_start_up_and_after_every_reconnection(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    [first] = filter_requests(lab)
    assert first["status"] == 200
    assert [e["type"] for e in first["body"]["events_allowed"]] == list(EVENTS_USED)
    assert lab.daemon.events_filtered is True
    lab.sim.drop_websockets()
    await wait_reconnected(lab, 2)
    assert [r["status"] for r in filter_requests(lab)] == [200, 200]
    call_id = await answered_call(lab)
    timeline = lab.timeline(call_id)
    assert "alice: ringing" in timeline and "bob: ringing" in timeline, timeline
    delivered = {e["data"]["type"] for e in lab.sim.event_log}
    assert delivered <= set(EVENTS_USED)
    assert refusals(logs) == []
    assert_no_errors(logs)


async def test_an_asterisk_without_filtering_sends_everything_and_calls_go_on(
    logs: list[dict[str, Any]], make_lab: LabFactory
) -> None:
    lab = await make_lab(event_filter=False)
    assert [r["status"] for r in filter_requests(lab)] == [404]
    assert lab.daemon.events_filtered is False
    lab.sim.drop_websockets()
    await wait_reconnected(lab, 2)
    assert [r["status"] for r in filter_requests(lab)] == [404, 404]  # asked again...
    assert len(refusals(logs)) == 1  # ...but said once
    call_id = await answered_call(lab)
    delivered = {e["data"]["type"] for e in lab.sim.event_log}
    assert {"Dial", "ChannelVarset"} <= delivered  # the events pbxd no longer asks for
    # The legs' ringing was seen all the same (ChannelStateChange Ringing).
    timeline = lab.timeline(call_id)
    assert "alice: ringing" in timeline and "bob: ringing" in timeline, timeline
    assert_no_errors(logs)


@pytest.mark.parametrize("status", [400, 501])
async def test_an_error_answer_to_the_filter_is_a_fallback(
    status: int, logs: list[dict[str, Any]], make_lab: LabFactory
) -> None:
    lab = await make_lab(start=False)
    lab.sim.faults.fail_requests("PUT", FILTER, status, {"message": "refused"}, times=None)
    await lab.start_service()
    [refused] = refusals(logs)
    assert (refused["status"], refused["message"]) == (status, "refused")
    assert lab.daemon.events_filtered is False
    await answered_call(lab)
    assert_no_errors(logs)


def test_every_event_type_pbxd_handles_is_asked_for() -> None:
    # An event type named in the call code (a class, an `event.type ==` string) that is not in
    # EVENTS_USED would never come from an Asterisk that filters: its handler would be dead.
    event_types = set(json.loads(REFERENCE.read_text())["models"]["Event"]["subTypes"])
    named: dict[str, set[str]] = {}
    root = REPO / "pbxd"
    for path in root.rglob("*.py"):
        if path.parent.name in ("ari", "sim"):
            continue  # the parser and the simulator know every type by design
        if path.name == "mastercsv.py":
            continue  # its "Dial" is the Dial() application a CDR names, never handled as an event
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            if name in event_types:
                named.setdefault(name, set()).add(str(path.relative_to(REPO)))
    missing = {name: sorted(paths) for name, paths in named.items() if name not in EVENTS_USED}
    assert missing == {}
    assert set(EVENTS_USED) <= event_types
    assert {"StasisStart", "ChannelDestroyed"} <= set(named)  # the scan does see the code


def test_each_event_type_is_asked_for_once() -> None:
    assert len(set(EVENTS_USED)) == len(EVENTS_USED), EVENTS_USED
