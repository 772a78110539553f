"""`pbxd report`, `pbxd export` and `pbxd diagnose` through main(), on SQLite and PostgreSQL,
over the web tests' morning of calls (4 calls to the Paris reception on 3 Dec 2026)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from pbxd.calls.presence import Presence as PresenceTable
from pbxd.cdr.queries import number_report
from pbxd.cdr.reports import ReportPeriod, report_to_json
from pbxd.cdr.store import CdrStore
from pbxd.cli import export
from pbxd.cli.main import main
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.sim import AriSimulator
from pbxd.web.app import build_app
from pbxd.web.state import Runtime
from pbxd.web.users import Role, add_user
from tests.web.conftest import FAST_HASHER, NOW, PASSWORD, RECEPTION, morning_calls

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from dbfixtures import BACKENDS, database_url  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
AT = "2026-12-03T15:00:00Z"  # 16:00 in Paris: open (the reception closes 12:30-14:00)


@pytest.fixture(params=BACKENDS)
async def cdr(request: pytest.FixtureRequest, example: Path) -> AsyncIterator[str]:
    """A CDR database holding the morning of calls; its URL."""
    async with database_url(request.param, example) as url:
        store = await CdrStore.open(url, flush_interval=0.05)
        try:
            for call, legs in morning_calls():
                store.record_call(call)
                for leg in legs:
                    store.record_leg(leg)
            await store.flush()
        finally:
            await store.close()
        yield url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# ------------------------------------------------------------------ report


def test_report_json_has_the_web_reports_figures_and_the_plan(
    cdr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(
        capsys, "report", "01 70 00 00 01", "--period", "2026-12", "--format", "json",
        "--database", cdr,
    )  # fmt: skip
    assert status == 0
    body = json.loads(out)
    assert (body["calls"], body["answered"], body["missed"], body["abandoned"]) == (4, 1, 3, 1)
    assert body["answer_rate"] == 0.25
    assert (body["average_wait_seconds"], body["longest_wait_seconds"]) == (6, 6)
    assert body["talk_seconds"] == 594
    assert [h["hour"] for h in body["busiest_hours"]] == [11, 12, 14]
    # The web report's own object, from the same query.
    web = asyncio.run(_web_report(cdr))
    assert {k: v for k, v in body.items() if k != "usage"} == web
    # The reception's plan: 600 outbound minutes; the fixture forwarded nothing to a trunk.
    assert body["usage"]["plan"] == "reception"
    assert body["usage"]["outbound_allowed_seconds"] == 600 * 60
    assert body["usage"]["forwarded_seconds"] == body["usage"]["outbound_seconds"] == 0


async def _web_report(url: str) -> dict[str, Any]:
    store = await CdrStore.open(url)
    try:
        period = ReportPeriod.parse("2026-12")
        label = "Acme Paris reception"
        return report_to_json(
            await number_report(store.engine, RECEPTION, period, PARIS, label=label)
        )
    finally:
        await store.close()


def test_report_table_and_csv(cdr: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "report", RECEPTION, "--period", "2026-12", "--database", cdr)
    assert status == 0
    figures = dict(line.split(None, 1) for line in out.splitlines()[2:13] if line.strip())
    assert figures["calls"].strip() == "4" and figures["answer"] == "rate    25.0 %"
    assert "plan reception" in out
    status, out, _ = _run(
        capsys, "report", RECEPTION, "--period", "2026-12", "--format", "csv", "--database", cdr
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    assert (rows[0]["calls"], rows[0]["answered"], rows[0]["answer_rate"]) == ("4", "1", "0.2500")
    assert rows[0]["outbound_minutes_allowed"] == "600"
    status, out, _ = _run(
        capsys, "report", RECEPTION, "--period", "2026-12", "--format", "csv", "--per-day",
        "--database", cdr,
    )  # fmt: skip
    days = {r["day"]: r for r in csv.DictReader(io.StringIO(out))}
    assert len(days) == 31 and days["2026-12-03"]["missed"] == "3"


@pytest.mark.parametrize(
    ("period", "calls"),
    [(["--period", "2026-12-03"], 4), (["--period", "2026-12-02"], 0),
     (["--since", "2026-12-01", "--until", "2026-12-03"], 4), (["--period", "2026"], 4)],
)  # fmt: skip
def test_report_takes_a_day_a_range_or_a_year(
    cdr: str, capsys: pytest.CaptureFixture[str], period: list[str], calls: int
) -> None:
    status, out, _ = _run(
        capsys, "report", RECEPTION, *period, "--format", "json", "--database", cdr
    )
    assert status == 0 and json.loads(out)["calls"] == calls


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["0170009999", "--period", "2026-12"], "pbxd report: +33170009999 is not in the"),
        (["hello", "--period", "2026-12"], "pbxd report: 'hello' is not a phone number"),
        ([RECEPTION, "--period", "2026-13"], "pbxd report: period '2026-13' is not a month"),
        ([RECEPTION, "--since", "2026-12-01"], "pbxd report: a range needs both"),
        ([RECEPTION, "--since", "2026-12-05", "--until", "2026-12-01"], "pbxd report: --until is"),
        ([RECEPTION, "--period", "2026-12", "--since", "2026-12-01", "--until", "2026-12-02"],
         "pbxd report: give --period or --since/--until"),
    ],
)  # fmt: skip
def test_report_refuses_bad_input(
    example: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = _run(capsys, "report", *argv)
    assert status == 1
    assert err.startswith(message)


def test_report_without_its_database_exits_2(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, "report", RECEPTION, "--database", "sqlite:///nowhere/x.db")
    assert status == 2 and "no CDR database at nowhere/x.db" in err


# ------------------------------------------------------------------ export


ANSWERED_LEG = (
    '"+33170000001","+33612000001","+33170000001","from-trunk","""Jean"" <+33612000001>",'
    '"","PJSIP/alice","Dial","PJSIP/alice","2026-12-03 10:00:01","2026-12-03 10:00:06",'
    '"2026-12-03 10:10:00",599,594,"ANSWERED","DOCUMENTATION"'
)


