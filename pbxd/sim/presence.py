"""Presence as Asterisk 22 reports it (endpoint_presence.jsonl): application subscriptions,
registrations (EndpointStateChange, PeerStatusChange, ContactStatusChange, in that order) and
device states (`Stasis:` devices set over ARI, any device read).

- Endpoint and device events only reach an application subscribed to them
  (`POST /applications/{app}/subscription?eventSource=endpoint:PJSIP/carol`, or
  `endpoint:PJSIP` for a whole technology, or `deviceState:<device>`).
- ARI sets only its own `Stasis:<name>` devices (others: 409 Uncontrolled device specified);
  an unknown state answers 500 "Unknown device"; DELETE forgets a device without an event,
  it then reads UNKNOWN.
- A PJSIP device reads NOT_INUSE (registered, idle), INUSE, RINGING or UNAVAILABLE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import JsonDict, SimEndpoint

if TYPE_CHECKING:
    from .pbx import SimPbx

DEVICE_STATES = frozenset(
    {"UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING"}
    | {"RINGINUSE", "ONHOLD"}
)
EVENT_SOURCE_SCHEMES = ("channel:", "bridge:", "endpoint:", "deviceState:")


class PresenceError(Exception):
    """A request the resource refuses: HTTP status and Asterisk's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


@dataclass
class Subscriptions:
    """What one application subscribed to beyond its channels and bridges."""

    endpoints: list[str] = field(default_factory=list)  # "PJSIP/carol" or "PJSIP"
    devices: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Contact:
    """A registered contact of an endpoint's AOR."""

    uri: str
    aor: str


