"""Scenario files are checked like the configuration: every problem at once, at its place."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.sim.peers import PeerScript
from pbxd.sim.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[2]
PARIS = ZoneInfo("Europe/Paris")
NOT_A_CALLER_ID = (
    "a caller ID is a number (E.164, or national for the trunk's country) "
    "or one of anonymous, restricted, private, unavailable"
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The shipped configuration and scenarios, in tmp_path (the cwd)."""
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("routing", "scenarios"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_TRUNKS_FILE", "PBXD_ROUTING_DIR"):
        monkeypatch.delenv(var, raising=False)
    result = compile_config(tmp_path / "pbxd.yaml")
    assert result.config is not None, result.diagnostics
    return result.config


def load(config: Config, text: str) -> tuple[Scenario | None, list[str]]:
    """Load `text` as scenarios/t.yaml; the diagnostics as printed."""
    path = Path("scenarios/t.yaml")
    path.write_text(text, encoding="utf-8")
    scenario, diagnostics = load_scenario(path, config)
    return scenario, [str(d) for d in diagnostics]


def diagnose(config: Config, text: str) -> list[str]:
    """The diagnostics of a scenario that must be refused."""
    scenario, lines = load(config, text)
    assert scenario is None
    return lines


def test_shipped_scenario_is_clean(config: Config) -> None:
    scenario, diagnostics = load_scenario(Path("scenarios/acme-morning.yaml"), config)
    assert diagnostics == []
    assert scenario is not None
    assert [(c.did, c.caller_number, c.trunk_endpoint) for c in scenario.calls] == [
        ("+33170000001", "+33612000001", "trunk-in"),
        ("+33972100001", "+33478000001", "trunk-in"),
        ("+33170000103", "+33698765432", "trunk-in"),
        ("+442079460123", "+442079460000", "trunk-uk"),
        ("+33170000030", "+33612000002", "trunk-in"),  # 10:00:20 in Paris: 09:00:20 UTC
        ("+33170000010", "+33612000002", "trunk-in"),  # 11:00 in Paris
        ("+33170000009", "anonymous", "trunk-in"),  # not ours: 10:00:12 UTC
        ("+33972100002", "+33677000001", "trunk-in"),  # the starter plan: cut, then...
        ("+33972100002", "+33677000002", "trunk-in"),  # ... voicemail
        ("0145678900", "alice", "alice"),  # alice calls out: the number as she dialled it
        ("+49301234567", "alice", "alice"),  # outside the allowlist
        ("+33170000040", "+33781234567", "trunk-in"),  # call through from the sales mobile
        *[("+33170000011", f"+336200000{n:02d}", "trunk-in") for n in range(1, 11)],
        ("+33972100001", "+33478000002", "trunk-in"),
        ("+33170000001", "+33655443322", "trunk-in"),
        ("+33170000001", "+33611223344", "trunk-in"),
    ]
    assert [c.softphone for c in scenario.calls].count("alice") == 2
    assert scenario.peers["PJSIP/bob"] == PeerScript(busy_after=1.0)
    assert scenario.peers["+33612345679"] == PeerScript()  # the on-call mobile rings out
    assert scenario.peers["+33781234568"] == PeerScript(voicemail_after=1.0)
    assert scenario.calls[4].keys == ((2.0, "2"),)  # the switchboard's caller chooses sales
    # The customer alice calls: its carrier sends early media, then it answers.
    assert scenario.peers["+33145678900"] == PeerScript(answer_after=3.0, progress_after=1.0)
    talks = [c.talk for c in scenario.calls]
    assert talks == [None, 12.0, *[None] * 6, 6.0, *[None] * 14, 8.0, 1.0]
    # The call through keys its PIN, then the number it calls.
    assert scenario.calls[11].keys == ((1.0, "4321#"), (4.0, "0145678900#"))
    # carol's laptop: closed at first, registered at noon, asleep at half past.
    assert scenario.registered == {"PJSIP/carol": False}
    assert [(p.at, p.endpoint, p.online) for p in scenario.presence] == [
        (7200.0, "PJSIP/carol", True),
        (9000.0, "PJSIP/carol", False),
    ]
    assert scenario.peers["PJSIP/carol"].online  # once registered, she can be rung


def test_every_problem_at_once_at_its_place(config: Config) -> None:
    assert diagnose(
        config,
        "titel: x\n"
        "speed: 5000\n"
        "peers:\n"
        "  alice: {answer_after: -1, at: 3}\n"
        "  bob: {online: 1, dtmf: 12x}\n"
        "calls:\n"
        "  - 0170000001\n"
        "  - at: 14401\n"
        "    to: 12345\n"
        "    from: carol\n"
        "    hangup_afterr: 3\n"
        "    answer_after: 2\n"
        "  - {to: 01 70 00 00 01, trunk: carrier-fx}\n"
        "  - {from: anonymous}\n",
    ) == [
        "scenarios/t.yaml:1:1: error: unknown key 'titel' (did you mean 'title'?)",
        "scenarios/t.yaml:2:8: error: speed: must be a number above 0 and at most 1000, not '5000'",
        "scenarios/t.yaml:4:25: error: answer_after: must be a number of seconds from 0 to "
        "14400, not '-1'",
        "scenarios/t.yaml:4:29: error: unknown key 'at' here: a call's own settings go in its "
        "entry under `calls:`",
        "scenarios/t.yaml:5:17: error: online: must be true or false, not '1'",
        "scenarios/t.yaml:5:26: error: dtmf: '12x' has characters that are not DTMF digits: 'x'",
        "scenarios/t.yaml:7:5: error: a call must be a mapping (at:, to:, from: …), "
        "not '0170000001'",
        "scenarios/t.yaml:8:9: error: at: must be a number of seconds from 0 to 14400, not '14401'",
        "scenarios/t.yaml:9:9: error: to: '12345' is not a valid number for FR",
        f"scenarios/t.yaml:10:11: error: from: 'carol' is not a caller ID: {NOT_A_CALLER_ID}",
        "scenarios/t.yaml:11:5: error: unknown key 'hangup_afterr' (did you mean 'hangup_after'?)",
        "scenarios/t.yaml:12:5: error: unknown key 'answer_after' here: how a rung phone "
        "behaves goes under `peers:`",
        "scenarios/t.yaml:13:33: error: trunk: unknown trunk 'carrier-fx' (did you mean "
        "'carrier-fr'?)",
        "scenarios/t.yaml:14:5: error: missing required key 'to'",
    ]


def test_an_entry_with_only_an_unknown_key_still_checks_its_numbers(config: Config) -> None:
    # Call 2 passes its shape check once the typo is dropped, so its `to` is checked too.
    assert diagnose(config, "calls:\n  - {to: 12345, fro: x}\n") == [
        "scenarios/t.yaml:2:10: error: to: '12345' is not a valid number for FR",
        "scenarios/t.yaml:2:17: error: unknown key 'fro' (did you mean 'from'?)",
    ]


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("12345", "'12345' is not a valid number for FR"),
        ("abc", "'abc' is not a phone number"),
        ("'+999999999999999999'", "'+999999999999999999' is not a phone number"),
        ("+33 1 23", "'+33 1 23' is not a valid number for FR"),
        ("anonymous", "'anonymous' is not a phone number"),
    ],
)
def test_called_number_must_be_a_number(config: Config, to: str, message: str) -> None:
    assert diagnose(config, f"calls:\n  - to: {to}\n") == [
        f"scenarios/t.yaml:2:9: error: to: {message}"
    ]


