"""Readiness as a pure function of the daemon's parts; do-not-disturb; errors as JSON."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pbxd.calls.dnd import DoNotDisturb
from pbxd.web.health import readiness
from tests.web.conftest import Tokens, bearer


def _service(*, connections: int, connected: bool, recovered: bool, calls: int) -> Any:
    done = asyncio.Event()
    if recovered:
        done.set()
    daemon = SimpleNamespace(recovered=done, calls=dict.fromkeys(range(calls)))
    stream = SimpleNamespace(connections=connections, connected=connected)
    return SimpleNamespace(daemon=daemon, stream=stream)


@pytest.mark.parametrize(
    ("service", "ready", "status"),
    [
        (None, False, "opening the CDR database"),
        (SimpleNamespace(daemon=None, stream=None), False, "connecting to ARI"),
        (
            _service(connections=0, connected=False, recovered=False, calls=0),
            False,
            "connecting to ARI",
        ),
        (
            _service(connections=1, connected=True, recovered=False, calls=2),
            False,
            "ARI connected; recovering calls left by the previous run",
        ),
        (
            _service(connections=1, connected=True, recovered=True, calls=1),
            True,
            "ARI connected; 1 call in progress",
        ),
        (
            _service(connections=2, connected=False, recovered=True, calls=3),
            False,
            "ARI reconnecting; 3 calls in progress",
        ),
    ],
)
async def test_readiness(service: Any, ready: bool, status: str) -> None:
    found = readiness(service)
    assert (found.ready, found.status) == (ready, status)


def test_dnd_set_says_whether_it_changed_and_who() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    dnd = DoNotDisturb()
    assert dnd.set("alice", True, by="adam", at=at)
    assert not dnd.set("alice", True, by="eve", at=at)  # already on: the first setter stays
    change = dnd.change("alice")
    assert change is not None and change.by == "adam"
    assert dnd.is_on("alice") and dnd.targets() == ["alice"]
    assert dnd.set("alice", False, by="adam", at=at)
    assert not dnd.is_on("alice") and not dnd.set("alice", False, by="adam", at=at)


async def test_a_bug_in_a_handler_is_a_500_with_a_stable_code_and_pbxd_goes_on(
    client: TestClient[Any, Any], tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pbxd.cdr.store import CdrStore

    async def broken(self: CdrStore, call_id: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(CdrStore, "get_call", broken)
    response = await client.get("/api/calls/x", headers=bearer(tokens.viewer))
    assert response.status == 500
    assert (await response.json())["error"]["code"] == "internal_error"
    assert (await client.get("/api/targets", headers=bearer(tokens.viewer))).status == 200


async def test_unknown_paths_and_methods_are_json_errors(
    client: TestClient[Any, Any], tokens: Tokens
) -> None:
    missing = await client.get("/api/nothing", headers=bearer(tokens.viewer))
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    wrong = await client.delete("/api/targets", headers=bearer(tokens.viewer))
    assert wrong.status == 405
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"
