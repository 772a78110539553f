"""What every subcommand shares: finding and compiling the configuration; and what the
commands reading the CDR database share: the number and the period asked, the database to
read (`CdrRequest`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pbxd.cdr.reports import PeriodError, ReportPeriod
from pbxd.cdr.store import CdrStore
from pbxd.config.compile import compile_config
from pbxd.config.diagnostics import printable
from pbxd.config.model import Config
from pbxd.config.numbering import NumberError, foreign_digit, to_e164, zone_of
from pbxd.log import configure_logging, redact_url

T = TypeVar("T")


def config_path(args: argparse.Namespace) -> Path:
    """The pbxd.yaml to use: --config, else $PBXD_CONFIG, else ./pbxd.yaml."""
    given = getattr(args, "config", None) or os.environ.get("PBXD_CONFIG") or "pbxd.yaml"
    return Path(given)


def load_config_or_report(args: argparse.Namespace) -> Config | None:
    """Compile the configuration; print its diagnostics to stderr; None if it has errors."""
    result = compile_config(config_path(args))
    for diagnostic in result.diagnostics:
        print(diagnostic, file=sys.stderr)
    return result.config


def report(command: str, message: str) -> None:
    """One error line on stderr: `pbxd COMMAND: MESSAGE`, passwords masked, control
    characters escaped and a huge value cut (the message may quote what the admin typed)."""
    print(f"pbxd {command}: {printable(redact_url(message))}", file=sys.stderr)


def ascii_number(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse `type` reading digits 0-9 only: int() and float() take `٣` as 3."""

    def parse(text: str) -> int | float:
        foreign = foreign_digit(text)
        if foreign is not None:
            raise argparse.ArgumentTypeError(printable(foreign))
        return kind(text)  # a ValueError: argparse's own "invalid int value: 'x'"

    parse.__name__ = kind.__name__
    return parse


async def read_store(url: str, read: Callable[[CdrStore], Awaitable[T]]) -> T:
    """Open the CDR store at `url`, run `read` on it, close it (read-only commands)."""
    store = await CdrStore.open(url)
    try:
        return await read(store)
    finally:
        await store.close()


# ------------------------------------------------------------------ CDR commands


@dataclass(frozen=True, slots=True)
class CdrRequest(Generic[T]):
    """What a command reading the CDRs was asked, read and checked: the configuration,
    the command's own reading of its arguments (a number, a period, bounds…) and the URL
    of a database that is there."""

    config: Config
    asked: T
    url: str


def read_request(
    args: argparse.Namespace, command: str, read: Callable[[Config], T]
) -> tuple[Config, T] | int:
    """The opening of every command about a number (`voicemail`, `diagnose`, and the CDR
    readers through `read_cdr_request`): compile the configuration (exit 1 on errors), then
    `read` the arguments (a NumberError or ValueError is reported: exit 1)."""
    config = load_config_or_report(args)
    if config is None:
        return 1
    try:
        asked = read(config)
    except (ValueError, OverflowError) as exc:  # NumberError and PeriodError among them
        report(command, str(exc))
        return 1
    configure_logging("error")
    return config, asked


def cdr_database(args: argparse.Namespace, command: str, config: Config) -> str | int:
    """The CDR database to read: --database, else pbxd.yaml's; a missing SQLite file is
    reported (exit 2)."""
    url: str = args.database or config.settings.database_url
    missing = missing_sqlite_file(url)
    if missing is not None:
        # Reading must not create an empty database (and its directories) at a mistyped path.
        report(command, f"no CDR database at {missing}")
        return 2
    return url


def read_cdr_request(
    args: argparse.Namespace, command: str, read: Callable[[Config], T]
) -> CdrRequest[T] | int:
    """The opening of `pbxd calls`, `usage`, `report` and `export`: `read_request`, then
    `cdr_database`."""
    opened = read_request(args, command, read)
    if isinstance(opened, int):
        return opened
    config, asked = opened
    url = cdr_database(args, command, config)
    if isinstance(url, int):
        return url
    return CdrRequest(config, asked, url)


def missing_sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///…` URL when it does not exist, else None."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None  # CdrStore.open reports a bad URL
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def resolve_number(text: str, config: Config) -> tuple[str, ZoneInfo]:
    """The number in E.164 and the zone its log is shown in (its own, else its country's)."""
    foreign = foreign_digit(text)
    if foreign is not None:
        raise NumberError(f"'{text}': {foreign}")
    regions = list(dict.fromkeys([t.country for t in config.trunks.values()] + [None]))
    for region in regions:
        try:
            e164 = to_e164(text, region)
        except NumberError:
            continue
        number = config.number(e164)
        zone = number.timezone if number else (zone_of(e164) or "UTC")
        return e164, ZoneInfo(zone)
    raise NumberError(f"'{text}' is not a phone number we can read")


def inventory_number(text: str, config: Config) -> tuple[str, ZoneInfo]:
    """The number (E.164) and its zone; NumberError when it is not in the inventory."""
    did, tz = resolve_number(text, config)
    if config.number(did) is None:
        raise NumberError(f"{did} is not in the inventory (pbxd numbers lists it)")
    return did, tz


@dataclass(frozen=True, slots=True)
class NumberPeriod:
    """A number (E.164), its zone, and a period of local days (`pbxd usage`, `report`)."""

    did: str
    tz: ZoneInfo
    period: ReportPeriod


def read_number_period(
    args: argparse.Namespace, config: Config, now: datetime, *, inventory: bool = False
) -> NumberPeriod:
    """NUMBER (only one of the inventory with `inventory`) and its period (`read_period`)."""
    text = " ".join(args.number)
    did, tz = inventory_number(text, config) if inventory else resolve_number(text, config)
    return NumberPeriod(did, tz, read_period(args, tz, now))


def read_period(args: argparse.Namespace, tz: ZoneInfo, now: datetime) -> ReportPeriod:
    """--period, or --since/--until (days, both included) where the command has them, else
    this month in `tz`."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since or until:
        if args.period:
            raise PeriodError("give --period or --since/--until, not both")
        if not (since and until):
            raise PeriodError("a range needs both --since and --until (days, 2026-11-01)")
        try:
            first, last = date.fromisoformat(since), date.fromisoformat(until)
        except ValueError as exc:
            raise PeriodError(f"--since/--until take days such as 2026-11-01: {exc}") from None
        if last < first:
            raise PeriodError("--until is before --since")
        return ReportPeriod.between(first, last + timedelta(days=1))
    return ReportPeriod.parse(args.period or f"{now.astimezone(tz):%Y-%m}")
