"""`pbxd check` on the CDR database setting: a database that forgets is a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxd.cli.main import main


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite:///:memory:", "sqlite:///"]
)
def test_an_in_memory_database_is_a_warning(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("PBXD_DATABASE_URL", url)
    assert main(["check"]) == 0  # pbxd can still run; it must not pass silently
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "pbxd.yaml:1:1: warning: database.url (from $PBXD_DATABASE_URL): an in-memory database "
        "loses every CDR when pbxd stops: use sqlite:///PATH or postgresql://USER@HOST/DB"
    ]


@pytest.mark.parametrize(
    "url", ["sqlite:///var/cdr.db", "sqlite:////var/lib/pbxd/memory.db", "postgresql://pbxd@db/pbx"]
)
def test_a_database_on_disk_passes_quietly(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("PBXD_DATABASE_URL", url)
    assert main(["check"]) == 0
    assert capsys.readouterr().err == ""


def test_the_warning_points_at_the_line_in_pbxd_yaml(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = example / "pbxd.yaml"
    text = path.read_text()
    assert text.count("  url: null ") == 1
    path.write_text(text.replace("  url: null ", "  url: 'sqlite:///:memory:' "))
    assert main(["check"]) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("pbxd.yaml:9:8: warning: database.url: an in-memory database")
