"""Real Asterisk 22 ARI traffic (captures/*.jsonl) as typed steps, and how to compare two runs.

A capture is one JSON object per line, in arrival order at the recording client:
`{"t", "kind": "event", "data"}`, `{"t", "kind": "request", "method", "path", "params", "status",
"body"}`, `{"t", "kind": "ws", "state"}` and `{"t", "kind": "error", "error"}`. The replay client
of test_replay.py records the simulator's traffic in the same format, so both sides go through
`parse_records` and are compared with the functions below.

Ids differ between runs, so every object is named by a *role* given in order of first appearance
(REST bodies and events together, in arrival order): channels `caller` (the first one: every
capture starts with the inbound call), then `leg1`, `leg2`, ...; bridges `bridge1`, ...;
playbacks `playback1`, ... `Roles.describe` says what each role is (`PJSIP/alice-*`, `mixing`), so
comparing the role tables checks that `leg1` is alice on both sides.

Normalising an event sequence (`normalise_events`):
- ChannelVarset is dropped (Asterisk sends dozens: STASISSTATUS, BRIDGEPEER, RTPAUDIOQOS...).
  No other event is dropped: ChannelDialplan, ChannelConnectedLine, PlaybackStarted... are all
  compared, being conservative.
- Each remaining event keeps its type, its subject (the role of `channel`, of `peer` for Dial,
  of `bridge` for Bridge* events, of `playback` for Playback* events), the subject channel's
  state (not for Dial, see below), `dialstatus`, `cause`, the bridge role of
  ChannelEnteredBridge/LeftBridge, the DTMF digit, the playback state.

Comparing two normalised sequences (`compare_events`) is "same types in the same order with the
same facts", with exactly two allowances for what real Asterisk itself does not order:
1. The same SIP answer yields a ChannelStateChange (channel thread) and a Dial (dialing thread)
   concurrently: ringall_answer has alice's `Dial RINGING` *before* her `ChannelStateChange
   Ringing` and bob's *after* his. Such an adjacent pair (Ringing/RINGING, Up/ANSWER) of one
   channel is put in a canonical order, and the peer's state inside a Dial event (Down or
   Ringing depending on that race) is not compared.
2. Events of *different* subjects stamped in the same millisecond of the capture (the recording
   clock's resolution: less than `gap` = 0.5 ms apart) are concurrent in Asterisk (abandon: the
   caller's ChannelDestroyed lands between bob's ChannelHangupRequest and StasisEnd), so only
   their order per subject is compared. Events of different subjects one millisecond or more
   apart in the capture must keep their order (a burst's ChannelEnteredBridge of the second
   member before the first member's ChannelConnectedLine, say).
   In other words: each subject's sequence must be identical, and the global interleaving must
   agree wherever Asterisk's own timing shows it is not a race.
Once the facts agree, the events matched one to one are also compared on their key structure
(a missing `soft` or an extra `channelvars` shows) and on `event_details`: the hangup details
(`soft`, `tech_cause`, `cause_txt`), Dial's `dialstring`, the channel's caller, connected line
and dialplan location, the bridge's members and technology, the playback's media.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .swagger import DATA_DIR, docs_dir_from_environment

CAPTURES_ENV = "PBXD_ARI_CAPTURES"
CAPTURES_DIR = DATA_DIR / "captures"  # media/ below: the media traces
IGNORED_EVENTS = frozenset({"ChannelVarset"})
# Capture times have millisecond resolution; half of one keeps float rounding out of the way.
CONCURRENT_GAP = 0.0005  # seconds of capture time; see the module docstring

_NAME_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}$")
_SNOOP_NAME = re.compile(r"Snoop/(.+)-\*")


def captures_dir() -> Path:
    """`$PBXD_ARI_CAPTURES`, else the `captures/` next to `$PBXD_ARI_DOCS`, else the copies
    the tests carry."""
    env = os.environ.get(CAPTURES_ENV)
    if env:
        return Path(env)
    docs = docs_dir_from_environment()
    if docs is not None and (docs.parent / "captures").is_dir():
        return docs.parent / "captures"
    return CAPTURES_DIR


def capture_names() -> list[str]:
    return sorted(p.stem for p in captures_dir().glob("*.jsonl"))


def media_capture_names() -> list[str]:
    """The media traces (2026-12-03) as `media/<name>`, loadable with `load_capture`."""
    return sorted(f"media/{p.stem}" for p in (captures_dir() / "media").glob("*.jsonl"))


# --------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class Request:
    """A REST call and Asterisk's answer (`path` relative to /ari)."""

    t: float
    method: str
    path: str
    params: dict[str, str]
    status: int
    body: Any
    # A file answer (stored recording): recorded without its bytes.
    content_type: str | None = None
    content_length: int | None = None


