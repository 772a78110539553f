"""`pbxd check`: validate the configuration like a compiler."""

from __future__ import annotations

import argparse
import sys

from pbxd.cli.common import config_path
from pbxd.config.compile import compile_config
from pbxd.config.diagnostics import Severity, printable


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd check`."""
    parser = sub.add_parser(
        "check",
        help="validate pbxd.yaml, sip-trunks.yaml and routing/",
        description="Check the whole configuration and report every problem as "
        "FILE:LINE:COLUMN: error|warning: MESSAGE. Exit status 1 on any error.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print diagnostics, then a one-line summary; 0 when there is no error."""
    path = config_path(args)
    result = compile_config(path)
    for diagnostic in result.diagnostics:
        print(diagnostic, file=sys.stderr)
    errors = sum(d.severity is Severity.ERROR for d in result.diagnostics)
    warnings = len(result.diagnostics) - errors
    if result.config is None:
        print(f"{printable(str(path))}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
        return 1
    suffix = f", {warnings} warning(s)" if warnings else ""
    print(f"{printable(str(path))}: OK: {result.config.summary()}{suffix}")
    return 0
