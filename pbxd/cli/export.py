"""`pbxd export --format master-csv --since … --until …`: call records as Asterisk's Master.csv.

Rows stream from the store (one sorted query read through a cursor, a batch of rows at a
time), so an export of ten million calls holds one batch in memory. A file given with
--output is written under a temporary name and renamed when complete: a failed export never
leaves half a file behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbxd.cdr import mastercsv, queries
from pbxd.cdr.store import CdrStore
from pbxd.cli.calls import parse_bound
from pbxd.cli.common import read_cdr_request, read_store, report, resolve_number
from pbxd.config.model import Config

FORMATS = ("master-csv",)
BATCH = 2000  # rows per fetch: big enough to amortise a round trip, small in memory


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd export`."""
    parser = sub.add_parser(
        "export",
        help="export call records for billing tools (Asterisk's Master.csv)",
        description="Ended calls started in [--since, --until), oldest first, one row per "
        "leg in Asterisk's cdr_csv Master.csv columns (docs/master-csv.md). --since/--until "
        "take a date (2026-11-01; --until's date is included) or a date and time, read in the "
        "zone the times are written in: the host's local zone, as Asterisk writes them, or UTC "
        "with --utc (cdr.conf usegmtime=yes).",
    )
    parser.add_argument("--format", choices=FORMATS, default="master-csv")
    parser.add_argument("--since", required=True, help="from this date/time (inclusive)")
    parser.add_argument("--until", required=True, help="to this date/time (a date: its end)")
    parser.add_argument("--number", help="only the calls of this number")
    parser.add_argument("--output", "-o", help="write to this file (default: standard output)")
    parser.add_argument("--utc", action="store_true", help="times in UTC (usegmtime=yes)")
    parser.add_argument("--time-zone", help="times in this zone (Europe/Paris) instead")
    parser.add_argument("--uniqueid", action="store_true", help="add uniqueid (loguniqueid)")
    parser.add_argument("--userfield", action="store_true", help="add userfield (loguserfield)")
    parser.add_argument(
        "--newcdrcolumns",
        action="store_true",
        help="add peeraccount, linkedid, sequence (newcdrcolumns)",
    )
    parser.add_argument("--database", help="CDR database URL (default: pbxd.yaml's)")
    parser.set_defaults(func=run)


def output_zone(args: argparse.Namespace) -> tzinfo | None:
    """The zone times are written in: --time-zone, UTC with --utc, else None (the host's)."""
    if args.utc and args.time_zone:
        raise ValueError("give --utc or --time-zone, not both")
    if args.utc:
        return UTC
    if args.time_zone:
        try:
            return ZoneInfo(args.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"--time-zone {args.time_zone!r} is not a time zone") from None
    return None


def read_bound(text: str, zone: tzinfo | None, *, end: bool) -> datetime:
    """A --since/--until value read in `zone` (None: the host's) -> aware UTC."""
    bound = parse_bound(text, zone, end=end)
    if bound is None:
        raise ValueError(f"{'--until' if end else '--since'} {text!r} is out of range")
    return bound


def read_export_args(
    args: argparse.Namespace, config: Config
) -> tuple[tzinfo | None, datetime, datetime, str | None]:
    """The zone times are written in, --since/--until read in it, the number if given."""
    zone = output_zone(args)
    since = read_bound(args.since, zone, end=False)
    until = read_bound(args.until, zone, end=True)
    did = resolve_number(args.number, config)[0] if args.number else None
    if since >= until:
        raise ValueError("--since must be before --until")
    return zone, since, until, did


def run(args: argparse.Namespace) -> int:
    """Write the export; exit 1 on bad input, 2 if the database or the file fails."""
    request = read_cdr_request(args, "export", lambda config: read_export_args(args, config))
    if isinstance(request, int):
        return request
    (zone, since, until, did), url, config = request.asked, request.url, request.config
    endpoints = {name: trunk.inbound_endpoint for name, trunk in config.trunks.items()}
    options = mastercsv.Options(
        zone, args.uniqueid, args.userfield, args.newcdrcolumns, trunk_endpoints=endpoints
    )
    target = Path(args.output) if args.output else None
    partial = target.with_name(f".{target.name}.partial") if target else None
    try:
        out = partial.open("w", encoding="utf-8", newline="") if partial else sys.stdout
    except OSError as exc:
        report("export", f"cannot write {partial}: {exc.strerror}")
        return 2
    try:
        count = asyncio.run(read_store(url, lambda s: write(s, out, since, until, did, options)))
    except BrokenPipeError:
        raise  # `| head`: main() ends quietly
    except Exception as exc:
        if partial:
            out.close()
            partial.unlink(missing_ok=True)
        report("export", f"export failed ({url}): {type(exc).__name__}: {exc}")
        return 2
    if partial and target:
        out.close()
        os.replace(partial, target)
        print(f"pbxd export: {count} row(s) written to {target}", file=sys.stderr)
    return 0


async def write(
    store: CdrStore,
    out: TextIO,
    since: datetime,
    until: datetime,
    did: str | None,
    options: mastercsv.Options,
) -> int:
    """Stream the rows of every ended call in [since, until) to `out`; the rows written."""
    count = 0
    calls = queries.ended_calls_between(store.engine, since, until, did=did, batch=BATCH)
    async for entry in calls:
        lines = list(mastercsv.rows(entry, options))
        out.writelines(lines)
        count += len(lines)
    out.flush()
    return count
