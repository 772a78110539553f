"""`pbxd check` on `ha: {mode: active-standby}`: a pair needs the PostgreSQL both share."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import load_settings
from pbxd.config.diagnostics import Diagnostics
from pbxd.config.files import HaMode

PAIR = "\nha:\n  mode: active-standby\n"


def test_a_pair_on_sqlite_is_refused_with_what_to_do(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = example / "pbxd.yaml"
    lines = len(path.read_text().splitlines())
    path.write_text(path.read_text() + PAIR)  # database.url stays null: SQLite
    assert main(["check"]) == 1
    [line] = [e for e in capsys.readouterr().err.splitlines() if "ha.mode" in e]
    assert line.startswith(f"pbxd.yaml:{lines + 3}:")
    assert "active-standby needs a PostgreSQL database" in line
    assert "with SQLite there is no pair: use ha.mode: single" in line


def test_a_pair_on_postgresql_passes_and_is_read(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = example / "pbxd.yaml"
    path.write_text(path.read_text() + PAIR)
    monkeypatch.setenv("PBXD_DATABASE_URL", "postgresql://pbxd@db/pbx")
    assert main(["check"]) == 0
    assert capsys.readouterr().err == ""
    settings = load_settings(path, Diagnostics())
    assert settings is not None and settings.ha_mode is HaMode.ACTIVE_STANDBY


def test_the_mode_comes_from_the_environment_and_a_typo_is_named(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PBXD_HA_MODE", "active-stanby")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "mode: must be one of 'single' or 'active-standby', not 'active-stanby'" in err
    assert "did you mean 'active-standby'?" in err
    monkeypatch.setenv("PBXD_HA_MODE", "single")
    assert main(["check"]) == 0
