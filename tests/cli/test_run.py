"""`pbxd run` as a real process against the simulator: serve, stop on SIGTERM, adopt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from pbxd.cdr.db import PG_MIGRATION_LOCK, head_revision, make_engine
from pbxd.cdr.records import Disposition
from pbxd.cdr.store import CdrStore
from pbxd.sim import AriSimulator, PeerScript
from tests.classic_example import open_round_the_clock

# Real processes on a shared machine: waits are generous (a loaded machine is slow, never
# wrong; importing pbxd alone took 15 s at load 12), so only a wedged daemon fails them.
PATIENCE = 60.0
pytestmark = pytest.mark.timeout(300)


async def start_daemon(
    example: Path, url: str, db: str, **extra_env: str
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PBXD_CONFIG": str(example / "pbxd.yaml"),
        "PBXD_ARI_URL": url,
        "PBXD_ARI_PASSWORD": "pbxd-secret",
        "PBXD_DATABASE_URL": db,
        "PBXD_LOG_LEVEL": "info",
        "PBXD_HTTP_BIND": "127.0.0.1:0",  # any free port: suites run side by side
        **extra_env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pbxd",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop_daemon(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(PATIENCE):
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return err.decode()


async def read_until(
    process: asyncio.subprocess.Process,
    found: Callable[[dict[str, object]], bool],
    seconds: float = PATIENCE,
) -> list[dict[str, object]]:
    """The daemon's stderr JSON lines up to and including the first one `found` accepts."""
    assert process.stderr is not None
    lines: list[dict[str, object]] = []
    async with asyncio.timeout(seconds):
        while not lines or not found(lines[-1]):
            raw = await process.stderr.readline()
            assert raw, f"pbxd exited before the expected line: {lines}"
            lines.append(json.loads(raw))
    return lines


async def wait_for(predicate: Callable[[], bool], seconds: float = PATIENCE) -> None:
    """Poll the simulator's state (it offers no event for these conditions)."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def simulator_where_alice_answers() -> AriSimulator:
    """The example's endpoints; alice answers after 0.2 s."""
    sim = AriSimulator()
    for endpoint in ("trunk-in", "trunk-out", "trunk-uk", "alice", "bob"):
        sim.add_endpoint("PJSIP", endpoint)
    sim.script("PJSIP/alice", PeerScript(answer_after=0.2))
    return sim


async def shut_down(sim: AriSimulator, *processes: asyncio.subprocess.Process) -> None:
    """Kill whichever daemon is still running, then stop the simulator."""
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()
    await sim.stop()


async def test_run_stops_on_sigterm_and_the_next_run_adopts_the_call(example: Path) -> None:
    open_round_the_clock(example)  # the reception rings whatever the hour of the run
    db = f"sqlite:///{example / 'cdr.db'}"
    sim = simulator_where_alice_answers()
    url = await sim.start()
    first = await start_daemon(example, url, db)
    second = first
    try:
        async with asyncio.timeout(PATIENCE):
            await sim.wait_connected("pbxd")
        caller = await sim.inbound_call("+33170000001", "+33612000001", "Jean")
        await wait_for(lambda: any(len(b.channels) == 2 for b in sim.bridges))
        log = await stop_daemon(first)
        assert '"event": "pbxd stopped"' in log
        assert "pbxd-secret" not in log
        # pbxd is gone, the call is not: the caller still talks to alice.
        channel = sim.channel(caller)
        assert channel is not None and channel.state == "Up"

        [bridge] = sim.bridges
        [alice] = [c for c in bridge.channels if c != caller]
        restart = len(sim.rest_log)
        second = await start_daemon(example, url, db)
        async with asyncio.timeout(PATIENCE):
            await sim.wait_connected("pbxd")
        # Hang up only once adopted (a hangup before would be a call that ended meanwhile).
        early = await read_until(second, lambda line: line.get("event") == "call adopted")
        assert early[-1].get("call_id") == caller
        # ... and its resync has asked about both channels again (recovery asked once): a BYE
        # racing that resync is recorded without its cause (resync's 404 beats ChannelDestroyed).
        await wait_for(
            lambda: all(
                sum(
                    r["method"] == "GET" and r["path"] == f"/channels/{c}"
                    for r in sim.rest_log[restart:]
                )
                >= 2
                for c in (caller, alice)
            )
        )
        sim.hangup(caller)
        await wait_for(lambda: not sim.channels)
        # The simulator is done; SIGTERM only once pbxd has handled the end too.
        await read_until(
            second, lambda line: line["event"] == "call ended" and line.get("call_id") == caller
        )
        await stop_daemon(second)
    finally:
        await shut_down(sim, first, second)

    store = await CdrStore.open(db)
    try:
        entry = await store.get_call(caller)
    finally:
        await store.close()
    assert entry is not None
    call = entry.call
    assert call.disposition is Disposition.ANSWERED and call.answered_by == "alice"
    assert call.ended_at is not None and call.answered_at is not None
    assert call.hangup_cause == 16
    winner = [leg for leg in entry.legs if leg.target == "alice"]
    assert winner and winner[0].ended_at is not None and winner[0].hangup_cause == 16


