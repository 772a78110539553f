"""The decisions of an active/standby pair, as pure functions over plain numbers.

The active owns the Stasis application only while its lease is valid: the lease is the
moment the active last *sent* a check that PostgreSQL answered "you still hold the lock",
plus `fence_after` seconds. PostgreSQL can only have released the lock (the session ended)
after that check was answered, so a standby that acquires it and then waits `fence_after`
before taking the application cannot overlap with an active that stops at its lease's end:
the old active has fenced itself by then, whether it died, lost its connection, or stalled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

# Namespace of pbxd's pair locks (the first int4 of pg_try_advisory_lock(int4, int4)):
# "pbxd" in ASCII, so other applications' advisory locks never collide with ours.
LOCK_NAMESPACE = 0x70627864


class Role(StrEnum):
    """Where one pbxd of a pair stands (systemd's STATUS line says it)."""

    STARTING = "starting"  # asking Asterisk who it is, connecting to PostgreSQL
    STANDBY = "standby"  # connected, polling the lock another pbxd holds
    TAKING_OVER = "taking over"  # holds the lock, waits out the old active's lease
    ACTIVE = "active"  # owns the Stasis application: drives the calls


@dataclass(frozen=True, slots=True)
class PairTimings:
    """How often a pair polls and checks, in seconds (defaults: takeover within 5 s)."""

    poll_every: float = 0.5  # the standby's tries for the lock
    check_every: float = 0.5  # the active's checks that it still holds it
    fence_after: float = 1.5  # an active unconfirmed this long stops owning the app
    reconnect_max: float = 5.0  # backoff cap when PostgreSQL cannot be reached

    def __post_init__(self) -> None:
        """A lease shorter than two checks would fence a healthy active on one slow answer."""
        if min(self.poll_every, self.check_every, self.fence_after, self.reconnect_max) <= 0:
            raise ValueError("pair timings must be positive")
        if self.fence_after < 2 * self.check_every:
            raise ValueError("fence_after must be at least two check intervals")

    @property
    def worst_takeover(self) -> float:
        """Seconds from the active's death to the standby owning the app (before ARI connects):
        one poll, then the old lease waited out."""
        return self.poll_every + self.fence_after


@dataclass(frozen=True, slots=True)
class Lease:
    """The active's proof of ownership: valid until `confirmed_at + fence_after`."""

    confirmed_at: float  # monotonic moment the last answered check was *sent*
    fence_after: float

    @property
    def expires_at(self) -> float:
        """The monotonic moment the active must have stopped owning the app."""
        return self.confirmed_at + self.fence_after

    def valid(self, now: float) -> bool:
        """True while the active may act for the application."""
        return now < self.expires_at

    def confirmed(self, sent_at: float) -> Lease:
        """The lease after a check sent at `sent_at` was answered "held" (never moves back)."""
        return Lease(max(self.confirmed_at, sent_at), self.fence_after)


def lock_key(app: str, server: str) -> tuple[int, int]:
    """The advisory lock of one Stasis application on one Asterisk: (namespace, 31-bit hash).

    Keyed by Asterisk's own identity (AsteriskInfo.server), not by the ARI URL: the two pbxd
    of a pair may reach the same Asterisk by different addresses. Stable across Python runs
    (no `hash()`), non-negative so pg_locks shows it as written.
    """
    digest = hashlib.blake2b(f"{app}@{server}".encode(), digest_size=4).digest()
    return LOCK_NAMESPACE, int.from_bytes(digest, "big") & 0x7FFFFFFF
