"""`pbxd run` as a real process told to reload (SIGHUP) with calls up, against the simulator.

A broken configuration is refused with its FILE:LINE:COLUMN errors in the log and the running
routing goes on; a good one routes new calls, while a call that was ringing across both
reloads walks the flow it started with. CDRs on SQLite, then PostgreSQL.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbxd.cdr.store import CdrStore
from pbxd.sim import AriSimulator, PeerScript
from tests.cli.test_run import read_until, shut_down, start_daemon, stop_daemon, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dbfixtures import BACKENDS, database_url

DID = "+33170000001"
TRUNKS = """\
trunks:
  carrier:
    inbound_endpoint: trunk-in
    dial: "PJSIP/{number}@trunk-out"
    country: FR
    numbers:
      - number: 01 70 00 00 01
"""
DESK = """\
country: FR
targets:
  alice: {softphone: PJSIP/alice}
  carol: {softphone: PJSIP/carol}
routes:
  - name: desk
    numbers: [01 70 00 00 01]
    strategy: hunt
    targets:
      - {target: alice, ring_time: 60}
      - {target: carol, ring_time: 60}
    timeout: 120
"""
BROKEN = DESK.replace("{target: carol, ring_time: 60}", "{target: carlo, ring_time: 60}")
# The new routing: another route, ringing bob only.
NEW_DESK = """\
country: FR
targets:
  bob: {softphone: PJSIP/bob}
routes:
  - name: front-desk
    numbers: [01 70 00 00 01]
    targets: [bob]
    timeout: 120
"""


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pbxd.yaml, sip-trunks.yaml and routing/desk.yaml in tmp_path, the working directory."""
    (tmp_path / "pbxd.yaml").write_text("state_dir: var\n")
    (tmp_path / "sip-trunks.yaml").write_text(TRUNKS)
    (tmp_path / "routing").mkdir()
    (tmp_path / "routing" / "desk.yaml").write_text(DESK)
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_DATABASE_URL", "PBXD_STATE_DIR", "PBXD_ROUTING_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _legs(sim: AriSimulator, call_id: str) -> list[str]:
    """The endpoints of a call's legs up now (`alice`, `bob`, …)."""
    return sorted(
        c.name.split("/", 1)[1].rsplit("-", 1)[0]
        for c in sim.channels
        if c.id.startswith(f"{call_id}-")
    )


def _leg_to(sim: AriSimulator, call_id: str, endpoint: str) -> str:
    [leg] = [
        c.id
        for c in sim.channels
        if c.id.startswith(f"{call_id}-") and c.name.startswith(f"PJSIP/{endpoint}-")
    ]
    return leg


@pytest.mark.timeout(240)  # a child process compiles: slow on a loaded machine
async def test_sighup_refuses_a_broken_configuration_then_swaps_a_good_one_calls_go_on(
    desk: Path, db: str
) -> None:
    sim = AriSimulator()
    for endpoint in ("trunk-in", "trunk-out", "alice", "bob", "carol"):
        sim.add_endpoint("PJSIP", endpoint)
        sim.script(f"PJSIP/{endpoint}", PeerScript())  # every phone rings until told
    url = await sim.start()
    # At debug level: a replaced configuration something still held would say so.
    process = await start_daemon(desk, url, db, PBXD_LOG_LEVEL="debug")
    try:
        await read_until(process, lambda line: line["event"] == "pbxd ready")
        ringing = await sim.inbound_call(DID, "+33612000001", "Jean")
        await wait_for(lambda: _legs(sim, ringing) == ["alice"])

        # A typo: refused whole, each error at its place, and the desk still rings alice.
        (desk / "routing" / "desk.yaml").write_text(BROKEN)
        process.send_signal(signal.SIGHUP)
        lines = await read_until(process, lambda line: line["event"] == "config_reload_refused", 90)
        errors = [str(line["diagnostic"]) for line in lines if line["event"] == "config_error"]
        assert len(errors) == 1, lines
        assert (
            errors[0].startswith("routing/desk.yaml:11:9: error: unknown target ")
            and "carlo" in errors[0]
        )
        before = await sim.inbound_call(DID, "+33612000002", "Paul")
        await wait_for(lambda: _legs(sim, before) == ["alice"])
        sim.hangup(before)

        # The fix, with new routing: new calls ring bob.
        (desk / "routing" / "desk.yaml").write_text(NEW_DESK)
        process.send_signal(signal.SIGHUP)
        lines = await read_until(process, lambda line: line["event"] == "config_reloaded", 90)
        assert not [line for line in lines if line.get("level") == "error"], lines
        # Nothing but the daemon's RunningConfig held the first configuration: it was freed.
        freeing = ("config_replaced_freed", "config_replaced_still_held")
        more = await read_until(process, lambda line: line["event"] in freeing)
        assert more[-1]["event"] == "config_replaced_freed"
        lines += more
        ended = {str(line.get("call_id")) for line in lines if line["event"] == "call ended"}
        after = await sim.inbound_call(DID, "+33612000003", "Marie")
        await wait_for(lambda: _legs(sim, after) == ["bob"])

        # The call ringing all along goes on with its own hunt: alice declines, carol rings.
        sim.hangup(_leg_to(sim, ringing, "alice"))
        await wait_for(lambda: _legs(sim, ringing) == ["carol"])
        for caller in (ringing, after):
            sim.hangup(caller)
        await wait_for(lambda: not sim.channels)
        # SIGTERM once pbxd has handled every end (the CDR is then written at the stop).
        while not {ringing, before, after} <= ended:
            [*_, line] = await read_until(process, lambda line: line["event"] == "call ended")
            ended.add(str(line.get("call_id")))
        await stop_daemon(process)
    finally:
        await shut_down(sim, process)

    store = await CdrStore.open(db)
    try:
        routes = {}
        for call_id in (ringing, before, after):
            entry = await store.get_call(call_id)
            assert entry is not None, call_id
            routes[call_id] = (entry.call.route, sorted(leg.target for leg in entry.legs))
    finally:
        await store.close()
    assert routes == {
        ringing: ("desk", ["alice", "carol"]),
        before: ("desk", ["alice"]),
        after: ("front-desk", ["bob"]),
    }
