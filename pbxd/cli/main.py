"""The `pbxd` command: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from pbxd import __version__
from pbxd.cli import (
    calls,
    check,
    diagnose,
    export,
    numbers,
    report,
    run,
    simulate,
    usage,
    users,
    voicemail,
)
from pbxd.log import redact_url


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="pbxd", description="Call control for Asterisk virtual numbers (ARI)."
    )
    parser.add_argument("--version", action="version", version=f"pbxd {__version__}")
    parser.add_argument(
        "-c", "--config", help="path to pbxd.yaml (default: $PBXD_CONFIG or ./pbxd.yaml)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        check,
        numbers,
        simulate,
        calls,
        report,
        usage,
        diagnose,
        export,
        voicemail,
        users,
        run,
    ):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code in (0, None):  # --help, --version
            raise
        return 1  # argparse printed usage and the error: exit 1 like every other user error
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 1
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # A bug, not bad input: keep the traceback for the report, minus any password in it.
        print(redact_url("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        print(
            f"pbxd {args.command}: internal error: {type(exc).__name__} (please report it)",
            file=sys.stderr,
        )
        return 70  # EX_SOFTWARE
    return status
