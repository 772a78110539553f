"""`pbxd check` closes the toll-fraud holes: softphones, dial templates, denied destinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxd.config.compile import compile_config
from pbxd.dialplan.flow import Flow, RingStep
from pbxd.dialplan.plan import CallFacts, plan_call
from tests.config.test_check import Edit, check

DIAL = 'dial: "PJSIP/{number}@trunk-out"'
ALICE = "softphone: PJSIP/alice"
CEO = "external: 06 12 34 56 78"


def assert_check_fails_with(capsys: pytest.CaptureFixture[str], expected: str) -> None:
    """`pbxd check` exits 1 with a diagnostic line starting with `expected`."""
    status, err, _ = check(capsys)
    assert status == 1
    assert any(line.startswith(expected) for line in err), "\n".join(err)


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(
            "softphone: PJSIP/+19005551234@trunk-out",
            "routing/acme.yaml:6:16: error: softphone 'PJSIP/+19005551234@trunk-out' dials "
            "through another endpoint ('@'): a number goes in `external:` with a `trunk`",
            id="number-through-the-carrier",
        ),
        pytest.param(
            "softphone: PJSIP/alice&PJSIP/+33612345678@trunk-out",
            "routing/acme.yaml:6:16: error: softphone 'PJSIP/alice&PJSIP/+33612345678@trunk-out' "
            "dials a second destination ('&')",
            id="second-destination",
        ),
        pytest.param(
            "softphone: PJSIP/trunk-out/sip:+19005551234@evil.example",
            "routing/acme.yaml:6:16: error: softphone 'PJSIP/trunk-out/sip:+19005551234@evil"
            ".example' is a SIP URI, not an endpoint name",
            id="uri",
        ),
        pytest.param(
            "softphone: PJSIP/0033612345678",
            "routing/acme.yaml:6:16: error: softphone 'PJSIP/0033612345678' is a phone number",
            id="bare-number",
        ),
        pytest.param(
            "softphone: Local/+19005551234@from-internal",
            "routing/acme.yaml:6:16: error: softphone 'Local/+19005551234@from-internal' a "
            "softphone is PJSIP/NAME, not 'Local'",
            id="local-channel",
        ),
        pytest.param(
            "softphone: PJSIP/trunk-out",
            "routing/acme.yaml:6:16: error: softphone 'PJSIP/trunk-out' is an endpoint of "
            "trunk 'carrier-fr': a carrier is dialled only through `external:` numbers",
            id="the-carrier-itself",
        ),
        pytest.param(
            "softphone: PJSIP/al ice",
            "routing/acme.yaml:6:16: error: softphone 'PJSIP/al ice' an endpoint name has only "
            "letters, digits",
            id="space-in-name",
        ),
    ],
)
def test_a_softphone_is_a_bare_endpoint_name(
    edit: Edit, capsys: pytest.CaptureFixture[str], new: str, expected: str
) -> None:
    edit("routing/acme.yaml", ALICE, new)
    assert_check_fails_with(capsys, expected)


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(
            'dial: "PJSIP/{number}@trunk-out&Local/+882100000001@from-internal"',
            "sip-trunks.yaml:9:11: error: dial template "
            "'PJSIP/{number}@trunk-out&Local/+882100000001@from-internal' dials a second "
            "destination ('&'): write it as PJSIP/{number}@ENDPOINT, one technology, one "
            "number, one endpoint",
            id="second-destination",
        ),
        pytest.param(
            'dial: "PJSIP/trunk-out/sip:+19005551234@evil;x={number}"',
            "sip-trunks.yaml:9:11: error: dial template "
            "'PJSIP/trunk-out/sip:+19005551234@evil;x={number}' sends the call to a SIP URI",
            id="uri-with-number-in-a-parameter",
        ),
        pytest.param(
            'dial: "PJSIP/{number}@trunk-out/{number}"',
            "sip-trunks.yaml:9:11: error: dial template 'PJSIP/{number}@trunk-out/{number}' "
            "has {number} more than once",
            id="number-twice",
        ),
        pytest.param(
            'dial: "Local/{number}@from-internal"',
            "sip-trunks.yaml:9:11: error: dial template 'Local/{number}@from-internal' only "
            "PJSIP is dialled, not 'Local'",
            id="local-channel",
        ),
        pytest.param(
            'dial: "PJSIP/00{number}@trunk-out"',
            "sip-trunks.yaml:9:11: error: dial template 'PJSIP/00{number}@trunk-out' needs "
            "{number} then @ and one endpoint name",
            id="digits-before-the-number",
        ),
    ],
)
def test_a_dial_template_is_one_technology_number_and_endpoint(
    edit: Edit, capsys: pytest.CaptureFixture[str], new: str, expected: str
) -> None:
    edit("sip-trunks.yaml", DIAL, new)
    assert_check_fails_with(capsys, expected)


def test_check_names_the_outbound_endpoint(example: Path) -> None:
    result = compile_config(example / "pbxd.yaml")
    assert result.config is not None
    trunks = result.config.trunks
    assert trunks["carrier-fr"].outbound_endpoint == "trunk-out"
    assert trunks["carrier-uk"].outbound_endpoint == "trunk-uk"


def test_dialling_out_through_another_trunks_endpoint_is_a_warning(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("sip-trunks.yaml", 'dial: "PJSIP/{number}@trunk-uk"', 'dial: "PJSIP/{number}@trunk-in"')
    status, err, _ = check(capsys)
    assert status == 0
    assert err == [
        "sip-trunks.yaml:38:11: warning: trunk 'carrier-uk' dials out through 'trunk-in', "
        "the inbound endpoint of trunk 'carrier-fr'"
    ]


def test_lowercase_technology_is_written_as_asterisk_names_it(edit: Edit, example: Path) -> None:
    edit("sip-trunks.yaml", DIAL, 'dial: "pjsip/{number}@trunk-out"')
    edit("routing/acme.yaml", ALICE, "softphone: pjsip/alice")
    result = compile_config(example / "pbxd.yaml")
    assert result.config is not None
    assert result.config.trunks["carrier-fr"].dial_template == "PJSIP/{number}@trunk-out"
    assert result.config.targets["alice"].endpoint == "PJSIP/alice"


# ---------------------------------------------------------------- denied destinations


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        pytest.param(
            "08 99 12 34 56",
            "+33899123456 is a denied destination: +3389 is premium-rate (FR 089) on trunk "
            "'carrier-fr'",
            id="fr-premium",
        ),
        pytest.param(
            "08 21 12 34 56",
            "+33821123456 is a denied destination: +3382 is special-rate (FR 081, 082)",
            id="fr-special-rate",
        ),
    ],
)
def test_premium_numbers_are_denied_although_plus33_is_allowed(
    edit: Edit, capsys: pytest.CaptureFixture[str], number: str, expected: str
) -> None:
    edit("routing/acme.yaml", CEO, f"external: {number}")
    assert_check_fails_with(capsys, f"routing/acme.yaml:15:15: error: {expected}")


def test_a_broad_prefix_does_not_open_satellite_or_caribbean_numbers(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("sip-trunks.yaml", 'allowed_destinations: ["+33"]', 'allowed_destinations: ["+"]')
    edit("sip-trunks.yaml", 'allowed_destinations: ["+"]', 'allowed_destinations: ["+33", "+8"]')
    edit("routing/acme.yaml", CEO, "external: +881612345678")
    status, err, _ = check(capsys)
    assert status == 1
    assert (
        "routing/acme.yaml:15:15: error: +881612345678 is a denied destination: +881 is "
        "satellite (Iridium, Globalstar, Thuraya...) on trunk 'carrier-fr'"
    ) in " ".join(err)


def test_an_explicit_allowed_prefix_overrides_a_default_denial(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        "sip-trunks.yaml", 'allowed_destinations: ["+33"]', 'allowed_destinations: ["+33", "+3389"]'
    )
    edit("routing/acme.yaml", CEO, "external: 08 99 12 34 56")
    status, err, _ = check(capsys)
    assert (status, err) == (0, [])


def test_denied_destinations_extend_the_defaults(
    edit: Edit, capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    edit(
        "sip-trunks.yaml",
        'allowed_destinations: ["+33"]',
        'allowed_destinations: ["+33"]\n    denied_destinations: ["+33 6 12"]',
    )
    status, err, _ = check(capsys)
    assert status == 1
    assert (
        "routing/acme.yaml:15:15: error: +33612345678 is a denied destination: +33612 is "
        "denied in sip-trunks.yaml on trunk 'carrier-fr'"
    ) in " ".join(err)
    # The built-in denials still hold beside the trunk's own.
    edit("routing/acme.yaml", CEO, "external: 06 99 99 99 99")
    edit("routing/acme.yaml", "external: 06 12 34 56 79", "external: 08 99 12 34 56")
    status, err, _ = check(capsys)
    assert status == 1
    assert [line.split(": error: ")[1].split(":")[0] for line in err if ": error: " in line] == [
        "+33899123456 is a denied destination"
    ]


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(
            'denied_destinations: ["+33"]',
            "sip-trunks.yaml:11:27: error: +33 is both allowed and denied",
            id="both",
        ),
        pytest.param(
            'denied_destinations: ["33 89"]',
            "sip-trunks.yaml:11:27: error: denied destination '33 89' must be an E.164 prefix",
            id="not-a-prefix",
        ),
        pytest.param(
            'denied_destinations: ["+33\u0668"]',
            "sip-trunks.yaml:11:27: error: denied destination '+33\u0668' must be an E.164 prefix",
            id="non-ascii-digit",
        ),
    ],
)
def test_bad_denied_destinations(
    edit: Edit, capsys: pytest.CaptureFixture[str], new: str, expected: str
) -> None:
    edit(
        "sip-trunks.yaml",
        'allowed_destinations: ["+33"]',
        f'allowed_destinations: ["+33"]\n    {new}',
    )
    assert_check_fails_with(capsys, expected)


# ---------------------------------------------------------------- maximum call duration


def test_max_call_duration_is_planned_per_leg(edit: Edit, example: Path) -> None:
    # carrier-fr caps its legs at 2 h; the reception route at 1 h; softphones have no trunk.
    edit(
        "sip-trunks.yaml",
        "max_outbound_legs: 20",
        "max_outbound_legs: 20\n    max_call_duration: 7200",
    )
    result = compile_config(example / "pbxd.yaml")
    assert result.config is not None
    facts = CallFacts("c1", "PJSIP/trunk-in-00000001", "+33170000001", "+33612000001", "")
    plan = ring_step(plan_call(facts, result.config))
    assert {leg.target: leg.max_duration for leg in plan.legs} == {
        "alice": 4 * 3600,
        "bob": 4 * 3600,
        "ceo-mobile": 7200,
    }
    edit(
        "routing/acme.yaml",
        "    caller_id: caller ",
        "    max_call_duration: 3600\n    caller_id: caller ",
    )
    result = compile_config(example / "pbxd.yaml")
    assert result.config is not None
    plan = ring_step(plan_call(facts, result.config))
    assert {leg.max_duration for leg in plan.legs} == {3600}


def ring_step(flow: object) -> RingStep:
    """The first ring step of a flow (after its opening hours and greeting, if any)."""
    assert isinstance(flow, Flow), flow
    step = next(s for s in flow.walk() if isinstance(s, RingStep))
    return step


@pytest.mark.parametrize("value", ["0", "86401", "yes"])
def test_max_call_duration_bounds(
    edit: Edit, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    edit(
        "sip-trunks.yaml",
        "max_outbound_legs: 20",
        f"max_outbound_legs: 20\n    max_call_duration: {value}",
    )
    assert_check_fails_with(capsys, "sip-trunks.yaml:12:24: error: max_call_duration")
