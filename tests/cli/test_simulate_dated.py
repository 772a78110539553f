"""`pbxd simulate` with calls placed at local dates: the daemon's clock reads those dates, and
the nights between them are skipped rather than played."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbxd.cli.main import main

SCENARIO = """\
title: Christmas at Acme
speed: 50
peers:
  alice: {answer_after: 2, hangup_after: 5}
calls:
  - at: 2026-12-24 17:55
    to: 01 70 00 00 01
    from: 06 12 00 00 01
  - at: 2026-12-25 10:00
    to: 01 70 00 00 01
    from: 06 12 00 00 02
  - at: 2026-12-25 10:00:20
    to: 01 70 00 00 01
    from: 06 12 00 00 03
    keys: [{at: 1, digits: '#'}]
"""


def test_calls_on_given_days_read_those_days(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("scenarios/christmas.yaml").write_text(SCENARIO, encoding="utf-8")
    db = f"sqlite:///{example / 'cdr.db'}"
    assert main(["simulate", "scenarios/christmas.yaml", "--database", db]) == 0
    out = capsys.readouterr().out
    assert "#1 at 2026-12-24 17:55:00 CET" in out and "#2 at 2026-12-25 10:00:00 CET" in out
    assert main(["calls", "01 70 00 00 01", "--database", db, "--format", "json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    starts = sorted(c["started_at"][:19] for c in calls)
    assert starts[0] == "2026-12-24T17:55:00"
    # Virtual time: each call starts at the very second its scenario says.
    assert starts[1:] == ["2026-12-25T10:00:00", "2026-12-25T10:00:20"]
    assert all(c["started_at"].endswith("+01:00") for c in calls)
    # Christmas Eve from noon and Christmas Day are closed in the shipped opening hours.
    assert {c["disposition"] for c in calls} == {"closed"}
    assert {c["path_text"] for c in calls} == {"closed → voicemail (no message)"}
