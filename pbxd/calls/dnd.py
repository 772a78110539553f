"""Do-not-disturb: a per-target flag an admin (or the HTTP API) flips at run time.

A target set to do-not-disturb is skipped by every ring step, at once. The flag is kept in
the database (table `target_dnd`), so it survives restarts and is shared by every pbxd on
one PostgreSQL; each daemon keeps a copy in memory so a ring step never waits for the
database, re-read at each connection to Asterisk. This is the object the HTTP API calls:

    state = await service.dnd.set("alice", True)
    service.dnd.is_on("alice")  # True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from pbxd.clock import Clock

log = structlog.get_logger("pbxd.calls")


class UnknownTarget(LookupError):
    """The name is not a target of the configuration (stable id: `unknown_target`)."""

    error_id = "unknown_target"

    def __init__(self, target: str) -> None:
        super().__init__(f"no target named '{target}' in the routing configuration")
        self.target = target


class DndStore(Protocol):
    """Where the flags are kept (`pbxd.cdr.memory.RingMemory`)."""

    async def dnd(self) -> dict[str, datetime]:
        """Targets set to do-not-disturb, with since when."""
        ...

    async def set_dnd(self, target: str, on: bool, at: datetime) -> None:
        """Set or clear one target's flag."""
        ...


@dataclass(frozen=True, slots=True)
class DndState:
    """One target's do-not-disturb: on since `since`, or off (`since` None)."""

    target: str
    on: bool
    since: datetime | None = None


class DoNotDisturb:
    """The do-not-disturb flags of the configuration's targets."""

    def __init__(self, targets: Iterable[str], clock: Clock, store: DndStore | None) -> None:
        self._targets = frozenset(targets)
        self._clock = clock
        self._store = store
        self._since: dict[str, datetime] = {}

    def retarget(self, targets: Iterable[str]) -> None:
        """After a reload: the flags of the new configuration's targets (others are kept)."""
        self._targets = frozenset(targets)

    async def load(self) -> None:
        """Read the flags from the database (at start and after each reconnection)."""
        if self._store is None:
            return
        try:
            self._since = await self._store.dnd()
        except Exception as exc:
            # The copy in memory stays as it was: the next reconnection reads it again.
            log.warning("dnd_not_loaded", error=str(exc))

    def is_on(self, target: str) -> bool:
        """Whether `target` is set to do-not-disturb."""
        return target in self._since

    def state(self, target: str) -> DndState:
        """One target's flag (UnknownTarget for a name the configuration lacks)."""
        if target not in self._targets:
            raise UnknownTarget(target)
        since = self._since.get(target)
        return DndState(target, since is not None, since)

    def states(self) -> list[DndState]:
        """Every target's flag, by name."""
        return [self.state(target) for target in sorted(self._targets)]

    async def set(self, target: str, on: bool) -> DndState:
        """Set or clear `target`'s flag; kept in the database before it takes effect.

        UnknownTarget for a name the configuration lacks; a database error propagates
        (nothing changed, the caller can say so).
        """
        if target not in self._targets:
            raise UnknownTarget(target)
        now = self._clock.now()
        if self._store is not None:
            await self._store.set_dnd(target, on, now)
        if on:
            self._since.setdefault(target, now)
        else:
            self._since.pop(target, None)
        log.info("dnd_set", target=target, on=on)
        return self.state(target)
