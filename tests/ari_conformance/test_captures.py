"""The capture parser and the run comparison: they accept what they must and can fail."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from .captures import (
    Capture,
    ClientError,
    Request,
    WsState,
    body_shape,
    by_subject,
    capture_names,
    captures_dir,
    compare_events,
    compare_requests,
    format_events,
    load_capture,
    name_pattern,
    parse_records,
)


def _records(name: str) -> list[dict[str, Any]]:
    with (captures_dir() / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _reparse(records: list[dict[str, Any]]) -> Capture:
    return parse_records(copy.deepcopy(records), name="mutated")


def test_all_nine_captures_are_there() -> None:
    assert capture_names() == [
        "abandon",
        "busy",
        "callee_hangup_dtmf",
        "errors",
        "noanswer",
        "offline_then_mobile",
        "race_dial_before_stasisstart",
        "ringall_answer",
        "ws_reconnect",
    ]


@pytest.mark.parametrize("name", capture_names())
def test_a_capture_equals_itself(name: str) -> None:
    capture = load_capture(name)
    assert compare_events(capture.normalised_events(), capture.normalised_events()) == []
    assert compare_requests(capture, capture) == []


def test_typed_steps() -> None:
    capture = load_capture("race_dial_before_stasisstart")
    kinds = [type(s).__name__ for s in capture.steps]
    assert kinds[0] == "WsState" and kinds[-1] == "ClientError"
    assert capture.ws_states == ["connected"]
    assert capture.errors == [ClientError(t=10.92, error="TimeoutError()")]
    dial = capture.requests[-1]
    assert isinstance(dial, Request)
    assert (dial.method, dial.status, dial.body) == (
        "POST",
        409,
        {"message": "Channel not in Stasis application"},
    )
    assert dial.params == {"caller": "1795460466.150", "timeout": "3"}
    ws = load_capture("ws_reconnect").ws_states
    assert ws == ["connected", "closing", "closed", "connected"]
    assert isinstance(load_capture("errors").steps[0], WsState)


def test_roles_in_order_of_first_appearance() -> None:
    capture = load_capture("ringall_answer")
    assert capture.roles.describe == {
        "caller": "PJSIP/trunk-in-*",
        "bridge1": "mixing",
        "leg1": "PJSIP/alice-*",
        "leg2": "PJSIP/bob-*",
    }
    assert capture.roles.by_id["1795460541.163"] == "leg2"
    assert capture.roles.sub("/channels/1795460541.163/dial") == "/channels/{leg2}/dial"
    assert capture.roles.sub("1795460541.159,1795460541.161") == "{caller},{leg1}"
    assert capture.roles.sub("channel:1795460541.159") == "channel:{caller}"
    assert capture.roles.sub("/channels/nonexistent-id") == "/channels/nonexistent-id"
    mobile = load_capture("offline_then_mobile").roles.describe
    assert mobile["leg1"] == "PJSIP/trunk-out-*"
    assert mobile["playback1"] == "sound:beep"
    assert name_pattern("PJSIP/trunk-in-0000001c") == "PJSIP/trunk-in-*"


def test_normalisation_drops_only_channel_varset() -> None:
    capture = load_capture("ringall_answer")
    types = [e.type for e in capture.events]
    norm = capture.normalised_events()
    assert len(norm) == len(types) - types.count("ChannelVarset")
    assert "ChannelVarset" not in {e.type for e in norm}
    assert {"ChannelDialplan", "ChannelConnectedLine"} <= {e.type for e in norm}
    busy = format_events(load_capture("busy").normalised_events())
    assert busy[-4:] == [
        "ChannelHangupRequest(caller Ring cause=32)",
        "StasisEnd(caller Ring)",
        "ChannelHangupRequest(caller Ring cause=16)",
        "ChannelDestroyed(caller Ring cause=17)",
    ]
    dtmf = format_events(load_capture("callee_hangup_dtmf").normalised_events())
    assert "ChannelDtmfReceived(leg1 Up digit=1)" in dtmf
    assert "ChannelEnteredBridge(leg1 Up bridge=bridge1)" in dtmf
    assert dtmf[-1] == "BridgeDestroyed(bridge1)"


def test_the_ringing_race_is_canonical() -> None:
    """ringall_answer: alice's Dial RINGING precedes her Ringing state, bob's follows it."""
    groups = by_subject(load_capture("ringall_answer").normalised_events())
    for leg in ("leg1", "leg2"):
        seq = format_events(groups[leg])
        ringing = seq.index("ChannelStateChange(leg1 Ringing)".replace("leg1", leg))
        assert seq[ringing + 1] == f"Dial({leg} dialstatus='RINGING')"


def _move(records: list[dict[str, Any]], src: int, dst: int) -> list[dict[str, Any]]:
    out = copy.deepcopy(records)
    out.insert(dst, out.pop(src))
    return out


def _index(records: list[dict[str, Any]], etype: str, name_part: str, nth: int = 0) -> int:
    found = [
        i
        for i, r in enumerate(records)
        if r["kind"] == "event"
        and r["data"]["type"] == etype
        and name_part in json.dumps(r["data"].get("channel") or r["data"].get("peer") or {})
    ]
    return found[nth]


def test_concurrent_events_of_different_channels_may_interleave() -> None:
    records = _records("abandon")
    capture = load_capture("abandon")
    # Bob's ChannelHangupRequest (3.422) moved after the caller's ChannelDestroyed (3.422).
    src = _index(records, "ChannelHangupRequest", "bob")
    dst = _index(records, "ChannelDestroyed", "trunk-in")
    moved = _reparse(_move(records, src, dst))
    assert compare_events(capture.normalised_events(), moved.normalised_events()) == []


def test_events_far_apart_must_keep_their_order() -> None:
    records = _records("abandon")
    capture = load_capture("abandon")
    # Bob's Ringing (0.920) moved after the caller's hangup (3.420): not a race.
    src = _index(records, "ChannelStateChange", "bob")
    dst = _index(records, "ChannelHangupRequest", "trunk-in")
    moved = _reparse(_move(records, src, dst))
    problems = compare_events(capture.normalised_events(), moved.normalised_events())
    assert problems, "an order change across 2.5 s must be reported"
    assert all(p.startswith("order: ") for p in problems)
    assert any("ChannelStateChange(leg1 Ringing)" in p for p in problems)


def test_order_inside_a_burst_is_compared_across_channels() -> None:
    records = _records("ringall_answer")
    capture = load_capture("ringall_answer")
    # The caller's ChannelConnectedLine (1.938) moved before alice's ChannelEnteredBridge
    # (1.937): one burst, but a millisecond apart in Asterisk's own timing, so not a race.
    src = _index(records, "ChannelConnectedLine", "trunk-in")
    dst = _index(records, "ChannelEnteredBridge", "alice")
    moved = _reparse(_move(records, src, dst))
    problems = compare_events(capture.normalised_events(), moved.normalised_events())
    assert problems == [
        "order: ChannelEnteredBridge(leg1 Up bridge=bridge1) came before"
        " ChannelConnectedLine(caller Up) in the capture (0.001 s apart), after it from the"
        " simulator"
    ]


def test_order_within_one_channel_is_compared() -> None:
    records = _records("busy")
    capture = load_capture("busy")
    src = _index(records, "StasisEnd", "alice")
    dst = _index(records, "ChannelDestroyed", "alice")
    moved = _reparse(_move(records, src, dst))
    problems = compare_events(capture.normalised_events(), moved.normalised_events())
    assert len(problems) == 1
    assert problems[0].startswith("events of leg1 differ")


@pytest.mark.parametrize(
    ("etype", "who", "field", "value", "shows"),
    [
        ("ChannelDestroyed", "alice", "cause", 16, "ChannelDestroyed(leg1 Down cause=16)"),
        ("ChannelHangupRequest", "alice", "cause", 16, "ChannelHangupRequest(leg1 Down cause=16)"),
        ("Dial", "alice", "dialstatus", "BUSY", "Dial(leg1 dialstatus='BUSY')"),
        ("StasisStart", "trunk-in", "channel.state", "Up", "StasisStart(caller Up)"),
    ],
)
def test_fact_changes_are_reported(
    etype: str, who: str, field: str, value: Any, shows: str
) -> None:
    records = copy.deepcopy(_records("busy"))
    target = records[_index(records, etype, who)]["data"]
    *parents, last = field.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    problems = compare_events(
        load_capture("busy").normalised_events(), _reparse(records).normalised_events()
    )
    assert len(problems) == 1
    assert f"+{shows}" in problems[0]


def test_missing_and_extra_events_are_reported() -> None:
    records = _records("noanswer")
    capture = load_capture("noanswer")
    without = copy.deepcopy(records)
    del without[_index(records, "ChannelDialplan", "bob")]
    problems = compare_events(capture.normalised_events(), _reparse(without).normalised_events())
    assert problems and "-ChannelDialplan(leg1 Down)" in problems[0]
    extra = copy.deepcopy(records)
    extra.append(copy.deepcopy(records[_index(records, "StasisEnd", "bob")]))
    problems = compare_events(capture.normalised_events(), _reparse(extra).normalised_events())
    assert problems and "+StasisEnd(leg1 Ringing)" in problems[0]
    # ...but an extra ChannelVarset is not a difference.
    varset = copy.deepcopy(records)
    varset.append(
        {"t": 9.0, "kind": "event", "data": {**records[-1]["data"], "type": "ChannelVarset"}}
    )
    assert compare_events(capture.normalised_events(), _reparse(varset).normalised_events()) == []


@pytest.mark.parametrize(
    ("etype", "who", "change", "shows"),
    [
        ("ChannelHangupRequest", "trunk-in", {"soft": False}, "'soft': (True, False)"),
        ("ChannelDestroyed", "alice", {"tech_cause": 480}, "'tech_cause': (486, 480)"),
        ("ChannelDestroyed", "alice", {"cause_txt": "Busy"}, "'cause_txt': ('User busy', 'Busy')"),
        ("Dial", "alice", {"dialstring": "PJSIP/alice"}, "'dialstring': ('alice', 'PJSIP/alice')"),
        (
            "ChannelDialplan",
            "alice",
            {"dialplan_app": "Dial"},
            "'dialplan_app': ('Stasis', 'Dial')",
        ),
    ],
)
def test_detail_changes_are_reported(
    etype: str, who: str, change: dict[str, Any], shows: str
) -> None:
    records = copy.deepcopy(_records("busy"))
    records[_index(records, etype, who)]["data"].update(change)
    expected = load_capture("busy").normalised_events()
    got = _reparse(records).normalised_events()
    problems = compare_events(expected, got)
    assert len(problems) == 1
    assert f"{etype}(" in problems[0] and shows in problems[0]
    assert compare_events(expected, got, details=False) == []


def test_event_key_changes_are_reported() -> None:
    records = copy.deepcopy(_records("busy"))
    i = _index(records, "ChannelDestroyed", "alice")
    del records[i]["data"]["tech_cause"]
    records[i]["data"]["channel"]["channelvars"] = {}
    problems = compare_events(
        load_capture("busy").normalised_events(), _reparse(records).normalised_events()
    )
    assert problems[0] == (
        "ChannelDestroyed(leg1 Down cause=17): keys differ: event: missing keys ['tech_cause'],"
        " extra keys []"
    )
    records = copy.deepcopy(_records("busy"))
    records[i]["data"]["channel"]["channelvars"] = {}
    problems = compare_events(
        load_capture("busy").normalised_events(), _reparse(records).normalised_events()
    )
    assert problems == [
        "ChannelDestroyed(leg1 Down cause=17): keys differ: event.channel: missing keys [],"
        " extra keys ['channelvars']"
    ]


def test_connected_line_and_bridge_members_are_details() -> None:
    records = copy.deepcopy(_records("callee_hangup_dtmf"))
    i = _index(records, "ChannelConnectedLine", "trunk-in")
    records[i]["data"]["channel"]["connected"] = {"name": "", "number": ""}
    j = _index(records, "ChannelEnteredBridge", "dave")
    records[j]["data"]["bridge"]["channels"].reverse()
    problems = compare_events(
        load_capture("callee_hangup_dtmf").normalised_events(),
        _reparse(records).normalised_events(),
    )
    assert len(problems) == 2
    assert "'channel.connected': ({'name': 'Dave', 'number': 'dave'}, {'name': ''" in problems[0]
    assert "'bridge.channels': (['caller', 'leg1'], ['leg1', 'caller'])" in problems[1]


def test_rest_differences_are_reported() -> None:
    records = _records("errors")
    capture = load_capture("errors")
    status = copy.deepcopy(records)
    status[5]["status"] = 400
    assert compare_requests(capture, _reparse(status))[0].startswith("REST calls differ")
    shape = copy.deepcopy(records)
    shape[1]["body"]["build"]["extra"] = "x"
    assert compare_requests(capture, _reparse(shape)) == [
        "GET /asterisk/info -> 200: body shape differs: body.build: missing keys [],"
        " extra keys ['extra']"
    ]
    text = copy.deepcopy(records)
    text[5]["body"] = {"message": "Channel not in Stasis application"}
    assert compare_requests(capture, _reparse(text)) == [
        "POST /channels/nonexistent-id/answer -> 404: body {'message': 'Channel not in Stasis"
        " application'} != Asterisk's {'message': 'Channel not found'}"
    ]
    app = _records("ws_reconnect")
    members = copy.deepcopy(app)
    i = next(k for k, r in enumerate(app) if r.get("path") == "/applications/pbxd")
    members[i]["body"]["channel_ids"] = members[i]["body"]["channel_ids"][:1]
    problems = compare_requests(load_capture("ws_reconnect"), _reparse(members))
    assert len(problems) == 1 and "'channel_ids': ['caller']" in problems[0]


def test_channel_and_bridge_values_in_rest_bodies_are_compared() -> None:
    records = _records("ringall_answer")
    capture = load_capture("ringall_answer")
    create = next(i for i, r in enumerate(records) if r.get("path") == "/channels/create")
    bridge = next(i for i, r in enumerate(records) if r.get("path") == "/bridges")
    changed = copy.deepcopy(records)
    changed[create]["body"]["caller"]["number"] = "+33170000001"
    changed[create]["body"]["dialplan"]["context"] = "from-trunk"
    changed[bridge]["body"]["technology"] = "softmix"
    problems = compare_requests(capture, _reparse(changed))
    assert len(problems) == 2
    assert "'caller': {'name': 'Alice', 'number': '+33170000001'}" in problems[1]
    assert "'context': 'from-trunk'" in problems[1]
    assert problems[0].startswith("POST /bridges?type=mixing -> 200: body")
    assert "'technology': 'softmix'" in problems[0]


def test_body_shape() -> None:
    assert body_shape({"b": [1, 2], "a": {"x": None}}) == {
        "a": {"x": "null"},
        "b": ["list", "int"],
    }
    assert body_shape([]) == ["list"]
