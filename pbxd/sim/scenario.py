"""Scenario files for `pbxd simulate`: who calls which number when, and how phones behave.

A scenario plays against the simulator exactly as traffic would reach a real Asterisk, so a
number's routing can be dry-run before it goes live (before a port date, say). It is checked
like the configuration: every problem at once, each as `FILE:LINE:COLUMN: error: MESSAGE`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from pbxd.config.compile import display_path, kind_of, validate_entry
from pbxd.config.diagnostics import Diagnostic, Diagnostics, Mark, did_you_mean
from pbxd.config.model import Config, Trunk
from pbxd.config.numbering import NumberError, foreign_digit, to_e164
from pbxd.config.yamlsource import MarkedMap, MarkedSeq, load_yaml
from pbxd.dialplan.outbound import read_dialled
from pbxd.sim.media import DEFAULT_PROMPT_SECONDS
from pbxd.sim.model import PRES_ALLOWED_NOT_SCREENED, PRES_PROHIB_NOT_SCREENED
from pbxd.sim.peers import DTMF_DIGITS, PeerScript
from pbxd.sim.server import AriSimulator

# The longest a scenario may last; `pbxd simulate` stops a run that has not settled by then.
MAX_SCENARIO_SECONDS = 4 * 3600
MAX_SPEED = 1000.0
# What carriers put in the caller number when the caller withholds it (RFC 3323 and usage).
WITHHELD_CALLER_IDS = ("anonymous", "restricted", "private", "unavailable")


def _finite(value: Any) -> float | None:
    """A YAML value read as a finite number; None for booleans, lists, text and inf/nan."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    foreign = foreign_digit(value) if isinstance(value, str) else None
    if foreign is not None:  # float() would read `٣` as 3: numbers are written with 0-9 only
        raise ValueError(f"must be a number written with 0-9: {foreign}")
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _seconds(value: Any) -> float:
    number = _finite(value)
    if number is None or not 0 <= number <= MAX_SCENARIO_SECONDS:
        raise ValueError(
            f"must be a number of seconds from 0 to {MAX_SCENARIO_SECONDS}, not {kind_of(value)}"
        )
    return number


def _positive_seconds(value: Any) -> float:
    number = _finite(value)
    if number is None or not 0 < number <= MAX_SCENARIO_SECONDS:
        raise ValueError(
            f"must be a number of seconds above 0 and at most {MAX_SCENARIO_SECONDS}, "
            f"not {kind_of(value)}"
        )
    return number


def _speed(value: Any) -> float:
    number = _finite(value)
    if number is None or not 0 < number <= MAX_SPEED:
        raise ValueError(
            f"must be a number above 0 and at most {MAX_SPEED:g}, not {kind_of(value)}"
        )
    return number


def _flag(value: Any) -> bool:
    # The YAML loader already reads true/false/yes/no; "1" or "t" would be pydantic guessing.
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {kind_of(value)}")
    return value