def test_export_writes_master_csv_one_row_per_leg(
    cdr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(
        capsys, "export", "--format", "master-csv", "--since", "2026-12-01",
        "--until", "2026-12-03", "--utc", "--database", cdr,
    )  # fmt: skip
    assert status == 0
    lines = out.splitlines()
    # Two legs of the answered call, one of the missed; the two calls that rang nobody.
    assert len(lines) == 5
    assert lines[0] == ANSWERED_LEG
    rows = list(csv.reader(io.StringIO(out)))
    assert all(len(row) == 16 for row in rows)
    assert [row[14] for row in rows] == [
        "ANSWERED",
        "NO ANSWER",
        "FAILED",
        "NO ANSWER",
        "NO ANSWER",
    ]
    assert [row[7] for row in rows] == ["Dial", "Dial", "Dial", "VoiceMail", "Hangup"]
    assert rows[2][6] == "PJSIP/trunk-out" and rows[2][8] == "PJSIP/+33612345678@trunk-out"
    # An answer time that never was is an empty bare field, as cdr_csv writes it.
    assert ',"2026-12-03 10:00:01",,"2026-12-03 10:00:06",5,0,"NO ANSWER",' in lines[1]


def test_export_options_zone_filter_and_file(
    cdr: str, example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "BATCH", 2)  # several pages: keyset pagination in play
    target = example / "Master.csv"
    status, out, err = _run(
        capsys, "export", "--since", "2026-12-03T11:30", "--until", "2026-12-03",
        "--time-zone", "Europe/Paris", "--number", "01 70 00 00 01",
        "--uniqueid", "--userfield", "--newcdrcolumns", "--output", str(target),
        "--database", cdr,
    )  # fmt: skip
    assert status == 0 and out == "" and "3 row(s) written" in err
    assert not list(example.glob(".Master.csv.partial"))
    rows = list(csv.reader(io.StringIO(target.read_text())))
    # From 11:30 Paris: the answered call (11:00) is left out; times are Paris's.
    assert [row[16] for row in rows] == ["call-missed-1", "call-voicemail", "call-abandoned"]
    assert rows[0][9] == "2026-12-03 12:40:00"
    assert rows[0][17:] == ["ceo-mobile", "", "call-missed", "0"]
    status, out, _ = _run(
        capsys, "export", "--since", "2026-12-01", "--until", "2026-12-31", "--utc",
        "--number", "+33170000100", "--database", cdr,
    )  # fmt: skip
    assert status == 0 and out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday", "--until", "2026-12-01"], "pbxd export: --since 'yesterday'"),
        (["--since", "2026-12-05", "--until", "2026-12-01"], "pbxd export: --since must be before"),
        (["--since", "2026-12-01", "--until", "2026-12-02", "--time-zone", "Mars/Olympus"],
         "pbxd export: --time-zone 'Mars/Olympus' is not a time zone"),
        (["--since", "2026-12-01", "--until", "2026-12-02", "--number", "hello"],
         "pbxd export: 'hello' is not a phone number"),
    ],
)  # fmt: skip
def test_export_refuses_bad_input(
    example: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = _run(capsys, "export", *argv)
    assert status == 1 and out == ""
    assert err.startswith(message)


def test_export_to_an_unwritable_file_exits_2(
    cdr: str, example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(
        capsys, "export", "--since", "2026-12-01", "--until", "2026-12-02",
        "--output", str(example / "no" / "dir" / "Master.csv"), "--database", cdr,
    )  # fmt: skip
    assert status == 2 and "cannot write" in err


# ------------------------------------------------------------------ diagnose


@pytest.fixture
def no_presence(monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    """No daemon token, and ARI at a port nobody listens on."""
    monkeypatch.delenv("PBXD_TOKEN", raising=False)
    monkeypatch.setenv("PBXD_ARI_URL", f"http://127.0.0.1:{unused_tcp_port}/ari")
    monkeypatch.setenv("PBXD_ARI_PASSWORD", "secret")


def test_diagnose_says_it_cannot_ask_and_shows_the_failed_calls(
    cdr: str, no_presence: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "diagnose", "01 70 00 00 01", "--at", AT, "--database", cdr)
    assert status == 3  # not known to ring anybody
    assert "status: active" in out and "route: paris-reception" in out
    assert "a call now goes: open → greeting → ring alice, bob, ceo-mobile (ringall)" in out
    assert "presence: can't ask: daemon at http://127.0.0.1:8080 not asked: no API token" in out
    assert "ARI not reachable at http://127.0.0.1:" in out
    assert (
        "  2026-12-03 12:40:00 Europe/Paris (CET): +33612000002 → +33170000001, no_answer, "
        "cause 19 (no answer); legs: ceo-mobile rejected 21 (call rejected)"
    ) in out
    verdict = out.splitlines()[-1]
    assert verdict.startswith("verdict: may ring nobody: can't tell if alice, bob online")
    assert verdict.endswith("ceo-mobile refused by the carrier, cause 21 (call rejected)")
    status, out, _ = _run(capsys, "diagnose", RECEPTION, "--at", AT, "--json", "--database", cdr)
    body = json.loads(out)
    assert body["endpoints_online"] is None and body["presence_error"].startswith("can't ask:")
    assert [c["call_id"] for c in body["last_failed_calls"]] == ["call-abandoned", "call-missed"]
    assert body["last_failed_calls"][1]["legs"][0]["cause"] == "21 (call rejected)"


def test_diagnose_at_lunch_time_follows_the_closed_branch(
    cdr: str, no_presence: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(
        capsys, "diagnose", RECEPTION, "--at", "2026-12-03T12:45:00+01:00", "--database", cdr
    )
    assert status == 3
    assert out.splitlines()[-1] == (
        "verdict: closed now: a call goes closed → voicemail reception (no phone rings)"
    )
    # Failed calls are those before the instant asked about.
    assert "last failed calls: 1" in out


def test_diagnose_porting_and_unknown_numbers(
    cdr: str, no_presence: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "diagnose", "+33170000100", "--at", AT, "--database", cdr)
    assert "status: porting, port date 2026-12-15 (12 day(s) left), losing carrier Orange" in out
    assert out.splitlines()[-1] == (
        "verdict: porting: calls reach pbxd once the port from Orange completes on 2026-12-15 "
        "(12 day(s) left)"
    )
    status, out, _ = _run(capsys, "diagnose", "0170009999", "--database", cdr)
    assert status == 1
    assert "in the inventory: no" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hello"], "pbxd diagnose: 'hello' is not a phone number"),
        ([RECEPTION, "--at", "noon"], "pbxd diagnose: --at 'noon' is not a date and time"),
        ([RECEPTION, "--at", "2026-12-03T12:00"], "pbxd diagnose: --at '2026-12-03T12:00' needs"),
        ([RECEPTION, "--failed", "0"], "pbxd diagnose: --failed takes 1 to 100"),
    ],
)
def test_diagnose_refuses_bad_input(
    example: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = _run(capsys, "diagnose", *argv)
    assert status == 1 and err.startswith(message)


async def test_diagnose_asks_ari_when_no_daemon_answers(
    cdr: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = AriSimulator()
    sim.add_endpoint("PJSIP", "alice", online=False)
    sim.add_endpoint("PJSIP", "bob", online=False)
    await sim.start(port=0)
    try:
        monkeypatch.delenv("PBXD_TOKEN", raising=False)
        monkeypatch.setenv("PBXD_ARI_URL", sim.base_url)
        monkeypatch.setenv("PBXD_ARI_USERNAME", sim.username)
        monkeypatch.setenv("PBXD_ARI_PASSWORD", sim.password)
        argv = ["diagnose", RECEPTION, "--at", AT, "--database", cdr]
        status = await asyncio.to_thread(main, argv)
    finally:
        await sim.stop()
    out = capsys.readouterr().out
    assert status == 3
    assert "  target alice: softphone PJSIP/alice: offline" in out
    assert f"presence: from Asterisk's ARI at {sim.base_url}" in out
    assert out.splitlines()[-1] == (
        "verdict: rings nobody: every softphone offline and ceo-mobile refused by the carrier, "
        "cause 21 (call rejected)"
    )


async def test_diagnose_asks_the_running_daemon(
    cdr: str, example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    token = add_user(
        config.settings.users_file, "vera", Role.VIEWER, password=PASSWORD, hasher=FAST_HASHER
    )
    store = await CdrStore.open(cdr)
    table = PresenceTable({"PJSIP/alice": "online", "PJSIP/bob": "offline"})
    service = SimpleNamespace(
        daemon=SimpleNamespace(roster=SimpleNamespace(presence=table)),
        stream=SimpleNamespace(connected=True),
    )
    runtime = Runtime(store=store, service=service)  # type: ignore[arg-type]
    server = TestServer(build_app(config, runtime, clock=VirtualClock(origin=NOW)))
    await server.start_server()
    try:
        monkeypatch.setenv("PBXD_ARI_URL", "http://127.0.0.1:9/ari")  # never asked
        base = str(server.make_url("/")).rstrip("/")
        argv = ["diagnose", RECEPTION, "--at", AT, "--daemon", base, "--token", token]
        argv += ["--database", cdr]
        status = await asyncio.to_thread(main, argv)
    finally:
        await server.close()
        await store.close()
    out = capsys.readouterr().out
    assert status == 0
    assert "  target alice: softphone PJSIP/alice: online" in out
    assert "  target bob: softphone PJSIP/bob: offline" in out
    assert f"presence: from the daemon at {base}" in out
    assert out.splitlines()[-1] == (
        "verdict: rings alice now; bob offline and ceo-mobile refused by the carrier, cause 21 "
        "(call rejected); 2 failed call(s) below"
    )
