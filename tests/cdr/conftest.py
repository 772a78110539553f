"""Fixtures for the CDR tests: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

# tests/ is not a package and its conftest belongs to the lead: make dbfixtures importable.
_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from dbfixtures import BACKENDS, database_url  # noqa: E402

from pbxd.cdr.store import CdrStore  # noqa: E402


@pytest.fixture(autouse=True)
def _default_structlog() -> None:
    """Undo a logging level left by an earlier in-process `pbxd` command: these tests read
    warnings with capture_logs, which a level-filtering wrapper would drop before it."""
    structlog.reset_defaults()


@pytest.fixture(params=BACKENDS)
async def cdr_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A private, empty CDR database URL: a SQLite file, then a fresh PostgreSQL schema."""
    async with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def store(cdr_url: str) -> AsyncIterator[CdrStore]:
    """An open store (short linger); closed, and so drained, at the end of the test."""
    cdr = await CdrStore.open(cdr_url, flush_interval=0.05)
    try:
        yield cdr
    finally:
        await cdr.close()
