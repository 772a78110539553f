"""Caller-ID policies as a table: what each leg presents, for allowed and withheld callers."""

from __future__ import annotations

import pytest

from pbxd.dialplan.callerid import (
    CallerIdRule,
    CallerIdShow,
    Identity,
    presented_identity,
)
from pbxd.dialplan.presentation import Presentation

DID, OURS, LABEL = "+33170000001", "+33170000007", "Acme Paris"
CALLER, NAME = "+33612000001", "Jean"
ALLOWED, WITHHELD = Presentation.ALLOWED_NOT_SCREENED, Presentation.PROHIB_NOT_SCREENED
CALLER_RULE = CallerIdRule()
NUMBER_RULE = CallerIdRule(CallerIdShow.NUMBER)
FIXED_RULE = CallerIdRule(CallerIdShow.FIXED, OURS)
PREFIX_RULE = CallerIdRule(prefix="[Acme] ")
NUMBER_PREFIX = CallerIdRule(CallerIdShow.NUMBER, prefix="[Acme] ")

CASES = [
    # rule, caller's presentation, softphone leg, label -> what the leg presents
    (CALLER_RULE, ALLOWED, True, LABEL, Identity(CALLER, NAME)),
    (CALLER_RULE, ALLOWED, False, LABEL, Identity(CALLER, NAME)),
    (CALLER_RULE, WITHHELD, True, LABEL, Identity("anonymous", "Anonymous", WITHHELD)),
    (CALLER_RULE, WITHHELD, False, LABEL, Identity(CALLER, NAME, WITHHELD)),
    (NUMBER_RULE, ALLOWED, False, LABEL, Identity(DID, LABEL)),
    (NUMBER_RULE, ALLOWED, False, None, Identity(DID, NAME)),
    (NUMBER_RULE, WITHHELD, False, None, Identity(DID, "")),
    (NUMBER_RULE, WITHHELD, True, LABEL, Identity(DID, LABEL)),
    (FIXED_RULE, ALLOWED, False, LABEL, Identity(OURS, LABEL)),
    (FIXED_RULE, WITHHELD, True, None, Identity(OURS, "")),
    (PREFIX_RULE, ALLOWED, True, LABEL, Identity(CALLER, "[Acme] Jean")),
    (PREFIX_RULE, WITHHELD, True, LABEL, Identity("anonymous", "[Acme] Anonymous", WITHHELD)),
    (PREFIX_RULE, WITHHELD, False, LABEL, Identity(CALLER, "[Acme] Jean", WITHHELD)),
    (NUMBER_PREFIX, ALLOWED, False, LABEL, Identity(DID, "[Acme] Acme Paris")),
]


@pytest.mark.parametrize(("rule", "presentation", "softphone", "label", "expected"), CASES)
def test_presented_identity(
    rule: CallerIdRule,
    presentation: Presentation,
    softphone: bool,
    label: str | None,
    expected: Identity,
) -> None:
    shown = presented_identity(
        rule,
        did=DID,
        label=label,
        caller_number=CALLER,
        caller_name=NAME,
        presentation=presentation,
        softphone=softphone,
    )
    assert shown == expected


@pytest.mark.parametrize("rule", [CALLER_RULE, NUMBER_RULE, FIXED_RULE, PREFIX_RULE, NUMBER_PREFIX])
@pytest.mark.parametrize("softphone", [True, False])
def test_a_withheld_caller_stays_withheld(rule: CallerIdRule, softphone: bool) -> None:
    shown = presented_identity(
        rule,
        did=DID,
        label=None,
        caller_number=CALLER,
        caller_name=NAME,
        presentation=WITHHELD,
        softphone=softphone,
    )
    # Their number goes out only to a carrier, and only marked withheld.
    if CALLER in shown.number:
        assert not softphone and not shown.presentation.allowed
    assert NAME not in shown.name or not shown.presentation.allowed


def test_a_long_prefix_is_cut() -> None:
    shown = presented_identity(
        CallerIdRule(prefix="x" * 79),
        did=DID,
        label=None,
        caller_number=CALLER,
        caller_name=NAME,
        presentation=ALLOWED,
        softphone=True,
    )
    assert len(shown.name) == 80
