"""Backoff per job and the worker task both voicemail queues run on (the injected clock).

`Retries` remembers, per job key, how many attempts failed and when the next one is due.
`PassRunner` runs a queue's `one_pass()` at start, whenever it is woken (a new job), and
when the earliest retry comes; `stop()` ends it even if a library swallowed the
cancellation (aiosmtplib may, mid-QUIT).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from pbxd.clock import Clock

_log = structlog.get_logger(logger_name=__name__)


@dataclass(slots=True)
class _Retry:
    attempts: int = 0
    due: float = 0.0  # clock.monotonic() of the next attempt


class Retries:
    """Exponential backoff per key: `initial`, doubling, capped at `maximum` seconds."""

    def __init__(self, clock: Clock, initial: float, maximum: float) -> None:
        """Times are read from `clock.monotonic()`."""
        self._clock = clock
        self._initial = initial
        self._maximum = maximum
        self._by_key: dict[str, _Retry] = {}

    def waiting(self, key: str) -> bool:
        """True while `key`'s next attempt is still to come (a new key is due at once)."""
        retry = self._by_key.get(key)
        return retry is not None and retry.due > self._clock.monotonic()

    def failed(self, key: str) -> tuple[int, float]:
        """Count a failed attempt; (attempts so far, seconds until the next one)."""
        retry = self._by_key.setdefault(key, _Retry())
        retry.attempts += 1
        delay = min(self._initial * 2 ** (retry.attempts - 1), self._maximum)
        retry.due = self._clock.monotonic() + delay
        return retry.attempts, delay

    def forget(self, key: str) -> None:
        """The job is settled: no more retries for it."""
        self._by_key.pop(key, None)

    def next_due(self) -> float | None:
        """Seconds until the earliest retry, None when nothing waits for one."""
        if not self._by_key:
            return None
        return max(0.0, min(r.due for r in self._by_key.values()) - self._clock.monotonic())


class PassRunner:
    """The task of one queue: passes at start, on `wake()`, and at the earliest retry."""

    def __init__(
        self,
        name: str,
        one_pass: Callable[[], Awaitable[object]],
        retries: Retries,
        clock: Clock,
    ) -> None:
        """`name` is the task's name and the log event prefix."""
        self._name = name
        self._one_pass = one_pass
        self._retries = retries
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Run a pass soon (a job was queued)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Passes until stopped."""
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self._one_pass()
            except Exception:
                # A bug here must not stop the queue for the rest of the daemon's life.
                _log.exception("voicemail_worker_error", worker=self._name)
            if self._stopping:
                return
            delay = self._retries.next_due()
            timers: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wakeup.wait())}
            if delay is not None:
                timers.add(asyncio.ensure_future(self._clock.sleep(delay)))
            try:
                await asyncio.wait(timers, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for timer in timers:
                    timer.cancel()

    def start(self) -> None:
        """Start the task (jobs left by a previous run are taken at once)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self._name)

    async def stop(self) -> None:
        """Stop the task; unfinished jobs stay on disk for the next start."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


_JobT = TypeVar("_JobT")


def read_jobs(folder: Path, parse: Callable[[Any], _JobT], event: str) -> list[_JobT]:
    """The job files of a queue folder, parsed; an unreadable one is logged as `event` and
    renamed `.bad` (kept for an admin, never retried in a loop)."""
    if not folder.is_dir():
        return []
    jobs: list[_JobT] = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            jobs.append(parse(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            _log.error(event, path=str(path), error=str(exc))
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".bad"))
    return jobs


class RetryingQueue:
    """What both voicemail queues share: a backoff per job and the task that runs passes."""

    _retries: Retries
    _worker: PassRunner

    def next_due(self) -> float | None:
        """Seconds until the earliest retry, None when nothing waits for one."""
        return self._retries.next_due()

    def start(self) -> None:
        """Start the queue's task (jobs left by a previous run are taken at once)."""
        self._worker.start()

    async def stop(self) -> None:
        """Stop the task; unfinished jobs stay on disk for the next start."""
        await self._worker.stop()
