"""AGI mode in `pbxd check` (agi.bind) and in a real `pbxd run` writing real CDRs."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path

import pytest

from pbxd.cdr.records import Disposition
from pbxd.cdr.store import CdrStore
from pbxd.cli.main import main
from pbxd.sim import AriSimulator
from tests.agi.fake_asterisk import agi_headers, run_agi
from tests.classic_example import open_round_the_clock
from tests.cli.test_run import read_until, start_daemon, stop_daemon

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "routing", tmp_path / "routing")
    shutil.copytree(REPO / "sounds", tmp_path / "sounds")
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_AGI_BIND", "PBXD_DATABASE_URL", "PBXD_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _with_agi(example: Path, bind: str) -> None:
    path = example / "pbxd.yaml"
    path.write_text(path.read_text() + f"agi:\n  bind: {bind}\n")


def test_agi_is_off_by_default(example: Path) -> None:
    from pbxd.config.compile import compile_config

    config = compile_config(example / "pbxd.yaml").config
    assert config is not None and config.settings.agi_bind is None


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("4573", "agi.bind: '4573' must be HOST:PORT"),
        ("127.0.0.1:99999", "such as 127.0.0.1:4573 (FastAGI's port)"),
    ],
)
def test_check_refuses_a_bad_agi_bind_with_its_line(
    example: Path, bind: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_agi(example, bind)
    line = len((example / "pbxd.yaml").read_text().splitlines())
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert f"pbxd.yaml:{line}:" in err and message in err


def test_check_warns_about_agi_beyond_loopback(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_agi(example, "0.0.0.0:4573")
    assert main(["check"]) == 0
    assert "FastAGI has no authentication" in capsys.readouterr().err


def test_agi_bind_comes_from_the_environment_too(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PBXD_AGI_BIND", "localhost")
    assert main(["check"]) == 1
    assert (
        "agi.bind (from $PBXD_AGI_BIND): 'localhost' must be HOST:PORT" in capsys.readouterr().err
    )


async def test_pbxd_run_serves_fastagi_and_writes_the_cdr(
    example: Path, unused_tcp_port_factory: object
) -> None:
    open_round_the_clock(example)  # the reception rings whatever the hour of the run
    agi_port = unused_tcp_port_factory()  # type: ignore[operator]
    db = f"sqlite:///{example / 'cdr.db'}"
    sim = AriSimulator()
    url = await sim.start()
    process = await start_daemon(example, url, db, PBXD_AGI_BIND=f"127.0.0.1:{agi_port}")
    try:
        await read_until(process, lambda line: line.get("event") == "agi_listening")
        routed = await run_agi(agi_port, agi_headers("route", uniqueid="1764752400.5"))
        assert routed.variables["PBXD_RESULT"] == "ring"
        assert routed.variables["PBXD_DIAL"].startswith("PJSIP/alice&PJSIP/bob")
        await run_agi(
            agi_port,
            agi_headers("result", uniqueid="1764752400.5", extension="h"),
            channel_vars={"DIALSTATUS": "BUSY", "DIALEDTIME": "3", "HANGUPCAUSE": "17"},
        )
        await read_until(process, lambda line: line.get("event") == "agi_cdr_written")
        log = await stop_daemon(process)
        assert '"event": "pbxd stopped"' in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sim.stop()
    store = await CdrStore.open(db)
    try:
        entry = await store.get_call("1764752400.5")
    finally:
        await store.close()
    assert entry is not None
    assert entry.call.disposition is Disposition.BUSY and entry.call.hangup_cause == 17
    assert entry.call.route == "paris-reception" and entry.call.caller_number == "+33612000001"
    assert {leg.target for leg in entry.legs} == {"alice", "bob", "ceo-mobile"}


async def test_pbxd_run_exits_1_with_one_line_when_the_agi_port_is_taken(example: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        process = await start_daemon(
            example,
            "http://127.0.0.1:1/ari",
            f"sqlite:///{example / 'cdr.db'}",
            PBXD_AGI_BIND=f"127.0.0.1:{port}",
        )
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    finally:
        taken.close()
    assert process.returncode == 1
    [failed] = [json.loads(line) for line in err.decode().splitlines() if "agi_" in line]
    assert failed["event"] == "agi_bind_failed" and failed["bind"] == f"127.0.0.1:{port}"
    assert "Traceback" not in err.decode()
