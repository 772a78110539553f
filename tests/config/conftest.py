"""A private copy of the shipped example configuration for each test to break."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pbxd.config import yamlsource
from pbxd.config.diagnostics import Diagnostics

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests" / "config") not in sys.path:
    sys.path.insert(0, str(REPO / "tests" / "config"))

from marked_trees import difference  # noqa: E402


@pytest.fixture(autouse=True)
def _plain_yaml_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file a config test loads through the plain reader is read by libyaml too: the
    errors these tests pin must come out the same whichever path read the file."""
    read = yamlsource.read_plain_yaml

    def checked(text: str, display_name: str) -> tuple[bool, Any]:
        plain, tree = read(text, display_name)
        if plain:
            diagnostics = Diagnostics()
            careful = yamlsource.load_yaml_carefully(text, display_name, diagnostics)
            assert not diagnostics.items, [str(d) for d in diagnostics.items]
            assert difference(tree, careful) is None, difference(tree, careful)
        return plain, tree

    monkeypatch.setattr(yamlsource, "read_plain_yaml", checked)


Edit = Callable[[str, str, str], None]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped pbxd.yaml, sip-trunks.yaml and routing/ in a temp dir, which is the cwd."""
    shutil.copy(REPO / "pbxd.yaml", tmp_path / "pbxd.yaml")
    shutil.copy(REPO / "sip-trunks.yaml", tmp_path / "sip-trunks.yaml")
    shutil.copytree(REPO / "routing", tmp_path / "routing")
    shutil.copytree(REPO / "sounds", tmp_path / "sounds")
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_DATABASE_URL", "PBXD_TRUNKS_FILE", "PBXD_ROUTING_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def edit(example: Path) -> Edit:
    """Replace exactly one occurrence of `old` by `new` in a file of the example copy."""

    def apply(name: str, old: str, new: str) -> None:
        path = example / name
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} must occur once in {name}"
        path.write_text(text.replace(old, new))

    return apply
