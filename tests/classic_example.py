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
