"""Who a request comes from: the address the throttles count and the logs name.

Without trusted proxies (`http.trusted_proxies`, empty by default) it is the TCP peer, and
`X-Forwarded-For` is ignored: anyone can write that header. Behind a reverse proxy every
request's peer is the proxy, so with the proxy's address listed, pbxd reads the header from
its right-hand end (the hop nearest to pbxd, written by the proxy itself) leftwards, skipping
trusted proxies, and takes the first address that is not one: the right-most untrusted
address. What lies left of it was written by the client and is never believed; a client
that is not a trusted proxy gets its own address whatever header it sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = "X-Forwarded-For"
MAX_HOPS = 32  # addresses of X-Forwarded-For read at most (from the right): a bound per request


def parse_address(text: str) -> Address | None:
    """An address as proxies write it in X-Forwarded-For: `192.0.2.7`, `2001:db8::1`, also
    with a port (`192.0.2.7:5060`, `[2001:db8::1]:5060`); None when it is none of those."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; an IPv6 address has several colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    """Whether `address` is one of the trusted proxies."""
    return any(address.version == network.version and address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address: `peer` unless it is a trusted proxy; then the right-most
    address of the X-Forwarded-For values (in the order received) that is not one.

    When every hop is trusted, the left-most one is the client. An entry that is not an
    address (`unknown`, garbage) ends the walk at the hop that reported it: that trusted
    proxy is named, never the text, so no client can choose its own key.
    """
    if peer is None or not trusted:
        return peer
    nearest = parse_address(peer)
    if nearest is None or not is_trusted(nearest, trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    hops = hops[-MAX_HOPS:]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        nearest = address
        if not is_trusted(address, trusted):
            break
    return str(nearest)