@dataclass(frozen=True)
class Event:
    """A WebSocket message as received."""

    t: float
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data.get("type", ""))


@dataclass(frozen=True)
class WsState:
    t: float
    state: str


@dataclass(frozen=True)
class ClientError:
    t: float
    error: str


Step = Request | Event | WsState | ClientError


def _channel_like(obj: Mapping[str, Any]) -> bool:
    return {"id", "name", "state"} <= obj.keys() and "bridge_type" not in obj


def _bridge_like(obj: Mapping[str, Any]) -> bool:
    return {"id", "bridge_type"} <= obj.keys()


def _playback_like(obj: Mapping[str, Any]) -> bool:
    return {"id", "media_uri", "target_uri"} <= obj.keys()


def name_pattern(name: str) -> str:
    """`PJSIP/alice-0000001d` -> `PJSIP/alice-*` (Asterisk's per-channel hex counter)."""
    return _NAME_SUFFIX.sub("-*", name)


class Roles:
    """Ids of one run mapped to roles, given in order of first appearance."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = {}
        self.describe: dict[str, str] = {}
        self._counts: dict[str, int] = {"leg": 0, "bridge": 0, "playback": 0}

    def _new(self, kind: str, ident: str, what: str) -> str:
        if kind == "channel" and "caller" not in self.describe:
            role = "caller"
        elif kind == "channel":
            self._counts["leg"] += 1
            role = f"leg{self._counts['leg']}"
        else:
            self._counts[kind] += 1
            role = f"{kind}{self._counts[kind]}"
        self.by_id[ident] = role
        self.describe[role] = what
        return role

    def see(self, obj: Any) -> None:
        """Give a role to every channel, bridge and playback object inside `obj`."""
        for kind, item in _walk_objects(obj):
            ident = str(item["id"])
            if ident in self.by_id:
                continue
            if kind == "channel":
                self._new(kind, ident, self.channel_pattern(str(item.get("name", "?"))))
            elif kind == "bridge":
                self._new(kind, ident, str(item.get("bridge_type", "?")))
            else:
                self._new(kind, ident, str(item.get("media_uri", "?")))

    def channel_pattern(self, name: str) -> str:
        """`PJSIP/alice-*`; a snoop channel names the channel it snoops on by id, given as a
        role (`Snoop/{leg1}-*`)."""
        pattern = name_pattern(name)
        snooped = _SNOOP_NAME.fullmatch(pattern)
        if snooped is not None and snooped.group(1) in self.by_id:
            return f"Snoop/{{{self.by_id[snooped.group(1)]}}}-*"
        return pattern

    def role(self, ident: Any) -> str:
        """The role of an id; unknown ids are kept, marked with `?`."""
        return self.by_id.get(str(ident), f"?{ident}")

    def sub(self, text: str) -> str:
        """Replace every known id in a path, a comma list or a `channel:<id>` uri by `{role}`."""
        out = []
        for part in re.split(r"([/,:])", text):
            out.append("{" + self.by_id[part] + "}" if part in self.by_id else part)
        return "".join(out)


def _walk_objects(obj: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Channel/bridge/playback objects in a deterministic order (not the JSON key order)."""
    if isinstance(obj, list):
        for item in obj:
            yield from _walk_objects(item)
        return
    if not isinstance(obj, dict):
        return
    if _bridge_like(obj):
        yield "bridge", obj
    elif _playback_like(obj):
        yield "playback", obj
    elif _channel_like(obj):
        yield "channel", obj
    first = ("channel", "peer", "caller", "replace_channel", "forwarded", "bridge", "playback")
    keys = [k for k in first if k in obj] + sorted(k for k in obj if k not in first)
    for key in keys:
        if isinstance(obj[key], dict | list):
            yield from _walk_objects(obj[key])


