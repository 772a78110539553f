"""Two `pbxd run` processes as an active/standby pair on one simulator and PostgreSQL.

The active is killed with SIGKILL while one call rings and one is bridged: the standby takes
the Stasis app over, adopts both calls as a restart does, and every CDR row is written once.
Real processes need real time for the lock's polling: the deadlines are generous and only
bound the waits; the takeover time itself is measured in bench/takeover.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from pbxd.cdr.records import Disposition
from pbxd.cdr.store import CdrStore
from pbxd.ha.lease import lock_key
from pbxd.sim import AriSimulator, PeerScript
from tests.cli.test_run_crash import (
    RECEPTION,
    SALES,
    START_WITHIN,
    Daemon,
    bridge_of,
    bridged_with,
    lab_simulator,
    no_call_left,
    requests_about,
    wait_until,
    write_config,
)
from tests.dbfixtures import postgres_schema_url

PAIR_YAML = "ha:\n  mode: active-standby\n"


def pair_config(directory: Path) -> Path:
    """The crash test's configuration, in its own directory (its own state_dir), paired."""
    config = write_config(directory)
    config.write_text(config.read_text() + PAIR_YAML, encoding="utf-8")
    return config


@dataclass
class Pair:
    """A simulator with its own system name, two paired `pbxd run` and a CDR reader."""

    server: str
    sim: AriSimulator
    pg_url: str
    store: CdrStore
    first: Daemon
    second: Daemon
    daemons: list[Daemon]
    first_dir: Path  # the first pbxd's configuration and state: a restart uses them again

    async def start(self, directory: Path) -> Daemon:
        daemon = await Daemon.start(pair_config(directory), self.sim.base_url, self.pg_url)
        self.daemons.append(daemon)
        return daemon

    async def closed(self, call_id: str) -> bool:
        entry = await self.store.get_call(call_id)
        return entry is not None and entry.call.ended_at is not None


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """`first` active, `second` standing by; everything stopped at the end."""
    # A system name of its own: the pair's lock is keyed by it, and the lock is database-wide.
    server = f"ast-{uuid.uuid4().hex[:10]}"
    sim: AriSimulator = lab_simulator(system_name=server)
    await sim.start()
    daemons: list[Daemon] = []
    try:
        async with postgres_schema_url() as pg_url:
            first = await Daemon.start(pair_config(tmp_path / "a"), sim.base_url, pg_url)
            daemons.append(first)
            await wait_until(lambda: active(first), "the first pbxd to become active", START_WITHIN)
            second = await Daemon.start(pair_config(tmp_path / "b"), sim.base_url, pg_url)
            daemons.append(second)
            await wait_until(lambda: bool(second.events("ha_standby")), "the second to stand by")
            store = await CdrStore.open(pg_url)
            try:
                yield Pair(server, sim, pg_url, store, first, second, daemons, tmp_path / "a")
            finally:
                await store.close()
                for daemon in daemons:  # before their schema is dropped
                    await daemon.cleanup()
    finally:
        for daemon in daemons:
            await daemon.cleanup()
        await sim.stop()


def active(daemon: Daemon) -> bool:
    return bool(daemon.events("ha_active"))