@pytest.mark.parametrize(
    ("to", "did", "endpoint"),
    [
        ("01 70 00 00 09", "+33170000009", "trunk-in"),  # valid, not ours: unallocated
        ("+33 1 70 00 00 01", "+33170000001", "trunk-in"),
        ("020 7946 0123", "+442079460123", "trunk-uk"),  # national in the UK trunk's country
        ("+44 20 7946 0999", "+442079460999", "trunk-uk"),  # not ours: the UK trunk still
    ],
)
def test_called_number_in_e164_or_national(
    config: Config, to: str, did: str, endpoint: str
) -> None:
    scenario, diagnostics = load(config, f"calls:\n  - to: {to}\n")
    assert diagnostics == []
    assert scenario is not None
    assert (scenario.calls[0].did, scenario.calls[0].trunk_endpoint) == (did, endpoint)


def test_trunk_sets_the_country_of_national_numbers(config: Config) -> None:
    assert diagnose(config, "calls:\n  - {to: 01 70 00 00 01, trunk: carrier-uk}\n") == [
        "scenarios/t.yaml:2:10: error: to: '01 70 00 00 01' is not a valid number for GB"
    ]


@pytest.mark.parametrize(
    ("caller", "presented"),
    [
        ("06 12 00 00 01", "+33612000001"),
        ("+44 20 7946 0000", "+442079460000"),
        ("00 44 20 7946 0000", "+442079460000"),  # dialled from France with the IDD prefix
        ("anonymous", "anonymous"),
        ("Restricted", "Restricted"),  # carriers' spelling is kept, as Asterisk would get it
    ],
)
def test_caller_id_forms_carriers_send(config: Config, caller: str, presented: str) -> None:
    scenario, diagnostics = load(config, f"calls:\n  - {{to: 0170000001, from: {caller}}}\n")
    assert diagnostics == []
    assert scenario is not None
    assert scenario.calls[0].caller_number == presented


