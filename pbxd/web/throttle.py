"""Failed logins and wrong API tokens slow down whoever makes them: per client address,
and a login's user name.

argon2 makes each guess cost ~50 ms of CPU, which still allows some 70,000 guesses a day at
one user. So each address (an IPv6 one by its /64: one host holds a whole /64) and each
user name that fails to log in waits before its next try, the wait doubling with each
failure past the first few: 1 s, 2 s, 4 s … up to 15 minutes. A try made while either
must wait is refused before any password is checked (HTTP 429 with Retry-After), and only
one try per address or name is checked at a time, so a burst of parallel guesses gets no
more tries than one after another. A success clears its user name (the address keeps its
count: an attacker's own account must not wash its guesses away).

Everything is in memory and bounded: at most `max_entries` addresses and names are kept,
the one whose last failure is oldest going first, and one idle for `forget_after` seconds
is forgotten. An attacker with many addresses can thus only push out old entries, never
grow the table; the name they guess at stays, as each of their guesses renews it.

A wrong API token (`Authorization: Bearer`) counts against its address like a failed login,
with no user name: the same address key, so guessing logins and tokens in turn earns no more
tries. The address is the client's as `pbxd.web.clients` reads it (behind trusted proxies).
Time comes from the clock given (the daemon's monotonic clock; tests drive their own).
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 3  # failures in a row before any wait (a user mistyping is not an attacker)
FIRST_WAIT = 1.0  # seconds after the first failure past the free ones, doubling after
LONGEST_WAIT = 15 * 60.0
FORGET_AFTER = 60 * 60.0  # an address or name without a failure for this long starts afresh
MAX_ENTRIES = 10_000  # addresses and names kept (~200 bytes each: 2 MB at most)
BUSY_RETRY = 1  # Retry-After (seconds) while another try of the same address or name runs


@dataclass(slots=True)
class _Failures:
    count: int
    last: float  # monotonic seconds of the newest failure
    busy: bool = False  # a try of this address or name is being checked now

    def wait_until(self) -> float:
        """When the next try may be checked."""
        over = self.count - FREE_FAILURES
        if over < 0:
            return self.last
        return self.last + min(FIRST_WAIT * 2.0 ** min(over, 32), LONGEST_WAIT)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login try let through: its keys are busy until `LoginThrottle.settle`."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A login try refused: how long to wait (whole seconds, for Retry-After), and why."""

    retry_after: int
    reason: str  # `address` or `user`: which one must wait


def address_key(remote: str | None) -> str:
    """The key of a client address: IPv4 as is, IPv6 by its /64, anything else as given."""
    if not remote:
        return "address:unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return f"address:{remote[:64]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address:{ip}"


def user_key(name: str) -> str:
    """The key of a user name, as typed (cut to 128 characters), any case."""
    return f"user:{name[:128].casefold()}"


class LoginThrottle:
    """Failed logins per address and per user name, with the wait each has earned."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        *,
        max_entries: int = MAX_ENTRIES,
        forget_after: float = FORGET_AFTER,
    ) -> None:
        self._monotonic = monotonic
        self._max = max_entries
        self._forget_after = forget_after
        self._failures: OrderedDict[str, _Failures] = OrderedDict()  # oldest failure first

    def __len__(self) -> int:
        return len(self._failures)

    def admit(self, remote: str | None, name: str | None = None) -> Attempt | Refusal:
        """Let a try be checked now, or say how long it must wait (nothing is checked).

        `name`: the user name a login tries; None for an API token (its address only).
        """
        now = self._monotonic()
        keys = (address_key(remote),) if name is None else (address_key(remote), user_key(name))
        for key, reason in zip(keys, ("address", "user"), strict=False):
            entry = self._current(key, now)
            if entry is None:
                continue
            # A refused try keeps its key among the newest: a flood cannot push it out.
            if entry.busy:
                self._failures.move_to_end(key)
                return Refusal(BUSY_RETRY, reason)
            until = entry.wait_until()
            if until > now:
                self._failures.move_to_end(key)
                return Refusal(max(1, math.ceil(until - now)), reason)
        for key in keys:
            entry = self._current(key, now)
            if entry is not None:
                entry.busy = True
            else:
                # Busy before any failure: the parallel tries of a burst wait for this one.
                self._store(key, _Failures(0, now, busy=True))
        return Attempt(keys)

    def settle(self, attempt: Attempt, succeeded: bool) -> None:
        """The try's answer: a failure counts against its address and name."""
        now = self._monotonic()
        user = attempt.keys[1] if len(attempt.keys) > 1 else None
        for key in attempt.keys:
            entry = self._failures.get(key)
            if entry is None:  # pushed out meanwhile by other failures
                entry = _Failures(0, now)
            entry.busy = False
            if succeeded and key == user:
                self._failures.pop(key, None)
                continue
            if succeeded and entry.count == 0:
                self._failures.pop(key, None)  # held only while busy: nothing to remember
                continue
            if not succeeded:
                entry.count += 1
                entry.last = now
            self._store(key, entry)

    def _current(self, key: str, now: float) -> _Failures | None:
        """The key's entry, unless forgotten by now (a busy one is never forgotten)."""
        entry = self._failures.get(key)
        if entry is not None and not entry.busy and now - entry.last >= self._forget_after:
            del self._failures[key]
            return None
        return entry

    def _store(self, key: str, entry: _Failures) -> None:
        """Keep `entry` as the newest; push the oldest out beyond the bound."""
        self._failures[key] = entry
        self._failures.move_to_end(key)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)
        # The oldest are the likeliest forgotten: drop those now, not only when asked.
        now = self._monotonic()
        while self._failures:
            oldest_key = next(iter(self._failures))
            if self._current(oldest_key, now) is not None:
                break
