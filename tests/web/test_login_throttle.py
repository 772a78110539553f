"""Failed logins slow down their address and their user name (pbxd/web/throttle.py), on a
clock the test moves by hand."""

from __future__ import annotations

import pytest

from pbxd.web.throttle import (
    FREE_FAILURES,
    LONGEST_WAIT,
    Attempt,
    LoginThrottle,
    Refusal,
    address_key,
)


class Hands:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, remote: str, name: str) -> None:
    attempt = throttle.admit(remote, name)
    assert isinstance(attempt, Attempt), attempt
    throttle.settle(attempt, succeeded=False)


def refused(throttle: LoginThrottle, remote: str, name: str) -> Refusal:
    answer = throttle.admit(remote, name)
    assert isinstance(answer, Refusal), "the try was let through"
    return answer


def test_the_wait_doubles_after_the_free_failures_up_to_a_cap() -> None:
    clock = Hands()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_FAILURES):
        fail(throttle, "192.0.2.7", "vera")
    waits = []
    for _ in range(14):
        waits.append(refused(throttle, "192.0.2.7", "vera").retry_after)
        clock.now += waits[-1] - 0.5
        assert refused(throttle, "192.0.2.7", "vera").retry_after == 1  # not yet
        clock.now += 0.5
        fail(throttle, "192.0.2.7", "vera")
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert waits[-1] == LONGEST_WAIT == max(waits)


def test_the_address_waits_whatever_name_it_tries_and_the_name_whatever_address() -> None:
    clock = Hands()
    throttle = LoginThrottle(clock)
    for name in ("vera", "adam", "root"):
        fail(throttle, "192.0.2.7", name)
    assert refused(throttle, "192.0.2.7", "bob").reason == "address"
    assert isinstance(throttle.admit("198.51.100.1", "bob"), Attempt)  # another address, name
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        fail(throttle, address, "Adam-2")
    assert refused(throttle, "203.0.113.4", "adam-2").reason == "user"  # any case


def test_a_success_clears_the_name_not_the_address() -> None:
    clock = Hands()
    throttle = LoginThrottle(clock)
    for name in ("vera", "vera", "eve"):
        fail(throttle, "192.0.2.7", name)
    clock.now += 1
    attempt = throttle.admit("192.0.2.7", "vera")
    assert isinstance(attempt, Attempt)
    throttle.settle(attempt, succeeded=True)
    # vera's name starts afresh: three failures from elsewhere before she waits.
    for _ in range(FREE_FAILURES):
        fail(throttle, "198.51.100.1", "vera")
    assert refused(throttle, "198.51.100.2", "vera") == Refusal(1, "user")
    # The address keeps its three failures: its fourth makes it wait 2 s, not 1 s.
    fail(throttle, "192.0.2.7", "eve")
    assert refused(throttle, "192.0.2.7", "mallory") == Refusal(2, "address")


def test_one_try_at_a_time_per_address_and_per_name() -> None:
    clock = Hands()
    throttle = LoginThrottle(clock)
    first = throttle.admit("192.0.2.7", "vera")
    assert isinstance(first, Attempt)
    # A burst of parallel guesses: none is checked while the first one is.
    assert refused(throttle, "192.0.2.7", "adam") == Refusal(1, "address")
    assert refused(throttle, "198.51.100.1", "vera") == Refusal(1, "user")
    throttle.settle(first, succeeded=False)
    assert isinstance(throttle.admit("198.51.100.1", "vera"), Attempt)


def test_failures_are_forgotten_after_an_idle_hour() -> None:
    clock = Hands()
    throttle = LoginThrottle(clock, forget_after=3600)
    for _ in range(8):
        fail(throttle, "192.0.2.7", "vera")
        clock.now += 200
    clock.now += 3600
    attempt = throttle.admit("192.0.2.7", "vera")
    assert isinstance(attempt, Attempt)
    throttle.settle(attempt, succeeded=False)
    assert isinstance(throttle.admit("192.0.2.8", "adam"), Attempt)  # one failure: free again


def test_many_addresses_never_grow_the_table_past_its_bound() -> None:
    clock = Hands()
    throttle = LoginThrottle(clock, max_entries=100)
    guessed = 0
    for i in range(5000):
        answer = throttle.admit(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "vera")
        if isinstance(answer, Attempt):
            throttle.settle(answer, succeeded=False)
            guessed += 1
        assert len(throttle) <= 100
        clock.now += 0.01
    # Each guess renews the name guessed at: 5,000 addresses got only its few free tries
    # and those its doubling waits let through in 50 seconds.
    assert guessed <= FREE_FAILURES + 6


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("192.0.2.7", "address:192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "address:2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "address:2001:db8:1:2::/64"),  # the same host's /64
        ("::ffff:192.0.2.7", "address:192.0.2.7"),
        (None, "address:unknown"),
        ("/run/pbxd.sock", "address:/run/pbxd.sock"),
    ],
)
def test_address_keys(remote: str | None, key: str) -> None:
    assert address_key(remote) == key
