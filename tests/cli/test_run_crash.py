"""`pbxd run` killed with SIGKILL mid-call, then started again; and SIGUSR1's call state line.

The simulator runs in the test process; `pbxd run` is a real child process pointed at it, so
a crash is a real crash: no `stop()`, no last CDR flush, the WebSocket cut by the kernel.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pbxd.cdr.records import CallLogEntry, Disposition
from pbxd.cdr.store import CdrStore
from pbxd.sim import AriSimulator, PeerScript

# Deadlines are generous on purpose (a loaded CI machine): they bound waits, never assert speed.
START_WITHIN = 30.0
WITHIN = 20.0

RECEPTION = "+33170000001"  # alice (answers) and bob (rings) at once
SALES = "+33170000002"  # dave (answers) and erin (rings) at once

TRUNKS_YAML = """\
    trunks:
      carrier-fr:
        inbound_endpoint: trunk-in
        dial: "PJSIP/{number}@trunk-out"
        allowed_destinations: ["+33"]
        max_outbound_legs: 4
        country: FR
        numbers:
          - number: 01 70 00 00 01
          - number: 01 70 00 00 02
"""

ROUTING_YAML = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      dave: {softphone: PJSIP/dave}
      erin: {softphone: PJSIP/erin}
    routes:
      - name: reception
        numbers: [01 70 00 00 01]
        strategy: ringall
        targets: [alice, bob]
        timeout: 600
      - name: sales
        numbers: [01 70 00 00 02]
        strategy: ringall
        targets: [dave, erin]
        timeout: 600
"""


def write_config(directory: Path) -> Path:
    """A small configuration whose two routes share no target (answers cannot race)."""
    (directory / "routing").mkdir(parents=True, exist_ok=True)
    (directory / "pbxd.yaml").write_text("state_dir: var\n", encoding="utf-8")
    (directory / "sip-trunks.yaml").write_text(textwrap.dedent(TRUNKS_YAML), encoding="utf-8")
    (directory / "routing" / "main.yaml").write_text(
        textwrap.dedent(ROUTING_YAML), encoding="utf-8"
    )
    return directory / "pbxd.yaml"


