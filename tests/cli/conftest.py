"""The shipped example configuration, copied to a temp dir that is the working directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pbxd.yaml, sip-trunks.yaml, routing/ and scenarios/ in tmp_path (the cwd)."""
    shutil.copy(REPO / "pbxd.yaml", tmp_path / "pbxd.yaml")
    shutil.copy(REPO / "sip-trunks.yaml", tmp_path / "sip-trunks.yaml")
    shutil.copytree(REPO / "routing", tmp_path / "routing")
    shutil.copytree(REPO / "sounds", tmp_path / "sounds")
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_DATABASE_URL", "PBXD_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
