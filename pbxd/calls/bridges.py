"""Mixing bridges calls share one after another: two ARI requests a call fewer.

Asterisk keeps an ARI bridge until someone destroys it, empty or not. So a call takes an idle
bridge (creating one only when none is idle) when it first bridges, and gives it back once
Asterisk confirmed every channel of the call gone, when the bridge is empty again; a call that
ended any other way (its hangups unconfirmed, Asterisk lost) destroys its bridge as before.
Pooled bridges have ids of their own (`ids.pooled_bridge_id`), never a call's: a restart finds
a call's bridge in its journal or by its channels, and adopts the idle ones it finds.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog

from pbxd.ari import AriError, AriNotFound
from pbxd.calls import ids

if TYPE_CHECKING:
    from pbxd.ari import AriClient

log = structlog.get_logger("pbxd.calls")

# Idle bridges kept at most: about the calls bridged at once at the busiest (an idle bridge
# costs Asterisk a little memory and no thread); beyond it, a bridge given back is destroyed.
MAX_IDLE_BRIDGES = 500


class BridgePool:
    """The idle mixing bridges of one daemon's Stasis application."""

    def __init__(self, ari: AriClient, max_idle: int = MAX_IDLE_BRIDGES) -> None:
        self.ari = ari
        self.max_idle = max_idle
        self.idle: list[str] = []

    def take(self) -> str | None:
        """An idle bridge for a call (the one given back last), or None."""
        return self.idle.pop() if self.idle else None

    async def create(self) -> str:
        """A new bridge for a call, given back to the pool when the call is over."""
        bridge = await self.ari.create_bridge(
            bridge_type="mixing", bridge_id=ids.pooled_bridge_id(), name="pbxd"
        )
        return bridge.id

    async def give_back(self, bridge_id: str) -> None:
        """A bridge whose call is over, every channel of it gone: idle, or destroyed if the
        pool is full."""
        if bridge_id in self.idle:
            return
        if len(self.idle) < self.max_idle:
            self.idle.append(bridge_id)
            return
        await self.destroy(bridge_id)

    async def destroy(self, bridge_id: str) -> None:
        """Destroy a bridge (one already gone is not an error)."""
        with contextlib.suppress(AriNotFound):
            await self.ari.destroy_bridge(bridge_id)

    def forget(self) -> None:
        """Asterisk restarted: its bridges went with it."""
        self.idle.clear()

    async def drain(self) -> None:
        """Destroy every idle bridge (the daemon stops: nothing would use them)."""
        idle, self.idle = self.idle, []
        for bridge_id in idle:
            try:
                await self.destroy(bridge_id)
            except AriError as exc:
                log.info("idle bridge not destroyed", bridge=bridge_id, status=exc.status)