def _dtmf(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be DTMF digits (0-9, *, #, A-D) as text, not {kind_of(value)}")
    bad = sorted({c for c in value if c not in DTMF_DIGITS})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise ValueError(f"{kind_of(value)} has characters that are not DTMF digits: {shown}")
    return value


_LOCAL_TIME = re.compile(r"^(\d{4})-(\d\d?)-(\d\d?)[ T](\d\d?):(\d\d)(?::(\d\d))?$", re.ASCII)
# Calls at a given date may be from 2000 to 2099: a typo in the year is caught.
FIRST_YEAR, LAST_YEAR = 2000, 2099


def _at(value: Any) -> float | datetime:
    """Seconds from the scenario's start, or a local date and time (`2026-12-25 10:00`)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(f"a date needs a time of day too, e.g. '{value.isoformat()} 10:00'")
    if isinstance(value, str):
        wrong = foreign_digit(value)
        if wrong is not None:
            raise ValueError(wrong)
        match = _LOCAL_TIME.match(value.strip())
        if match is not None:
            year, month, day, hour, minute, second = (int(g or 0) for g in match.groups())
            try:
                moment = datetime(year, month, day, hour, minute, second)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a date and time: {exc}") from None
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise ValueError(f"{value!r}: the year must be from {FIRST_YEAR} to {LAST_YEAR}")
            return moment
    return _seconds(value)


Seconds = Annotated[float, BeforeValidator(_seconds)]
PositiveSeconds = Annotated[float, BeforeValidator(_positive_seconds)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyPress(_Strict):
    """Keys pressed `at` seconds after the call is answered (SIP INFO, 160 ms each)."""

    at: Seconds
    digits: Annotated[str, BeforeValidator(_dtmf)]


class PresenceEntry(_Strict):
    """A softphone registering (`online: true`) or dropping, `at` seconds into the scenario."""

    at: Seconds
    online: Annotated[bool, BeforeValidator(_flag)]


class PeerEntry(_Strict):
    """How a target's phone behaves when rung (seconds of scenario time)."""

    online: Annotated[bool, BeforeValidator(_flag)] = True
    # Registrations during the scenario (a laptop waking up, a phone losing Wi-Fi).
    presence: tuple[PresenceEntry, ...] = ()
    answer_after: Seconds | None = None
    busy_after: Seconds | None = None
    hangup_after: Seconds | None = None
    dtmf: Annotated[str, BeforeValidator(_dtmf)] = ""
    dtmf_after: Seconds = 0.5
    keys: tuple[KeyPress, ...] = ()
    # The mobile's own voicemail answers after N s: it never presses a key (confirm calls).
    voicemail_after: Seconds | None = None
    # A carrier's answers to a call going out: early media (183 with ringback or an
    # announcement) after N s, or a final refusal after N s with its Q.850 cause (1: 404).
    early_media_after: Seconds | None = None
    reject_after: Seconds | None = None
    reject_cause: Annotated[int, Field(ge=1, le=127)] = 1


class CallEntry(_Strict):
    """One inbound call."""

    at: Annotated[float | datetime, BeforeValidator(_at)] = 0.0
    to: str
    from_: str = Field(default="anonymous", alias="from")
    name: str = ""
    # The caller withheld their number: the carrier still sends it (P-Asserted-Identity with
    # `Privacy: id`), Asterisk reads presentation prohib_not_screened.
    withheld: Annotated[bool, BeforeValidator(_flag)] = False
    trunk: str | None = None
    hangup_after: PositiveSeconds | None = None
    # What the caller does once answered: presses keys, talks into voicemail for N seconds
    # (then hangs up, unless `hangup_after` says when).
    keys: tuple[KeyPress, ...] = ()
    # Shorthand for one press: `dtmf: "2"` pressed `dtmf_after` s after the call is answered.
    dtmf: Annotated[str, BeforeValidator(_dtmf)] = ""
    dtmf_after: Seconds = 1.0
    talk: Seconds | None = None


class ScenarioHeader(_Strict):
    """The scenario's own settings (peers and calls are checked entry by entry)."""

    title: str = ""
    speed: Annotated[float, BeforeValidator(_speed)] = 20.0


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a model accepts, as written in the file (`from`, not `from_`)."""
    return tuple(info.alias or name for name, info in model.model_fields.items())


_TOP_KEYS = (*_keys(ScenarioHeader), "peers", "calls")
_PEER_KEYS = _keys(PeerEntry)
_CALL_KEYS = _keys(CallEntry)
# A key put in the wrong section is the likeliest slip: say where it belongs.
_ELSEWHERE = {
    **{k: "how a rung phone behaves goes under `peers:`" for k in _PEER_KEYS},
    **{k: "a call's own settings go in its entry under `calls:`" for k in _CALL_KEYS},
}


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
    withheld: bool = False
    # A call placed at a local date and time (in the called number's time zone).
    when: datetime | None = None
    keys: tuple[tuple[float, str], ...] = ()
    talk: float | None = None
    # A softphone calling out (`from: alice`): its endpoint; `did` is then what it dialled.
    softphone: str | None = None

    @property
    def script(self) -> PeerScript:
        """What the caller does once answered, for `inbound_call`."""
        talk_then_hangup = self.talk is not None and self.hangup_after is None
        return PeerScript(keys=self.keys, talk=self.talk, hangup_after_talk=talk_then_hangup)

    @property
    def shown_at(self) -> str:
        """When the call is placed, as the scenario says it."""
        if self.when is not None:
            return self.when.strftime("%Y-%m-%d %H:%M:%S %Z")
        return f"{self.at:g}s"

    @property
    def presentation(self) -> int:
        """The caller's presentation as Asterisk has it (AST_PRES_*), for `inbound_call`."""
        return PRES_PROHIB_NOT_SCREENED if self.withheld else PRES_ALLOWED_NOT_SCREENED


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A softphone (`PJSIP/carol`) registers or drops at scenario second `at`."""

    at: float
    endpoint: str
    online: bool


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, resolved against the configuration."""

    title: str
    speed: float
    peers: dict[str, PeerScript]
    calls: tuple[ScenarioCall, ...]
    # The wall time (UTC) at scenario second 0: the first call placed at a date, else None
    # (the run starts now).
    start: datetime | None = None
    # Softphones registering and dropping during the scenario, in time order; `registered`:
    # whether each of them is registered at the start.
    presence: tuple[PresenceChange, ...] = ()
    registered: dict[str, bool] = dataclasses.field(default_factory=dict)


def load_scenario(path: Path, config: Config) -> tuple[Scenario | None, list[Diagnostic]]:
    """Read and check a scenario; diagnostics use the same FILE:LINE:COLUMN form as `check`.

    Every problem is reported at once; the Scenario is None when there is any error.
    """
    diags = Diagnostics()
    name = display_path(path)
    top = Mark(name, 1, 1)
    data = load_yaml(path, name, diags)
    if data is None:
        if not diags.items:
            diags.error(top, "the scenario is empty")
        return None, diags.sorted()
    if not isinstance(data, MarkedMap):
        diags.error(
            _mark_of(data, top),
            f"a scenario must be a mapping (title:, speed:, peers:, calls:), not {kind_of(data)}",
        )
        return None, diags.sorted()
    known = _known_keys(data, _TOP_KEYS, diags)
    header = validate_entry(ScenarioHeader, _subset(known, _keys(ScenarioHeader)), top, diags)
    registered: dict[str, bool] = {}
    changes: list[PresenceChange] = []
    calls = _calls(known, config, diags)
    peers = _peers(known, config, diags, _dialled_out(calls, config), registered, changes)
    if header is None or diags.has_errors:
        return None, diags.sorted()
    dated = [c.when for c in calls if c.when is not None]
    start = min(dated).astimezone(UTC) if dated else None
    if start is not None:
        calls = [_from_start(c, start) for c in calls]
    ordered = tuple(sorted(calls, key=lambda c: (c.at, c.index)))
    presence = tuple(sorted(changes, key=lambda c: c.at))
    scenario = Scenario(header.title, header.speed, peers, ordered, start, presence, registered)
    return scenario, diags.sorted()


def _from_start(call: ScenarioCall, start: datetime) -> ScenarioCall:
    """A dated call's `at`: seconds from the scenario's start (the first dated call)."""
    if call.when is None:
        return call
    at = (call.when - start).total_seconds()
    return dataclasses.replace(call, at=at)


def _mark_of(node: Any, fallback: Mark) -> Mark:
    return node.mark if isinstance(node, MarkedMap | MarkedSeq) else fallback


def _subset(raw: MarkedMap, keys: Iterable[str]) -> MarkedMap:
    """The entries of `raw` whose key is in `keys`, with their marks."""
    kept = MarkedMap(raw.mark)
    for key in keys:
        if key in raw:
            kept[key] = raw[key]
            kept.key_marks[key] = raw.key_marks[key]
            kept.value_marks[key] = raw.value_marks[key]
    return kept


def _known_keys(raw: MarkedMap, allowed: tuple[str, ...], diags: Diagnostics) -> MarkedMap:
    """`raw` without its unknown keys, each reported at its key with a suggestion."""
    for key in raw:
        if key in allowed:
            continue
        if key in _ELSEWHERE:
            diags.error(raw.key_marks[key], f"unknown key '{key}' here: {_ELSEWHERE[key]}")
        else:
            diags.error(raw.key_marks[key], f"unknown key '{key}'{did_you_mean(key, allowed)}")
    return _subset(raw, allowed)


# ----------------------------------------------------------------------- peers


def _dialled_out(calls: Iterable[ScenarioCall], config: Config) -> set[str]:
    """The numbers the scenario's softphones call (a peer script may say how they answer)."""
    numbers: set[str] = set()
    for call in calls:
        rights = config.outbound_of_endpoint.get(call.softphone or "")
        read = read_dialled(call.did, rights.country) if rights is not None else None
        if read is not None:
            numbers.add(read.number)
    return numbers


def _peers(
    data: MarkedMap,
    config: Config,
    diags: Diagnostics,
    dialled_out: set[str],
    registered: dict[str, bool],
    changes: list[PresenceChange],
) -> dict[str, PeerScript]:
    raw_peers = data.get("peers")
    if raw_peers is None:
        return {}
    if not isinstance(raw_peers, MarkedMap):
        diags.error(
            data.mark_of("peers"),
            f"peers: must be a mapping of target: behaviour, not {kind_of(raw_peers)}",
        )
        return {}
    regions = _countries(config)
    rung = _rung_destinations(config)
    peers: dict[str, PeerScript] = {}
    first_key: dict[str, str] = {}
    for key, raw in raw_peers.items():
        key_mark = raw_peers.key_marks[key]
        value_mark = raw_peers.mark_of(key)
        entry = raw if raw is not None else MarkedMap(value_mark)  # `alice:` alone: defaults
        parsed: PeerEntry | None = None
        if isinstance(entry, MarkedMap):
            parsed = validate_entry(
                PeerEntry, _known_keys(entry, _PEER_KEYS, diags), value_mark, diags
            )
        else:
            diags.error(
                value_mark,
                f"peer '{key}' must be a mapping (answer_after:, busy_after:, hangup_after:, "
                f"online:, presence:, dtmf:), not {kind_of(entry)}",
            )
        destination = _peer_destination(key, config, regions)
        if destination is None:
            diags.warning(
                key_mark,
                f"peer '{key}' is neither a target name, an endpoint (PJSIP/…) nor a number: "
                f"ignored{did_you_mean(key, [*config.targets, *rung])}",
            )
            continue
        if key not in config.targets and destination not in rung and destination not in dialled_out:
            diags.warning(
                key_mark,
                f"peer '{key}': no target rings {destination}, so this behaviour is never used"
                f"{did_you_mean(destination, rung)}",
            )
        if destination in first_key:
            diags.warning(
                key_mark,
                f"peer '{key}' is the same phone as '{first_key[destination]}' "
                f"(line {raw_peers.key_marks[first_key[destination]].line}): this one wins",
            )
        first_key[destination] = key
        if parsed is not None and parsed.presence:
            if not destination.startswith("PJSIP/") or "@" in destination:
                where = entry.key_marks.get("presence", key_mark)
                diags.error(
                    where,
                    f"peer '{key}': presence: only a softphone (PJSIP/…) registers; "
                    f"{destination} is reached through a carrier",
                )
                continue
            # The endpoint's registration says whether it can be rung from then on.
            registered[destination] = parsed.online
            changes.extend(PresenceChange(p.at, destination, p.online) for p in parsed.presence)
        if parsed is not None:
            peers[destination] = PeerScript(
                online=parsed.online or bool(parsed.presence),
                answer_after=parsed.answer_after,
                busy_after=parsed.busy_after,
                hangup_after=parsed.hangup_after,
                dtmf=parsed.dtmf,
                dtmf_after=parsed.dtmf_after,
                keys=tuple((k.at, k.digits) for k in parsed.keys),
                voicemail_after=parsed.voicemail_after,
                progress_after=parsed.early_media_after,
                reject_after=parsed.reject_after,
                reject_cause=parsed.reject_cause,
            )
    return peers


def _rung_destinations(config: Config) -> list[str]:
    """What the configuration's targets ring: endpoints, numbers and full dial strings."""
    rung: list[str] = []
    for target in config.targets.values():
        if target.endpoint is not None:
            rung.append(target.endpoint)
        elif target.number is not None:
            rung.append(target.number)
            if target.trunk in config.trunks:
                rung.append(config.dial_string(target))
    return rung


def _peer_destination(key: str, config: Config, regions: list[str | None]) -> str | None:
    target = config.targets.get(key)
    if target is not None:
        return target.endpoint or target.number
    if "/" in key:
        return key
    return _parse_number(key, regions)[0]


# ----------------------------------------------------------------------- calls


def _calls(data: MarkedMap, config: Config, diags: Diagnostics) -> list[ScenarioCall]:
    raw_calls = data.get("calls")
    if raw_calls is not None and not isinstance(raw_calls, MarkedSeq):
        diags.error(
            data.mark_of("calls"), f"calls: must be a list of calls, not {kind_of(raw_calls)}"
        )
        return []
    if not raw_calls:
        diags.warning(data.mark_of("calls"), "the scenario places no call")
        return []
    calls: list[ScenarioCall] = []
    for index, raw in enumerate(raw_calls):
        mark = raw_calls.mark_of(index)
        if not isinstance(raw, MarkedMap):
            diags.error(mark, f"a call must be a mapping (at:, to:, from: …), not {kind_of(raw)}")
            continue
        entry = _known_keys(raw, _CALL_KEYS, diags)
        parsed = validate_entry(CallEntry, entry, mark, diags) or _valid_part(entry)
        if parsed is not None:
            resolved = _resolve_call(index + 1, parsed, entry, config, diags)
            if resolved is not None:
                calls.append(resolved)
    return calls


def _valid_part(raw: MarkedMap) -> CallEntry | None:
    """The call without its already-reported bad keys, so its numbers are checked too."""
    try:
        return CallEntry.model_validate(raw)
    except ValidationError as exc:
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
    try:
        return CallEntry.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return None


def _countries(config: Config) -> list[str | None]:
    """The trunks' countries, in file order: national numbers are read in these."""
    countries = [t.country for t in config.trunks.values() if t.country]
    return list(dict.fromkeys(countries)) or [None]


def _parse_number(text: str, regions: list[str | None]) -> tuple[str | None, str]:
    """(E.164, "") for a valid number in one of `regions`, else (None, why)."""
    why = ""
    for region in regions:
        try:
            return to_e164(text, region), ""
        except NumberError as exc:
            why = why or str(exc)
    return None, why


# What a softphone may send as the number it dials (spaces are the scenario's, for reading).
_DIALLED = re.compile(r"[+*#0-9]{1,32}", re.ASCII)


def _softphone_call(
    index: int, call: CallEntry, raw: MarkedMap, config: Config, diags: Diagnostics
) -> ScenarioCall | None:
    """`from: alice` (a softphone target): alice dials `to` as typed; pbxd decides the rest."""
    target = config.targets[call.from_]
    assert target.endpoint is not None
    endpoint = target.endpoint.partition("/")[2]
    dialled = "".join(call.to.split())
    if not _DIALLED.fullmatch(dialled):
        diags.error(raw.mark_of("to"), "to: a softphone dials digits, +, * and # only")
        return None
    if call.withheld or call.keys or call.talk is not None or call.trunk is not None:
        diags.error(
            raw.mark_of("from"),
            "a softphone calling out takes only at, to, name and hangup_after",
        )
        return None
    when: datetime | None = None
    if isinstance(call.at, datetime):
        rights = config.outbound_of_endpoint.get(endpoint)
        when = _local_moment(call.at, rights.number if rights else "", config, raw, diags)
        if when is None:
            return None
    return ScenarioCall(
        index,
        call.at if isinstance(call.at, float) else 0.0,
        dialled,
        endpoint,
        call.name or target.label,
        endpoint,
        call.hangup_after,
        when=when,
        softphone=endpoint,
    )


def _resolve_call(
    index: int, call: CallEntry, raw: MarkedMap, config: Config, diags: Diagnostics
) -> ScenarioCall | None:
    source = config.targets.get(call.from_)
    softphone = source.endpoint.partition("/")[2] if source and source.endpoint else ""
    if softphone in config.outbound_of_endpoint:
        return _softphone_call(index, call, raw, config, diags)
    trunk: Trunk | None = None
    if call.trunk is not None:
        trunk = config.trunks.get(call.trunk)
        if trunk is None:
            diags.error(
                raw.mark_of("trunk"),
                f"trunk: unknown trunk '{call.trunk}'{did_you_mean(call.trunk, config.trunks)}",
            )
    # The trunk's country alone when it is named: a national `to` means nothing elsewhere.
    regions = [trunk.country] if trunk is not None else _countries(config)
    did = _called_number(call.to, regions, config)
    if did is None:
        _, why = _parse_number(call.to, regions)
        diags.error(raw.mark_of("to"), f"to: {why}")
    if trunk is None and call.trunk is None:
        trunk = _arrival_trunk(did, config)
        if trunk is None:
            diags.error(raw.mark_of("to"), "the configuration has no trunk to send this call on")
    # With an unknown trunk, read the caller in the same countries as `to` (no cascade).
    caller = _caller_id(call.from_, [trunk.country] if trunk else regions, raw, diags)
    name_ok = call.name.isprintable()
    if not name_ok:
        diags.error(raw.mark_of("name"), "name: must be printable text (no control characters)")
    if did is None or trunk is None or caller is None or not name_ok:
        return None
    when: datetime | None = None
    if isinstance(call.at, datetime):
        when = _local_moment(call.at, did, config, raw, diags)
        if when is None:
            return None
    return ScenarioCall(
        index,
        call.at if isinstance(call.at, float) else 0.0,
        did,
        caller,
        call.name,
        trunk.inbound_endpoint,
        call.hangup_after,
        call.withheld,
        when=when,
        keys=tuple(
            sorted(
                [(k.at, k.digits) for k in call.keys]
                + ([(call.dtmf_after, call.dtmf)] if call.dtmf else [])
            )
        ),
        talk=call.talk,
    )


def _local_moment(
    local: datetime, did: str, config: Config, raw: MarkedMap, diags: Diagnostics
) -> datetime | None:
    """`local` in the called number's time zone (UTC for a number that is not ours); a time
    the clocks skip when they go forward is an error, an hour they repeat is its first pass."""
    number = config.number(did)
    zone_name = number.timezone if number is not None else "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        diags.error(raw.mark_of("at"), f"at: unknown time zone {zone_name!r} for {did}")
        return None
    moment = local.replace(tzinfo=zone)
    if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        diags.error(
            raw.mark_of("at"),
            f"at: {local:%Y-%m-%d %H:%M} does not exist in {zone_name} "
            "(the clocks go forward then)",
        )
        return None
    return moment


def _called_number(text: str, regions: list[str | None], config: Config) -> str | None:
    """The E.164 of `to`; a national number valid in several countries: ours first."""
    found: list[str] = []
    for region in regions:
        e164, _ = _parse_number(text, [region])
        if e164 is not None:
            if config.number(e164) is not None:
                return e164
            found.append(e164)
    return found[0] if found else None


def _arrival_trunk(did: str | None, config: Config) -> Trunk | None:
    """The trunk a call to `did` arrives on: its inventory's, else one of its country."""
    number = config.number(did) if did else None
    if number is not None:
        return config.trunks.get(number.trunk)
    region = phonenumbers.region_code_for_number(phonenumbers.parse(did)) if did else None
    trunks = list(config.trunks.values())
    return next((t for t in trunks if t.country == region), trunks[0] if trunks else None)


def _caller_id(
    text: str, regions: list[str | None], raw: MarkedMap, diags: Diagnostics
) -> str | None:
    """The caller number as the carrier sends it: E.164, or a withheld-number word."""
    caller = text.strip()
    if caller.lower() in WITHHELD_CALLER_IDS:
        return caller
    e164, why = _parse_number(caller, regions)
    if e164 is not None:
        return e164
    if not any(c.isdigit() for c in caller):
        why = f"{kind_of(caller)} is not a caller ID"
    diags.error(
        raw.mark_of("from"),
        f"from: {why}: a caller ID is a number (E.164, or national for the trunk's country) "
        f"or one of {', '.join(WITHHELD_CALLER_IDS)}",
    )
    return None


def configured_prompts(config: Config) -> list[str]:
    """Every prompt the configuration plays (`sound:` URIs): greetings, menus, whispers,
    confirm prompts and mailbox greetings."""
    prompts: list[str] = []
    for route in config.routes.values():
        if route.greeting is not None:
            prompts.extend(route.greeting.prompts)
        if route.menu is not None:
            menu = route.menu
            prompts.extend((*menu.prompts, *menu.invalid_prompts, *menu.timeout_prompts))
        prompts.extend((*route.whisper, *route.confirm_prompt))
    for block in config.blocks.values():
        prompts.extend(block.whisper)
    # Single numbers here: a block's members share the whisper listed once above.
    prompts.extend(p for n in config.numbers.values() if n.block is None for p in n.whisper)
    for mailbox in config.mailboxes.values():
        prompts.extend(mailbox.greeting)
    for plan in config.plans.values():
        prompts.extend(plan.warning)
    return list(dict.fromkeys(p for p in prompts if p.startswith("sound:")))


def prepare_sounds(sim: AriSimulator, config: Config) -> list[str]:
    """The sounds folder's files at their real lengths; a prompt the configuration names that
    no file provides plays DEFAULT_PROMPT_SECONDS (`pbxd check` warns about it; a real
    Asterisk would fail it at once). Returns the prompts given a default length."""
    folder = config.settings.sounds_dir
    if folder is not None and folder.is_dir():
        sim.scan_sounds(folder)
    assumed = [p for p in configured_prompts(config) if p not in sim.sounds]
    for prompt in assumed:
        sim.add_sound(prompt, DEFAULT_PROMPT_SECONDS)
    return assumed


def prepare_simulator(sim: AriSimulator, config: Config, scenario: Scenario) -> None:
    """Declare every endpoint the configuration uses, its prompts, then the scenario's peer
    behaviour."""
    prepare_sounds(sim, config)
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

    def online(endpoint: str) -> bool:
        script = scenario.peers.get(endpoint)
        return scenario.registered.get(endpoint, script.online if script else True)

    for target in config.targets.values():
        if target.endpoint is not None:
            declare(target.endpoint, target.label, online=online(target.endpoint))
    for destination, script in scenario.peers.items():
        if "/" in destination and "@" not in destination:
            declare(destination, online=online(destination))
        sim.script(destination, script)


def apply_presence(sim: AriSimulator, change: PresenceChange) -> None:
    """A softphone registers or drops, as Asterisk reports it (EndpointStateChange…)."""
    technology, _, resource = change.endpoint.partition("/")
    if change.online:
        sim.register(resource, technology=technology)
    else:
        sim.unregister(resource, technology=technology)