@dataclass
class Capture:
    """One run, as typed steps in arrival order."""

    name: str
    steps: list[Step]
    roles: Roles = field(default_factory=Roles)

    @property
    def requests(self) -> list[Request]:
        return [s for s in self.steps if isinstance(s, Request)]

    @property
    def events(self) -> list[Event]:
        return [s for s in self.steps if isinstance(s, Event)]

    @property
    def ws_states(self) -> list[str]:
        return [s.state for s in self.steps if isinstance(s, WsState)]

    @property
    def errors(self) -> list[ClientError]:
        return [s for s in self.steps if isinstance(s, ClientError)]

    def normalised_events(
        self, ignore: frozenset[str] = IGNORED_EVENTS, keep_variables: frozenset[str] = frozenset()
    ) -> list[NormEvent]:
        return normalise_events(self.events, self.roles, ignore, keep_variables)

    def rest_signatures(self) -> list[RestSignature]:
        return [rest_signature(r, self.roles) for r in self.requests]


def parse_records(records: Iterable[Mapping[str, Any]], name: str = "") -> Capture:
    """Typed steps from capture-format records; roles are assigned on the way."""
    capture = Capture(name=name, steps=[])
    for rec in records:
        kind = rec.get("kind")
        t = float(rec.get("t", 0.0))
        step: Step
        if kind == "event":
            step = Event(t=t, data=dict(rec["data"]))
            capture.roles.see(step.data)
        elif kind == "request":
            step = Request(
                t=t,
                method=str(rec["method"]).upper(),
                path=str(rec["path"]),
                params={str(k): str(v) for k, v in (rec.get("params") or {}).items()},
                status=int(rec["status"]),
                body=rec.get("body"),
                content_type=rec.get("content_type"),
                content_length=rec.get("content_length"),
            )
            capture.roles.see(step.body)
        elif kind == "ws":
            step = WsState(t=t, state=str(rec["state"]))
        elif kind == "error":
            step = ClientError(t=t, error=str(rec.get("error", "")))
        else:
            raise ValueError(f"unknown capture record kind {kind!r}: {rec}")
        capture.steps.append(step)
    return capture


def load_capture(name_or_path: str | Path) -> Capture:
    path = Path(name_or_path)
    if not path.suffix:
        path = captures_dir() / f"{name_or_path}.jsonl"
    with path.open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return parse_records(records, name=path.stem)


# ------------------------------------------------------------------------- events
@dataclass(frozen=True)
class NormEvent:
    """The facts of one event that a comparison looks at (`t` is kept but not compared)."""

    type: str
    subject: str
    state: str | None = None
    dialstatus: str | None = None
    cause: int | None = None
    bridge: str | None = None
    detail: str | None = None
    t: float = field(default=0.0, compare=False)
    # Second-level facts, compared by `compare_events(details=True)` once the facts agree:
    # the event's key structure and its secondary values (see `event_details`), as JSON.
    shape: str = field(default="", compare=False, repr=False)
    details: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        facts = [self.subject]
        if self.state is not None:
            facts.append(self.state)
        if self.dialstatus is not None:
            facts.append(f"dialstatus={self.dialstatus!r}")
        if self.cause is not None:
            facts.append(f"cause={self.cause}")
        if self.bridge is not None:
            facts.append(f"bridge={self.bridge}")
        if self.detail is not None:
            facts.append(self.detail)
        return f"{self.type}({' '.join(facts)})"


