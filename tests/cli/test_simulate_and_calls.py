"""`pbxd simulate` then `pbxd calls`: the README's main job, through the real code path."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxd.cdr.records import CallRecord
from pbxd.cdr.store import CdrStore
from pbxd.cli.main import main


def test_shipped_scenario_then_call_logs(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped day at Acme: every path of the example's flows, as the call log shows it."""
    db = f"sqlite:///{example / 'cdr.db'}"
    assert main(["simulate", "scenarios/acme-morning.yaml", "--database", db]) == 0
    out = capsys.readouterr().out
    outcomes = [line.strip() for line in out.splitlines() if line.strip().startswith("=>")]
    assert [o.split(",")[0] for o in outcomes] == [
        "=> answered by alice",  # open: greeted, then answered
        "=> voicemail",  # support hunt: bob busy, carol offline, the mobile rings out
        "=> abandoned",
        "=> no_answer",
        "=> answered by alice",  # switchboard: 2, the sales mobile's voicemail never accepts
        "=> answered by alice",  # sales, follow-me: the mobile joined, alice answered
        "=> rejected",
        "=> answered by sales-mobile",  # the starter plan: cut at its 2 minutes
        "=> voicemail",  # the plan used up: voicemail instead of the mobile
        "=> answered by +33145678900",  # alice calls out as the reception number
        "=> rejected",  # alice dials Germany: outside the allowlist
        "=> answered by +33145678900",  # call through: the sales rep's mobile, as the reception
        *[f"=> answered by {agent}" for agent in ["dave", "erin", "frank"] * 3 + ["dave"]],
        "=> answered by carol",  # support again: carol registered at noon
        "=> voicemail",  # after hours
        "=> closed",  # Christmas: closed, a message too short to keep
    ]
    # The offline laptop costs the support hunt no time: skipped without asking Asterisk.
    assert "carol: not rung, its softphone is offline" in out
    assert "Allocation failed" not in out
    assert "field-mobile: answered, confirm before bridging" in out
    assert "field-mobile: never accepted, answered elsewhere" in out
    assert "plan starter: forwarded minutes run out soon, warning the caller" in out
    assert "plan limit: forwarded minutes of plan 'starter' used up" in out
    assert "outgoing call from alice to +33145678900, presenting +33170000001" in out
    assert "+49301234567 is outside the allowed destinations (+33) (hangup: cause 52)" in out
    assert "call through: +33145678900, presenting +33170000001" in out
    assert "25 call(s) recorded" in out

    assert main(["usage", "09 72 10 00 02", "--period", "2026-12", "--database", db]) == 0
    table = capsys.readouterr().out
    assert "+33972100002: usage in 2026-12 (Europe/Paris), plan starter" in table
    assert re.search(r"^2026-12-01\s+2:0\d\s+0:00$", table, re.MULTILINE), table
    assert re.search(r"^allowed\s+2 min\s+unlimited$", table, re.MULTILINE), table
    assert (
        main(
            ["usage", "01 70 00 00 01", "--period", "2026-12", "--database", db, "--format", "json"]
        )
        == 0
    )
    used = json.loads(capsys.readouterr().out)
    assert (used["plan"], used["forwarded_seconds"], used["outbound_allowed_seconds"]) == (
        "reception",
        0,
        36000,
    )
    # alice's call (45 s, less the ringing) and the call through (40 s, from the access answer)
    assert 70 <= used["outbound_seconds"] <= 85
    assert main(["usage", "01 70 00 00 01", "--period", "2026-11", "--database", db]) == 0
    assert re.search(r"^total\s+0:00\s+0:00$", capsys.readouterr().out, re.MULTILINE)
    assert main(["usage", "01 70 00 00 01", "--period", "2026-13", "--database", db]) == 1
    assert "is not a month (2026-11)" in capsys.readouterr().err

    assert main(["calls", "09", "72", "10", "00", "01", "--database", db, "--format", "json"]) == 0
    later, call = json.loads(capsys.readouterr().out)  # newest first
    assert (later["answered_by"], [leg["target"] for leg in later["legs"]]) == (
        "carol",
        ["bob", "carol"],
    )
    assert (call["disposition"], call["answered_by"], call["route"]) == (
        "voicemail",
        None,
        "support-line",
    )
    assert call["started_at"].startswith("2026-12-01T10:00:0")  # its local time, in Paris
    assert call["started_at"].endswith("+01:00")  # winter time
    assert [(leg["target"], leg["hangup_cause"], leg["outcome"]) for leg in call["legs"]] == [
        ("bob", 17, "busy"),
        ("carol", None, "unreachable"),
        ("support-mobile", 19, "no answer"),
    ]
    assert call["voicemail"]["duration"] == 12
    assert [(p["step"], p["outcome"]) for p in call["path"]] == [
        ("ring", "no_answer"),  # the hunt: softphones, then the on-call mobile
        ("voicemail", "left"),
    ]

    assert main(["calls", "01 70 00 00 01", "--database", db]) == 0
    table = capsys.readouterr().out
    assert "greeting → ring → answered" in table
    assert "closed → voicemail " in table and "0:08" in table
    assert "closed → voicemail (too short)" in table

    assert main(["calls", "01 70 00 00 30", "--database", db, "--format", "json"]) == 0
    [switchboard] = json.loads(capsys.readouterr().out)
    assert (switchboard["answered_by"], switchboard["route"]) == ("alice", "switchboard")
    first = switchboard["path"][0]
    assert (first["step"], first["outcome"], first.get("label")) == (
        "menu",
        "chosen",
        "2>acme-sales",
    )
    # The mobile's voicemail answered, was asked to press 1, and lost to alice (26).
    assert [(leg["target"], leg["hangup_cause"]) for leg in switchboard["legs"]] == [
        ("alice", 16),
        ("field-mobile", 26),
    ]
    assert main(["calls", "01 70 00 00 30", "--database", db]) == 0
    assert "menu: 2 → acme-sales" in capsys.readouterr().out
    # The order desk's round robin: ten calls spread over three agents.
    assert main(["calls", "01 70 00 00 11", "--database", db, "--format", "json"]) == 0
    desk = json.loads(capsys.readouterr().out)
    assert sorted(Counter(c["answered_by"] for c in desk).values()) == [3, 3, 4]

    assert main(["calls", "+44 20 7946 0123", "--database", db]) == 0
    table = capsys.readouterr().out
    assert "times in Europe/London" in table
    assert " GMT " in table and "no answer" in table and "19 (no answer)" in table

    assert main(["calls", "01 70 00 00 09", "--database", db, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2 and ",rejected," in rows[1] and rows[1].split(",")[14] == "1"


def test_a_scenario_plays_the_same_way_every_time(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Virtual time: two runs of the shipped day print the same timelines, to the tenth of a
    second, however busy the machine is; the second run's ids and times are the first's."""
    outputs = []
    for name in ("one.db", "two.db"):
        db = f"sqlite:///{example / name}"
        assert main(["simulate", "scenarios/acme-morning.yaml", "--database", db]) == 0
        outputs.append(capsys.readouterr().out.replace(name, "DB"))
    assert "played in virtual time" in outputs[0]
    assert outputs[0] == outputs[1]


def test_live_mode_plays_on_the_real_clock(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only a call whose outcome no timing can change: a number that is not ours.
    Path("scenarios/live.yaml").write_text(
        "calls:\n  - {to: 01 70 00 00 09, from: 06 12 00 00 01}\n", encoding="utf-8"
    )
    db = f"sqlite:///{example / 'cdr.db'}"
    assert main(["simulate", "scenarios/live.yaml", "--speed", "100", "--database", db]) == 0
    out = capsys.readouterr().out
    assert "1 call(s), played 100x faster than real time" in out
    [outcome] = [line for line in out.splitlines() if line.strip().startswith("=>")]
    assert outcome.strip().startswith("=> rejected,") and outcome.endswith("hangup cause 1")


def test_calls_filters_by_local_dates(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{example / 'cdr.db'}"
    assert main(["simulate", "scenarios/acme-morning.yaml", "--database", db]) == 0
    capsys.readouterr()
    assert (
        main(["calls", "0170000001", "--database", db, "--until", "2000-01-01", "--format", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == []
    assert (
        main(["calls", "0170000001", "--database", db, "--since", "2000-01-01", "--format", "json"])
        == 0
    )
    # Three calls to the reception, two calls alice made presenting it and the sales rep's
    # call through (its call log has them all).
    logged = json.loads(capsys.readouterr().out)
    assert sorted(c["direction"] for c in logged) == ["inbound"] * 3 + ["outbound"] * 3
    assert (
        main(["calls", "0170000001", "--database", db, "--since", "2026-12-02", "--format", "json"])
        == 0
    )
    assert [c["disposition"] for c in json.loads(capsys.readouterr().out)] == ["closed"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calls", "not-a-number"], "pbxd calls: 'not-a-number' is not a phone number we can read"),
        (
            ["calls", "0170000001", "--since", "yesterday"],
            "pbxd calls: --since 'yesterday' is not a date (2026-11-23) or a date and time "
            "(2026-11-23T09:30)",
        ),
        (
            ["calls", "0170000001", "--until", "2026-13-01"],
            "pbxd calls: --until '2026-13-01' is not a date (2026-11-23) or a date and time "
            "(2026-11-23T09:30): month must be in 1..12",
        ),
        (
            ["calls", "0170000001", "--since", "2026-11-25", "--until", "2026-11-20"],
            "pbxd calls: --since must be before --until",
        ),
        (["calls", "0170000001", "--limit", "0"], "pbxd calls: --limit must be positive"),
    ],
)
def test_calls_refuses_bad_input(
    example: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(message)


def test_scenario_errors_are_marked(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = example / "scenarios" / "bad.yaml"
    bad.write_text(
        "speed: 10\npeers:\n  alice: {answer_after: -1}\n  nobody-here: {}\n"
        "calls:\n  - at: 0\n    to: 01 70 00 00 01\n    hangup_afterr: 3\n"
    )
    assert main(["simulate", "scenarios/bad.yaml"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "scenarios/bad.yaml:3:25: error: answer_after: must be a number of seconds from 0 to "
        "14400, not '-1'",
        "scenarios/bad.yaml:4:3: warning: peer 'nobody-here' is neither a target name, an "
        "endpoint (PJSIP/…) nor a number: ignored",
        "scenarios/bad.yaml:8:5: error: unknown key 'hangup_afterr' (did you mean 'hangup_after'?)",
    ]
    bad.write_text("calls: [{to: '12345', from: 'Jean Dupont'}]\n")
    assert main(["simulate", "scenarios/bad.yaml"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "scenarios/bad.yaml:1:14: error: to: '12345' is not a valid number for FR",
        "scenarios/bad.yaml:1:29: error: from: 'Jean Dupont' is not a caller ID: a caller ID is "
        "a number (E.164, or national for the trunk's country) or one of anonymous, restricted, "
        "private, unavailable",
    ]


def test_calls_never_creates_a_database_at_a_mistyped_path(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = example / "typo" / "cdr.db"
    assert main(["calls", "0170000001", "--database", f"sqlite:///{missing}"]) == 2
    assert capsys.readouterr().err == f"pbxd calls: no CDR database at {missing}\n"
    assert not missing.parent.exists()


def test_calls_database_errors_hide_the_password(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://pbxd:db-secret@127.0.0.1:notaport/pbx"
    assert main(["calls", "0170000001", "--database", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pbxd calls: cannot read the call log from postgresql://pbxd:***@")
    assert "db-secret" not in err


@pytest.mark.parametrize("speed", ["nan", "inf", "-1", "0", "5000"])
def test_simulate_refuses_a_bad_speed(
    example: Path, capsys: pytest.CaptureFixture[str], speed: str
) -> None:
    assert main(["simulate", "scenarios/acme-morning.yaml", "--speed", speed]) == 1
    assert capsys.readouterr().err == ("pbxd simulate: --speed must be above 0 and at most 1000\n")


def test_simulate_with_an_unreachable_database_says_so(
    example: Path, capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    url = f"postgresql://pbxd:db-secret@127.0.0.1:{unused_tcp_port}/pbx"
    assert main(["simulate", "scenarios/acme-morning.yaml", "--database", url]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"pbxd simulate: cannot open the CDR database postgresql://pbxd:***@127.0.0.1:"
        f"{unused_tcp_port}/pbx: "
    )
    assert "Traceback" not in captured.err and "db-secret" not in captured.err
    assert captured.out == ""


def test_simulate_refuses_a_call_after_the_longest_scenario(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = example / "scenarios" / "late.yaml"
    bad.write_text("calls:\n  - at: 1e308\n    to: 01 70 00 00 01\n")
    assert main(["simulate", "scenarios/late.yaml"]) == 1
    assert capsys.readouterr().err == (
        "scenarios/late.yaml:2:9: error: at: must be a number of seconds from 0 to 14400, "
        "not '1e308'\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calls", "0170000001", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["calls", "0170000001", "--limit", "x"], "argument --limit: invalid int value: 'x'"),
        (["simulate"], "the following arguments are required: scenario"),
        (["simulate", "s.yaml", "--speed", "fast"], "argument --speed: invalid float value"),
        (["dial"], "argument COMMAND: invalid choice: 'dial'"),
    ],
)
def test_usage_errors_exit_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_simulate_a_caller_who_withheld_their_number(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / "scenarios" / "withheld.yaml").write_text(
        "peers:\n  alice: {answer_after: 1, hangup_after: 2}\n"
        # A Tuesday morning: the reception is open whatever time the test runs.
        "calls:\n  - {at: 2026-12-01 10:00, to: 01 70 00 00 01, from: 06 12 00 00 07, "
        "withheld: true}\n"
    )
    db = f"sqlite:///{example / 'cdr.db'}"
    assert main(["simulate", "scenarios/withheld.yaml", "--database", db]) == 0
    out = capsys.readouterr().out
    assert "incoming call from +33612000007 (number withheld) to +33170000001" in out
    assert "=> answered by alice" in out


def test_calls_server_keeps_the_calls_of_one_asterisk(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{example / 'cdr.db'}"

    async def seed() -> None:
        store = await CdrStore.open(db)
        try:
            for i, server in enumerate(("ast-paris-1", "ast-lyon-2", "ast-paris-1")):
                store.record_call(
                    CallRecord(
                        call_id=f"srv-{i}",
                        did="+33170000001",
                        started_at=datetime(2026, 12, 1, 9, i, tzinfo=UTC),
                        server=server,
                    )
                )
            await store.flush()
        finally:
            await store.close()

    asyncio.run(seed())
    args = ["calls", "01 70 00 00 01", "--database", db, "--format", "json"]
    assert main([*args, "--server", "ast-paris-1"]) == 0
    calls = json.loads(capsys.readouterr().out)
    assert [c["call_id"] for c in calls] == ["srv-2", "srv-0"]
    assert {c["server"] for c in calls} == {"ast-paris-1"}
    assert main([*args, "--server", "ast-nowhere"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(args) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
