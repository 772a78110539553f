"""Benchmark: the CDR store at 10 million calls over 20,000 numbers and a year.

Fills a fresh SQLite file and/or a fresh PostgreSQL schema (migrated by pbxd to head, then
loaded in bulk: executemany with SQLite's journal and syncs off, COPY on PostgreSQL, the
secondary indexes dropped during the load and rebuilt after it), then times what people
wait for, each against its target:

- one number's call log for one month, first page (50 calls and their legs): < 50 ms;
- one number's monthly report (the busiest number, and a median one): < 200 ms;
- the numbers page (first page of 100, today's calls, rendered HTML through the real
  aiohttp app, bearer token with a cheap argon2 hash): < 300 ms.

Each timing is the median of several runs, "cold" (the first query of each of several
numbers nobody asked about yet, on a freshly opened engine: the database's own cache is
empty, the OS file cache is not dropped) and "warm" (the same query repeated).

Traffic: calls per number follow 1/(rank + 10) (the busiest number gets ~1.2 % of all
calls, the median one ~0.003 %), over 2025-12-01..2026-12-01, 85 % of them 07:00-19:00 UTC;
70 % answered (one leg answered, 30 % also one "answered elsewhere" leg), 10 % no answer,
8 % voicemail, 7 % abandoned, 3 % busy, 2 % closed. The traffic rollup (`number_traffic`)
is counted from the generated calls with the writer's own pure function
(`traffic.tally_slots`); `--rebuild` instead times `traffic.rebuild` over the loaded calls.

Run: .venv/bin/python bench/cdr_scale.py [--calls 10000000] [--numbers 20000]
         [--database sqlite|postgresql|both] [--dir /work/tmp] [--runs 7]
PostgreSQL: `--postgres-url` (default `postgresql://postgres@127.0.0.1:5432/test`, or
PBXD_TEST_POSTGRES_URL); a schema `pbxd_bench_<random>` is created and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import chdir
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from config_load import generate as generate_config

from pbxd.cdr import queries, traffic
from pbxd.cdr.db import make_engine, migrate
from pbxd.cdr.records import Disposition
from pbxd.cdr.reports import ReportCall, ReportPeriod
from pbxd.cdr.store import CdrStore
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.web import api
from pbxd.web.app import build_app
from pbxd.web.state import Runtime
from pbxd.web.users import Role, add_user

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2025, 12, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 86400
MONTH = ReportPeriod.parse("2026-11")
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # "today" for the numbers page
EPOCH = datetime(1970, 1, 1)
TARGETS_MS = {"call log": 50.0, "report": 200.0, "numbers page": 300.0}
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CHUNK = 50_000  # calls per insert batch

DISPOSITIONS = (
    (Disposition.ANSWERED, 0.70),
    (Disposition.NO_ANSWER, 0.10),
    (Disposition.VOICEMAIL, 0.08),
    (Disposition.ABANDONED, 0.07),
    (Disposition.BUSY, 0.03),
    (Disposition.CLOSED, 0.02),
)
CALL_COLUMNS = (
    "call_id",
    "did",
    "caller_number",
    "trunk",
    "route",
    "strategy",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "billsec",
    "disposition",
    "answered_by",
    "hangup_cause",
    "direction",
    "server",
)
LEG_COLUMNS = (
    "leg_id",
    "call_id",
    "target",
    "destination",
    "started_at",
    "answered_at",
    "ended_at",
    "hangup_cause",
)
TRAFFIC_COLUMNS = tuple(c.name for c in traffic.TRAFFIC.columns)


# ---------------------------------------------------------------- traffic generator


def calls_per_number(total: int, numbers: int) -> list[int]:
    """Calls of each number (busiest first), 1/(rank + 10), summing to `total`."""
    weights = [1 / (rank + 10) for rank in range(numbers)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in range(total - sum(counts)):
        counts[i % numbers] += 1
    return counts


@dataclass(slots=True)
class Batch:
    """Generated rows, as Python values (aware UTC datetimes)."""

    calls: list[tuple[Any, ...]]
    legs: list[tuple[Any, ...]]
    slots: list[tuple[Any, ...]]


def generate_calls(dids: Sequence[str], counts: Sequence[int], seed: int) -> Iterator[Batch]:
    """Every number's calls (numbers in order, each one's calls oldest first), in batches."""
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(w for _, w in DISPOSITIONS))
    kinds = [d for d, _ in DISPOSITIONS]
    batch = Batch([], [], [])
    for index, (did, count) in enumerate(zip(dids, counts, strict=True)):
        moments = []
        for _ in range(count):
            day = rng.randrange(365) * 86400
            second = (
                rng.uniform(7 * 3600, 19 * 3600) if rng.random() < 0.85 else rng.uniform(0, 86400)
            )
            moments.append(round(day + second, 3))
        moments.sort()
        reported: list[tuple[str, ReportCall]] = []
        for n, offset in enumerate(moments):
            call_id = f"c{index:05d}-{n:07d}"
            started = START + timedelta(seconds=offset)
            disposition = kinds[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
            answered = ended = None
            answered_by = None
            cause = 16
            legs: list[tuple[Any, ...]] = []
            ring = started + timedelta(seconds=1)
            if disposition is Disposition.ANSWERED:
                answered = started + timedelta(seconds=rng.uniform(2, 30))
                ended = answered + timedelta(seconds=rng.uniform(10, 600))
                answered_by = f"t{index % 200}"
                legs.append(
                    (f"{call_id}-1", call_id, answered_by, "PJSIP/a", ring, answered, ended, 16)
                )
                if rng.random() < 0.3:
                    legs.append(
                        (
                            f"{call_id}-2",
                            call_id,
                            "mobile",
                            "PJSIP/+33612@trunk-out",
                            ring,
                            None,
                            answered,
                            26,
                        )
                    )
            elif disposition is Disposition.NO_ANSWER:
                ended = started + timedelta(seconds=rng.uniform(20, 40))
                cause = 19
                legs.append(
                    (f"{call_id}-1", call_id, f"t{index % 200}", "PJSIP/a", ring, None, ended, 19)
                )
            elif disposition is Disposition.ABANDONED:
                ended = started + timedelta(seconds=rng.uniform(3, 25))
                legs.append(
                    (f"{call_id}-1", call_id, f"t{index % 200}", "PJSIP/a", ring, None, ended, 16)
                )
            elif disposition is Disposition.BUSY:
                ended = started + timedelta(seconds=2)
                cause = 17
                legs.append(
                    (f"{call_id}-1", call_id, f"t{index % 200}", "PJSIP/a", ring, None, ended, 17)
                )
            else:  # voicemail, closed: no leg
                ended = started + timedelta(seconds=rng.uniform(10, 90))
            duration = round((ended - started).total_seconds())
            billsec = round((ended - answered).total_seconds()) if answered else 0
            batch.calls.append(
                (
                    call_id,
                    did,
                    f"+336{rng.randrange(10**8):08d}",
                    "carrier",
                    f"r{index}",
                    "hunt",
                    started,
                    answered,
                    ended,
                    duration,
                    billsec,
                    disposition.value,
                    answered_by,
                    cause,
                    "inbound",
                    f"ast-{index % 2}",
                )
            )
            batch.legs.extend(legs)
            reported.append((did, ReportCall(started, disposition, answered, ended)))
        for (slot_did, slot), tally in traffic.tally_slots(reported).items():
            row = traffic.row_of_tally(slot_did, slot, tally)
            batch.slots.append(tuple(row[c] for c in TRAFFIC_COLUMNS))
        if len(batch.calls) >= CHUNK:
            yield batch
            batch = Batch([], [], [])
    if batch.calls:
        yield batch


# ---------------------------------------------------------------- loaders


TIME_COLUMNS = frozenset({"started_at", "answered_at", "ended_at", "slot"})


def _sqlite_rows(columns: Sequence[str], rows: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """Rows as SQLAlchemy stores a UtcDateTime on SQLite: naive UTC, always microseconds."""
    times = [i for i, name in enumerate(columns) if name in TIME_COLUMNS]
    for row in rows:
        values = list(row)
        for i in times:
            value = values[i]
            if value is not None:  # generated times are UTC already: drop the "+00:00"
                values[i] = value.isoformat(" ", "microseconds")[:26]
        yield values


class SqliteLoad:
    """Bulk inserts into a migrated SQLite file: journal and syncs off, indexes dropped."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-262144")  # 256 MiB
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.indexes = self.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in self.indexes:
            self.db.execute(f"DROP INDEX {name}")
        self.db.execute("BEGIN")

    def add(self, batch: Batch) -> None:
        for table, columns, rows in (
            ("calls", CALL_COLUMNS, batch.calls),
            ("legs", LEG_COLUMNS, batch.legs),
            ("number_traffic", TRAFFIC_COLUMNS, batch.slots),
        ):
            marks = ", ".join("?" * len(columns))
            self.db.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                _sqlite_rows(columns, rows),
            )

    def finish(self) -> None:
        self.db.execute("COMMIT")
        started = time.perf_counter()
        for _, sql in self.indexes:
            self.db.execute(sql)
        print(f"  SQLite indexes rebuilt in {time.perf_counter() - started:.0f} s", flush=True)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.close()


