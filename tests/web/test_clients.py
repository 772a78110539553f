"""Who a request comes from (pbxd/web/clients.py): the peer, or behind trusted proxies the
right-most untrusted address of X-Forwarded-For; spoofed headers never believed."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from pbxd.web.clients import Network, client_address, parse_address

PROXY: list[Network] = [ip_network("10.0.0.5")]
PROXIES: list[Network] = [ip_network("10.0.0.0/24"), ip_network("2001:db8:1::/64")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        # No trusted proxy (the default): the header is ignored, whoever sends it.
        ("198.51.100.9", ["192.0.2.1"], [], "198.51.100.9"),
        ("10.0.0.5", ["192.0.2.1"], [], "10.0.0.5"),
        # A client that is not a trusted proxy cannot pick its address.
        ("198.51.100.9", ["192.0.2.1"], PROXY, "198.51.100.9"),
        ("198.51.100.9", ["10.0.0.5"], PROXY, "198.51.100.9"),
        # Behind the proxy: the address the proxy appended.
        ("10.0.0.5", ["192.0.2.1"], PROXY, "192.0.2.1"),
        # A client's own X-Forwarded-For is left of what the proxy appended: ignored.
        ("10.0.0.5", ["203.0.113.66, 192.0.2.1"], PROXY, "192.0.2.1"),
        ("10.0.0.5", ["10.0.0.7, 192.0.2.1"], PROXY, "192.0.2.1"),
        # Two header lines read as one list, in order.
        ("10.0.0.5", ["203.0.113.66", "192.0.2.1"], PROXY, "192.0.2.1"),
        # A chain of trusted proxies is skipped, right to left.
        ("10.0.0.5", ["203.0.113.66, 192.0.2.1, 10.0.0.9"], PROXIES, "192.0.2.1"),
        ("2001:db8:1::2", ["192.0.2.1, 10.0.0.9"], PROXIES, "192.0.2.1"),
        # ... but only trusted ones: 10.0.0.9 is not the one proxy trusted here.
        ("10.0.0.5", ["192.0.2.1, 10.0.0.9"], PROXY, "10.0.0.9"),
        # Every hop trusted: the left-most is the client.
        ("10.0.0.5", ["10.0.0.8, 10.0.0.9"], PROXIES, "10.0.0.8"),
        # No header from the proxy: the proxy itself.
        ("10.0.0.5", [], PROXY, "10.0.0.5"),
        ("10.0.0.5", [" , "], PROXY, "10.0.0.5"),
        # Not an address: the hop that reported it is named, never the text.
        ("10.0.0.5", ["192.0.2.1, unknown"], PROXY, "10.0.0.5"),
        ("10.0.0.5", ["evil-key-1"], PROXY, "10.0.0.5"),
        ("10.0.0.5", ["192.0.2.1, garbage, 10.0.0.9"], PROXIES, "10.0.0.9"),
        # Ports and brackets as some proxies write them; IPv4-mapped IPv6 as IPv4.
        ("10.0.0.5", ["192.0.2.1:5060"], PROXY, "192.0.2.1"),
        ("10.0.0.5", ["[2001:db8::7]:443"], PROXY, "2001:db8::7"),
        ("10.0.0.5", ["2001:db8::7"], PROXY, "2001:db8::7"),
        ("::ffff:10.0.0.5", ["::ffff:192.0.2.1"], PROXY, "192.0.2.1"),
        # A peer aiohttp could not name (a UNIX socket): as given.
        (None, ["192.0.2.1"], PROXY, None),
    ],
)
def test_the_client_is_the_right_most_untrusted_address(
    peer: str | None, forwarded: list[str], trusted: list[Network], client: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == client


def test_a_long_header_is_read_from_the_right_only() -> None:
    hops = ", ".join(["192.0.2.1"] + ["10.0.0.9"] * 100)
    assert client_address("10.0.0.5", [hops], PROXIES) == "10.0.0.9"  # not 100 hops back


@pytest.mark.parametrize("text", ["", "unknown", "1.2.3", "_hidden", "192.0.2.1:x:y"])
def test_what_is_not_an_address_is_none(text: str) -> None:
    assert parse_address(text) is None
