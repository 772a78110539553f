"""Fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from pbxd import heap


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Commands call configure_logging (process-wide): undo it so later tests see all lines."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _unsettle_heap() -> Iterator[None]:
    """`pbxd run` tunes the GC process-wide (`heap.settle`): undo it for the next test."""
    yield
    heap.unsettle()