class PostgresLoad:
    """COPY into a migrated PostgreSQL schema; indexes dropped meanwhile; ANALYZE after."""

    def __init__(self, conn: asyncpg.Connection, indexes: list[Any]) -> None:
        self.conn = conn
        self.indexes = indexes

    @classmethod
    async def open(cls, url: str, schema: str) -> PostgresLoad:
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname "
            "NOT IN (SELECT conname FROM pg_constraint WHERE connamespace = $1::regnamespace)",
            schema,
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        return cls(conn, list(indexes))

    async def add(self, batch: Batch) -> None:
        await self.conn.copy_records_to_table("calls", records=batch.calls, columns=CALL_COLUMNS)
        await self.conn.copy_records_to_table("legs", records=batch.legs, columns=LEG_COLUMNS)
        await self.conn.copy_records_to_table(
            "number_traffic", records=batch.slots, columns=TRAFFIC_COLUMNS
        )

    async def finish(self) -> None:
        started = time.perf_counter()
        for row in self.indexes:
            await self.conn.execute(row["indexdef"])
        print(f"  PostgreSQL indexes rebuilt in {time.perf_counter() - started:.0f} s", flush=True)
        await self.conn.execute("ANALYZE")  # what autovacuum does on its own after a bulk load
        await self.conn.close()


