"""A quick replay of an Asterisk capture against the simulator (a self-check; the conformance
suite in tests/ari_conformance does the thorough comparison).

The driver plays the capture's SIP side with PeerScripts, sends the capture's REST calls in
order (ids translated), each once the simulator has sent the event that triggered it in the
capture. Both runs are then reduced to per-channel/bridge/playback sequences of
facts (type, state, dialstatus, cause, bridge, digit, playback state), where a channel is named
by its endpoint (`PJSIP/alice-*`), so the comparison is independent of ids and of the
interleaving of concurrent subjects.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator, PeerScript
from tests.ari_conformance.captures import captures_dir

from .conftest import Ari, EventReader

REPO = Path(__file__).resolve().parents[2]
_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}$")


@dataclass(frozen=True)
class Scenario:
    """The SIP side of one capture (README.md's table)."""

    scripts: dict[str, PeerScript] = field(default_factory=dict)
    caller_hangup: float | None = None


SCENARIOS: dict[str, Scenario] = {
    "ringall_answer": Scenario({"PJSIP/alice": PeerScript(answer_after=1.0)}, caller_hangup=4.0),
    "busy": Scenario({"PJSIP/alice": PeerScript(busy_after=0.3)}),
    "noanswer": Scenario(),
    "abandon": Scenario(caller_hangup=2.5),
    "callee_hangup_dtmf": Scenario(
        {"PJSIP/dave": PeerScript(answer_after=1.0, dtmf="1", dtmf_after=1.0, hangup_after=2.5)}
    ),
    "offline_then_mobile": Scenario(
        {"+33612345678": PeerScript(answer_after=1.0)}, caller_hangup=4.0
    ),
    "ws_reconnect": Scenario({"PJSIP/alice": PeerScript(answer_after=1.0)}, caller_hangup=7.0),
    "errors": Scenario(),
    "race_dial_before_stasisstart": Scenario(),
}


def load(name: str) -> list[dict[str, Any]]:
    with (captures_dir() / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _is_channel(obj: dict[str, Any]) -> bool:
    return {"id", "name", "state"} <= obj.keys() and "bridge_type" not in obj


def _is_bridge(obj: dict[str, Any]) -> bool:
    return {"id", "bridge_type"} <= obj.keys()


def _is_playback(obj: dict[str, Any]) -> bool:
    return {"id", "media_uri", "target_uri"} <= obj.keys()


class Roles:
    """Ids of one run named by role: channels by endpoint, bridges/playbacks by order."""

    def __init__(self) -> None:
        self.role: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self._counts = {"bridge": 0, "playback": 0}

    def see(self, obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                self.see(item)
            return
        if not isinstance(obj, dict):
            return
        ident = str(obj.get("id", ""))
        if ident and ident not in self.role:
            name: str | None = None
            if _is_bridge(obj):
                self._counts["bridge"] += 1
                name = f"bridge{self._counts['bridge']}"
            elif _is_playback(obj):
                self._counts["playback"] += 1
                name = f"playback{self._counts['playback']}"
            elif _is_channel(obj):
                name = _SUFFIX.sub("-*", str(obj["name"]))
            if name is not None:
                self.role[ident] = name
                self.ids[name] = ident
        for value in obj.values():
            if isinstance(value, dict | list):
                self.see(value)

    def sub(self, text: str, other: Roles) -> str:
        """Replace this run's ids in `text` by the other run's ids of the same roles."""
        parts = re.split(r"([/,:])", text)
        return "".join(other.ids.get(self.role.get(p, ""), p) for p in parts)


def facts(event: dict[str, Any], roles: Roles) -> tuple[str, tuple[Any, ...]]:
    """(subject role, comparable facts) of one event."""
    etype = event["type"]
    chan = event.get("peer") if etype == "Dial" else event.get("channel")
    subject = "-"
    state = None
    if isinstance(chan, dict):
        subject = roles.role.get(chan["id"], "?")
        state = None if etype == "Dial" else chan.get("state")
    elif isinstance(event.get("bridge"), dict):
        subject = roles.role.get(event["bridge"]["id"], "?")
    elif isinstance(event.get("playback"), dict):
        subject = roles.role.get(event["playback"]["id"], "?")
    bridge = event.get("bridge")
    bridge_role = roles.role.get(bridge["id"]) if isinstance(bridge, dict) and chan else None
    playback = event.get("playback")
    return subject, (
        etype,
        state,
        event.get("dialstatus"),
        event.get("cause"),
        bridge_role,
        event.get("digit"),
        playback.get("state") if isinstance(playback, dict) else None,
    )


def by_subject(events: list[dict[str, Any]], roles: Roles) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for event in events:
        if event["type"] == "ChannelVarset":
            continue
        subject, fact = facts(event, roles)
        out.setdefault(subject, []).append(fact)
    for seq in out.values():  # Dial vs ChannelStateChange of one SIP answer race in Asterisk
        for i in range(len(seq) - 1):
            a, b = seq[i], seq[i + 1]
            pair = (b[1], a[2])
            if (
                a[0] == "Dial"
                and b[0] == "ChannelStateChange"
                and pair
                in (
                    ("Ringing", "RINGING"),
                    ("Up", "ANSWER"),
                )
            ):
                seq[i], seq[i + 1] = b, a
    return out


@dataclass
class ReplayResult:
    expected_statuses: list[str]
    statuses: list[str]
    expected_events: dict[str, list[tuple[Any, ...]]]
    events: dict[str, list[tuple[Any, ...]]]


def _key(event: dict[str, Any], roles: Roles) -> tuple[str, tuple[Any, ...]]:
    subject, fact = facts(event, roles)
    return subject, fact[:4]  # type, state, dialstatus, cause


def _mentioned(request: dict[str, Any], roles: Roles) -> set[str]:
    """Roles of the ids a request names (its own consequences must not be waited for)."""
    words = re.split(r"[/,:]", request["path"])
    for value in request["params"].values():
        words.extend(re.split(r"[/,:]", str(value)))
    return {roles.role[w] for w in words if w in roles.role}


# Events a request causes on the channels it names: never what triggered it.
EFFECTS = frozenset(
    {
        "ChannelStateChange",
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "ChannelHangupRequest",
        "StasisEnd",
        "ChannelDestroyed",
        "ChannelConnectedLine",
        "Dial",
    }
)
RACE = {"message": "Channel not in Stasis application"}


async def _wait_for(
    clock: VirtualClock,
    received: list[dict[str, Any]],
    roles: Roles,
    key: tuple[str, tuple[Any, ...]],
    count: int,
) -> None:
    """Until the simulator sent `count` events with that key, or a minute of virtual time
    passed: the comparison then shows what is missing."""

    def arrived() -> bool:
        roles.see(received)
        got = sum(1 for e in received if e["type"] != "ChannelVarset" and _key(e, roles) == key)
        return got >= count

    with contextlib.suppress(TimeoutError):
        await clock.run_until(arrived, within=60.0)


async def _wait_all(
    clock: VirtualClock,
    received: list[dict[str, Any]],
    seen: list[dict[str, Any]],
    cap_roles: Roles,
    sim_roles: Roles,
) -> None:
    """Until every captured event so far has its counterpart."""
    for i, event in enumerate(seen):
        key = _key(event, cap_roles)
        count = sum(1 for e in seen[: i + 1] if _key(e, cap_roles) == key)
        await _wait_for(clock, received, sim_roles, key, count)


async def replay(name: str, sim: AriSimulator, ari: Ari) -> ReplayResult:
    records = load(name)
    scenario = SCENARIOS[name]
    for destination, script in scenario.scripts.items():
        sim.script(destination, script)
    cap_roles, sim_roles = Roles(), Roles()
    for rec in records:
        cap_roles.see(rec.get("data") or rec.get("body"))
    received: list[dict[str, Any]] = []
    readers: list[EventReader] = []

    async def connect() -> None:
        reader = await ari.events()
        reader.events = received  # every socket appends to one list
        readers.append(reader)
        await clock.drive(sim.wait_connected(), within=5)

    clock = ari.clock
    expected_statuses: list[str] = []
    statuses: list[str] = []
    seen: list[dict[str, Any]] = []  # capture events so far
    first_ws = True
    for rec in records:
        kind = rec["kind"]
        if kind == "event":
            data = rec["data"]
            if data["type"] == "ChannelVarset":
                continue
            seen.append(data)
            if data["type"] == "StasisStart" and len(seen) == 1:
                chan = data["channel"]
                await sim.inbound_call(
                    chan["dialplan"]["exten"],
                    chan["caller"]["number"],
                    chan["caller"]["name"],
                    hangup_after=scenario.caller_hangup,
                )
        elif kind == "ws":
            if rec["state"] == "connected":
                if first_ws:
                    first_ws = False
                else:
                    await clock.advance(0.05)  # down for a moment, as in the capture
                await connect()
            elif rec["state"] == "closing":
                await _wait_all(clock, received, seen, cap_roles, sim_roles)
                await readers[-1].close()
        elif kind == "request":
            # Wait for what triggered this call: the last event before it that is not about
            # a channel the call names (those may be its own effects, raced ahead of the
            # answer; race_dial_before_stasisstart's dial must not wait for StasisStart).
            mentioned = _mentioned(rec, cap_roles)
            racing = rec["status"] == 409 and rec.get("body") == RACE
            for i in range(len(seen) - 1, -1, -1):
                key = _key(seen[i], cap_roles)
                if key[0] in mentioned and (key[1][0] in EFFECTS or racing):
                    continue
                count = sum(1 for e in seen[: i + 1] if _key(e, cap_roles) == key)
                await _wait_for(clock, received, sim_roles, key, count)
                break

            def named(mentioned: set[str] = mentioned) -> bool:
                sim_roles.see(received)
                return all(r in sim_roles.ids for r in mentioned)

            with contextlib.suppress(TimeoutError):
                await clock.run_until(named, within=60.0)
            path = cap_roles.sub(rec["path"], sim_roles)
            params = {k: cap_roles.sub(str(v), sim_roles) for k, v in rec["params"].items()}
            status, answer = await ari.call(rec["method"], path, **params)
            sim_roles.see(answer)
            expected_statuses.append(f"{rec['method']} {rec['path']} -> {rec['status']}")
            statuses.append(f"{rec['method']} {rec['path']} -> {status}")
    await _wait_all(clock, received, seen, cap_roles, sim_roles)
    await clock.advance(0.05)  # anything extra the simulator would send
    sim_roles.see(received)
    for reader in readers:
        if not reader.ws.closed:
            await reader.close()
    cap_events = [r["data"] for r in records if r["kind"] == "event"]
    return ReplayResult(
        expected_statuses=expected_statuses,
        statuses=statuses,
        expected_events=by_subject(cap_events, cap_roles),
        events=by_subject(received, sim_roles),
    )