def normalise_event(data: Mapping[str, Any], roles: Roles) -> NormEvent:
    etype = str(data.get("type", "?"))
    channel = data.get("peer") if etype == "Dial" else data.get("channel")
    bridge = data.get("bridge")
    playback = data.get("playback")
    subject = "-"
    state = None
    bridge_role = None
    detail = None
    if isinstance(channel, dict):
        subject = roles.role(channel.get("id"))
        if etype != "Dial":  # the peer's state in Dial is racy, see the module docstring
            state = str(channel.get("state"))
        if isinstance(bridge, dict):
            bridge_role = roles.role(bridge.get("id"))
    elif isinstance(bridge, dict):
        subject = roles.role(bridge.get("id"))
    elif isinstance(playback, dict):
        subject = roles.role(playback.get("id"))
        detail = f"{playback.get('state')} on {roles.sub(str(playback.get('target_uri')))}"
    elif isinstance(data.get("recording"), dict):
        recording = data["recording"]
        subject = f"recording:{recording.get('name')}"
        detail = f"{recording.get('state')} on {roles.sub(str(recording.get('target_uri')))}"
        durations = [recording.get(k) for k in _RECORDING_DURATIONS if k in recording]
        if durations:
            detail += " " + "/".join(str(d) for d in durations)
    elif isinstance(data.get("endpoint"), dict):
        endpoint = data["endpoint"]
        subject = f"endpoint:{endpoint.get('technology')}/{endpoint.get('resource')}"
        state = str(endpoint.get("state"))
        peer, contact = data.get("peer"), data.get("contact_info")
        if isinstance(peer, dict):
            detail = str(peer.get("peer_status"))
        elif isinstance(contact, dict):
            detail = str(contact.get("contact_status"))
    elif isinstance(data.get("device_state"), dict):
        subject = f"device:{data['device_state'].get('name')}"
        state = str(data["device_state"].get("state"))
    if etype == "ChannelVarset":
        detail = f"{data.get('variable')}={name_pattern(roles.sub(str(data.get('value'))))!r}"
    if etype == "ChannelDtmfReceived":
        detail = f"digit={data.get('digit')}"
    cause = data.get("cause")
    return NormEvent(
        type=etype,
        subject=subject,
        state=state,
        dialstatus=str(data["dialstatus"]) if "dialstatus" in data else None,
        cause=int(cause) if isinstance(cause, int) else None,
        bridge=bridge_role,
        detail=detail,
        shape=json.dumps(body_shape(data), sort_keys=True),
        details=json.dumps(event_details(data, roles), sort_keys=True),
    )


_EVENT_DETAIL_KEYS = (
    "soft",
    "tech_cause",
    "cause_txt",
    "dialstring",
    "forward",
    "args",
    "dialplan_app",
    "dialplan_app_data",
    "digit",
    "duration_ms",
)
_RECORDING_DURATIONS = ("duration", "talking_duration", "silence_duration")
_CHANNEL_DETAIL_KEYS = ("caller", "connected", "dialplan", "language", "accountcode")
_BRIDGE_DETAIL_KEYS = ("bridge_type", "bridge_class", "technology", "creator", "name", "video_mode")


def event_details(data: Mapping[str, Any], roles: Roles) -> dict[str, Any]:
    """Secondary values of an event: everything but ids, names, times and the facts.

    Hangup details (`soft`, `tech_cause`, `cause_txt`), Dial's `dialstring`, the subject
    channel's caller/connected/dialplan, the bridge's members (as roles) and technology, the
    playback's media, other channels referenced (as roles).
    """
    out: dict[str, Any] = {k: data[k] for k in _EVENT_DETAIL_KEYS if k in data}
    etype = data.get("type")
    for key in ("channel", "peer", "caller", "replace_channel", "forwarded"):
        chan = data.get(key)
        if not isinstance(chan, dict):
            continue
        subject = key == ("peer" if etype == "Dial" else "channel")
        if subject:
            out.update({f"channel.{k}": chan.get(k) for k in _CHANNEL_DETAIL_KEYS})
        else:
            out[key] = roles.role(chan.get("id"))
    bridge = data.get("bridge")
    if isinstance(bridge, dict):
        out.update({f"bridge.{k}": bridge.get(k) for k in _BRIDGE_DETAIL_KEYS})
        out["bridge.channels"] = [roles.role(c) for c in bridge.get("channels", [])]
    playback = data.get("playback")
    if isinstance(playback, dict):
        out.update(
            {f"playback.{k}": playback.get(k) for k in ("media_uri", "next_media_uri", "language")}
        )
    recording = data.get("recording")
    if isinstance(recording, dict):
        out["recording.format"] = recording.get("format")
    contact = data.get("contact_info")
    if isinstance(contact, dict):
        out.update({f"contact.{k}": contact.get(k) for k in ("aor", "roundtrip_usec")})
    return out


