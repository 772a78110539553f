"""Fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Commands call configure_logging (process-wide): undo it so later tests see all lines."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)
