"""`pbxd check` on broken copies of the shipped example: exact place and message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pbxd.cli.main import main

Edit = Callable[[str, str, str], None]


def check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    status = main(["check"])
    captured = capsys.readouterr()
    return status, captured.err.splitlines(), captured.out


def test_shipped_example_is_valid(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err, out = check(capsys)
    assert status == 0
    assert err == []
    assert out.strip() == ("pbxd.yaml: OK: 20 numbers (1 block), 9 routes, 10 targets, 2 trunks")


# (file, old text, new text, the diagnostic line expected)
BROKEN = [
    pytest.param(
        "sip-trunks.yaml",
        'allowed_destinations: ["+33"]',
        'allowed_destinations: ["+33"',
        "sip-trunks.yaml:11:5: error: YAML syntax error: did not find expected ',' or ']'",
        id="yaml-syntax",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "label: Acme Paris reception",
        "lable: Acme Paris reception",
        "sip-trunks.yaml:16:9: error: unknown key 'lable' (did you mean 'label'?)",
        id="unknown-key",
    ),
    pytest.param(
        "routing/acme.yaml",
        "strategy: hunt ",
        "strategy: hunt\n    stratgy: hunt ",
        "routing/acme.yaml:38:5: error: unknown key 'stratgy' (did you mean 'strategy'?)",
        id="unknown-key-in-route",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "- number: 01 70 00 00 01",
        "- number: 01 70 00 00 0",
        "sip-trunks.yaml:15:17: error: '01 70 00 00 0' is not a valid number for FR",
        id="invalid-number",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "- number: 01 70 00 00 01",
        "- number: 01 70 00 00 0x1",
        "sip-trunks.yaml:15:17: error: '01 70 00 00 0x1' is not a valid number for FR",
        id="number-with-letters",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "- number: 020 7946 0123",
        "- number: +44 20 7946 01",
        "sip-trunks.yaml:44:17: error: '+44 20 7946 01' is not a valid number for GB",
        id="invalid-e164-number",
    ),
    pytest.param(
        "routing/acme.yaml",
        "numbers: [01 70 00 00 01]",
        "numbers: [01 70 00 00 03]",
        "routing/acme.yaml:25:15: error: number +33170000003 is not in the inventory "
        "(sip-trunks.yaml)",
        id="routed-number-not-in-inventory",
    ),
    pytest.param(
        "routing/acme.yaml",
        "targets: [alice, bob, ceo-mobile]",
        "targets: [alice, bobb, ceo-mobile]",
        "routing/acme.yaml:30:22: error: unknown target 'bobb' (did you mean 'bob'?)",
        id="unknown-target",
    ),
    pytest.param(
        "routing/acme.yaml",
        "    external: 06 12 34 56 78\n    trunk: carrier-fr",
        "    external: 06 12 34 56 78\n    trunk: carrier-frr",
        "routing/acme.yaml:16:12: error: unknown trunk 'carrier-frr' (did you mean 'carrier-fr'?)",
        id="unknown-trunk",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "      - number: 09 72 10 00 01",
        "      - number: 01 70 00 00 01\n      - number: 09 72 10 00 01",
        "sip-trunks.yaml:17:17: error: number +33170000001 is listed twice "
        "(first at sip-trunks.yaml:15:17)",
        id="same-number-twice",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "      - number: 01 70 00 00 02",
        "      - block: acme-more\n        range: 01 70 00 01 05 - 01 70 00 01 14\n"
        "      - number: 01 70 00 00 02",
        "sip-trunks.yaml:26:16: error: block 'acme-more' (+33170000105–+33170000114) overlaps "
        "block 'acme-direct' (+33170000100–+33170000109, sip-trunks.yaml:20:16)",
        id="overlapping-blocks",
    ),
    pytest.param(
        "sip-trunks.yaml",
        'dial: "PJSIP/{number}@trunk-out"',
        'dial: "PJSIP/trunk-out"',
        "sip-trunks.yaml:9:11: error: dial template 'PJSIP/trunk-out' has no {number} placeholder",
        id="dial-without-number",
    ),
    pytest.param(
        "sip-trunks.yaml",
        'dial: "PJSIP/{number}@trunk-out"',
        'dial: "PJSIP/{number}@{trunk}"',
        "sip-trunks.yaml:9:11: error: dial template may only contain the placeholder {number}, "
        "not '{trunk}'",
        id="dial-with-formatted-number",
    ),
    pytest.param(
        "routing/acme.yaml",
        "external: 06 12 34 56 79",
        "external: +44 20 7946 0999",
        "routing/acme.yaml:19:15: error: +442079460999 is outside the destinations trunk "
        "'carrier-fr' may dial (allowed: +33)",
        id="external-outside-allowed-prefixes",
    ),
    pytest.param(
        "routing/acme.yaml",
        "{target: bob, ring_time: 15}",
        "{target: bob, ring_time: 0}",
        "routing/acme.yaml:39:34: error: ring_time must be between 1 and 300 seconds, not 0",
        id="ring-time-zero",
    ),
    pytest.param(
        "routing/acme.yaml",
        "{target: bob, ring_time: 15}",
        "{target: bob, ring_time: -5}",
        "routing/acme.yaml:39:34: error: ring_time must be between 1 and 300 seconds, not -5",
        id="ring-time-negative",
    ),
    pytest.param(
        "routing/acme.yaml",
        "{target: bob, ring_time: 15}",
        "{target: bob, ring_time: 86400}",
        "routing/acme.yaml:39:34: error: ring_time must be between 1 and 300 seconds, not 86400",
        id="ring-time-absurd",
    ),
    pytest.param(
        "routing/acme.yaml",
        "{target: bob, ring_time: 15}",
        "{target: bob, ring_time: soon}",
        "routing/acme.yaml:39:34: error: ring_time: must be a whole number, not 'soon'",
        id="ring-time-not-a-number",
    ),
    pytest.param(
        "routing/acme.yaml",
        "timeout: 30\n    caller_id: caller",
        "timeout: 0\n    caller_id: caller",
        "routing/acme.yaml:31:14: error: timeout must be between 1 and 3600 seconds, not 0",
        id="route-timeout-zero",
    ),
    pytest.param(
        "routing/acme.yaml",
        "timeout: 30\n    caller_id: caller",
        "timeout: -30\n    caller_id: caller",
        "routing/acme.yaml:31:14: error: timeout must be between 1 and 3600 seconds, not -30",
        id="route-timeout-negative",
    ),
    pytest.param(
        "routing/acme.yaml",
        "timeout: 30\n    caller_id: caller",
        "timeout: 86400\n    caller_id: caller",
        "routing/acme.yaml:31:14: error: timeout must be between 1 and 3600 seconds, not 86400",
        id="route-timeout-absurd",
    ),
    pytest.param(
        "routing/acme.yaml",
        "{target: bob, ring_time: 15}",
        "{target: bob, ring_time: yes}",
        "routing/acme.yaml:39:34: error: ring_time: must be a whole number, not true",
        id="ring-time-boolean",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "port_date: 2026-12-15",
        "port_date: 15/12/2026",
        "sip-trunks.yaml:23:20: error: port_date: must be a date written YYYY-MM-DD, "
        "not '15/12/2026'",
        id="port-date-not-a-date",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "range: 01 70 00 01 00 - 01 70 00 01 09",
        "prefix: 01 70 00 01 0\n        count: 12",
        "sip-trunks.yaml:21:16: error: count must be a power of ten from 10 to 100,000 "
        "(a whole prefix block), not 12",
        id="prefix-count-not-a-power-of-ten",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "range: 01 70 00 01 00 - 01 70 00 01 09",
        "range: 01 70 00 01 09 - 01 70 00 01 00",
        "sip-trunks.yaml:20:16: error: block starts at +33170000109 but ends before it, "
        "at +33170000100",
        id="range-reversed",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "range: 01 70 00 01 00 - 01 70 00 01 09",
        "range: 01 70 00 01 00 - +44 20 7946 0123",
        "sip-trunks.yaml:20:16: error: block ends +33170000100 and +442079460123 do not have "
        "the same length",
        id="range-crossing-lengths",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "  carrier-uk:\n",
        "  carrier-uk: yes\n  carrier-gb:\n",
        "sip-trunks.yaml:35:3: error: a trunk must be a mapping (key: value), not true",
        id="trunk-not-a-mapping",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "        port_date: 2026-12-15\n",
        "",
        "sip-trunks.yaml:19:9: error: a porting number needs a port_date",
        id="porting-without-date",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "    inbound_endpoint: trunk-uk\n",
        "",
        "sip-trunks.yaml:35:3: error: missing required key 'inbound_endpoint'",
        id="missing-required-key",
    ),
    pytest.param(
        "sip-trunks.yaml",
        "timezone: Europe/London",
        "timezone: Europe/Londn",
        "sip-trunks.yaml:42:15: error: unknown time zone 'Europe/Londn' "
        "(did you mean 'Europe/London'?)",
        id="unknown-time-zone",
    ),
    pytest.param(
        "routing/acme.yaml",
        "  bob:\n    softphone: PJSIP/bob",
        "  bob:\n    softphone: PJSIP/bob\n  alice:\n    softphone: PJSIP/alice2",
        "routing/acme.yaml:10:3: error: duplicate key 'alice' (first defined at line 5)",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "routing/acme.yaml",
        "strategy: ringall            # everyone",
        "strategy: ring-all           # everyone",
        "routing/acme.yaml:29:15: error: strategy: must be one of 'ringall', 'hunt', "
        "'staggered', 'memoryhunt', 'roundrobin', 'longest_idle', 'fewest_calls', 'random' "
        "or 'weighted', not 'ring-all' (did you mean 'ringall'?)",
        id="unknown-strategy",
    ),
    pytest.param(
        "pbxd.yaml",
        "  password_env: PBXD_ARI_PASSWORD ",
        "  password: hunter2\n  password_env: PBXD_ARI_PASSWORD ",
        "pbxd.yaml:6:3: error: the ARI password must not be written in pbxd.yaml: use "
        "password_env (default PBXD_ARI_PASSWORD) or password_file",
        id="inline-password-refused",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), BROKEN)
def test_broken_copy_reports_exact_place(
    edit: Edit,
    capsys: pytest.CaptureFixture[str],
    name: str,
    old: str,
    new: str,
    expected: str,
) -> None:
    edit(name, old, new)
    status, err, out = check(capsys)
    assert expected in err, "\n".join(err)
    assert status == 1
    assert out == ""


def test_unrouted_inventory_number_is_a_warning(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        "sip-trunks.yaml",
        "      - number: 09 72 10 00 01",
        "      - number: 01 70 00 00 04\n      - number: 09 72 10 00 01",
    )
    status, err, out = check(capsys)
    assert status == 0
    assert err == [
        "sip-trunks.yaml:17:17: warning: number +33170000004 has no route: "
        "its calls will be rejected"
    ]
    assert out.strip().endswith(
        "21 numbers (1 block), 9 routes, 10 targets, 2 trunks, 1 warning(s)"
    )


def test_all_problems_are_reported_at_once(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("sip-trunks.yaml", "label: Acme Paris reception", "lable: Acme Paris reception")
    edit("routing/acme.yaml", "targets: [alice, bob, ceo-mobile]", "targets: [alice, bobb]")
    edit("routing/london.yaml", "timeout: 30", "timeout: 99999")
    status, err, _ = check(capsys)
    assert status == 1
    errors = [line for line in err if ": error: " in line]
    assert [e.split(": error: ")[0] for e in errors] == [
        "routing/acme.yaml:30:22",
        "routing/london.yaml:8:14",
        "sip-trunks.yaml:16:9",
    ]


def test_missing_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PBXD_CONFIG", raising=False)
    status, err, _ = check(capsys)
    assert status == 1
    assert err[0] == "pbxd.yaml:1:1: error: file not found"


def test_environment_overrides_paths(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / "routing").rename(example / "routes-elsewhere")
    status, err, _ = check(capsys)
    assert status == 1 and err[0] == "routing:1:1: error: routing directory not found"
    monkeypatch.setenv("PBXD_ROUTING_DIR", "routes-elsewhere")
    status, err, _ = check(capsys)
    assert (status, err) == (0, [])


def test_route_that_splits_a_block_between_trunks(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        "routing/acme.yaml",
        "    block: acme-direct\n",
        "    numbers: [01 70 00 01 00]\n    trunk: carrier-fr\n",
    )
    edit(
        "routing/london.yaml",
        "    caller_id: number\n",
        "    caller_id: number\n  - name: elsewhere\n    numbers: ['+33170000101']\n"
        "    trunk: carrier-uk\n    targets: [bob]\n",
    )
    status, err, _ = check(capsys)
    assert status == 1
    assert (
        "routing/london.yaml:11:15: error: route 'elsewhere' splits block 'acme-direct' "
        "between trunks 'carrier-fr' (route 'direct-lines', routing/acme.yaml:46:15) "
        "and 'carrier-uk'"
    ) in err, "\n".join(err)


def test_porting_number_without_losing_carrier_is_a_warning(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("sip-trunks.yaml", "        losing_carrier: Orange\n", "")
    status, err, _ = check(capsys)
    assert status == 0
    assert err == ["sip-trunks.yaml:19:9: warning: a porting number should name its losing_carrier"]
