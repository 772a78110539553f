"""`pbxd usage NUMBER [--period 2026-12]`: minutes a number used against its plan, by day."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from pbxd.cdr.store import CdrStore
from pbxd.cli.common import read_cdr_request, read_number_period, report
from pbxd.dialplan.limits import Billable, PlanUsage, UsageKind, plan_usage


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd usage`."""
    parser = sub.add_parser(
        "usage",
        help="show the minutes a number used against its plan",
        description="Minutes of forwarded legs and of calls going out that NUMBER used in a "
        "period of its time zone (this month by default), by day, against its plan's monthly "
        "allowance; calls in progress count up to now, emergency calls never.",
    )
    parser.add_argument("number", nargs="+", help="the number; spaces allowed (01 70 00 00 01)")
    parser.add_argument(
        "--period", help="a month (2026-12, the default: this one), a day or a year"
    )
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--database", help="CDR database URL (default: pbxd.yaml's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the usage; exit 1 on a bad number or period, 2 if the database fails."""
    now = datetime.now(ZoneInfo("UTC"))
    request = read_cdr_request(args, "usage", lambda config: read_number_period(args, config, now))
    if isinstance(request, int):
        return request
    url = request.url
    did, tz, period = request.asked.did, request.asked.tz, request.asked.period
    since, until = period.bounds(tz)
    try:
        items = asyncio.run(_read(url, did, since, until))
    except Exception as exc:
        report("usage", f"cannot read the usage from {url}: {type(exc).__name__}: {exc}")
        return 2
    usage = plan_usage(request.config.plan_of_number.get(did), items, now, tz)
    print(FORMATS[args.format](did, period.label, tz, usage), end="")
    return 0


async def _read(url: str, did: str, since: datetime, until: datetime) -> list[Billable]:
    store = await CdrStore.open(url)
    try:
        return await store.billables_of(did, since, until)
    finally:
        await store.close()


def minutes_text(seconds: int) -> str:
    """`12:05` (minutes:seconds)."""
    return f"{seconds // 60}:{seconds % 60:02d}"


def allowance_text(allowed: int | None) -> str:
    """`2 min`, or `unlimited`."""
    return "unlimited" if allowed is None else f"{allowed // 60} min"


def format_table(did: str, period: str, tz: ZoneInfo, usage: PlanUsage) -> str:
    """The month as a person reads it: a line per day, then the totals against the plan."""
    plan_name = f"plan {usage.plan}" if usage.plan is not None else "no plan"
    lines = [f"{did}: usage in {period} ({tz.key}), {plan_name}"]
    lines.append(f"{'day':<10}  {'forwarded':>9}  {'outbound':>9}")
    rows = [(day.isoformat(), used) for day, used in usage.days.items()]
    for label, used in [*rows, ("total", usage.used)]:
        forwarded, outbound = used[UsageKind.FORWARDED], used[UsageKind.OUTBOUND]
        lines.append(f"{label:<10}  {minutes_text(forwarded):>9}  {minutes_text(outbound):>9}")
    lines.append(
        f"{'allowed':<10}  {allowance_text(usage.allowed[UsageKind.FORWARDED]):>9}  "
        f"{allowance_text(usage.allowed[UsageKind.OUTBOUND]):>9}"
    )
    return "\n".join(lines) + "\n"


def format_csv(did: str, period: str, tz: ZoneInfo, usage: PlanUsage) -> str:
    """One row per day: `day,forwarded_seconds,outbound_seconds`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("number", "day", "forwarded_seconds", "outbound_seconds"))
    for day, used in usage.days.items():
        writer.writerow((did, day.isoformat(), used[UsageKind.FORWARDED], used[UsageKind.OUTBOUND]))
    return buffer.getvalue()


def format_json(did: str, period: str, tz: ZoneInfo, usage: PlanUsage) -> str:
    """The month, its days and the plan's allowances (seconds; null: unlimited)."""
    document = {"number": did, "period": period, "time_zone": tz.key, **usage.to_json()}
    return json.dumps(document, indent=2) + "\n"


FORMATS = {"table": format_table, "csv": format_csv, "json": format_json}