def test_run_refuses_without_a_password(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pbxd.cli.main import main

    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    assert main(["run"]) == 1
    assert "no ARI password: set PBXD_ARI_PASSWORD" in capsys.readouterr().err


async def test_run_retries_an_unreachable_asterisk_then_stops_on_sigterm(
    example: Path, unused_tcp_port: int
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/ari"
    process = await start_daemon(example, url, f"sqlite:///{example / 'cdr.db'}")
    assert process.stderr is not None
    lines: list[dict[str, object]] = []
    async with asyncio.timeout(PATIENCE):
        while sum(e["event"] == "ari_events_retry" for e in lines) < 3:
            lines.append(json.loads(await process.stderr.readline()))
    err = await stop_daemon(process)  # SIGTERM during the backoff: exit 0
    retries = [e for e in lines if e["event"] == "ari_events_retry"]
    assert [e["attempt"] for e in retries] == [2, 3, 4]
    assert all(str(e["error"]).startswith("ClientConnectorError: Cannot connect") for e in retries)
    assert "Traceback" not in err
    assert [json.loads(line)["event"] for line in err.splitlines()][-1] == "pbxd stopped"


async def test_run_refuses_credentials_in_the_ari_url_without_showing_them(
    example: Path, unused_tcp_port: int
) -> None:
    # Once they killed the event stream silently (aiohttp ValueError); now the check refuses.
    url = f"http://pbxd:url-secret@127.0.0.1:{unused_tcp_port}/ari"
    process = await start_daemon(example, url, f"sqlite:///{example / 'cdr.db'}")
    async with asyncio.timeout(PATIENCE):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert "ari.url (from $PBXD_ARI_URL): must not carry credentials" in err.decode()
    assert "url-secret" not in err.decode() and "Traceback" not in err.decode()


async def test_run_with_a_broken_database_exits_1_with_one_clear_line(example: Path) -> None:
    process = await start_daemon(
        example, "http://127.0.0.1:1/ari", "postgresql://pbxd:db-secret@127.0.0.1:1/pbx"
    )
    async with asyncio.timeout(PATIENCE):
        _, err = await process.communicate()
    assert process.returncode == 1
    [line] = [json.loads(text) for text in err.decode().splitlines()]
    assert line["event"] == "cannot open the CDR database"
    assert line["database"] == "postgresql://pbxd:***@127.0.0.1:1/pbx"
    assert str(line["error"]).startswith(("ConnectionRefusedError: ", "OSError: "))
    assert "db-secret" not in err.decode()


async def test_run_with_a_database_url_check_refuses_says_so_before_starting(
    example: Path,
) -> None:
    """A port that is not a number used to surface as a ValueError at start; check says it."""
    process = await start_daemon(
        example, "http://127.0.0.1:1/ari", "postgresql://pbxd:db-secret@127.0.0.1:nope/pbx"
    )
    async with asyncio.timeout(PATIENCE):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert err.decode().splitlines() == [
        "pbxd.yaml:1:1: error: database.url (from $PBXD_DATABASE_URL): "
        "the port must be a number from 1 to 65535",
        "pbxd run: fix the configuration first (see `pbxd check`)",
    ]


# ------------------------------------------------------------ the CDR database at start and stop

# dbfixtures lives in tests/ (not a package): the CDR tests' helpers for both backends.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dbfixtures import (  # noqa: E402
    postgres_role_url,
    postgres_schema_url,
    sqlite_held_locked,
)


async def run_until_exit(example: Path, db: str) -> tuple[int | None, list[dict[str, object]]]:
    """Start `pbxd run` against a dead ARI and wait for it to give up: (status, JSON lines)."""
    process = await start_daemon(example, "http://127.0.0.1:1/ari", db)
    async with asyncio.timeout(PATIENCE):
        _, err = await process.communicate()
    return process.returncode, [json.loads(text) for text in err.decode().splitlines()]


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file or directory read-only for real, even for root (which ignores modes)."""
    undo: list[Callable[[], None]] = []

    def apply(path: Path) -> None:
        if os.geteuid() == 0:
            # root writes through any mode: only the immutable attribute stops it.
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"chattr +i not supported here: {done.stderr.decode().strip()}")
            undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
        else:
            mode = path.stat().st_mode
            path.chmod(mode & ~0o222)
            undo.append(lambda: path.chmod(mode))

    yield apply
    for step in reversed(undo):
        step()


async def migrated(db: str) -> None:
    """Create the CDR tables, then let go of the file (no -wal or -shm left behind)."""
    store = await CdrStore.open(db)
    await store.close()


async def test_run_refuses_a_read_only_sqlite_file(
    example: Path, read_only: Callable[[Path], None]
) -> None:
    path = example / "cdr.db"
    await migrated(f"sqlite:///{path}")
    read_only(path)
    status, lines = await run_until_exit(example, f"sqlite:///{path}")
    assert status == 1
    [line] = [e for e in lines if e["level"] == "error"]
    assert line["event"] == "cdr_database_not_writable"
    assert str(line["reason"]).startswith(f"{path} is read-only")
    assert not any(e["event"] == "pbxd starting" for e in lines)


async def test_run_refuses_a_sqlite_file_in_a_read_only_directory(
    example: Path, read_only: Callable[[Path], None]
) -> None:
    directory = example / "db"
    path = directory / "cdr.db"
    await migrated(f"sqlite:///{path}")
    read_only(directory)
    status, lines = await run_until_exit(example, f"sqlite:///{path}")
    assert status == 1
    [line] = [e for e in lines if e["level"] == "error"]
    assert line["event"] in {"cdr_database_not_writable", "cannot open the CDR database"}
    assert str(line["reason"]).startswith(f"the directory {directory} is read-only")


async def test_run_refuses_a_postgresql_role_without_insert(example: Path) -> None:
    async with postgres_role_url() as (role, url, admin_url):
        await migrated(admin_url)  # the tables belong to the admin; the role may only read
        admin = await CdrStore.open(admin_url)
        try:
            async with admin.engine.begin() as conn:
                await conn.execute(
                    text(f'GRANT SELECT ON ALL TABLES IN SCHEMA {schema_of(url)} TO "{role}"')
                )
        finally:
            await admin.close()
        status, lines = await run_until_exit(example, url)
    assert status == 1
    [line] = [e for e in lines if e["level"] == "error"]
    assert line["event"] == "cdr_database_not_writable"
    assert "permission denied for table calls" in str(line["reason"])
    assert "pbxd needs SELECT, INSERT and UPDATE" in str(line["reason"])


def schema_of(url: str) -> str:
    return str(make_url(url).query["options"]).removeprefix("-csearch_path=")


async def test_run_warns_about_an_in_memory_database(example: Path) -> None:
    process = await start_daemon(example, "http://127.0.0.1:1/ari", "sqlite://")
    assert process.stderr is not None
    first = (await process.stderr.readline()).decode()
    await read_until(process, lambda e: e["event"] == "pbxd starting")
    await stop_daemon(process)
    assert "warning: database.url (from $PBXD_DATABASE_URL): an in-memory database" in first


async def test_sigterm_during_a_database_outage_loses_no_cdr(example: Path) -> None:
    """SQLite held by another process, 3 calls answered, SIGTERM: the CDRs wait in the spool,
    the next run writes them before recovery, adopts the calls, and completes them."""
    open_round_the_clock(example)  # the reception rings whatever the hour of the run
    path = example / "cdr.db"
    db = f"sqlite:///{path}"
    spool = example / "var" / "cdr-spool.jsonl"
    sim = simulator_where_alice_answers()
    url = await sim.start()
    first = await start_daemon(example, url, db)
    second = first
    callers: list[str] = []
    try:
        async with asyncio.timeout(PATIENCE):
            await sim.wait_connected("pbxd")
        async with sqlite_held_locked(path) as release:
            for n in range(3):
                callers.append(await sim.inbound_call("+33170000001", f"+3361200000{n}", "Jean"))
            await wait_for(lambda: sum(len(b.channels) == 2 for b in sim.bridges) == 3)
            await read_until(first, lambda e: e["event"] == "cdr_outage_started")
            log = [json.loads(text) for text in (await stop_daemon(first)).splitlines()]
            await release()
        [closing] = [e for e in log if e["event"] == "cdr_close_timeout"] or [{"lost": 0}]
        assert closing["lost"] == 0
        assert not any(e["event"] == "cdr_record_refused" for e in log)
        spooled = len(spool.read_text().splitlines())
        assert spooled > 0
        assert all(sim.channel(c) is not None and sim.channel(c).state == "Up" for c in callers)

        restart = len(sim.rest_log)
        second = await start_daemon(example, url, db)
        adopted: set[object] = set()

        def all_adopted(line: dict[str, object]) -> bool:
            if line["event"] == "call adopted":
                adopted.add(line.get("call_id"))
            return adopted == set(callers)

        early = await read_until(second, all_adopted)
        # Hang up once each adopted call's resync has asked about its caller (a BYE racing
        # recovery is the call core's business, not this test's).
        await wait_for(
            lambda: all(
                sum(
                    r["method"] == "GET" and r["path"] == f"/channels/{c}"
                    for r in sim.rest_log[restart:]
                )
                >= 2
                for c in callers
            )
        )
        [replayed] = [e for e in early if e["event"] == "cdr_spool_replayed"]
        assert replayed["records"] == spooled
        assert spool.read_text() == ""
        # Nobody was hung up for want of a row: all three still talk.
        assert all(sim.channel(c) is not None and sim.channel(c).state == "Up" for c in callers)
        for caller in callers:
            sim.hangup(caller)
        ended: set[object] = set()

        def all_ended(line: dict[str, object]) -> bool:
            if line["event"] == "call ended":
                ended.add(line.get("call_id"))
            return ended == set(callers)

        await read_until(second, all_ended)  # pbxd has seen every end, not just the simulator
        await stop_daemon(second)
    finally:
        await shut_down(sim, first, second)

    store = await CdrStore.open(db)
    try:
        entries = [await store.get_call(c) for c in callers]
        async with store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM calls"))).scalar()
    finally:
        await store.close()
    assert rows == 3
    for entry in entries:
        assert entry is not None
        assert entry.call.disposition is Disposition.ANSWERED, entry
        assert entry.call.answered_by == "alice" and entry.call.hangup_cause == 16
        assert len(entry.legs) == 3 and all(leg.ended_at is not None for leg in entry.legs)


# ------------------------------------------------------- migrating before the event loop starts


def stamped(db: str) -> str | None:
    """The revision a SQLite CDR database is stamped with (None: not migrated)."""
    path = make_url(db).database or ""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        found = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        if found is None:
            return None
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


async def test_run_migrates_a_new_database_apart_before_serving(example: Path) -> None:
    db = f"sqlite:///{example / 'new' / 'cdr.db'}"
    first = await start_daemon(example, "http://127.0.0.1:1/ari", db)
    lines = await read_until(first, lambda e: e["event"] == "pbxd starting")
    await stop_daemon(first)
    events = [e["event"] for e in lines]
    assert events.index("cdr_migrating") < events.index("cdr_migrated") < len(events) - 1
    assert stamped(db) == head_revision()

    second = await start_daemon(example, "http://127.0.0.1:1/ari", db)
    lines = await read_until(second, lambda e: e["event"] == "pbxd starting")
    await stop_daemon(second)
    assert not {"cdr_migrating", "cdr_migrated"} & {e["event"] for e in lines}  # at head


def test_the_migration_before_serving_never_loads_alembic_into_the_daemon(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cdr.db'}"
    script = (
        "import asyncio, sys\n"
        "from pbxd.cli.run import migrate_before_serving\n"
        "from pbxd.systemd import Notifier\n"
        f"print(asyncio.run(migrate_before_serving({db!r}, Notifier(None))))\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["None", "False"]  # migrated, by a child
    assert stamped(db) == head_revision()


async def test_run_with_a_database_from_a_newer_pbxd_exits_1_with_one_clear_line(
    example: Path,
) -> None:
    path = example / "cdr.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0099_from_a_newer_pbxd')")
        conn.commit()
    process = await start_daemon(example, "http://127.0.0.1:1/ari", f"sqlite:///{path}")
    async with asyncio.timeout(PATIENCE):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert "Traceback" not in err.decode()
    lines = [json.loads(text) for text in err.decode().splitlines()]
    assert [e["event"] for e in lines] == ["cdr_migrating", "cdr_migration_failed"]
    assert lines[-1]["level"] == "error"
    assert lines[-1]["error"] == (
        "CommandError: Can't locate revision identified by '0099_from_a_newer_pbxd'"
    )
    assert stamped(f"sqlite:///{path}") == "0099_from_a_newer_pbxd"  # left as it was


def children_of(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux's /proc)."""
    found: set[int] = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            if fields.get("PPid", "").strip() == str(pid):
                found.add(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_sigterm_during_a_migration_stops_its_child_and_exits_0(example: Path) -> None:
    async with postgres_schema_url() as db:
        # A session holding the migrations' advisory lock keeps the child waiting.
        holder = make_engine(db)
        try:
            async with holder.connect() as conn:
                await conn.execute(
                    text("SELECT pg_advisory_lock(:key)"), {"key": PG_MIGRATION_LOCK}
                )
                process = await start_daemon(example, "http://127.0.0.1:1/ari", db)
                await read_until(process, lambda e: e["event"] == "cdr_migrating")
                await wait_for(lambda: bool(children_of(process.pid)))
                children = children_of(process.pid)
                err = await stop_daemon(process)
                await conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": PG_MIGRATION_LOCK}
                )
                assert not any(alive(pid) for pid in children)  # killed, not orphaned
                events = [json.loads(line)["event"] for line in err.splitlines()]
                assert events[-1] == "pbxd stopped before the CDR database was migrated"
                assert "pbxd starting" not in events
                tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
                assert "alembic_version" not in tables
        finally:
            await holder.dispose()