@pytest.mark.parametrize(
    ("caller", "why"),
    [
        ("carol", "'carol' is not a caller ID"),  # a softphone that may not call out
        ("PJSIP/alice", "'PJSIP/alice' is not a caller ID"),
        ("12345", "'12345' is not a valid number for FR"),
        ("'+999999999999999999'", "'+999999999999999999' is not a phone number"),
        ("0612abc", "'0612abc' is not a valid number for FR"),
    ],
)
def test_caller_id_junk_is_refused(config: Config, caller: str, why: str) -> None:
    assert diagnose(config, f"calls:\n  - to: 0170000001\n    from: {caller}\n") == [
        f"scenarios/t.yaml:3:11: error: from: {why}: {NOT_A_CALLER_ID}"
    ]


def test_caller_name_must_be_printable(config: Config) -> None:
    assert diagnose(config, 'calls:\n  - {to: 0170000001, name: "Jean\\x07"}\n') == [
        "scenarios/t.yaml:2:28: error: name: must be printable text (no control characters)"
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("-1", "'-1'"),
        ("inf", "'inf'"),
        (".nan", "'.nan'"),
        ("1e308", "'1e308'"),
        ("14400.5", "'14400.5'"),
        ("yes", "true"),
        ("abc", "'abc'"),
        ("[1]", "a list"),
    ],
)
@pytest.mark.parametrize("key", ["answer_after", "busy_after", "hangup_after", "dtmf_after"])
def test_peer_times_must_be_sensible(config: Config, key: str, value: str, shown: str) -> None:
    assert diagnose(
        config, f"peers:\n  alice:\n    {key}: {value}\ncalls: [{{to: 0170000001}}]\n"
    ) == [
        f"scenarios/t.yaml:3:{7 + len(key)}: error: {key}: must be a number of seconds from 0 "
        f"to 14400, not {shown}"
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("at", "-0.5", "at: must be a number of seconds from 0 to 14400, not '-0.5'"),
        ("at", "true", "at: must be a number of seconds from 0 to 14400, not true"),
        ("at", "14401", "at: must be a number of seconds from 0 to 14400, not '14401'"),
        (
            "hangup_after",
            "0",
            "hangup_after: must be a number of seconds above 0 and at most 14400, not '0'",
        ),
        (
            "hangup_after",
            "no",
            "hangup_after: must be a number of seconds above 0 and at most 14400, not false",
        ),
    ],
)
def test_call_times_must_be_sensible(config: Config, key: str, value: str, message: str) -> None:
    assert diagnose(config, f"calls:\n  - to: 0170000001\n    {key}: {value}\n") == [
        f"scenarios/t.yaml:3:{7 + len(key)}: error: {message}"
    ]


def test_times_at_the_limits_are_accepted(config: Config) -> None:
    scenario, diagnostics = load(
        config,
        "peers:\n  alice: {answer_after: 0, dtmf: '12#*AD', dtmf_after: 14400}\n"
        "calls: [{to: 0170000001, at: 14400, hangup_after: 0.1}]\n",
    )
    assert diagnostics == []
    assert scenario is not None
    assert scenario.peers["PJSIP/alice"] == PeerScript(
        answer_after=0.0, dtmf="12#*AD", dtmf_after=14400.0
    )
    assert (scenario.calls[0].at, scenario.calls[0].hangup_after) == (14400.0, 0.1)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0", "'0'"), ("-3", "'-3'"), ("1001", "'1001'"), ("nan", "'nan'"), ("on", "true")],
)
def test_speed_must_be_in_range(config: Config, value: str, shown: str) -> None:
    assert diagnose(config, f"speed: {value}\ncalls: [{{to: 0170000001}}]\n") == [
        f"scenarios/t.yaml:1:8: error: speed: must be a number above 0 and at most 1000, "
        f"not {shown}"
    ]