def normalise_events(
    events: Iterable[Event],
    roles: Roles,
    ignore: frozenset[str] = IGNORED_EVENTS,
    keep_variables: frozenset[str] = frozenset(),
) -> list[NormEvent]:
    """The facts of each event, in order, without the `ignore`d types (but with the
    ChannelVarset events of `keep_variables`, when ChannelVarset is ignored)."""
    out = []
    for ev in events:
        kept = ev.type == "ChannelVarset" and ev.data.get("variable") in keep_variables
        if ev.type in ignore and not kept:
            continue
        norm = normalise_event(ev.data, roles)
        out.append(dataclasses.replace(norm, t=ev.t))
    return out


_CONCURRENT_PAIRS = {("Ringing", "RINGING"), ("Up", "ANSWER")}


def _canonical(seq: Sequence[NormEvent]) -> list[NormEvent]:
    """One subject's events with the ChannelStateChange/Dial race put in a fixed order."""
    out = list(seq)
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        race = (b.state, a.dialstatus) in _CONCURRENT_PAIRS
        if a.type == "Dial" and b.type == "ChannelStateChange" and race:
            out[i], out[i + 1] = b, a
    return out


def by_subject(seq: Sequence[NormEvent]) -> dict[str, list[NormEvent]]:
    groups: dict[str, list[NormEvent]] = {}
    for ev in seq:
        groups.setdefault(ev.subject, []).append(ev)
    return {k: _canonical(v) for k, v in groups.items()}


def format_events(seq: Sequence[NormEvent]) -> list[str]:
    return [str(e) for e in seq]


def compare_events(
    expected: Sequence[NormEvent],
    got: Sequence[NormEvent],
    gap: float = CONCURRENT_GAP,
    *,
    details: bool = True,
) -> list[str]:
    """Differences between two normalised sequences (`[]` when equivalent, see module doc).

    With `details`, events matched one to one (same subject, same rank) must also have the
    same key structure and the same `event_details` (checked only once the facts agree).
    """
    problems: list[str] = []
    exp_groups, got_groups = by_subject(expected), by_subject(got)
    for subject in sorted(exp_groups.keys() | got_groups.keys()):
        exp_s = format_events(exp_groups.get(subject, []))
        got_s = format_events(got_groups.get(subject, []))
        if exp_s != got_s:
            diff = difflib.unified_diff(exp_s, got_s, "asterisk", "simulator", lineterm="", n=2)
            problems.append(f"events of {subject} differ:\n  " + "\n  ".join(list(diff)[2:]))
    if problems:
        return problems
    if details:
        for subject, exp_seq in exp_groups.items():
            for a, b in zip(exp_seq, got_groups[subject], strict=True):
                if a.shape != b.shape:
                    shape_a, shape_b = json.loads(a.shape), json.loads(b.shape)
                    problems.append(f"{a}: keys differ: {_shape_diff(shape_a, shape_b, 'event')}")
                if a.details != b.details:
                    da, db = json.loads(a.details), json.loads(b.details)
                    changed = {
                        k: (da.get(k), db.get(k))
                        for k in sorted(da.keys() | db.keys())
                        if da.get(k) != db.get(k)
                    }
                    problems.append(f"{a}: details (Asterisk, simulator): {changed}")
    # Same events per subject: match them up by (subject, index) and check the interleaving.
    position: dict[tuple[str, int], int] = {}
    for subject, seq in got_groups.items():
        for idx, ev in enumerate(seq):
            position[(subject, idx)] = _index_of(got, ev)
    keys: list[tuple[str, int, NormEvent]] = []
    for subject, seq in exp_groups.items():
        for idx, ev in enumerate(seq):
            keys.append((subject, idx, ev))
    keys.sort(key=lambda k: _index_of(expected, k[2]))
    for i, (sa, ia, ea) in enumerate(keys):
        for sb, ib, eb in keys[i + 1 :]:
            if sa == sb or eb.t - ea.t < gap:
                continue
            if position[(sa, ia)] > position[(sb, ib)]:
                problems.append(
                    f"order: {ea} came before {eb} in the capture ({eb.t - ea.t:.3f} s apart),"
                    " after it from the simulator"
                )
    return problems


