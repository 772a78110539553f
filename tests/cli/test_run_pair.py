"""Two `pbxd run` processes as an active/standby pair on one simulator and PostgreSQL.

The active is killed with SIGKILL while one call rings and one is bridged: the standby takes
the Stasis app over, adopts both calls as a restart does, and every CDR row is written once.
Real processes need real time for the lock's polling: the deadlines are generous and only
bound the waits; the takeover time itself is measured in bench/takeover.py.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pbxd.cdr.records import Disposition
from pbxd.cdr.store import CdrStore
from pbxd.sim import AriSimulator, PeerScript

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from dbfixtures import postgres_schema_url  # noqa: E402
from test_run_crash import (  # noqa: E402
    RECEPTION,
    SALES,
    START_WITHIN,
    Daemon,
    bridged_with,
    lab_simulator,
    requests_about,
    wait_until,
    write_config,
)

PAIR_YAML = "ha:\n  mode: active-standby\n"


def pair_config(directory: Path) -> Path:
    """The crash test's configuration, in its own directory (its own state_dir), paired."""
    config = write_config(directory)
    config.write_text(config.read_text() + PAIR_YAML, encoding="utf-8")
    return config


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with postgres_schema_url() as url:
        yield url


def active(daemon: Daemon) -> bool:
    return bool(daemon.events("ha_active"))


@pytest.mark.timeout(240)
async def test_kill_9_of_the_active_the_standby_adopts_every_call(
    tmp_path: Path, pg_url: str
) -> None:
    # A system name of its own: the pair's lock is keyed by it, and the lock is database-wide.
    server = f"ast-{uuid.uuid4().hex[:10]}"
    sim: AriSimulator = lab_simulator(system_name=server)
    sim.script("PJSIP/dave", PeerScript())  # sales rings on: dave and erin never answer
    url = await sim.start()
    daemons: list[Daemon] = []
    store: CdrStore | None = None
    try:
        first = await Daemon.start(pair_config(tmp_path / "a"), url, pg_url)
        daemons.append(first)
        await wait_until(lambda: active(first), "the first pbxd to become active", START_WITHIN)
        second = await Daemon.start(pair_config(tmp_path / "b"), url, pg_url)
        daemons.append(second)
        await wait_until(lambda: bool(second.events("ha_standby")), "the second to stand by")
        assert not active(second) and sim.hub.is_active("pbxd")
        store = await CdrStore.open(pg_url)

        bridged = await sim.inbound_call(RECEPTION, "+33612000001", "Jean")
        ringing = await sim.inbound_call(SALES, "+33612000002", "Marie")
        assert bridged.startswith(f"{server}-")

        async def journaled(call_id: str, kinds: set[str]) -> bool:
            assert store is not None
            return kinds <= {e.kind for e in await store.events_of(call_id)}

        await wait_until(lambda: len(bridged_with(sim, bridged)) == 2, "Jean bridged")
        await wait_until(lambda: journaled(bridged, {"bridged"}), "Jean's bridge journaled")
        await wait_until(lambda: journaled(ringing, {"leg_rung"}), "Marie's legs ringing")
        before = await store.get_call(bridged)
        assert before is not None and before.call.answered_by == "alice"
        alice_leg = next(leg.leg_id for leg in before.legs if leg.target == "alice")
        ringing_legs = sorted(c.id for c in sim.channels if c.id.startswith(f"{ringing}-"))
        assert len(ringing_legs) == 2

        await first.kill()
        requests_before = len(sim.rest_log)
        await wait_until(lambda: active(second), "the standby to take over", START_WITHIN)
        await wait_until(lambda: sim.hub.is_active("pbxd"), "the app to be owned again")
        [took] = second.events("ha_active")
        assert took["server"] == server

        # Both calls go on, driven by the new active; nothing was hung up by the takeover.
        await wait_until(
            lambda: bool(second.events("adopting ringing call")), "Marie's call adopted"
        )
        assert bridged_with(sim, bridged) == sorted([bridged, alice_leg])
        still = {bridged, alice_leg, ringing, *ringing_legs}
        assert {c.id for c in sim.channels} == still
        assert requests_about(sim, "DELETE", {f"/channels/{c}" for c in still}) == []
        assert any(
            r["path"] == f"/bridges/{bridged}-bridge" for r in sim.rest_log[requests_before:]
        )

        sim.hangup(ringing)  # Marie gives up: the new active ends the ringing legs
        await wait_until(lambda: not any(c.id in ringing_legs for c in sim.channels), "legs gone")
        sim.hangup(bridged)  # Jean's BYE
        await wait_until(lambda: not sim.channels and not sim.bridges, "both calls torn down")

        async def closed(call_id: str) -> bool:
            assert store is not None
            entry = await store.get_call(call_id)
            return entry is not None and entry.call.ended_at is not None

        await wait_until(lambda: closed(bridged), "Jean's CDR")
        await wait_until(lambda: closed(ringing), "Marie's CDR")

        # The killed pbxd, back, stands by: the other one keeps the app.
        again = await Daemon.start(pair_config(tmp_path / "a"), url, pg_url)
        daemons.append(again)
        await wait_until(lambda: bool(again.events("ha_standby")), "the old active to stand by")
        await again.terminate()
        await second.terminate()
    finally:
        for daemon in daemons:
            await daemon.cleanup()
        if store is not None:
            await store.close()
        await sim.stop()

    stderr = "\n".join(d.stderr() for d in daemons)
    store = await CdrStore.open(pg_url)
    try:
        jean, marie = await store.get_call(bridged), await store.get_call(ringing)
        async with store.engine.connect() as conn:
            rows = {
                table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
                for table in ("calls", "legs")
            }
            seqs = {
                call_id: [
                    row[0]
                    for row in await conn.execute(
                        text("SELECT seq FROM call_events WHERE call_id = :c ORDER BY seq"),
                        {"c": call_id},
                    )
                ]
                for call_id in (bridged, ringing)
            }
    finally:
        await store.close()
    assert jean is not None and marie is not None
    # Two calls, two legs each: written once (ids are keys), none lost.
    assert rows == {"calls": 2, "legs": 4}, stderr
    for call_id, events in seqs.items():
        assert events == list(range(1, len(events) + 1)), (call_id, events)  # no gap, no twin
    assert jean.call.disposition is Disposition.ANSWERED, stderr
    assert jean.call.answered_by == "alice" and jean.call.hangup_cause == 16
    assert {leg.target: leg.answered_at is not None for leg in jean.legs} == {
        "alice": True,
        "bob": False,
    }
    assert all(leg.ended_at is not None for leg in jean.legs + marie.legs)
    assert marie.call.disposition is Disposition.ABANDONED, stderr
    assert (jean.call.server, marie.call.server) == (server, server)
