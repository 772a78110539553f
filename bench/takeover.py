"""Active/standby takeover time: two `pbxd run` processes, one simulator, PostgreSQL.

    .venv/bin/python bench/takeover.py [--runs 5] [--bridged 5] [--ringing 5]

Each run starts a pair (ha.mode: active-standby) on a fresh PostgreSQL schema of
`--postgres-url` (default `postgresql://postgres@127.0.0.1:5432/test`, or
PBXD_TEST_POSTGRES_URL), places `--bridged` answered calls and `--ringing` calls nobody
answers, kills the active with SIGKILL, and times, from the kill:

- **lock**: the standby's `ha_lock_acquired` line (its next poll after PostgreSQL ended the
  dead session);
- **app**: the simulator sees the app's WebSocket again (the standby owns the Stasis app);
- **adopted**: the standby's `ha_active` line (recovery done: every call adopted).

It then checks that every call is still up on the simulator (none dropped), tears them down,
and checks that the CDR has each call and each leg once. Times are wall-clock, measured here
(the log lines are read as they come); the machine's load adds to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from pbxd.cdr.db import async_url  # noqa: E402
from pbxd.cdr.store import CdrStore  # noqa: E402
from pbxd.sim import AriSimulator, PeerScript  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BRIDGED_DID, RINGING_DID = "+33170000001", "+33170000002"
TRUNKS = """\
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
ROUTING = """\
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
WITHIN = 60.0  # seconds any one step may take before the run is declared failed


class Pbxd:
    """One `pbxd run` child; its JSON log lines, with the moment each was read."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, directory: Path, ari_url: str, db: str) -> Pbxd:
        (directory / "routing").mkdir(parents=True, exist_ok=True)
        (directory / "pbxd.yaml").write_text("state_dir: var\nha:\n  mode: active-standby\n")
        (directory / "sip-trunks.yaml").write_text(TRUNKS)
        (directory / "routing" / "main.yaml").write_text(ROUTING)
        env = {
            **os.environ,
            "PBXD_CONFIG": str(directory / "pbxd.yaml"),
            "PBXD_ARI_URL": ari_url,
            "PBXD_ARI_PASSWORD": "pbxd-secret",
            "PBXD_DATABASE_URL": db,
            "PBXD_LOG_LEVEL": "info",
            "PBXD_HTTP_BIND": "127.0.0.1:0",  # two pbxd on one machine: a port each
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
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            try:
                self.lines.append((time.monotonic(), json.loads(line)))
            except ValueError:
                continue

    def seen(self, event: str) -> float | None:
        """When the first `event` line was read (monotonic), or None."""
        return next((t for t, line in self.lines if line.get("event") == event), None)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(WITHIN):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self.reader


async def until(condition: Any, what: str) -> float:
    """Poll until `condition()` is true; the moment it was (monotonic)."""
    try:
        async with asyncio.timeout(WITHIN):
            while True:
                if condition():
                    return time.monotonic()
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {WITHIN} s: {what}") from None


async def one_run(admin_url: str, bridged: int, ringing: int) -> dict[str, float]:
    schema = f"pbxd_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, poolclass=NullPool)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    db_url = db.render_as_string(hide_password=False)
    sim = AriSimulator(system_name=f"ast-{uuid.uuid4().hex[:8]}")
    for endpoint in ("trunk-in", "trunk-out", "alice", "bob", "dave", "erin"):
        sim.add_endpoint("PJSIP", endpoint)
    sim.script("PJSIP/alice", PeerScript(answer_after=0.2))
    ari_url = await sim.start()
    pair: list[Pbxd] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            first = await Pbxd.start(Path(folder) / "a", ari_url, db_url)
            pair.append(first)
            await until(lambda: first.seen("ha_active") is not None, "first active")
            second = await Pbxd.start(Path(folder) / "b", ari_url, db_url)
            pair.append(second)
            await until(lambda: second.seen("ha_standby") is not None, "second standby")
            calls = [
                *[await sim.inbound_call(BRIDGED_DID, "+33612000001", "B") for _ in range(bridged)],
                *[await sim.inbound_call(RINGING_DID, "+33612000002", "R") for _ in range(ringing)],
            ]
            # Each call's answer or ringing legs written (a batch every 0.2 s), then a margin.
            await until(lambda: len(sim.bridges) == bridged, "bridges")
            # Bridged: the caller and alice (bob's leg ended); ringing: the caller and two legs.
            await until(lambda: len(sim.channels) == 2 * bridged + 3 * ringing, "every leg up")
            await asyncio.sleep(1.0)
            up_before = {c.id for c in sim.channels}

            os.kill(first.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            await first.process.wait()
            app = await until(
                lambda: sim.hub.is_active("pbxd") and second.seen("ha_lock_acquired") is not None,
                "app owned again",
            )
            adopted = await until(lambda: second.seen("ha_active") is not None, "adopted")
            lock = second.seen("ha_lock_acquired")
            assert lock is not None
            await asyncio.sleep(1.0)  # resyncs done; nothing hung up
            dropped = up_before - {c.id for c in sim.channels}
            for call_id in calls:
                sim.hangup(call_id)
            await until(lambda: not sim.channels and not sim.bridges, "teardown")
            store = await CdrStore.open(db_url)
            try:
                await asyncio.sleep(1.0)  # the new active's last batch
                entries = [await store.get_call(c) for c in calls]
                async with store.engine.connect() as conn:
                    rows = (await conn.execute(text("SELECT count(*) FROM calls"))).scalar()
                    legs = (await conn.execute(text("SELECT count(*) FROM legs"))).scalar()
            finally:
                await store.close()
            ended = sum(1 for e in entries if e is not None and e.call.ended_at is not None)
            return {
                "lock": lock - killed,
                "app": app - killed,
                "adopted": adopted - killed,
                "dropped": float(len(dropped)),
                "cdr_rows_ok": float(rows == len(calls) and legs == 2 * len(calls)),
                "cdr_ended": float(ended),
                "calls": float(len(calls)),
            }
    finally:
        for pbxd in pair:
            await pbxd.stop()
        await sim.stop()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def main(args: argparse.Namespace) -> None:
    admin_url = async_url(args.postgres_url).render_as_string(hide_password=False)
    results = []
    for n in range(args.runs):
        result = await one_run(admin_url, args.bridged, args.ringing)
        results.append(result)
        print(
            f"run {n + 1}: lock {result['lock']:.2f} s, app owned {result['app']:.2f} s, "
            f"calls adopted {result['adopted']:.2f} s; {int(result['dropped'])} of "
            f"{int(result['calls'])} calls dropped; CDR rows once each: "
            f"{'yes' if result['cdr_rows_ok'] else 'NO'}; ended {int(result['cdr_ended'])}",
            flush=True,
        )
    for key in ("lock", "app", "adopted"):
        values = [r[key] for r in results]
        print(
            f"{key:>8}: median {statistics.median(values):.2f} s, "
            f"min {min(values):.2f} s, max {max(values):.2f} s over {len(values)} runs"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bridged", type=int, default=5)
    parser.add_argument("--ringing", type=int, default=5)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("PBXD_TEST_POSTGRES_URL") or DEFAULT_PG
    )
    asyncio.run(main(parser.parse_args()))