def test_unknown_peers_warn_with_a_suggestion_and_still_play(config: Config) -> None:
    scenario, diagnostics = load(
        config,
        "peers:\n"
        "  alcie: {answer_after: 1}\n"
        "  PJSIP/bbo: {}\n"
        "  06 99 99 99 99: {}\n"
        "  PJSIP/carol: {online: false}\n"
        "  carol:\n"
        "calls: [{to: 0170000001}]\n",
    )
    assert diagnostics == [
        "scenarios/t.yaml:2:3: warning: peer 'alcie' is neither a target name, an endpoint "
        "(PJSIP/…) nor a number: ignored (did you mean 'alice'?)",
        "scenarios/t.yaml:3:3: warning: peer 'PJSIP/bbo': no target rings PJSIP/bbo, so this "
        "behaviour is never used (did you mean 'PJSIP/bob'?)",
        "scenarios/t.yaml:4:3: warning: peer '06 99 99 99 99': no target rings +33699999999, "
        "so this behaviour is never used",
        "scenarios/t.yaml:6:3: warning: peer 'carol' is the same phone as 'PJSIP/carol' "
        "(line 5): this one wins",
    ]
    assert scenario is not None
    assert scenario.peers["PJSIP/carol"] == PeerScript()  # `carol:` alone: default behaviour


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "calls: [{to: 0170000001}\n",
            "2:1: error: YAML syntax error: did not find expected ',' or ']'",
        ),
        (
            "- to: 0170000001\n",
            "1:1: error: a scenario must be a mapping (title:, speed:, peers:, calls:), not a list",
        ),
        ("calls: {to: 0170000001}\n", "1:8: error: calls: must be a list of calls, not a mapping"),
        (
            "peers: [alice]\ncalls: [{to: 0170000001}]\n",
            "1:8: error: peers: must be a mapping of target: behaviour, not a list",
        ),
        (
            "peers:\n  alice: 3\ncalls: [{to: 0170000001}]\n",
            "2:10: error: peer 'alice' must be a mapping (answer_after:, busy_after:, "
            "hangup_after:, online:, presence:, dtmf:), not '3'",
        ),
        ("# nothing\n", "1:1: error: the scenario is empty"),
        (
            "calls: [{to: 0170000001}]\ncalls: [{to: 12}]\n",
            "2:1: error: duplicate key 'calls' (first defined at line 1)",
        ),
    ],
)
def test_files_that_are_not_scenarios(config: Config, text: str, message: str) -> None:
    assert diagnose(config, text) == [f"scenarios/t.yaml:{message}"]


def test_a_scenario_without_calls_warns(config: Config) -> None:
    scenario, diagnostics = load(config, "title: nothing\n")
    assert scenario is not None and scenario.calls == ()
    assert diagnostics == ["scenarios/t.yaml:1:1: warning: the scenario places no call"]


def test_a_caller_may_withhold_their_number(config: Config) -> None:
    # The carrier still sends the number (PAI with Privacy: id); Asterisk reads it restricted.
    scenario, diagnostics = load(
        config,
        "calls:\n"
        "  - {to: 01 70 00 00 01, from: 06 12 00 00 01, withheld: true}\n"
        "  - {to: 01 70 00 00 01, from: 06 12 00 00 02}\n"
        "  - {to: 01 70 00 00 01}\n",
    )
    assert diagnostics == []
    assert scenario is not None
    assert [(c.caller_number, c.withheld, c.presentation) for c in scenario.calls] == [
        ("+33612000001", True, 32),  # prohib_not_screened
        ("+33612000002", False, 0),  # allowed_not_screened
        ("anonymous", False, 0),  # no identity from the carrier: nothing to withhold
    ]


def test_withheld_must_be_true_or_false(config: Config) -> None:
    assert diagnose(config, "calls:\n  - {to: 01 70 00 00 01, withheld: 1}\n") == [
        "scenarios/t.yaml:2:36: error: withheld: must be true or false, not '1'",
    ]


