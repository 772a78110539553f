"""Fixtures for the ARI client tests: real Asterisk 22 captures and small fake ARI servers.

`tests/ari_conformance/data/captures/*.jsonl` are recordings of real Asterisk 22 traffic (one
JSON record a line: `kind` "event" with `data`, "request" with method/path/params/status/body,
or "ws").
Tests asking for `capture_event` or `capture_request` run once per recorded record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from typing import Any

import pytest
import structlog

from .fakes import CAPTURES, FakeAri, FakeEventSocket


def _is_resource(record: dict[str, Any]) -> bool:
    return record["kind"] == "request" and record["status"] < 300 and record["body"] is not None


_SELECTIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "capture_event": lambda record: record["kind"] == "event",
    "capture_request": lambda record: record["kind"] == "request",
    "capture_resource": _is_resource,  # successful REST answers with a body
}


def _records(wanted: Callable[[dict[str, Any]], bool]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(CAPTURES.glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            record = json.loads(line)
            if wanted(record):
                found.append((f"{path.stem}:{number}", record))
    return found


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `capture_event`, `capture_request`, `capture_resource` from the captures."""
    for name, wanted in _SELECTIONS.items():
        if name in metafunc.fixturenames:
            records = _records(wanted)
            assert records, f"no {name} records found in {CAPTURES}"
            metafunc.parametrize(name, [r for _, r in records], ids=[i for i, _ in records])


@pytest.fixture
def debug_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog entry, debug included, whatever logging another test configured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(**saved)


@pytest.fixture
async def fake_ari() -> AsyncIterator[FakeAri]:
    """A fake ARI REST server on a free local port."""
    fake = FakeAri.create()
    await fake.server.start_server()
    try:
        yield fake
    finally:
        if fake.hold is not None:
            fake.hold.set()
        await fake.server.close()


@pytest.fixture
async def fake_events() -> AsyncIterator[FakeEventSocket]:
    """A running fake event WebSocket server."""
    fake = FakeEventSocket(port=0)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def free_port(unused_tcp_port: int) -> int:
    """A local port nothing listens on (connections to it are refused)."""
    return unused_tcp_port
