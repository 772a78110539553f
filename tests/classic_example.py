"""The shipped trunks with the example routing of before call flows (ring-only routes).

Plan and call tests written against today's ring-only routes keep that routing here, so the
shipped example can grow call flows without rewriting their tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pbxd.config.compile import compile_config
from pbxd.config.model import Config

REPO = Path(__file__).resolve().parents[1]
CLASSIC_ROUTING = REPO / "tests" / "dialplan" / "data" / "routing"


def classic_example_config(tree: Path) -> Config:
    """Compile the shipped pbxd.yaml, trunks and sounds with the classic routing in `tree`."""
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tree / name)
    shutil.copytree(CLASSIC_ROUTING, tree / "routing")
    shutil.copy(REPO / "routing" / "london.yaml", tree / "routing" / "london.yaml")
    shutil.copytree(REPO / "sounds", tree / "sounds")
    result = compile_config(tree / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


# The shipped office hours, as routing/acme.yaml writes them.
_OFFICE_HOURS = """\
    weekly:
      mon-fri: [09:00-12:30, 14:00-18:00]
    holidays: FR                       # French public holidays are closed
    closed:
      - 2026-12-28 to 2027-01-01       # the company's closure week
      - {date: 12-24, from: "12:00"}   # every Christmas Eve from noon
"""
# The same lines, open whenever a test on the real clock happens to run (lunch, nights, holidays).
_ROUND_THE_CLOCK = """\
    weekly:
      mon-sun: [00:00-24:00]
    closed:
      - 2000-01-01                     # a day long gone: `closed:` stays in use, no warning
    #
    #
"""


def open_round_the_clock(tree: Path) -> None:
    """Make the shipped reception's hours always open in the example copied to `tree`.

    A daemon on the real clock places its calls whenever the suite runs; without this, the
    reception is closed for lunch (12:30-14:00 in Paris), nights, weekends and holidays, and
    the call goes to voicemail instead of ringing. Line numbers stay as shipped.
    """
    path = tree / "routing" / "acme.yaml"
    text = path.read_text(encoding="utf-8")
    assert _OFFICE_HOURS in text, "routing/acme.yaml's office hours changed: update this helper"
    path.write_text(text.replace(_OFFICE_HOURS, _ROUND_THE_CLOCK), encoding="utf-8")


def copy_example(tree: Path) -> None:
    """The shipped pbxd.yaml, sip-trunks.yaml, routing/ and sounds/ copied to `tree`."""
    tree.mkdir(parents=True, exist_ok=True)
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tree / name)
    for name in ("routing", "sounds"):
        shutil.copytree(REPO / name, tree / name)