@dataclass
class Daemon:
    """A `pbxd run` child process whose stderr JSON lines are read as they come."""

    process: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, config: Path, url: str, db: str) -> Daemon:
        env = {
            **os.environ,
            "PBXD_CONFIG": str(config),
            "PBXD_ARI_URL": url,
            "PBXD_ARI_PASSWORD": "pbxd-secret",
            "PBXD_DATABASE_URL": db,
            "PBXD_LOG_LEVEL": "info",
            "PBXD_HTTP_BIND": "127.0.0.1:0",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pbxd",
            "run",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        daemon = cls(process)
        # Drained all along: a full pipe would block the daemon's logging, hence the daemon.
        daemon.reader = asyncio.create_task(daemon._read())
        return daemon

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            try:
                self.lines.append(json.loads(text))
            except ValueError:
                self.lines.append({"event": "<not JSON>", "text": text})

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    def stderr(self) -> str:
        return "\n".join(self.raw)

    async def kill(self) -> None:
        """SIGKILL: no signal handler, no cleanup, no last flush."""
        os.kill(self.process.pid, signal.SIGKILL)
        await self.wait_exit()
        assert self.process.returncode == -signal.SIGKILL

    async def terminate(self) -> None:
        """SIGTERM, and the clean exit that must follow."""
        self.process.send_signal(signal.SIGTERM)
        await self.wait_exit()
        assert self.process.returncode == 0, self.stderr()

    async def wait_exit(self) -> None:
        async with asyncio.timeout(WITHIN):
            await self.process.wait()
            if self.reader is not None:
                await self.reader

    async def cleanup(self) -> None:
        """Whatever the test did: no child process left behind."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        if self.reader is not None:
            await self.reader


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, within: float = WITHIN
) -> None:
    """Poll `condition` (simulator state, CDR rows, log lines) until true, or fail saying what."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = condition()
                if result if isinstance(result, bool) else await result:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out ({within} s) waiting for {what}") from None


def lab_simulator(**options: Any) -> AriSimulator:
    sim = AriSimulator(**options)
    for endpoint in ("trunk-in", "trunk-out", "alice", "bob", "dave", "erin"):
        sim.add_endpoint("PJSIP", endpoint)
    sim.script("PJSIP/alice", PeerScript(answer_after=0.2))
    sim.script("PJSIP/dave", PeerScript(answer_after=0.2))
    return sim  # bob and erin ring until they are hung up


def bridge_of(sim: AriSimulator, call_id: str) -> str | None:
    """The id of the bridge the call's caller is in on the simulator (None: none)."""
    return next((b.id for b in sim.bridges if call_id in b.channels), None)


def bridged_with(sim: AriSimulator, call_id: str) -> list[str]:
    """The channels in the call's bridge on the simulator (empty if there is none)."""
    bridge = sim.bridge(bridge_of(sim, call_id) or "")
    return sorted(bridge.channels) if bridge is not None else []


def no_call_left(sim: AriSimulator) -> bool:
    """No channel, and only empty bridges (idle, kept by pbxd for the next calls)."""
    return not sim.channels and all(not b.channels for b in sim.bridges)


def winner_leg(entry: CallLogEntry, target: str) -> str:
    [leg] = [leg for leg in entry.legs if leg.target == target]
    return leg.leg_id


def gets(rest_log: list[dict[str, Any]], channel_id: str) -> list[dict[str, Any]]:
    return [r for r in rest_log if r["method"] == "GET" and r["path"] == f"/channels/{channel_id}"]


def requests_about(sim: AriSimulator, method: str, paths: set[str]) -> list[dict[str, Any]]:
    return [r for r in sim.rest_log if r["method"] == method and r["path"] in paths]


@pytest.mark.timeout(240)
async def test_run_killed_mid_call_adopts_the_bridged_call_and_closes_the_ended_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path)
    db = f"sqlite:///{tmp_path / 'cdr.db'}"
    sim = lab_simulator()
    url = await sim.start()
    daemons: list[Daemon] = []
    store: CdrStore | None = None
    try:
        first = await Daemon.start(config, url, db)
        daemons.append(first)
        async with asyncio.timeout(START_WITHIN):
            await sim.wait_connected("pbxd")
        await wait_until(lambda: bool(first.events("connected to ARI")), "the first start")
        store = await CdrStore.open(db)  # the daemon migrated it; this one only reads

        kept = await sim.inbound_call(RECEPTION, "+33612000001", "Jean")
        ended = await sim.inbound_call(SALES, "+33612000002", "Marie")

        async def answered_in_cdr(call_id: str, target: str) -> bool:
            assert store is not None
            entry = await store.get_call(call_id)
            if entry is None or entry.call.answered_by != target:
                return False
            return any(leg.target == target and leg.answered_at for leg in entry.legs)

        for call_id, target in ((kept, "alice"), (ended, "dave")):
            await wait_until(lambda c=call_id: len(bridged_with(sim, c)) == 2, f"{call_id} bridged")
            await wait_until(
                lambda c=call_id, t=target: answered_in_cdr(c, t), f"{call_id}'s answer in CDR"
            )
        kept_entry = await store.get_call(kept)
        ended_entry = await store.get_call(ended)
        assert kept_entry is not None and ended_entry is not None
        alice_leg = winner_leg(kept_entry, "alice")
        dave_leg = winner_leg(ended_entry, "dave")
        assert bridged_with(sim, kept) == sorted([kept, alice_leg])
        assert bridged_with(sim, ended) == sorted([ended, dave_leg])
        kept_bridge, ended_bridge = bridge_of(sim, kept), bridge_of(sim, ended)

        await first.kill()
        crashed_at = datetime.now(UTC)
        # The kernel closed the WebSocket: Asterisk no longer has anyone for the app.
        await wait_until(lambda: not sim.hub.is_active("pbxd"), "the dead WebSocket to close")
        # While pbxd is dead, Marie hangs up: dave stays alone in the bridge, nobody hears it.
        sim.hangup(ended)
        await wait_until(lambda: sim.channel(ended) is None, "Marie's channel to go")
        assert (await store.get_call(ended)) is not None
        assert (await store.get_call(ended)).call.ended_at is None  # type: ignore[union-attr]

        requests_before_restart = len(sim.rest_log)
        restarted_at = datetime.now(UTC)
        second = await Daemon.start(config, url, db)
        daemons.append(second)
        async with asyncio.timeout(START_WITHIN):
            await sim.wait_connected("pbxd")

        async def closed(call_id: str) -> bool:
            assert store is not None
            entry = await store.get_call(call_id)
            return entry is not None and entry.call.ended_at is not None

        await wait_until(
            lambda: any(e.get("call_id") == kept for e in second.events("call adopted")),
            "Jean's call to be adopted",
        )
        # Recovery asked Asterisk about both channels once; the adopted call's resync asks
        # again. A BYE racing that resync is recorded without its cause (resync's 404 beats
        # the queued ChannelDestroyed): wait for it, that race is not what this test is about.
        await wait_until(
            lambda: all(
                len(gets(sim.rest_log[requests_before_restart:], c)) >= 2 for c in (kept, alice_leg)
            ),
            "the adopted call's resync",
        )
        await wait_until(lambda: closed(ended), "Marie's CDR to be closed")
        await wait_until(lambda: sim.channel(dave_leg) is None, "dave's leftover leg hung up")

        # Jean still talks to alice: same channels Up, same bridge, no hangup sent for them.
        caller, alice = sim.channel(kept), sim.channel(alice_leg)
        assert caller is not None and caller.state == "Up"
        assert alice is not None and alice.state == "Up"
        assert bridged_with(sim, kept) == sorted([kept, alice_leg])
        untouched = {f"/channels/{kept}", f"/channels/{alice_leg}"}
        assert requests_about(sim, "DELETE", untouched) == []
        assert requests_about(sim, "DELETE", {f"/bridges/{kept_bridge}"}) == []
        assert not await closed(kept)
        adopted_requests = sim.rest_log[requests_before_restart:]
        assert any(r["path"] == f"/bridges/{kept_bridge}" for r in adopted_requests)

        sim.hangup(kept)  # Jean's BYE, heard by the new pbxd
        await wait_until(lambda: no_call_left(sim), "Jean's call torn down")
        await wait_until(lambda: closed(kept), "Jean's CDR to complete")
        # Marie's bridge, left with dave in it: the sweep takes it back once he is gone.
        await wait_until(
            lambda: any(r["path"] == f"/bridges/{ended_bridge}" for r in sim.rest_log),
            "the sweep to find Marie's bridge",
        )
        await second.terminate()
        assert sim.bridges == []  # the idle ones destroyed at the stop
    finally:
        for daemon in daemons:
            await daemon.cleanup()
        if store is not None:
            await store.close()
        await sim.stop()

    store = await CdrStore.open(db)
    try:
        kept_entry = await store.get_call(kept)
        ended_entry = await store.get_call(ended)
    finally:
        await store.close()
    assert kept_entry is not None and ended_entry is not None
    stderr = "\n".join(d.stderr() for d in daemons)

    call = kept_entry.call
    assert call.disposition is Disposition.ANSWERED, stderr
    assert call.answered_by == "alice"
    assert call.hangup_cause == 16
    assert call.answered_at is not None and call.answered_at < crashed_at
    assert call.ended_at is not None and call.ended_at > restarted_at
    legs = {leg.target: leg for leg in kept_entry.legs}
    assert set(legs) == {"alice", "bob"}
    assert legs["alice"].answered_at is not None
    assert legs["alice"].ended_at is not None and legs["alice"].ended_at > restarted_at
    assert legs["alice"].hangup_cause == 16
    assert legs["bob"].answered_at is None and legs["bob"].ended_at is not None

    call = ended_entry.call
    assert call.disposition is Disposition.ANSWERED
    assert call.answered_by == "dave"
    assert call.answered_at is not None
    assert call.ended_at is not None and call.answered_at <= call.ended_at <= restarted_at
    legs = {leg.target: leg for leg in ended_entry.legs}
    assert set(legs) == {"dave", "erin"}
    assert all(leg.ended_at is not None for leg in legs.values())
    assert legs["dave"].answered_at is not None

    assert "Traceback" not in stderr
    assert not [line for line in daemons[1].lines if line.get("level") in ("error", "critical")]


