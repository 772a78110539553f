"""Which softphones are registered: a live table fed by ARI's endpoint state.

Asterisk says an endpoint is `online` (a contact registered), `offline` or `unknown`. The
daemon fills the table from `GET /endpoints` at each (re)connection, after subscribing to
the softphones' endpoint events, then follows `EndpointStateChange`. Only a softphone known
to be offline is skipped: one Asterisk has not told us about rings as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pbxd.ari import Endpoint

OFFLINE = "offline"


def endpoint_key(technology: str, resource: str) -> str:
    """`PJSIP/alice`, the way targets name a softphone (technology in capitals)."""
    return f"{technology.upper()}/{resource}"


@dataclass
class Presence:
    """The last state Asterisk gave for each endpoint (`PJSIP/alice` -> `online`)."""

    states: dict[str, str] = field(default_factory=dict)

    def update(self, endpoint: Endpoint) -> str | None:
        """Take an endpoint's state (from an event or a listing); its previous state."""
        key = endpoint_key(endpoint.technology, endpoint.resource)
        previous = self.states.get(key)
        self.states[key] = endpoint.state or "unknown"
        return previous

    def reload(self, endpoints: Iterable[Endpoint], watched: Iterable[str]) -> None:
        """Replace the table with a listing (after a reconnection every state may be stale).

        `watched` endpoints missing from the listing do not exist on Asterisk: offline.
        """
        self.states = {}
        for endpoint in endpoints:
            self.update(endpoint)
        for key in watched:
            self.states.setdefault(key, OFFLINE)

    def forget(self) -> None:
        """Asterisk is out of reach: no state is trusted any more (everyone rings)."""
        self.states = {}

    def is_offline(self, endpoint: str) -> bool:
        """True only when Asterisk said this softphone is not registered."""
        return self.states.get(_normalised(endpoint)) == OFFLINE

    def online(self) -> list[str]:
        """The endpoints Asterisk says are registered, sorted."""
        return sorted(k for k, state in self.states.items() if state == "online")


def _normalised(endpoint: str) -> str:
    technology, _, resource = endpoint.partition("/")
    return endpoint_key(technology, resource)
