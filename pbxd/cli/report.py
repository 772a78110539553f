"""`pbxd report NUMBER --period 2026-11`: a number's calls over a period, as the web report.

The figures come from `queries.number_report`, the query the web report page and
`/api/numbers/{number}/report` run, so the terminal and the browser never disagree. A number
with a plan also gets the plan's minutes used over the period against its monthly allowance.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pbxd.cdr import queries
from pbxd.cdr.reports import (
    NumberReport,
    format_report_csv,
    format_report_table,
    report_to_json,
)
from pbxd.cdr.store import CdrStore
from pbxd.cli.common import read_cdr_request, read_number_period, read_store, report
from pbxd.dialplan.limits import Billable, PlanUsage, UsageKind, plan_usage

FORMATS = ("table", "csv", "json")

SUMMARY_CSV_COLUMNS = (
    "number",
    "period",
    "time_zone",
    "calls",
    "answered",
    "missed",
    "abandoned",
    "voicemail",
    "in_progress",
    "answer_rate",
    "average_wait_seconds",
    "longest_wait_seconds",
    "talk_minutes",
    "busiest_hours",
    "plan",
    "forwarded_minutes_used",
    "forwarded_minutes_allowed",
    "outbound_minutes_used",
    "outbound_minutes_allowed",
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd report`."""
    parser = sub.add_parser(
        "report",
        help="a number's report: calls, answer rate, waits, talk time, busiest hours",
        description="The calls to NUMBER over a period of its time zone (this month by "
        "default): calls, answered, missed, abandoned, answer rate, average and longest wait "
        "before answer, talk minutes, busiest hours, and the plan's minutes used. The same "
        "figures as the web report page.",
    )
    parser.add_argument("number", nargs="+", help="the number; spaces allowed (01 70 00 00 01)")
    parser.add_argument(
        "--period", help="a month (2026-11, the default: this one), a day or a year"
    )
    parser.add_argument("--since", help="first day of a range (2026-11-01); with --until")
    parser.add_argument("--until", help="last day of a range, included (2026-11-15)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument(
        "--per-day", action="store_true", help="CSV: one row per day instead of the totals"
    )
    parser.add_argument("--database", help="CDR database URL (default: pbxd.yaml's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 on a bad number or period, 2 if the database fails."""
    now = datetime.now(ZoneInfo("UTC"))
    request = read_cdr_request(
        args, "report", lambda config: read_number_period(args, config, now, inventory=True)
    )
    if isinstance(request, int):
        return request
    url, config = request.url, request.config
    did, tz, period = request.asked.did, request.asked.tz, request.asked.period
    number = config.number(did)
    label = number.label if number and number.label else ""
    plan = config.plan_of_number.get(did)

    async def read_report(store: CdrStore) -> tuple[NumberReport, list[Billable]]:
        # The web report's two reads (api.report_of): the same figures, the same plan usage.
        rep = await queries.number_report(store.engine, did, period, tz, label=label)
        since, until = period.bounds(tz)
        return rep, await store.billables_of(did, since, until)

    try:
        rep, items = asyncio.run(read_store(url, read_report))
    except Exception as exc:
        report("report", f"cannot read the report from {url}: {type(exc).__name__}: {exc}")
        return 2
    use = plan_usage(plan, items, now, tz)
    if args.format == "json":
        print(format_json(rep, use), end="")
    elif args.format == "csv":
        print(format_report_csv(rep) if args.per_day else format_csv(rep, use), end="")
    else:
        print(format_table(rep, use), end="")
    return 0


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:.1f}"


def _allowance(seconds: int | None) -> str:
    return "unlimited" if seconds is None else f"{seconds // 60} min a month"


def format_table(rep: NumberReport, use: PlanUsage) -> str:
    """The web report's figures for a terminal, then the plan's minutes."""
    text = format_report_table(rep)
    if use.plan is None:
        return text + "\nno plan\n"
    rows = [
        f"{kind} minutes".ljust(18)
        + f" {_minutes(use.used[kind])} of {_allowance(use.allowed[kind])}"
        for kind in UsageKind
    ]
    return text + f"\nplan {use.plan}\n" + "\n".join(rows) + "\n"


def format_csv(rep: NumberReport, use: PlanUsage) -> str:
    """One header and one row of totals (`--per-day` gives the days instead)."""
    busiest = " ".join(f"{h.hour:02d}h:{h.calls}" for h in rep.busiest_hours)
    row: list[Any] = [
        rep.did,
        rep.period.label,
        rep.time_zone,
        rep.calls,
        rep.answered,
        rep.missed,
        rep.abandoned,
        rep.voicemail,
        rep.in_progress,
        "" if rep.answer_rate is None else f"{rep.answer_rate:.4f}",
        "" if rep.average_wait is None else f"{rep.average_wait:.1f}",
        "" if rep.longest_wait is None else rep.longest_wait,
        f"{rep.talk_minutes:.1f}",
        busiest,
        use.plan or "",
    ]
    for kind in UsageKind:
        allowed = use.allowed[kind]
        row += [_minutes(use.used[kind]), "" if allowed is None else allowed // 60]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_CSV_COLUMNS)
    writer.writerow(row)
    return buffer.getvalue()


def format_json(rep: NumberReport, use: PlanUsage) -> str:
    """What `/api/numbers/{number}/report` returns: the report with its plan `usage`."""
    document = {**report_to_json(rep), "usage": use.to_json()}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
