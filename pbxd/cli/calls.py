"""`pbxd calls NUMBER`: a number's call log, in the number's time zone."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from pbxd.cdr import reports
from pbxd.cdr.records import CallLogEntry
from pbxd.cdr.store import CdrStore
from pbxd.cli.common import ascii_number, read_cdr_request, report, resolve_number
from pbxd.config.model import Config

MAX_LIMIT = 1_000_000_000
FORMATS = {"table": reports.format_table, "csv": reports.format_csv, "json": reports.format_json}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd calls`."""
    parser = sub.add_parser(
        "calls",
        help="show a number's call log",
        description="The calls to NUMBER (E.164 or national form), newest first, with their "
        "legs; times in the number's time zone. --since/--until take a date (2026-11-23) or "
        "a date and time (2026-11-23T09:30), read in that time zone.",
    )
    parser.add_argument("number", nargs="+", help="the number; spaces allowed (01 70 00 00 01)")
    parser.add_argument("--since", help="from this date/time (inclusive)")
    parser.add_argument("--until", help="to this date/time (exclusive; a date means its end)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="table")
    parser.add_argument("--limit", type=ascii_number(int), help="at most this many calls")
    parser.add_argument(
        "--server", help="only the calls that came through this Asterisk (its system name)"
    )
    parser.add_argument("--database", help="CDR database URL (default: pbxd.yaml's)")
    parser.set_defaults(func=run)


def parse_bound(text: str, tz: tzinfo | None, *, end: bool) -> datetime | None:
    """A --since/--until value in the number's zone -> aware UTC; a bare date as end is +1 day.

    `tz` None reads it in the host's zone (its DST rules included). None when the bound lies
    beyond what a datetime holds (`--until 9999-12-31`, `--since 0001-01-01`): such a bound
    leaves out no call. Raises ValueError naming the option and the expected forms.
    """
    try:
        return _parse_bound(text, tz, end=end)
    except OverflowError:
        return None


def _parse_bound(text: str, tz: tzinfo | None, *, end: bool) -> datetime:
    option = "--until" if end else "--since"
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(
                f"{option} {text!r} is not a date (2026-11-23) or a date and time "
                f"(2026-11-23T09:30): {exc}"
            ) from None
        return (moment if moment.tzinfo else _in_zone(moment, tz)).astimezone(ZoneInfo("UTC"))
    start = datetime.combine(day + timedelta(days=1) if end else day, time())
    return _in_zone(start, tz).astimezone(ZoneInfo("UTC"))


def _in_zone(naive: datetime, tz: tzinfo | None) -> datetime:
    """A wall-clock time in `tz`; None: the host's zone (naive astimezone reads it so)."""
    return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()


@dataclass(frozen=True, slots=True)
class CallsAsked:
    """What `pbxd calls` was asked: the number, its zone, the bounds and the limit."""

    did: str
    tz: ZoneInfo
    since: datetime | None
    until: datetime | None
    limit: int | None


def read_calls_args(args: argparse.Namespace, config: Config) -> CallsAsked:
    """The number and --since/--until read in its zone, --limit; ValueError when bad."""
    did, tz = resolve_number(" ".join(args.number), config)
    since = parse_bound(args.since, tz, end=False) if args.since else None
    until = parse_bound(args.until, tz, end=True) if args.until else None
    if since is not None and until is not None and since >= until:
        raise ValueError("--since must be before --until")
    if args.limit is not None and args.limit <= 0:
        raise ValueError("--limit must be positive")
    # Past a billion rows a limit is no limit; a 20-digit one would overflow SQL's BIGINT.
    limit = None if args.limit is None or args.limit > MAX_LIMIT else args.limit
    return CallsAsked(did, tz, since, until, limit)


def run(args: argparse.Namespace) -> int:
    """Print the call log; exit 1 on a bad number or date, 2 if the database fails."""
    request = read_cdr_request(args, "calls", lambda config: read_calls_args(args, config))
    if isinstance(request, int):
        return request
    asked, url = request.asked, request.url
    did, tz = asked.did, asked.tz
    try:
        entries = asyncio.run(_read(url, did, asked.since, asked.until, asked.limit, args.server))
    except Exception as exc:
        report("calls", f"cannot read the call log from {url}: {type(exc).__name__}: {exc}")
        return 2
    if args.format == "table":
        number = request.config.number(did)
        label = f" ({number.label})" if number and number.label else ""
        print(f"{did}{label}: {len(entries)} call(s), times in {tz.key}")
    print(FORMATS[args.format](entries, tz))
    return 0


async def _read(
    url: str,
    did: str,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    server: str | None,
) -> list[CallLogEntry]:
    store = await CdrStore.open(url)
    try:
        return await store.call_log(did, since=since, until=until, limit=limit, server=server)
    finally:
        await store.close()