class PresenceDesk:
    """Subscriptions, registrations and device states of one simulated Asterisk."""

    def __init__(self, pbx: SimPbx) -> None:
        self._pbx = pbx
        self.subscriptions: dict[str, Subscriptions] = {}
        self.device_states: dict[str, str] = {}  # Stasis:<name> -> state
        self.contacts: dict[str, Contact] = {}  # endpoint key -> its contact

    # ------------------------------------------------------------ subscriptions
    def of(self, app: str) -> Subscriptions:
        return self.subscriptions.setdefault(app, Subscriptions())

    def subscribe(self, app: str, sources: list[str]) -> None:
        """POST /applications/{app}/subscription (the app is known)."""
        for source in self._checked(sources):
            scheme, _, name = source.partition(":")
            if scheme == "endpoint":
                self._add(self.of(app).endpoints, name)
            elif scheme == "deviceState":
                self._add(self.of(app).devices, name)
            elif scheme == "channel":
                self._pbx.channels[name].apps.setdefault(app, None)
            else:
                self._pbx.bridges[name].apps.setdefault(app, None)

    def unsubscribe(self, app: str, sources: list[str]) -> None:
        """DELETE /applications/{app}/subscription."""
        subs = self.of(app)
        for source in self._checked(sources):
            scheme, _, name = source.partition(":")
            if scheme == "endpoint" and name in subs.endpoints:
                subs.endpoints.remove(name)
            elif scheme == "deviceState" and name in subs.devices:
                subs.devices.remove(name)
            elif scheme == "channel" and app in self._pbx.channels[name].apps:
                self._pbx.channels[name].apps.pop(app)
            elif scheme == "bridge" and app in self._pbx.bridges[name].apps:
                self._pbx.bridges[name].apps.pop(app)
            else:
                raise PresenceError(409, "Application not subscribed to event source")

    @staticmethod
    def _add(names: list[str], name: str) -> None:
        if name not in names:
            names.append(name)

    def _checked(self, sources: list[str]) -> list[str]:
        """Every source exists, or nothing is changed (400 / 422 as Asterisk answers)."""
        if not sources:
            raise PresenceError(400, "Missing parameter eventSource")
        for source in sources:
            if not source.startswith(EVENT_SOURCE_SCHEMES):
                raise PresenceError(400, "Invalid event source URI scheme")
            scheme, _, name = source.partition(":")
            if scheme == "channel":
                found = name in self._pbx.channels
            elif scheme == "bridge":
                found = name in self._pbx.bridges
            elif scheme == "endpoint":
                tech, _, resource = name.partition("/")
                found = (
                    self._pbx.endpoint(tech, resource) is not None
                    if resource
                    else any(k[0] == tech.lower() for k in self._pbx.endpoints)
                )
            else:
                found = bool(name)
            if not found:
                raise PresenceError(422, "Unable to find eventSource")
        return sources

    def endpoint_apps(self, endpoint: SimEndpoint) -> list[str]:
        """The applications that hear of this endpoint."""
        return [
            app
            for app, subs in self.subscriptions.items()
            if endpoint.key in subs.endpoints or endpoint.technology in subs.endpoints
        ]

    # ------------------------------------------------------------ registrations
    def register(self, endpoint: SimEndpoint, contact_uri: str) -> None:
        """A REGISTER with Expires > 0: the endpoint goes online with one contact."""
        self.contacts[endpoint.key] = Contact(contact_uri, endpoint.resource)
        endpoint.online = True
        self._registration_events(endpoint, "Reachable", "NonQualified")

    def unregister(self, endpoint: SimEndpoint) -> None:
        """A REGISTER with Expires 0: the contact is removed, the endpoint goes offline."""
        endpoint.online = False
        self._registration_events(endpoint, "Unreachable", "Removed")
        self.contacts.pop(endpoint.key, None)

    def _registration_events(self, endpoint: SimEndpoint, peer: str, contact: str) -> None:
        apps = self.endpoint_apps(endpoint)
        body = endpoint.to_json(self._pbx.channels_of(endpoint))
        found = self.contacts.get(endpoint.key)
        uri = found.uri if found is not None else f"sip:{endpoint.resource}@127.0.0.1"
        info = {
            "aor": endpoint.resource,
            "contact_status": contact,
            "roundtrip_usec": "0",
            "uri": uri,
        }
        publish = self._pbx.publish_event
        publish(apps, "EndpointStateChange", endpoint=body)
        publish(apps, "PeerStatusChange", endpoint=body, peer={"peer_status": peer})
        publish(apps, "ContactStatusChange", endpoint=body, contact_info=info)

    # ------------------------------------------------------------ device states
    def device_state(self, name: str) -> str:
        """What `GET /deviceStates/{name}` reads for any device."""
        if name.startswith("Stasis:"):
            return self.device_states.get(name, "UNKNOWN")
        tech, _, resource = name.partition("/")
        endpoint = self._pbx.endpoint(tech, resource)
        if endpoint is None:
            return "INVALID"
        if not endpoint.online:
            return "UNAVAILABLE"
        states = {self._pbx.channels[c].state for c in self._pbx.channels_of(endpoint)}
        if "Up" in states:
            return "INUSE"
        if "Ringing" in states or "Ring" in states:
            return "RINGING"
        return "NOT_INUSE"

    def device_json(self, name: str) -> JsonDict:
        return {"name": name, "state": self.device_state(name)}

    def set_device_state(self, name: str, state: str) -> None:
        """PUT /deviceStates/{name}?deviceState=...: only our own `Stasis:` devices."""
        if not name.startswith("Stasis:"):
            raise PresenceError(409, "Uncontrolled device specified")
        if state not in DEVICE_STATES:
            raise PresenceError(500, "Unknown device")
        self.device_states[name] = state
        apps = [app for app, subs in self.subscriptions.items() if name in subs.devices]
        self._pbx.publish_event(
            apps, "DeviceStateChanged", device_state={"name": name, "state": state}
        )

    def delete_device_state(self, name: str) -> None:
        """DELETE /deviceStates/{name}: forgotten, without an event."""
        if not name.startswith("Stasis:"):
            raise PresenceError(409, "Uncontrolled device specified")
        if name not in self.device_states:
            raise PresenceError(404, "Device not found")
        del self.device_states[name]
