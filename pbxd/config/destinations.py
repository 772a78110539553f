"""Who an outbound leg may reach: endpoint names, dial templates, allowed and denied prefixes.

Pure rules shared by `pbxd check` (to refuse a bad configuration) and the call path (to
refuse a bad endpoint string just before `channels/create`). Toll fraud goes through exactly
these holes: a softphone that is really a number, a dial template that dials a second
destination, a broad prefix that hides premium-rate or satellite ranges.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TypeVar

_V = TypeVar("_V")

# The only channel technology pbxd dials: Asterisk 22's SIP driver. `Local/` would go back
# through the dialplan, and other drivers accept a host or a number in the resource.
TECHNOLOGY = "PJSIP"
# An Asterisk endpoint (or AOR) name as pjsip.conf section names are written: ASCII only.
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A name made of this many digits or more is a phone number, not an extension.
PHONE_NUMBER_DIGITS = 7
# E.164: `+`, a country code that does not start with 0, at most 15 digits (7 at least).
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
PREFIX = re.compile(r"\+[1-9][0-9]{0,14}")
_SOFTPHONE = re.compile(rf"(?i:{TECHNOLOGY})/(?P<name>{ENDPOINT_NAME.pattern})")
_DIAL_TEMPLATE = re.compile(
    rf"(?i:{TECHNOLOGY})/\{{number\}}@(?P<endpoint>{ENDPOINT_NAME.pattern})"
)
_OUTBOUND = re.compile(rf"{TECHNOLOGY}/(?P<number>\+[0-9]+)@(?P<endpoint>{ENDPOINT_NAME.pattern})")

# Q.850 cause 52, "outgoing calls barred" (Asterisk's AST_CAUSE_OUTGOING_CALL_BARRED): the
# cause a leg pbxd refused to place is recorded with.
BARRED_CAUSE = 52
# Q.850 102, "recovery on timer expiry": the cause of a leg (and call) cut at its maximum
# duration.
MAX_DURATION_CAUSE = 102
DEFAULT_MAX_CALL_DURATION = 4 * 3600  # seconds an answered leg may last when nothing is set
MAX_CALL_DURATION_LIMIT = 24 * 3600


@dataclass(frozen=True, slots=True)
class DeniedPrefix:
    """An E.164 prefix no leg may reach unless an allowed prefix at least as long says so."""

    prefix: str
    why: str
    default: bool = True  # from DEFAULT_DENIED (else written in sip-trunks.yaml)


def _denied(why: str, *prefixes: str) -> tuple[DeniedPrefix, ...]:
    return tuple(DeniedPrefix(p, why) for p in prefixes)


# Premium-rate, satellite and "international network" ranges that toll fraud pumps traffic
# to: denied on every trunk even when a broader prefix (+1, +33, +44) is allowed.
DEFAULT_DENIED: tuple[DeniedPrefix, ...] = (
    *_denied("satellite (Inmarsat)", "+870", "+871", "+872", "+873", "+874"),
    *_denied("satellite (Iridium, Globalstar, Thuraya...)", "+881"),
    *_denied("international networks (satellite, maritime, premium)", "+882", "+883"),
    *_denied("international services (UPT, disaster relief, trials)", "+878", "+888", "+991"),
    *_denied("international premium-rate service", "+979"),
    *_denied("premium-rate (US 900/976)", "+1900", "+1976"),
    # NANP countries outside the US and Canada: international rates behind +1, and the
    # classic "one ring" callback scams.
    *_denied(
        "Caribbean and Atlantic NANP (international rates behind +1)",
        "+1242", "+1246", "+1264", "+1268", "+1284", "+1345", "+1441", "+1473", "+1649",
        "+1658", "+1664", "+1721", "+1758", "+1767", "+1784", "+1809", "+1829", "+1849",
        "+1868", "+1869", "+1876",
    ),
    *_denied("special-rate (FR 081, 082)", "+3381", "+3382"),
    *_denied("premium-rate (FR 089)", "+3389"),
    *_denied("premium-rate (UK 09)", "+449"),
    *_denied("personal numbering (UK 070)", "+4470"),
    *_denied("revenue-sharing (UK 087)", "+4487"),
    *_denied("premium-rate (DE 0900, 0137)", "+49900", "+49137"),
    *_denied("premium-rate (BE 090x)", "+3290"),
    *_denied("premium-rate (NL 0900, 0906, 0909)", "+31900", "+31906", "+31909"),
    *_denied("premium-rate (ES 803, 806, 807, 905)", "+34803", "+34806", "+34807", "+34905"),
    *_denied("premium-rate (IT 89x)", "+3989"),
    *_denied("premium-rate (CH 0900, 0901, 0906)", "+41900", "+41901", "+41906"),
    *_denied("premium-rate (AT 0900, 0930, 0939)", "+43900", "+43930", "+43939"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DestinationRules:
    """A trunk's allowed and denied prefixes, indexed once: a check is a few dict lookups."""

    allowed: tuple[str, ...]
    denied: tuple[DeniedPrefix, ...]
    _allow: dict[str, str] = field(init=False, repr=False, compare=False)
    _deny: dict[str, DeniedPrefix] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", {p: p for p in self.allowed})
        object.__setattr__(self, "_deny", {d.prefix: d for d in self.denied})

    def refusal(self, e164: str) -> str | None:
        """Why a leg to `e164` is refused (None: it may be placed).

        The longest matching prefix decides: `+1` allowed still denies `+1900`; allowing
        `+1900` itself (as long as the denied prefix, or longer) overrides the denial.
        """
        if not E164.fullmatch(e164):
            return f"{e164!r} is not an E.164 number"
        allow = _longest(e164, self._allow)
        if allow is None:
            allowed = ", ".join(self.allowed) or "none"
            return f"{e164} is outside the allowed destinations ({allowed})"
        deny = _longest(e164, self._deny)
        if deny is not None and len(deny.prefix) > len(allow):
            return f"{e164} is a denied destination: {deny.prefix} is {deny.why}"
        return None