async def test_sigusr1_logs_the_calls_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path)
    sim = lab_simulator()
    url = await sim.start()
    daemon = await Daemon.start(config, url, f"sqlite:///{tmp_path / 'cdr.db'}")
    try:
        async with asyncio.timeout(START_WITHIN):
            await sim.wait_connected("pbxd")
        await wait_until(lambda: bool(daemon.events("connected to ARI")), "the start")

        daemon.process.send_signal(signal.SIGUSR1)
        await wait_until(lambda: len(daemon.events("calls in progress")) == 1, "the idle report")
        [idle] = daemon.events("calls in progress")
        assert idle["count"] == 0 and idle["calls"] == "no call in progress"

        bridged = await sim.inbound_call(RECEPTION, "+33612000001", "Jean")
        await wait_until(lambda: len(bridged_with(sim, bridged)) == 2, "Jean's call bridged")
        sim.script("PJSIP/dave", PeerScript())  # now rings without answering
        ringing = await sim.inbound_call(SALES, "+33612000002", "Marie")
        await wait_until(
            lambda: sum(c.id.startswith(f"{ringing}-") for c in sim.channels) == 2,
            "Marie's two legs",
        )

        daemon.process.send_signal(signal.SIGUSR1)
        await wait_until(lambda: len(daemon.events("calls in progress")) == 2, "the busy report")
        report = daemon.events("calls in progress")[1]
        assert report["level"] == "info" and report["count"] == 2
        lines = str(report["calls"]).splitlines()
        state_of = {line.split(": ")[0]: line.split(": ")[1] for line in lines if ": " in line}
        assert state_of[f"call {bridged} to {RECEPTION} from +33612000001"] == (
            "bridged, route reception (ringall)"
        )
        assert state_of[f"call {ringing} to {SALES} from +33612000002"] == (
            "ringing, route sales (ringall)"
        )
        assert f"  bridge {bridge_of(sim, bridged)}" in lines

        await daemon.terminate()  # SIGUSR1 neither killed nor stopped it
        assert '"event": "pbxd stopped"' in daemon.stderr()
    finally:
        await daemon.cleanup()
        await sim.stop()
