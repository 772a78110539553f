"""Do-not-disturb: targets an admin has taken out of ringing for now.

Set from the web API (`POST /api/targets/{name}/dnd`, admin only) or any code holding the
call service's `dnd`. Every ring step skips a target whose flag is on, at once (its leg is
`not rung, do-not-disturb`). The flags are kept in the database (table `target_dnd`) when
the call service runs, so they survive restarts and are shared by every pbxd on one
PostgreSQL; the copy in memory answers the ring steps without waiting for the database and
is read again at each connection to Asterisk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog

log = structlog.get_logger("pbxd.calls")


class DndStore(Protocol):
    """Where the flags are kept (`pbxd.cdr.memory.RingMemory`)."""

    async def dnd(self) -> dict[str, tuple[str, datetime]]:
        """Targets whose flag is on, with who set it and when."""
        ...

    async def set_dnd(self, target: str, on: bool, by: str, at: datetime) -> None:
        """Set or clear one target's flag."""
        ...


@dataclass(frozen=True, slots=True)
class DndChange:
    """Who turned a target's do-not-disturb on, and when."""

    target: str
    by: str
    at: datetime


@dataclass
class DoNotDisturb:
    """The targets whose do-not-disturb is on (in memory; saved to `store` when attached)."""

    _on: dict[str, DndChange] = field(default_factory=dict)
    _store: DndStore | None = None
    _saving: set[asyncio.Task[None]] = field(default_factory=set)

    def attach(self, store: DndStore | None) -> None:
        """Keep the flags in `store` from now on (the call service's database)."""
        self._store = store

    def set(self, target: str, on: bool, *, by: str, at: datetime) -> bool:
        """Turn `target`'s flag on or off; True when that changed something.

        It takes effect at once; the database write follows in the background (`flush`
        waits for it), so a caller never waits for the database.
        """
        if on == (target in self._on):
            return False
        if on:
            self._on[target] = DndChange(target, by, at)
        else:
            del self._on[target]
        if self._store is not None:
            task = asyncio.get_running_loop().create_task(self._save(target, on, by, at))
            self._saving.add(task)
            task.add_done_callback(self._saving.discard)
        return True

    async def _save(self, target: str, on: bool, by: str, at: datetime) -> None:
        assert self._store is not None
        try:
            await self._store.set_dnd(target, on, by, at)
        except Exception as exc:
            # The flag holds in memory; the next change or restart says what is kept.
            log.warning("dnd_not_saved", target=target, on=on, error=repr(exc))

    async def flush(self) -> None:
        """Wait until every change is written to the database."""
        while self._saving:
            await asyncio.gather(*list(self._saving), return_exceptions=True)

    async def load(self) -> None:
        """Read the flags from the database (at each connection to Asterisk)."""
        if self._store is None:
            return
        await self.flush()  # a change made meanwhile is written before it is read back
        try:
            saved = await self._store.dnd()
        except Exception as exc:
            log.warning("dnd_not_loaded", error=repr(exc))  # the copy in memory stays
            return
        self._on = {t: DndChange(t, by, at) for t, (by, at) in saved.items()}

    def is_on(self, target: str) -> bool:
        """Whether `target` must not be rung now."""
        return target in self._on

    def targets(self) -> list[str]:
        """The targets on do-not-disturb now, by name."""
        return sorted(self._on)

    def change(self, target: str) -> DndChange | None:
        """Who set `target`'s flag and when (None when it is off)."""
        return self._on.get(target)
