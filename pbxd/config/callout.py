"""Routing files' `outbound:`: which softphones call out, as which virtual number, to where.

Checked against the inventory (the number presented must be ours, in service), the targets
(each name a softphone) and the trunk's toll-fraud rules (what a user may dial narrows the
trunk's allowlist, never widens it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from pbxd.config import numbering
from pbxd.config.destinations import PREFIX
from pbxd.config.diagnostics import Diagnostics, Mark, did_you_mean
from pbxd.config.files import CallThroughEntry, NumberStatus, OutboundEntry
from pbxd.config.model import CallingOut, CallThrough, Config
from pbxd.config.yamlsource import locate


@dataclass(frozen=True, slots=True)
class Broken:
    """What entries with their own errors would have defined: naming it is no new error."""

    number: Callable[[str], bool]  # a number whose inventory entry (or whole file) is broken
    trunks: Collection[str] = ()
    targets: Collection[str] = ()
    blocks: Collection[str] = ()
    inventory: bool = False  # sip-trunks.yaml could not be read at all


NOTHING_BROKEN = Broken(lambda _e164: False)

# Longer than any ring a carrier lets through (Q.850 timers run out near 3 minutes).
MAX_OUTBOUND_TIMEOUT = 300


def compile_calling_out(
    name: str,
    raw: Any,
    entry: OutboundEntry,
    key_mark: Mark,
    country: str | None,
    config: Config,
    diags: Diagnostics,
    broken: Broken = NOTHING_BROKEN,
) -> CallingOut | None:
    """The rights of one `outbound:` entry; None (with errors reported) when unusable."""

    def error(path: list[str | int], message: str) -> None:
        diags.error(locate(raw, path, key_mark)[0], message)

    if name in config.outbound:
        first = config.outbound[name].source
        diags.error(key_mark, f"outbound '{name}' is defined twice (first at {first})")
        return None
    ok = True
    endpoints: list[str] = []
    if not entry.softphones and not entry.mobiles:
        error([], f"outbound '{name}' needs `softphones:` or `mobiles:` (who calls out)")
        ok = False
    for index, target_name in enumerate(entry.softphones):
        target = config.targets.get(target_name)
        if target is None and target_name in broken.targets:
            ok = False
        elif target is None:
            hint = did_you_mean(target_name, config.targets)
            error(["softphones", index], f"unknown target '{target_name}'{hint}")
            ok = False
        elif target.endpoint is None:
            error(
                ["softphones", index],
                f"target '{target_name}' is an external number: only softphones call out",
            )
            ok = False
        else:
            endpoint = target.endpoint.partition("/")[2]
            taken = config.outbound_of_endpoint.get(endpoint)
            if taken is not None and taken.name != name:
                error(
                    ["softphones", index],
                    f"softphone '{target_name}' already calls out as '{taken.name}'",
                )
                ok = False
            endpoints.append(endpoint)
    region = country.upper() if country else None
    number = _number(entry.outbound_number, region, ["outbound_number"], error)
    virtual = config.numbers.get(number) if number else None
    if number is not None and virtual is None and not broken.number(number):
        error(["outbound_number"], f"{number} is not one of our numbers (sip-trunks.yaml)")
    elif virtual is not None and virtual.status is NumberStatus.RESERVED:
        error(["outbound_number"], f"{number} is reserved: it cannot be presented")
        virtual = None
    trunk_name = entry.trunk or (virtual.trunk if virtual else None)
    trunk = config.trunks.get(trunk_name) if trunk_name else None
    trunk_broken = broken.inventory or entry.trunk in broken.trunks
    if entry.trunk is not None and trunk is None and not trunk_broken:
        hint = did_you_mean(entry.trunk, config.trunks)
        error(["trunk"], f"unknown trunk '{entry.trunk}'{hint}")
    for index, prefix in enumerate(entry.may_dial):
        if not PREFIX.fullmatch(prefix):
            error(["may_dial", index], f"'{prefix}' is not an E.164 prefix such as +33")
            ok = False
        elif trunk is not None and not any(prefix.startswith(p) for p in trunk.allowed_prefixes):
            error(
                ["may_dial", index],
                f"{prefix} is outside what trunk '{trunk.name}' may dial "
                f"({', '.join(trunk.allowed_prefixes) or 'none'}): `may_dial` only narrows",
            )
            ok = False
    emergency = None
    if entry.emergency_caller_id is not None:
        emergency = _number(entry.emergency_caller_id, region, ["emergency_caller_id"], error)
        ok = ok and emergency is not None
    user_region = entry.country.upper() if entry.country else None
    if user_region is not None and not numbering.is_region(user_region):
        error(["country"], f"unknown country code '{entry.country}'")
        ok = False
    if not 1 <= entry.timeout <= MAX_OUTBOUND_TIMEOUT:
        error(["timeout"], f"timeout must be between 1 and {MAX_OUTBOUND_TIMEOUT} seconds")
        ok = False
    mobiles: list[str] = []
    mobile_region = user_region or (trunk.country if trunk else None) or region
    for index, text in enumerate(entry.mobiles):
        mobile = _number(text, mobile_region, ["mobiles", index], error)
        taken_by = config.outbound_of_mobile.get(mobile) if mobile else None
        if taken_by is not None and taken_by.name != name:
            error(["mobiles", index], f"{mobile} already calls through as '{taken_by.name}'")
            mobile = None
        if mobile is None:
            ok = False
            continue
        mobiles.append(mobile)
    if entry.pin is not None and not (
        entry.pin.isascii() and entry.pin.isdigit() and 4 <= len(entry.pin) <= 12
    ):
        error(["pin"], "pin must be 4 to 12 digits 0-9, in quotes (pin: '0042')")
        ok = False
    if mobiles and entry.pin is None:
        error(["mobiles"], "mobiles call through with a PIN: add `pin:` (4 to 12 digits)")
        ok = False
    if not ok or virtual is None or trunk is None or number is None:
        return None
    rights = CallingOut(
        name=name,
        endpoints=tuple(endpoints),
        number=number,
        trunk=trunk.name,
        country=user_region or trunk.country or region,
        may_dial=tuple(entry.may_dial),
        withhold=entry.withhold,
        emergency_caller_id=emergency,
        timeout=entry.timeout,
        source=key_mark,
        mobiles=tuple(mobiles),
        pin=entry.pin,
    )
    config.outbound[name] = rights
    for endpoint in endpoints:
        config.outbound_of_endpoint[endpoint] = rights
    for mobile in mobiles:
        config.outbound_of_mobile[mobile] = rights
    return rights


def compile_call_through(
    raw: Any,
    entry: CallThroughEntry,
    mark: Mark,
    country: str | None,
    config: Config,
    diags: Diagnostics,
    broken: Broken = NOTHING_BROKEN,
) -> None:
    """`call_through:`: the access numbers registered mobiles call out from."""

    def error(path: list[str | int], message: str) -> None:
        diags.error(locate(raw, path, mark)[0], message)

    if config.call_through is not None:
        diags.error(mark, "call_through is defined twice: one section lists every access number")
        return
    numbers: list[str] = []
    region = country.upper() if country else None
    for index, text in enumerate(entry.numbers):
        e164 = _number(text, region, ["numbers", index], error)
        if e164 is None:
            continue
        found = config.numbers.get(e164)
        if found is None:
            if not broken.number(e164):
                error(["numbers", index], f"{e164} is not one of our numbers (sip-trunks.yaml)")
            continue
        if found.status is NumberStatus.RESERVED:
            error(["numbers", index], f"{e164} is reserved: it takes no calls")
            continue
        numbers.append(e164)
    if not entry.numbers:
        error([], "call_through needs `numbers:` (the access numbers mobiles call)")
    if not 1 <= entry.timeout <= MAX_OUTBOUND_TIMEOUT:
        error(["timeout"], f"timeout must be between 1 and {MAX_OUTBOUND_TIMEOUT} seconds")
        return
    config.call_through = CallThrough(frozenset(numbers), entry.timeout, (f"sound:{entry.tone}",))


def _number(text: str, region: str | None, path: list[str | int], error: Any) -> str | None:
    try:
        return numbering.to_e164(str(text), region)
    except numbering.NumberError as exc:
        error(path, str(exc))
        return None
