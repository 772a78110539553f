"""What every subcommand shares: finding and compiling the configuration."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from pbxd.cdr.store import CdrStore
from pbxd.config.compile import compile_config
from pbxd.config.diagnostics import printable
from pbxd.config.model import Config
from pbxd.config.numbering import foreign_digit
from pbxd.log import redact_url

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