@pytest.mark.timeout(240)
async def test_kill_9_of_the_active_the_standby_adopts_every_call(pair: Pair) -> None:
    sim, store, first, second = pair.sim, pair.store, pair.first, pair.second
    sim.script("PJSIP/dave", PeerScript())  # sales rings on: dave and erin never answer
    assert not active(second) and sim.hub.is_active("pbxd")
    bridged = await sim.inbound_call(RECEPTION, "+33612000001", "Jean")
    ringing = await sim.inbound_call(SALES, "+33612000002", "Marie")
    assert bridged.startswith(f"{pair.server}-")

    async def journaled(call_id: str, kinds: set[str]) -> bool:
        return kinds <= {e.kind for e in await store.events_of(call_id)}

    await wait_until(lambda: len(bridged_with(sim, bridged)) == 2, "Jean bridged")
    await wait_until(lambda: journaled(bridged, {"bridged"}), "Jean's bridge journaled")
    await wait_until(lambda: journaled(ringing, {"leg_rung"}), "Marie's legs ringing")
    before = await store.get_call(bridged)
    assert before is not None and before.call.answered_by == "alice"
    alice_leg = next(leg.leg_id for leg in before.legs if leg.target == "alice")
    ringing_legs = sorted(c.id for c in sim.channels if c.id.startswith(f"{ringing}-"))
    assert len(ringing_legs) == 2
    jeans_bridge = bridge_of(sim, bridged)

    await first.kill()
    requests_before = len(sim.rest_log)
    await wait_until(lambda: active(second), "the standby to take over", START_WITHIN)
    await wait_until(lambda: sim.hub.is_active("pbxd"), "the app to be owned again")
    [took] = second.events("ha_active")
    assert took["server"] == pair.server

    # Both calls go on, driven by the new active; nothing was hung up by the takeover.
    await wait_until(lambda: bool(second.events("adopting ringing call")), "Marie's call adopted")
    assert bridged_with(sim, bridged) == sorted([bridged, alice_leg])
    still = {bridged, alice_leg, ringing, *ringing_legs}
    assert {c.id for c in sim.channels} == still
    assert requests_about(sim, "DELETE", {f"/channels/{c}" for c in still}) == []
    assert any(r["path"] == f"/bridges/{jeans_bridge}" for r in sim.rest_log[requests_before:])

    sim.hangup(ringing)  # Marie gives up: the new active ends the ringing legs
    await wait_until(lambda: not any(c.id in ringing_legs for c in sim.channels), "legs gone")
    sim.hangup(bridged)  # Jean's BYE
    await wait_until(lambda: no_call_left(sim), "both calls torn down")
    await wait_until(lambda: pair.closed(bridged), "Jean's CDR")
    await wait_until(lambda: pair.closed(ringing), "Marie's CDR")

    # The killed pbxd, back, stands by: the other one keeps the app.
    again = await pair.start(pair.first_dir)
    await wait_until(lambda: bool(again.events("ha_standby")), "the old active to stand by")
    await again.terminate()
    await second.terminate()

    stderr = "\n".join(d.stderr() for d in pair.daemons)
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
    assert (jean.call.server, marie.call.server) == (pair.server, pair.server)


@pytest.mark.timeout(240)
async def test_an_active_whose_lock_session_is_cut_fences_and_the_call_survives(
    pair: Pair,
) -> None:
    # The active keeps running but loses its PostgreSQL session (pg_terminate_backend: what a
    # network cut looks like to PostgreSQL once its keepalives give up).
    sim, store, first, second = pair.sim, pair.store, pair.first, pair.second
    call = await sim.inbound_call(RECEPTION, "+33612000001", "Jean")
    await wait_until(lambda: len(bridged_with(sim, call)) == 2, "Jean bridged")

    async def answered() -> bool:
        entry = await store.get_call(call)
        return entry is not None and entry.call.answered_by == "alice"

    await wait_until(answered, "Jean's answer written")
    namespace, key = lock_key("pbxd", pair.server)
    async with store.engine.connect() as conn:
        cut = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :ns AND objid = :key AND objsubid = 2 AND granted"
            ),
            {"ns": namespace, "key": key},
        )
        assert cut.scalars().all() == [True]
    await wait_until(lambda: bool(first.events("ha_fenced")), "the active to fence itself")
    [fenced] = first.events("ha_fenced")
    assert str(fenced["reason"]).startswith("lock connection lost")
    # One of the two owns the app again (whichever polled first) and has the call.
    await wait_until(
        lambda: len(first.events("ha_active")) == 2 or bool(second.events("ha_active")),
        "a new active",
        START_WITHIN,
    )
    await wait_until(lambda: sim.hub.is_active("pbxd"), "the app to be owned again")
    assert len(bridged_with(sim, call)) == 2  # never dropped
    sim.hangup(call)
    await wait_until(lambda: no_call_left(sim), "Jean's call torn down")
    await wait_until(lambda: pair.closed(call), "Jean's CDR")
    for daemon in pair.daemons:
        await daemon.terminate()
    entry = await store.get_call(call)
    assert entry is not None and entry.call.disposition is Disposition.ANSWERED
    assert entry.call.answered_by == "alice" and entry.call.hangup_cause == 16
    assert len(entry.legs) == 2 and all(leg.ended_at is not None for leg in entry.legs)
