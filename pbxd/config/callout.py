"""Routing files' `outbound:`: which softphones call out, as which virtual number, to where.

Checked against the inventory (the number presented must be ours, in service), the targets
(each name a softphone) and the trunk's toll-fraud rules (what a user may dial narrows the
trunk's allowlist, never widens it).
"""

from __future__ import annotations

from typing import Any

from pbxd.config import numbering
from pbxd.config.destinations import PREFIX
from pbxd.config.diagnostics import Diagnostics, Mark, did_you_mean
from pbxd.config.files import NumberStatus, OutboundEntry
from pbxd.config.model import CallingOut, Config
from pbxd.config.yamlsource import locate

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
    if not entry.softphones:
        error([], f"outbound '{name}' needs `softphones:` (the softphones that call out)")
        ok = False
    for index, target_name in enumerate(entry.softphones):
        target = config.targets.get(target_name)
        if target is None:
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
    if number is not None and virtual is None:
        error(["outbound_number"], f"{number} is not one of our numbers (sip-trunks.yaml)")
    elif virtual is not None and virtual.status is NumberStatus.RESERVED:
        error(["outbound_number"], f"{number} is reserved: it cannot be presented")
        virtual = None
    trunk_name = entry.trunk or (virtual.trunk if virtual else None)
    trunk = config.trunks.get(trunk_name) if trunk_name else None
    if entry.trunk is not None and trunk is None:
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
    )
    config.outbound[name] = rights
    for endpoint in endpoints:
        config.outbound_of_endpoint[endpoint] = rights
    return rights


def _number(text: str, region: str | None, path: list[str | int], error: Any) -> str | None:
    try:
        return numbering.to_e164(str(text), region)
    except numbering.NumberError as exc:
        error(path, str(exc))
        return None
