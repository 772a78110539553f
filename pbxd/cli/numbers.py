"""`pbxd numbers`: the inventory of virtual numbers as a table or JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

from pbxd.cli.common import load_config_or_report, report
from pbxd.cli.table import render_table
from pbxd.config.files import NumberStatus
from pbxd.config.model import Config
from pbxd.inventory import NumberQuery, national_form, select


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd numbers`."""
    parser = sub.add_parser(
        "numbers",
        help="list the inventory of virtual numbers",
        description="List every virtual number with its trunk, status, block, route and "
        "whisper prompt (the line's name a callee hears on a `whisper: number` route).",
    )
    parser.add_argument("--status", choices=[s.value for s in NumberStatus])
    parser.add_argument("--trunk", help="only the numbers of this trunk")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """One line of the inventory listing."""

    national: str
    e164: str
    trunk: str
    status: str
    port_date: str
    block: str
    route: str
    timezone: str
    label: str
    whisper: tuple[str, ...]  # its own prompts (`sound:acme-whisper-sales`): the line's name


def inventory_rows(config: Config, status: str | None, trunk: str | None) -> list[InventoryRow]:
    """The inventory, filtered, in number order."""
    wanted = NumberQuery(NumberStatus(status) if status is not None else None, trunk)
    rows = []
    for e164 in select(config, wanted):
        number = config.numbers[e164]
        route = config.route_of_number.get(e164)
        rows.append(
            InventoryRow(
                national=national_form(e164),
                e164=e164,
                trunk=number.trunk,
                status=number.status.value,
                port_date=number.port_date.isoformat() if number.port_date else "",
                block=number.block or "",
                route=route.name if route else "",
                timezone=number.timezone,
                label=number.label,
                whisper=number.whisper,
            )
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the inventory; 1 if the configuration has errors or the trunk is unknown."""
    config = load_config_or_report(args)
    if config is None:
        return 1
    if args.trunk is not None and args.trunk not in config.trunks:
        known = ", ".join(sorted(config.trunks))
        report("numbers", f"unknown trunk '{args.trunk}' (known: {known})")
        return 1
    rows = inventory_rows(config, args.status, args.trunk)
    if args.format == "json":
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return 0
    headers = ["number", "E.164", "trunk", "status", "port date", "block", "route", "time zone"]
    body = [
        [r.national, r.e164, r.trunk, r.status, r.port_date, r.block, r.route or "-", r.timezone]
        for r in rows
    ]
    if any(r.whisper for r in rows):
        # Only when some number has one: most inventories would show an empty column.
        headers.append("whisper")
        for line, row in zip(body, rows, strict=True):
            line.append(", ".join(row.whisper) or "-")
    print(render_table(headers, body))
    print(f"{len(rows)} number{'s' if len(rows) != 1 else ''}")
    return 0
