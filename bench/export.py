"""Benchmark: `pbxd export --format master-csv` rows per second, and its peak memory.

Fills a CDR store (SQLite file, or a fresh PostgreSQL schema) with `--calls` ended calls over
a month and 200 numbers, each call with two legs (one answered, one answered elsewhere) or
none (one call in five: voicemail), then streams the whole month through the exporter into
/dev/null the way `pbxd export` does, and reports rows/s and the peak RSS growth.

Run: .venv/bin/python bench/export.py [--calls 100000] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from pbxd.cdr import mastercsv
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.cdr.schema import Base, CallRow, LegRow, call_to_row, leg_to_row
from pbxd.cdr.store import CdrStore
from pbxd.cli.export import write

START = datetime(2026, 11, 1, tzinfo=UTC)
SECONDS_IN_MONTH = 30 * 86400


def make(i: int, calls: int) -> tuple[CallRecord, list[LegRecord]]:
    """Call number `i` of `calls`, spread evenly over November."""
    started = START + timedelta(seconds=SECONDS_IN_MONTH * i // calls)
    call_id = f"bench-{i:09d}"
    did = f"+3317000{i % 200:04d}"
    if i % 5 == 4:
        call = CallRecord(
            call_id, did, started, caller_number="+33612000000", answered_at=started,
            ended_at=started + timedelta(seconds=40), disposition=Disposition.VOICEMAIL,
            trunk="carrier-fr",
        )  # fmt: skip
        return call, []
    answered = started + timedelta(seconds=5)
    ended = answered + timedelta(seconds=120)
    call = CallRecord(
        call_id, did, started, caller_number="+33612000000", caller_name="Bench",
        answered_at=answered, ended_at=ended, disposition=Disposition.ANSWERED,
        answered_by="alice", trunk="carrier-fr", hangup_cause=16,
    )  # fmt: skip
    legs = [
        LegRecord(f"{call_id}-1", call_id, "alice", "PJSIP/alice", started, answered, ended, 16),
        LegRecord(f"{call_id}-2", call_id, "mobile", "PJSIP/+33612345678@trunk-out", started,
                  None, answered, 26),
    ]  # fmt: skip
    return call, legs


async def fill(store: CdrStore, calls: int) -> None:
    """Insert the calls and legs in big multi-row batches (the writer is not under test)."""
    calls_table = Base.metadata.tables[CallRow.__tablename__]
    legs_table = Base.metadata.tables[LegRow.__tablename__]
    batch = 5000
    for first in range(0, calls, batch):
        call_rows, leg_rows = [], []
        for i in range(first, min(calls, first + batch)):
            call, legs = make(i, calls)
            call_rows.append(call_to_row(call))
            leg_rows += [leg_to_row(leg) for leg in legs]
        async with store.engine.begin() as conn:
            await conn.execute(insert(calls_table), call_rows)
            if leg_rows:
                await conn.execute(insert(legs_table), leg_rows)
    if store.engine.dialect.name == "postgresql":
        async with store.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))


async def measure(url: str, calls: int) -> None:
    store = await CdrStore.open(url)
    try:
        t0 = time.perf_counter()
        await fill(store, calls)
        print(f"filled {calls} calls in {time.perf_counter() - t0:.1f} s")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        options = mastercsv.Options(UTC, True, True, True)
        with open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: ASYNC230 (no disk I/O)
            t0 = time.perf_counter()
            rows = await write(store, sink, START, START + timedelta(days=30), None, options)
            elapsed = time.perf_counter() - t0
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(
            f"exported {rows} rows ({calls} calls) in {elapsed:.2f} s: "
            f"{rows / elapsed:,.0f} rows/s; peak RSS growth during export {grown:.1f} MiB"
        )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    if args.database == "postgresql":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from dbfixtures import database_url

        async def on_postgres() -> None:
            async with database_url("postgresql", Path(tempfile.mkdtemp())) as url:
                await measure(url, args.calls)

        asyncio.run(on_postgres())
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(f"sqlite:///{tmp}/bench.db", args.calls))


if __name__ == "__main__":
    main()
