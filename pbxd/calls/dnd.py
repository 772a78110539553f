"""Do-not-disturb: targets an admin has taken out of ringing for now (kept in memory).

Set from the web API (`POST /api/targets/{name}/dnd`, admin only). The ring steps may read
`is_on` to skip a target; until they do, the flag is shown and reported, not yet obeyed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DndChange:
    """Who turned a target's do-not-disturb on, and when."""

    target: str
    by: str
    at: datetime


@dataclass
class DoNotDisturb:
    """The targets whose do-not-disturb is on; lost on restart (a runtime state, not config)."""

    _on: dict[str, DndChange] = field(default_factory=dict)

    def set(self, target: str, on: bool, *, by: str, at: datetime) -> bool:
        """Turn `target`'s flag on or off; True when that changed something."""
        if on == (target in self._on):
            return False
        if on:
            self._on[target] = DndChange(target, by, at)
        else:
            del self._on[target]
        return True

    def is_on(self, target: str) -> bool:
        """Whether `target` must not be rung now."""
        return target in self._on

    def targets(self) -> list[str]:
        """The targets on do-not-disturb now, by name."""
        return sorted(self._on)

    def change(self, target: str) -> DndChange | None:
        """Who set `target`'s flag and when (None when it is off)."""
        return self._on.get(target)
