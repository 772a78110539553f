"""Scenario files for `pbxd simulate`: who calls which number when, and how phones behave.

A scenario plays against the simulator exactly as traffic would reach a real Asterisk, so a
number's routing can be dry-run before it goes live (before a port date, say).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pbxd.config.compile import display_path, validate_entry
from pbxd.config.diagnostics import Diagnostic, Diagnostics, Mark
from pbxd.config.model import Config
from pbxd.config.numbering import NumberError, to_e164
from pbxd.config.yamlsource import MarkedMap, MarkedSeq, load_yaml
from pbxd.sim.peers import PeerScript
from pbxd.sim.server import AriSimulator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerEntry(_Strict):
    """How a target's phone behaves when rung (seconds of scenario time)."""

    online: bool = True
    answer_after: float | None = Field(default=None, ge=0)
    busy_after: float | None = Field(default=None, ge=0)
    hangup_after: float | None = Field(default=None, ge=0)
    dtmf: str = ""


class CallEntry(_Strict):
    """One inbound call."""

    at: float = Field(default=0.0, ge=0)
    to: str
    from_: str = Field(default="anonymous", alias="from")
    name: str = ""
    trunk: str | None = None
    hangup_after: float | None = Field(default=None, gt=0)


class ScenarioFile(_Strict):
    """The scenario file's shape."""

    title: str = ""
    speed: float = Field(default=20.0, gt=0, le=1000)
    peers: dict[str, PeerEntry] = Field(default_factory=dict)
    calls: list[CallEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScenarioCall:
    """A call to place: E.164 number, on which trunk endpoint, at which scenario second."""

    index: int
    at: float
    did: str
    caller_number: str
    caller_name: str
    trunk_endpoint: str
    hangup_after: float | None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, resolved against the configuration."""

    title: str
    speed: float
    peers: dict[str, PeerScript]
    calls: tuple[ScenarioCall, ...]


def load_scenario(path: Path, config: Config) -> tuple[Scenario | None, list[Diagnostic]]:
    """Read and check a scenario; diagnostics use the same FILE:LINE:COLUMN form as `check`."""
    diags = Diagnostics()
    name = display_path(path)
    top = Mark(name, 1, 1)
    data = load_yaml(path, name, diags)
    if data is None:
        if not diags.items:
            diags.error(top, "the scenario is empty")
        return None, diags.sorted()
    parsed = validate_entry(ScenarioFile, data, top, diags)
    if parsed is None:
        return None, diags.sorted()
    peers: dict[str, PeerScript] = {}
    raw_peers = data.get("peers")
    for key, entry in parsed.peers.items():
        mark = raw_peers.key_marks[key] if isinstance(raw_peers, MarkedMap) else top
        destination = _peer_destination(key, config)
        if destination is None:
            diags.error(
                mark, f"'{key}' is neither a target name, an endpoint (PJSIP/…) nor an E.164 number"
            )
            continue
        peers[destination] = PeerScript(
            online=entry.online,
            answer_after=entry.answer_after,
            busy_after=entry.busy_after,
            hangup_after=entry.hangup_after,
            dtmf=entry.dtmf,
        )
    calls: list[ScenarioCall] = []
    raw_calls = data.get("calls")
    for index, call in enumerate(parsed.calls):
        raw = raw_calls[index] if isinstance(raw_calls, MarkedSeq) else None
        mark = raw.mark_of("to") if isinstance(raw, MarkedMap) else top
        resolved = _resolve_call(index + 1, call, config, mark, diags)
        if resolved is not None:
            calls.append(resolved)
    if not parsed.calls:
        diags.warning(top, "the scenario places no call")
    if diags.has_errors:
        return None, diags.sorted()
    ordered = tuple(sorted(calls, key=lambda c: (c.at, c.index)))
    return Scenario(parsed.title, parsed.speed, peers, ordered), diags.sorted()


def _peer_destination(key: str, config: Config) -> str | None:
    target = config.targets.get(key)
    if target is not None:
        return target.endpoint or target.number
    if "/" in key:
        return key
    try:
        return to_e164(key, None)
    except NumberError:
        return None


def _resolve_call(
    index: int, call: CallEntry, config: Config, mark: Mark, diags: Diagnostics
) -> ScenarioCall | None:
    trunk = config.trunks.get(call.trunk) if call.trunk else None
    if call.trunk and trunk is None:
        diags.error(mark, f"unknown trunk '{call.trunk}'")
        return None
    regions = [trunk.country] if trunk else [t.country for t in config.trunks.values()]
    did = None
    for region in dict.fromkeys([*regions, None]):
        try:
            did = to_e164(call.to, region)
            break
        except NumberError:
            continue
    if did is None:
        # An unparseable called number is still a legitimate test (the carrier sends junk).
        did = call.to.strip()
    if trunk is None:
        number = config.number(did)
        trunk = (
            config.trunks.get(number.trunk) if number else next(iter(config.trunks.values()), None)
        )
    if trunk is None:
        diags.error(mark, "the configuration has no trunk to send this call on")
        return None
    caller = call.from_.strip()
    with contextlib.suppress(NumberError):  # anonymous or junk caller IDs are worth a test too
        caller = to_e164(caller, trunk.country)
    return ScenarioCall(
        index, call.at, did, caller, call.name, trunk.inbound_endpoint, call.hangup_after
    )


def prepare_simulator(sim: AriSimulator, config: Config, scenario: Scenario) -> None:
    """Declare every endpoint the configuration uses, then the scenario's peer behaviour."""
    declared: set[tuple[str, str]] = set()

    def declare(endpoint: str, caller_name: str = "", online: bool = True) -> None:
        tech, _, resource = endpoint.partition("/")
        resource = resource.partition("@")[2] or resource
        if (tech, resource) not in declared and tech and resource:
            declared.add((tech, resource))
            sim.add_endpoint(
                tech, resource, online=online, caller_name=caller_name, caller_number=resource
            )

    for trunk in config.trunks.values():
        declare(f"PJSIP/{trunk.inbound_endpoint}")
        if "@" in trunk.dial_template:  # PJSIP/{number}@trunk-out: the trunk is the endpoint
            declare(trunk.dial_template.replace("{number}", "x"))
    for target in config.targets.values():
        if target.endpoint is not None:
            script = scenario.peers.get(target.endpoint)
            declare(target.endpoint, target.label, online=script.online if script else True)
    for destination, script in scenario.peers.items():
        if "/" in destination and "@" not in destination:
            declare(destination, online=script.online)
        sim.script(destination, script)