def _index_of(seq: Sequence[NormEvent], ev: NormEvent) -> int:
    for i, item in enumerate(seq):
        if item is ev:
            return i
    raise ValueError(f"{ev} not in sequence")


# --------------------------------------------------------------------------- REST
@dataclass(frozen=True)
class RestSignature:
    """A REST exchange with ids replaced by roles: what must match between two runs."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    status: int

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params)
        return f"{self.method} {self.path}{'?' + query if query else ''} -> {self.status}"


def rest_signature(req: Request, roles: Roles) -> RestSignature:
    return RestSignature(
        method=req.method,
        path=roles.sub(req.path),
        params=tuple(sorted((k, roles.sub(v)) for k, v in req.params.items())),
        status=req.status,
    )


def body_shape(body: Any) -> Any:
    """The key structure of a body: nested key sets and JSON types, no values."""
    if isinstance(body, dict):
        return {k: body_shape(v) for k, v in sorted(body.items())}
    if isinstance(body, list):
        shapes = []
        for item in body:
            shape = body_shape(item)
            if shape not in shapes:
                shapes.append(shape)
        return ["list", *shapes]
    if body is None:
        return "null"
    return type(body).__name__


def body_facts(body: Any, roles: Roles) -> dict[str, Any]:
    """The values of a body that must agree (ids as roles; no times, uniqueids, SIP Call-IDs):
    a channel's name pattern, state, caller, connected line, dialplan location, language,
    accountcode; a bridge's type, class, technology, creator, name, video mode, members..."""
    if not isinstance(body, dict):
        return {}
    facts: dict[str, Any] = {}
    for key in ("message", "error"):
        if key in body:
            facts[key] = body[key]
    if _bridge_like(body):
        facts.update(
            bridge=roles.role(body["id"]),
            channels=[roles.role(c) for c in body.get("channels", [])],
            **{k: body.get(k) for k in _BRIDGE_DETAIL_KEYS},
        )
    elif _playback_like(body):
        facts.update(
            playback=roles.role(body["id"]),
            state=body.get("state"),
            media_uri=body.get("media_uri"),
            language=body.get("language"),
            target_uri=roles.sub(str(body.get("target_uri"))),
        )
    elif _channel_like(body):
        dialplan = dict(body.get("dialplan") or {})
        if "app_data" in dialplan:
            dialplan["app_data"] = roles.sub(str(dialplan["app_data"]))
        facts.update(
            channel=roles.role(body["id"]),
            name=roles.channel_pattern(str(body.get("name"))),
            state=body.get("state"),
            dialplan=dialplan,
            **{k: body.get(k) for k in _CHANNEL_DETAIL_KEYS if k != "dialplan"},
        )
    elif "events_allowed" in body:  # Application
        facts.update(
            name=body.get("name"),
            channel_ids=sorted(roles.role(c) for c in body.get("channel_ids", [])),
            bridge_ids=sorted(roles.role(b) for b in body.get("bridge_ids", [])),
            endpoint_ids=body.get("endpoint_ids"),
            device_names=body.get("device_names"),
        )
    elif {"name", "format", "target_uri"} <= body.keys():  # LiveRecording
        facts.update(
            {k: body.get(k) for k in ("name", "format", "state", *_RECORDING_DURATIONS)},
            target_uri=roles.sub(str(body.get("target_uri"))),
        )
    elif body.keys() == {"name", "format"} or body.keys() == {"name", "state"}:
        facts.update(body)  # StoredRecording, DeviceState
    elif {"technology", "resource"} <= body.keys():  # Endpoint
        facts.update(
            endpoint=f"{body['technology']}/{body['resource']}",
            state=body.get("state"),
            channel_ids=sorted(roles.role(c) for c in body.get("channel_ids", [])),
        )
    return facts


