"""The Swagger validator against real Asterisk 22 output (ground truth) and broken copies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from .captures import Event, Request, capture_names, load_capture
from .sample_docs import write_api_docs
from .swagger import DOCS_ENV, Swagger, docs_dir_from_environment, parse_ari_date

CREATE = "/channels/create"


@pytest.fixture(scope="module")
def swagger() -> Swagger:
    return Swagger.load()


def _first_event(etype: str) -> dict[str, Any]:
    for name in capture_names():
        for ev in load_capture(name).events:
            if ev.type == etype:
                return copy.deepcopy(ev.data)
    raise LookupError(etype)


def _first_request(path_end: str, status: int) -> Request:
    for name in capture_names():
        for req in load_capture(name).requests:
            if req.path.endswith(path_end) and req.status == status:
                return req
    raise LookupError(path_end)


# ------------------------------------------------------------------ ground truth
def test_loads_every_api_docs_file(swagger: Swagger) -> None:
    for model in ("Message", "Event", "StasisStart", "Channel", "Bridge", "Endpoint"):
        assert model in swagger.models
    for model in ("Playback", "Application", "AsteriskInfo", "CallerID", "DialplanCEP"):
        assert model in swagger.models
    assert swagger.ancestors("StasisStart") == ["Message", "Event", "StasisStart"]
    assert len(swagger.descendants("Event")) > 40
    assert len(swagger.operations) > 100


@pytest.mark.parametrize("name", capture_names())
def test_every_captured_event_is_valid(swagger: Swagger, name: str) -> None:
    capture = load_capture(name)
    problems = [p for ev in capture.events for p in swagger.validate_event(ev.data)]
    assert problems == []


@pytest.mark.parametrize("name", capture_names())
def test_every_captured_rest_exchange_is_valid(swagger: Swagger, name: str) -> None:
    capture = load_capture(name)
    problems = []
    for req in capture.requests:
        problems += swagger.validate_response(req.method, req.path, req.status, req.body)
        problems += swagger.validate_request(req.method, req.path, req.params)
    assert problems == []


def test_captures_cover_the_models_the_simulator_must_produce(swagger: Swagger) -> None:
    """The ground truth exercised above is broad enough to mean something."""
    event_types: set[str] = set()
    response_classes: set[str] = set()
    for name in capture_names():
        capture = load_capture(name)
        event_types |= {ev.type for ev in capture.events}
        for req in capture.requests:
            if 200 <= req.status < 300:
                rc = swagger.response_class(req.method, req.path)
                assert rc is not None
                response_classes.add(rc)
    assert {"StasisStart", "StasisEnd", "Dial", "ChannelDestroyed", "BridgeDestroyed"} <= (
        event_types
    )
    assert {"PlaybackStarted", "ChannelDtmfReceived", "ChannelEnteredBridge"} <= event_types
    assert {"Channel", "Bridge", "Endpoint", "Playback", "Application", "AsteriskInfo"} <= (
        response_classes
    )
    assert "void" in response_classes


# --------------------------------------------------------------- broken events
def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        obj = obj[key]
    obj[last] = value


def _del(obj: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        obj = obj[key]
    del obj[last]


def test_the_documented_problem_format(swagger: Swagger) -> None:
    ev = _first_event("StasisStart")
    _set(ev, "channel.state", "Rung")
    assert swagger.validate_event(ev) == [
        "StasisStart.channel.state: 'Rung' not in ['Down', 'Rsrved', 'OffHook', 'Dialing',"
        " 'Ring', 'Ringing', 'Up', 'Busy', 'Dialing Offhook', 'Pre-ring', 'Unknown']"
    ]


@pytest.mark.parametrize(
    ("etype", "field", "expected"),
    [
        ("StasisStart", "channel.id", "StasisStart.channel: missing required property 'id'"),
        ("StasisStart", "args", "StasisStart: missing required property 'args'"),
        ("StasisStart", "timestamp", "StasisStart: missing required property 'timestamp'"),
        ("StasisStart", "application", "StasisStart: missing required property 'application'"),
        (
            "StasisStart",
            "channel.dialplan.app_data",
            "StasisStart.channel.dialplan: missing required property 'app_data'",
        ),
        ("Dial", "dialstatus", "Dial: missing required property 'dialstatus'"),
        ("Dial", "peer", "Dial: missing required property 'peer'"),
        (
            "ChannelDestroyed",
            "cause_txt",
            "ChannelDestroyed: missing required property 'cause_txt'",
        ),
        (
            "ChannelEnteredBridge",
            "bridge.creationtime",
            "ChannelEnteredBridge.bridge: missing required property 'creationtime'",
        ),
        (
            "PlaybackStarted",
            "playback.target_uri",
            "PlaybackStarted.playback: missing required property 'target_uri'",
        ),
    ],
)
def test_missing_required_field_is_rejected(
    swagger: Swagger, etype: str, field: str, expected: str
) -> None:
    ev = _first_event(etype)
    assert swagger.validate_event(ev) == []
    _del(ev, field)
    assert swagger.validate_event(ev) == [expected]


@pytest.mark.parametrize(
    ("etype", "field", "value", "expected"),
    [
        ("StasisStart", "channel.id", 17, "StasisStart.channel.id: expected string, got int 17"),
        ("ChannelDestroyed", "cause", "16", "ChannelDestroyed.cause: expected int"),
        ("ChannelDestroyed", "cause", True, "ChannelDestroyed.cause: expected int, got boolean"),
        ("ChannelDestroyed", "cause", 16.0, "ChannelDestroyed.cause: expected int, got double"),
        ("ChannelHangupRequest", "soft", 1, "ChannelHangupRequest.soft: expected boolean"),
        ("StasisStart", "channel.dialplan.priority", "1", "dialplan.priority: expected long"),
        ("StasisStart", "args", "a,b", "StasisStart.args: expected List[string], got string"),
        ("StasisStart", "args", [1], "StasisStart.args[0]: expected string, got int"),
        ("StasisStart", "channel", "1795.1", "StasisStart.channel: expected Channel object"),
        ("StasisStart", "channel.caller", None, "StasisStart.channel.caller: expected CallerID"),
        ("StasisStart", "timestamp", "2026-11-23T19:02:30Z", "StasisStart.timestamp: '2026-11-2"),
        (
            "StasisStart",
            "channel.creationtime",
            "2026-11-23T19:02:30.663000+00:00",
            "StasisStart.channel.creationtime: '2026-11-23T19:02:30.663000+00:00' is not",
        ),
        ("StasisStart", "timestamp", "2026-13-23T19:02:30.663+0000", "is not an ARI Date"),
        ("ChannelDtmfReceived", "duration_ms", "160", "duration_ms: expected int"),
        ("ChannelEnteredBridge", "bridge.channels", "a", "bridge.channels: expected List[string]"),
        ("ChannelEnteredBridge", "bridge.bridgevars", [], "bridge.bridgevars: expected object"),
    ],
)
def test_wrong_type_is_rejected(
    swagger: Swagger, etype: str, field: str, value: Any, expected: str
) -> None:
    ev = _first_event(etype)
    _set(ev, field, value)
    problems = swagger.validate_event(ev)
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("etype", "field", "value", "expected"),
    [
        ("StasisStart", "channel.state", "ringing", "StasisStart.channel.state: 'ringing' not in"),
        (
            "ChannelEnteredBridge",
            "bridge.bridge_type",
            "mixing,dtmf_events",
            "ChannelEnteredBridge.bridge.bridge_type: 'mixing,dtmf_events' not in ['mixing',",
        ),
        ("PlaybackStarted", "playback.state", "started", "PlaybackStarted.playback.state: "),
        ("Dial", "peer.state", "Answered", "Dial.peer.state: 'Answered' not in"),
    ],
)
def test_bad_enum_value_is_rejected(
    swagger: Swagger, etype: str, field: str, value: Any, expected: str
) -> None:
    ev = _first_event(etype)
    _set(ev, field, value)
    problems = swagger.validate_event(ev)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    ("etype", "field", "expected"),
    [
        ("StasisStart", "chanel", "StasisStart: unknown property 'chanel'"),
        ("StasisStart", "channel.status", "StasisStart.channel: unknown property 'status'"),
        ("StasisStart", "channel.caller.nmber", "StasisStart.channel.caller: unknown property"),
        ("Dial", "dial_status", "Dial: unknown property 'dial_status'"),
        # `peer` is Dial's, not ChannelStateChange's: properties are per concrete model.
        ("ChannelStateChange", "peer", "ChannelStateChange: unknown property 'peer'"),
    ],
)
def test_unknown_property_is_rejected(
    swagger: Swagger, etype: str, field: str, expected: str
) -> None:
    ev = _first_event(etype)
    _set(ev, field, "x")
    problems = swagger.validate_event(ev)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_discriminator_selects_the_concrete_event_model(swagger: Swagger) -> None:
    ev = _first_event("StasisStart")
    ev["type"] = "StasisStrat"
    assert swagger.validate_event(ev)[0].startswith("Message: type 'StasisStrat' is not a known")
    ev["type"] = "Event"  # abstract
    assert swagger.validate_event(ev) == ["Message: type 'Event' is abstract"]
    del ev["type"]
    assert "is not a known Message subtype" in swagger.validate_event(ev)[0]
    # A StasisEnd-shaped body claiming to be a StasisStart misses args.
    end = _first_event("StasisEnd")
    end["type"] = "StasisStart"
    assert swagger.validate_event(end) == ["StasisStart: missing required property 'args'"]
    # ...and the same event validated against its concrete model directly.
    assert swagger.validate(_first_event("StasisEnd"), "StasisEnd") == []
    assert swagger.validate(_first_event("StasisEnd"), "StasisStart") == [
        "StasisStart.type: expected 'StasisStart', got 'StasisEnd'",
        "StasisStart: missing required property 'args'",
    ]
    # Validating against Event (not Message) also resolves the subtype.
    assert swagger.validate(_first_event("Dial"), "Event") == []


def test_missing_params_message_is_a_message_but_not_an_event(swagger: Swagger) -> None:
    msg = {"type": "MissingParams", "params": ["app"]}
    assert swagger.validate_event(msg) == []
    assert swagger.validate(msg, "Event")[0].startswith("Event: type 'MissingParams' is not")


# ------------------------------------------------------------------------- REST
@pytest.mark.parametrize(
    ("method", "path", "nickname", "response_class"),
    [
        ("POST", "/channels/create", "create", "Channel"),
        ("POST", "/channels/1795460541.161", "originateWithId", "Channel"),
        ("GET", "/channels/1795460541.161", "get", "Channel"),
        ("DELETE", "/channels/1795460541.161", "hangup", "void"),
        ("POST", "/channels/1795460541.161/dial", "dial", "void"),
        ("POST", "/channels", "originate", "Channel"),
        ("GET", "/channels", "list", "List[Channel]"),
        ("GET", "/bridges", "list", "List[Bridge]"),
        ("GET", "/endpoints/PJSIP/alice", "get", "Endpoint"),
        ("GET", "/endpoints/PJSIP", "listByTech", "List[Endpoint]"),
        ("POST", "/channels/1.2/play", "play", "Playback"),
        ("GET", "/applications/pbxd", "get", "Application"),
        ("GET", "/asterisk/info", "getInfo", "AsteriskInfo"),
        ("GET", "/ari/asterisk/info", "getInfo", "AsteriskInfo"),
    ],
)
def test_find_operation(
    swagger: Swagger, method: str, path: str, nickname: str, response_class: str
) -> None:
    op = swagger.find_operation(method, path)
    assert op is not None
    assert (op.nickname, op.response_class) == (nickname, response_class)


def test_no_operation(swagger: Swagger) -> None:
    assert swagger.find_operation("PATCH", "/channels/1") is None
    assert swagger.find_operation("GET", "/channel/1") is None
    assert swagger.validate_response("GET", "/nope", 200, {}) == [
        "GET /nope: no such operation in the API description"
    ]


def test_rest_bodies_are_validated_against_the_response_class(swagger: Swagger) -> None:
    create = _first_request("/channels/create", 200)
    body = copy.deepcopy(create.body)
    assert swagger.validate_response("POST", create.path, 200, body) == []
    del body["name"]
    assert swagger.validate_response("POST", create.path, 200, body) == [
        "POST /channels/create -> 200 Channel: missing required property 'name'"
    ]
    bridge = copy.deepcopy(_first_request("/bridges", 200).body)
    assert swagger.validate_response("GET", "/bridges", 200, [bridge, bridge]) == []
    broken = {**bridge, "channels": "1.2"}
    assert swagger.validate_response("GET", "/bridges", 200, [bridge, broken]) == [
        "GET /bridges -> 200 List[Bridge][1].channels: expected List[string], got string"
    ]
    assert swagger.validate_response("GET", "/bridges", 200, bridge)[0].endswith(
        "expected List[Bridge], got object"
    )


def test_void_and_error_answers(swagger: Swagger) -> None:
    ring = "/channels/1.2/ring"
    assert swagger.validate_response("POST", ring, 204, None) == []
    assert swagger.validate_response("POST", ring, 200, None) == [
        "POST /channels/1.2/ring -> 200: a void operation answers 204, got 200"
    ]
    assert swagger.validate_response("POST", ring, 204, {"id": "1.2"})[0].endswith(
        'expected no body (void), got {"id": "1.2"}'
    )
    assert swagger.validate_response("GET", "/channels/1.2", 204, None) == [
        "GET /channels/1.2 -> 204: expected a Channel body, got none"
    ]
    dial = "/channels/1.2/dial"
    ok = {"message": "Channel not in Stasis application"}
    assert swagger.validate_response("POST", dial, 409, ok) == []
    assert swagger.validate_response("POST", CREATE, 500, {"error": "Allocation failed"}) == []
    assert swagger.validate_response("POST", dial, 409, {"msg": "x"}) != []
    assert swagger.validate_response("POST", dial, 409, {"message": ""}) != []
    assert swagger.validate_response("POST", dial, 409, None) != []
    assert swagger.validate_response("POST", dial, 422, ok) == [
        "POST /channels/1.2/dial -> 422: status 422 is not declared by dial (declares [404, 409])"
    ]


def test_request_parameters(swagger: Swagger) -> None:
    assert swagger.validate_request("DELETE", "/channels/1.2", {"reason": "busy"}) == []
    assert swagger.validate_request("DELETE", "/channels/1.2", {"reason": "bsy"}) == [
        "DELETE /channels/1.2: parameter reason: 'bsy' not in ['normal', 'busy', 'congestion',"
        " 'no_answer', 'timeout', 'rejected', 'unallocated', 'normal_unspecified',"
        " 'number_incomplete', 'codec_mismatch', 'interworking', 'failure', 'answered_elsewhere']"
    ]
    assert swagger.validate_request("POST", CREATE, {"app": "pbxd"}) == [
        "POST /channels/create: missing required parameter 'endpoint'"
    ]
    assert swagger.validate_request("POST", "/channels/1.2/dial", {"timeout": "-1"}) == [
        "POST /channels/1.2/dial: parameter timeout: -1 < min 0"
    ]
    assert swagger.validate_request("POST", "/channels/1.2/dial", {"timeout": "x"}) == [
        "POST /channels/1.2/dial: parameter timeout: 'x' is not an integer"
    ]
    assert swagger.validate_request("POST", "/channels/1.2/dial", {"callr": "1"}) == [
        "POST /channels/1.2/dial: unknown parameter 'callr'"
    ]


# ----------------------------------------------------------------- primitives
def test_primitive_types(swagger: Swagger) -> None:
    assert swagger.validate(1, "double") == []
    assert swagger.validate(1.5, "double") == []
    assert swagger.validate(True, "double") != []
    assert swagger.validate(2**40, "long") == []
    assert swagger.validate(1, "boolean") != []
    assert swagger.validate({"a": "b"}, "containers") == []
    assert swagger.validate({"a": 1}, "containers") == [
        "containers: containers values must be strings: ['a']"
    ]
    assert swagger.validate({"a": [1]}, "object") == []
    assert swagger.validate([{"a": 1}, 2], "List[object]") == [
        "List[object][1]: expected object, got int 2"
    ]
    assert swagger.validate(None, "void") == []
    assert swagger.validate({}, "NoSuchModel") == [
        "NoSuchModel: unknown type 'NoSuchModel' in the API description"
    ]
    assert parse_ari_date("2026-11-23T19:02:21.212+0000").utcoffset() is not None
    assert parse_ari_date("2026-11-23T21:02:21.212+0200").hour == 21
    with pytest.raises(ValueError):
        parse_ari_date("2026-11-23 19:02:21.212+0000")


def test_event_dataclass_type() -> None:
    assert Event(t=0.0, data={"type": "Dial"}).type == "Dial"


def test_docs_directory_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = write_api_docs(tmp_path / "docs")
    monkeypatch.setenv(DOCS_ENV, str(target))
    assert docs_dir_from_environment() == target
    only_events = Swagger.load()
    assert "StasisStart" in only_events.models
    assert "Bridge" not in only_events.models
    monkeypatch.setenv(DOCS_ENV, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError):
        Swagger.load()