def _progress(total: int) -> None:
    if total % 1_000_000 < CHUNK or total < CHUNK * 2:
        print(f"  {total:,} calls loaded", flush=True)


# ---------------------------------------------------------------- timings


@dataclass
class Timing:
    """One measured operation, cold and warm: wall milliseconds, and this process's CPU."""

    name: str
    target: str
    cold: list[float]
    warm: list[float]
    warm_cpu: list[float] = field(default_factory=list)

    def line(self) -> str:
        limit = TARGETS_MS.get(self.target)
        cold, warm = statistics.median(self.cold), statistics.median(self.warm)
        cpu = f"  (cpu {statistics.median(self.warm_cpu):5.1f})" if self.warm_cpu else " " * 13
        verdict = ""
        if limit is not None:
            verdict = "  OK" if max(cold, warm) < limit else "  OVER TARGET"
            verdict = f"  target < {limit:.0f} ms{verdict}"
        return f"  {self.name:<44} cold {cold:7.1f} ms  warm {warm:7.1f} ms{cpu}{verdict}"


async def _ms(action: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Wall and CPU (this process, every thread) milliseconds of one run."""
    started, cpu = time.perf_counter(), time.process_time()
    await action()
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000


async def time_it(
    name: str,
    target: str,
    make: Callable[[str], Callable[[], Awaitable[object]]],
    cold_keys: Sequence[str],
    warm_key: str,
    runs: int,
) -> Timing:
    """Cold: one run for each of `cold_keys` (never asked before); warm: `runs` of one key."""
    cold = [(await _ms(make(key)))[0] for key in cold_keys]
    await _ms(make(warm_key))
    warm = [await _ms(make(warm_key)) for _ in range(runs)]
    return Timing(name, target, cold, [w for w, _ in warm], [c for _, c in warm])


async def measure(
    url: str, config_root: Path, dids: Sequence[str], counts: Sequence[int], runs: int
) -> list[Timing]:
    """Open the store as pbxd does and time the call log, the report and the numbers page."""
    store = await CdrStore.open(url)
    rng = random.Random(7)
    median_rank = len(dids) // 2
    busiest, median = dids[0], dids[median_rank]
    since, until = MONTH.bounds(PARIS)
    timings: list[Timing] = []
    try:
        engine = store.engine
        cold_keys = rng.sample(list(dids[1:50]), 5)

        def call_log(did: str) -> Callable[[], Awaitable[object]]:
            return lambda: store.call_log(did, since=since, until=until, limit=51)

        timings.append(
            await time_it(
                f"call log, 1st page of 51 (busiest: {counts[0]:,} calls/yr)",
                "call log",
                call_log,
                cold_keys,
                busiest,
                runs,
            )
        )
        page = await store.call_log(busiest, since=since, until=until, limit=51)
        cursor = (page[-1].call.started_at, page[-1].call.call_id)

        def next_page(did: str) -> Callable[[], Awaitable[object]]:
            return lambda: store.call_log(did, since=since, until=until, limit=51, before=cursor)

        timings.append(
            await time_it(
                "call log, 2nd page (keyset cursor)",
                "call log",
                next_page,
                [busiest],
                busiest,
                runs,
            )
        )

        def report(did: str) -> Callable[[], Awaitable[object]]:
            return lambda: queries.number_report(engine, did, MONTH, PARIS)

        timings.append(
            await time_it(
                f"monthly report, busiest ({counts[0] // 12:,} calls/month)",
                "report",
                report,
                rng.sample(list(dids[50:100]), 5),
                busiest,
                runs,
            )
        )
        timings.append(
            await time_it(
                f"monthly report, median ({counts[median_rank]} calls/yr)",
                "report",
                report,
                rng.sample(list(dids[median_rank : median_rank + 100]), 5),
                median,
                runs,
            )
        )
        raw = await _raw_report_ms(engine, busiest, since, until)
        timings.append(Timing("  (busiest month's calls read from `calls`)", "", [raw], [raw]))
        if engine.dialect.name == "postgresql":
            timings.append(await _server_time(url, busiest, since, until))
        timings += await _numbers_page(store, config_root, runs)
    finally:
        await store.close()
    return timings


async def _server_time(url: str, did: str, since: datetime, until: datetime) -> Timing:
    """PostgreSQL's own execution time of the call log's two queries (EXPLAIN ANALYZE):
    what is left of the call log's time when the client's waits for a busy CPU are not."""
    dsn, _, options = url.partition("?options=-csearch_path%3D")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": options})
    try:
        spent = []
        for _ in range(5):
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM calls WHERE did = $1 AND "
                "started_at >= $2 AND started_at < $3 ORDER BY started_at DESC, call_id DESC "
                "LIMIT 51",
                did,
                since,
                until,
            )
            ids = [
                r["call_id"]
                for r in await conn.fetch(
                    "SELECT call_id FROM calls WHERE did = $1 AND started_at >= $2 AND "
                    "started_at < $3 ORDER BY started_at DESC, call_id DESC LIMIT 51",
                    did,
                    since,
                    until,
                )
            ]
            legs = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM legs WHERE call_id = ANY($1) "
                "ORDER BY started_at, leg_id",
                ids,
            )
            spent.append(
                sum(
                    p[0]["Planning Time"] + p[0]["Execution Time"]
                    for p in (json.loads(plan), json.loads(legs))
                )
            )
    finally:
        await conn.close()
    return Timing("  (call log's queries inside PostgreSQL)", "", spent[:1], spent[1:])


async def _raw_report_ms(engine: Any, did: str, since: datetime, until: datetime) -> float:
    started = time.perf_counter()
    async with engine.connect() as conn:
        await queries.report_calls(conn, did, since, until)
    return (time.perf_counter() - started) * 1000


async def _numbers_page(store: CdrStore, config_root: Path, runs: int) -> list[Timing]:
    """The numbers page and /api/numbers through the real app (bearer token)."""
    with chdir(config_root):
        config = _config(config_root)
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        token = add_user(
            config.settings.users_file, "bench", Role.VIEWER, password=None, hasher=hasher
        )
        app = build_app(config, Runtime(store=store), clock=VirtualClock(origin=NOW))
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/html"}
        async with TestClient(TestServer(app)) as client:

            def get(path: str) -> Callable[[], Awaitable[object]]:
                async def fetch() -> object:
                    response = await client.get(path, headers=headers)
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path}: HTTP {response.status}: {body[:200]!r}")
                    return body

                return fetch

            pages = [f"/?page={n}" for n in (2, 40, 77, 120, 150)]
            return [
                await time_it(
                    "numbers page (100 of them, today's calls)",
                    "numbers page",
                    get,
                    pages,
                    "/",
                    runs,
                ),
                await time_it(
                    "/api/numbers, 100 a page (cursor)",
                    "numbers page",
                    get,
                    [f"/api/numbers?cursor={_after(config, n * 100)}" for n in (41, 78, 121, 151)],
                    "/api/numbers",
                    runs,
                ),
                await _walk(client, headers),
            ]


def _after(config: Config, index: int) -> str:
    """The cursor of the /api/numbers page that starts at the `index`th number."""
    return api.pack_cursor([sorted(config.numbers)[index - 1]])


async def _walk(client: TestClient[Any, Any], headers: dict[str, str]) -> Timing:
    """Every page of /api/numbers (100 each, next_cursor to the end), twice: the first walk
    formats most numbers for the first time (cold), the second finds them remembered."""

    async def walk() -> tuple[float, float, int]:
        path: str | None = "/api/numbers"
        started, cpu = time.perf_counter(), time.process_time()
        pages = 0
        while path is not None:
            body = await (await client.get(path, headers=headers)).json()
            path = f"/api/numbers?cursor={body['next_cursor']}" if body["next_cursor"] else None
            pages += 1
        ms = (time.perf_counter() - started) * 1000
        return ms, (time.process_time() - cpu) * 1000, pages

    cold, _, pages = await walk()
    warm, warm_cpu, _ = await walk()
    return Timing(f"/api/numbers, all {pages} pages walked", "", [cold], [warm], [warm_cpu])


_CONFIGS: dict[Path, Config] = {}


def _config(root: Path) -> Config:
    if root not in _CONFIGS:
        result = compile_config(root / "pbxd.yaml")
        if result.config is None:
            raise SystemExit("\n".join(str(d) for d in result.diagnostics))
        _CONFIGS[root] = result.config
    return _CONFIGS[root]


# ---------------------------------------------------------------- backends


async def run(
    args: argparse.Namespace, root: Path, dids: Sequence[str], counts: Sequence[int]
) -> None:
    """Generate the calls once, load them into each backend asked for, then time each."""
    path = Path(args.dir) / f"pbxd-bench-{uuid.uuid4().hex[:8]}.db"
    schema = f"pbxd_bench_{uuid.uuid4().hex[:8]}"
    urls: dict[str, str] = {}
    sqlite_load: SqliteLoad | None = None
    pg_load: PostgresLoad | None = None
    admin: asyncpg.Connection | None = None
    try:
        if args.database in ("sqlite", "both"):
            urls["SQLite"] = f"sqlite:///{path}"
            print(f"SQLite file {path}", flush=True)
        if args.database in ("postgresql", "both"):
            admin = await asyncpg.connect(args.postgres_url)
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            urls["PostgreSQL"] = f"{args.postgres_url}?options=-csearch_path%3D{schema}"
            print(f"PostgreSQL {args.postgres_url} schema {schema}", flush=True)
        for url in urls.values():
            engine = make_engine(url)
            await migrate(engine)
            await engine.dispose()
        if "SQLite" in urls:
            sqlite_load = SqliteLoad(path)
        if admin is not None:
            pg_load = await PostgresLoad.open(args.postgres_url, schema)
        started = time.perf_counter()
        total = 0
        for batch in generate_calls(dids, counts, args.seed):
            if sqlite_load is not None:
                sqlite_load.add(batch)
            if pg_load is not None:
                await pg_load.add(batch)
            total += len(batch.calls)
            _progress(total)
        if sqlite_load is not None:
            sqlite_load.finish()
        if pg_load is not None:
            await pg_load.finish()
        print(f"  loaded {total:,} calls in {time.perf_counter() - started:.0f} s", flush=True)
        if "SQLite" in urls:
            print(f"  SQLite file {path.stat().st_size / 2**30:.1f} GiB", flush=True)
        if admin is not None:
            size = await admin.fetchval(
                "SELECT sum(pg_total_relation_size(format('%I.%I', $1::text, tablename)))"
                " FROM pg_tables WHERE schemaname = $1",
                schema,
            )
            print(f"  PostgreSQL schema {size / 2**30:.1f} GiB", flush=True)
        for name, url in urls.items():
            print(f"\n{name}, load {_load()}", flush=True)
            await _rebuild_if_asked(args, url)
            for timing in await measure(url, root, dids, counts, args.runs):
                print(timing.line(), flush=True)
    finally:
        _remove_sqlite(path)
        if admin is not None:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _rebuild_if_asked(args: argparse.Namespace, url: str) -> None:
    """Time `traffic.rebuild` (one INSERT … SELECT … GROUP BY, what migration 0007 runs),
    check it gives the rollup the loader wrote (counted in Python by `tally_slots`), and
    time the Python recount the rebuild used to be (read every call, tally it; no writes)."""
    if not args.rebuild:
        return
    engine = make_engine(url)
    try:
        loaded = await _traffic_rows(engine)
        started = time.perf_counter()
        async with engine.begin() as conn:
            slots = await conn.run_sync(traffic.rebuild)
        sql_s = time.perf_counter() - started
        same = await _traffic_rows(engine) == loaded
        started, cpu = time.perf_counter(), time.process_time()
        async with engine.connect() as conn:
            rows = await conn.stream(traffic.report_calls_query())
            counted = traffic.tally_slots([traffic.report_call(row) async for row in rows])
        python_s, python_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await engine.dispose()
    per_call = 1e6 / max(1, args.calls)
    print(
        f"  traffic.rebuild (SQL): {slots:,} slots in {sql_s:.1f} s ({sql_s * per_call:.1f} µs"
        f" a call); equal to the loaded rollup: {same}",
        flush=True,
    )
    print(
        f"  the Python recount it replaces: {len(counted):,} slots in {python_s:.1f} s "
        f"({python_s * per_call:.1f} µs a call, {python_cpu * per_call:.1f} µs of CPU)",
        flush=True,
    )


async def _traffic_rows(engine: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every `number_traffic` row: (did, slot) -> its counts."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(traffic.TRAFFIC))
        return {tuple(row[:2]): tuple(row[2:]) for row in rows}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--numbers", type=int, default=20_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("PBXD_TEST_POSTGRES_URL") or DEFAULT_PG
    )
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the SQLite file goes")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="also time traffic.rebuild")
    args = parser.parse_args()
    args.postgres_url = args.postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    print(f"{args.calls:,} calls over {args.numbers:,} numbers, load average {_load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Every number in Paris (the generated trunk's zone), singles then blocks: sorted.
        dids = sorted(generate_config(root, args.numbers))
        counts = calls_per_number(args.calls, args.numbers)
        await run(args, root, dids, counts)
    print(f"load average at the end: {_load()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