def _longest(e164: str, index: dict[str, _V]) -> _V | None:
    """The value of the longest prefix of `e164` in `index` (at most 16 dict lookups)."""
    for end in range(len(e164), 1, -1):
        found = index.get(e164[:end])
        if found is not None:
            return found
    return None


def softphone_problem(endpoint: str) -> str | None:
    """Why `endpoint` is not a bare softphone endpoint such as PJSIP/alice (None: it is)."""
    tech, slash, name = endpoint.partition("/")
    if not slash or tech.upper() != TECHNOLOGY:
        return f"a softphone is {TECHNOLOGY}/NAME, not {tech or endpoint!r}"
    if "&" in name:
        return "dials a second destination ('&')"
    if "/" in name or ":" in name:
        return "is a SIP URI, not an endpoint name"
    if "@" in name:
        return "dials through another endpoint ('@'): a number goes in `external:` with a `trunk`"
    if _looks_like_number(name):
        return "is a phone number: a number goes in `external:` with a `trunk`"
    if not ENDPOINT_NAME.fullmatch(name):
        return "an endpoint name has only letters, digits, '-', '_' and '.' (at most 64)"
    return None


def _looks_like_number(name: str) -> bool:
    digits = name.lstrip("+")
    return name.startswith("+") or (
        digits.isascii() and digits.isdigit() and len(digits) >= PHONE_NUMBER_DIGITS
    )


def canonical_softphone(endpoint: str) -> str:
    """`pjsip/alice` -> `PJSIP/alice` (a checked softphone endpoint)."""
    return f"{TECHNOLOGY}/{endpoint.partition('/')[2]}"


def dial_template_problem(template: str) -> str | None:
    """Why `template` is not exactly PJSIP/{number}@ENDPOINT (None: it is)."""
    if _DIAL_TEMPLATE.fullmatch(template):
        return None
    tech, _, rest = template.partition("/")
    if tech.upper() != TECHNOLOGY:
        return f"only {TECHNOLOGY} is dialled, not {tech!r}"
    if "&" in template:
        return "dials a second destination ('&')"
    if template.count("{number}") > 1:
        return "has {number} more than once"
    if "/" in rest or ":" in rest:
        return "sends the call to a SIP URI: put the carrier's address in pjsip.conf"
    return "needs {number} then @ and one endpoint name (letters, digits, '-', '_', '.')"


@functools.lru_cache(maxsize=64)
def outbound_endpoint_of(template: str) -> str | None:
    """The endpoint a checked dial template goes out through (`trunk-out`), else None."""
    match = _DIAL_TEMPLATE.fullmatch(template)
    return match.group("endpoint") if match else None


def canonical_dial_template(template: str) -> str:
    """`pjsip/{number}@trunk-out` -> `PJSIP/{number}@trunk-out` (a checked template)."""
    return f"{TECHNOLOGY}/{template.partition('/')[2]}"


def split_outbound(endpoint: str) -> tuple[str, str] | None:
    """`PJSIP/+33612345678@trunk-out` -> (`+33612345678`, `trunk-out`); None otherwise."""
    match = _OUTBOUND.fullmatch(endpoint)
    return (match.group("number"), match.group("endpoint")) if match else None


def bare_softphone(endpoint: str) -> bool:
    """True for exactly PJSIP/NAME (canonical case) with a name that is not a number."""
    match = _SOFTPHONE.fullmatch(endpoint)
    return (
        match is not None
        and endpoint.startswith(f"{TECHNOLOGY}/")
        and not _looks_like_number(match.group("name"))
    )
