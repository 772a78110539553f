"""Voicemail test fixtures: a clock the test drives, WAVs, Asterisk's stored recordings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from pbxd.ari.errors import AriNotFound, AriUnavailable

T0 = datetime(2026, 12, 24, 19, 0, tzinfo=UTC)  # 20:00 in Paris, after hours


class ManualClock:
    """A `Clock` that moves only when the test says `advance(seconds)`."""

    def __init__(self, origin: datetime = T0) -> None:
        self._origin = origin
        self._now = 0.0
        self._moved = asyncio.Condition()
        self.sleepers = 0  # tasks inside sleep(): a test waits for them before advancing

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=self._now)

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        until = self._now + max(0.0, seconds)
        self.sleepers += 1
        try:
            async with self._moved:
                await self._moved.wait_for(lambda: self._now >= until)
        finally:
            self.sleepers -= 1

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        raise NotImplementedError("not used by voicemail")

    async def advance(self, seconds: float) -> None:
        """Move time on and let every sleeper whose time has come run."""
        self._now += seconds
        async with self._moved:
            self._moved.notify_all()
        for _ in range(20):  # let woken tasks run their next steps
            await asyncio.sleep(0)


class AsteriskRecordings:
    """Asterisk's stored recordings as seen through ARI, with an outage switch.

    Stands for the `StoredRecordings` adapter over the ARI client: same errors (404 ->
    AriNotFound, unreachable -> AriUnavailable).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reachable = True
        self.fetches: list[str] = []
        self.deletes: list[str] = []

    def _check(self, method: str, name: str) -> None:
        if not self.reachable:
            raise AriUnavailable("ARI unreachable: connection refused", method, name)

    async def fetch(self, name: str) -> bytes:
        self._check("GET", name)
        self.fetches.append(name)
        if name not in self.files:
            raise AriNotFound(404, "Recording not found", "GET", f"/recordings/stored/{name}/file")
        return self.files[name]

    async def delete(self, name: str) -> None:
        self._check("DELETE", name)
        self.deletes.append(name)
        if self.files.pop(name, None) is None:
            raise AriNotFound(404, "Recording not found", "DELETE", f"/recordings/stored/{name}")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def recordings() -> AsteriskRecordings:
    return AsteriskRecordings()