def test_calls_at_a_local_date_keys_and_talk(config: Config) -> None:
    scenario, lines = load(
        config,
        "peers:\n"
        "  alice: {answer_after: 2, keys: [{at: 1, digits: '1'}]}\n"
        "calls:\n"
        "  - at: 2026-12-25 10:00\n"  # Christmas morning in Paris (UTC+1)
        "    to: 01 70 00 00 01\n"
        "    talk: 12\n"
        "  - at: 30\n"  # 30 s after the scenario's start: the first dated call
        "    to: 01 70 00 00 01\n"
        "    keys: [{at: 4.5, digits: '#'}, {at: 6, digits: '12'}]\n"
        "    hangup_after: 20\n"
        "  - at: 2026-12-24 17:55:30\n"
        "    to: 01 70 00 00 01\n",
    )
    assert lines == [] and scenario is not None
    assert scenario.start == datetime(2026, 12, 24, 16, 55, 30, tzinfo=UTC)
    eve, relative, christmas = scenario.calls
    assert (eve.at, eve.when) == (0.0, datetime(2026, 12, 24, 17, 55, 30, tzinfo=PARIS))
    assert relative.at == 30.0 and relative.when is None
    assert relative.script == PeerScript(keys=((4.5, "#"), (6.0, "12")))
    assert christmas.at == (16 * 3600 + 4 * 60 + 30) and christmas.shown_at.endswith("CET")
    assert christmas.script == PeerScript(talk=12.0, hangup_after_talk=True)
    assert scenario.peers["PJSIP/alice"].keys == ((1.0, "1"),)


def test_dated_calls_are_checked_at_their_place(config: Config) -> None:
    assert diagnose(
        config,
        "calls:\n"
        "  - {to: 01 70 00 00 01, at: 2026-12-25}\n"
        "  - {to: 01 70 00 00 01, at: 2026-03-29 02:30}\n"  # Paris springs forward at 02:00
        "  - {to: 01 70 00 00 01, at: 2026-02-30 10:00}\n"
        "  - {to: 01 70 00 00 01, at: 1926-02-03 10:00}\n"
        "  - {to: 01 70 00 00 01, keys: [{at: 1, digits: 'x'}], talk: -1}\n",
    ) == [
        "scenarios/t.yaml:2:30: error: at: a date needs a time of day too, e.g. '2026-12-25 10:00'",
        "scenarios/t.yaml:3:30: error: at: 2026-03-29 02:30 does not exist in Europe/Paris "
        "(the clocks go forward then)",
        "scenarios/t.yaml:4:30: error: at: '2026-02-30 10:00' is not a date and time: "
        "day is out of range for month",
        "scenarios/t.yaml:5:30: error: at: '1926-02-03 10:00': the year must be from 2000 to 2099",
        "scenarios/t.yaml:6:49: error: digits: 'x' has characters that are not DTMF digits: 'x'",
        "scenarios/t.yaml:6:62: error: talk: must be a number of seconds from 0 to 14400, not '-1'",
    ]


def test_callers_press_keys_and_mobiles_have_voicemail(config: Config) -> None:
    scenario, lines = load(
        config,
        "peers:\n"
        "  ceo-mobile: {voicemail_after: 20}\n"
        "calls:\n"
        "  - {to: 01 70 00 00 01, from: 06 12 00 00 01, dtmf: '2',\n"
        "     keys: [{at: 0.5, digits: '9'}]}\n"
        "  - {to: 01 70 00 00 01, from: 06 12 00 00 01, dtmf: '12#', dtmf_after: 3}\n",
    )
    assert lines == []
    assert scenario is not None
    mobile = scenario.peers["+33612345678"]
    assert mobile == PeerScript(voicemail_after=20.0)
    # The voicemail answers at 20 s, never presses, hangs up after its recording time.
    assert mobile.as_dialled() == PeerScript(answer_after=20.0, hangup_after=120.0)
    assert PeerScript(answer_after=5, voicemail_after=20).as_dialled().voicemail_after == 20
    assert [c.keys for c in scenario.calls] == [((0.5, "9"), (1.0, "2")), ((3.0, "12#"),)]


def test_dtmf_of_a_call_must_be_keys(config: Config) -> None:
    lines = diagnose(config, "calls:\n  - {to: 01 70 00 00 01, from: 06 12 00 00 01, dtmf: 2x}\n")
    assert any("dtmf" in line and "'x'" in line for line in lines), lines