def compare_requests(expected: Capture, got: Capture) -> list[str]:
    """Same REST calls and statuses in order, same body shapes and key values."""
    problems: list[str] = []
    exp_sigs, got_sigs = expected.rest_signatures(), got.rest_signatures()
    if [str(s) for s in exp_sigs] != [str(s) for s in got_sigs]:
        diff = difflib.unified_diff(
            [str(s) for s in exp_sigs],
            [str(s) for s in got_sigs],
            "asterisk",
            "simulator",
            lineterm="",
            n=1,
        )
        problems.append("REST calls differ:\n  " + "\n  ".join(list(diff)[2:]))
    for exp, g, sig in zip(expected.requests, got.requests, exp_sigs, strict=False):
        exp_shape, got_shape = body_shape(exp.body), body_shape(g.body)
        if exp_shape != got_shape:
            problems.append(f"{sig}: body shape differs: {_shape_diff(exp_shape, got_shape)}")
        exp_facts, got_facts = body_facts(exp.body, expected.roles), body_facts(g.body, got.roles)
        if _started_race(sig, exp_facts, got_facts):
            exp_facts, got_facts = (
                dict(exp_facts, state="<raced>"),
                dict(got_facts, state="<raced>"),
            )
        exp_file = (exp.content_type, exp.content_length)
        got_file = (g.content_type, g.content_length)
        if exp_file != got_file and not _same_kind_of_file(exp_file, got_file):
            problems.append(f"{sig}: file {got_file} != Asterisk's {exp_file}")
        if exp_facts != got_facts:
            problems.append(f"{sig}: body {got_facts} != Asterisk's {exp_facts}")
    return problems


# The state a new playback or recording shows in its 201 answer: `queued`, or already
# `playing` / `recording` when its Started event raced the answer (README, "Media").
_RACED_STATES = {"play": {"queued", "playing"}, "record": {"queued", "recording"}}


def _started_race(sig: RestSignature, exp: dict[str, Any], got: dict[str, Any]) -> bool:
    if sig.method != "POST" or sig.status != 201:
        return False
    verb = sig.path.rsplit("/", 2)[-1] if "/play/" not in sig.path else "play"
    states = _RACED_STATES.get(verb)
    return states is not None and {exp.get("state"), got.get("state")} <= states


def _same_kind_of_file(
    exp: tuple[str | None, int | None], got: tuple[str | None, int | None]
) -> bool:
    """A WAV's length depends on when keys and hangups land: same type, whole header, and
    within 0.25 s (4000 bytes) of audio is the same recording."""
    if exp[0] != got[0] or exp[1] is None or got[1] is None:
        return False
    if exp[0] == "application/json":
        return True  # an error body, compared as JSON like any other
    if exp[0] != "audio/wav":
        return exp[1] == got[1]
    return got[1] >= 44 and (got[1] - 44) % 2 == 0 and abs(exp[1] - got[1]) <= 4000


def _shape_diff(exp: Any, got: Any, path: str = "body") -> str:
    if isinstance(exp, dict) and isinstance(got, dict):
        missing = sorted(exp.keys() - got.keys())
        extra = sorted(got.keys() - exp.keys())
        if missing or extra:
            return f"{path}: missing keys {missing}, extra keys {extra}"
        for key in exp:
            if exp[key] != got[key]:
                return _shape_diff(exp[key], got[key], f"{path}.{key}")
    return f"{path}: {json.dumps(got)} instead of {json.dumps(exp)}"
