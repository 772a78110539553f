"""The simulator's ARI event filter: `PUT /applications/{app}/eventFilter` as Asterisk 22 answers
it, and only the allowed events sent (the rules quoted in pbxd/sim/event_filter.py)."""

from __future__ import annotations

from typing import Any

import pytest

from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator
from pbxd.sim.event_filter import EventFilter, FilterFormatError

from .conftest import SECRET, SWAGGER, USER, Ari, EventReader, lab

DID, CALLER = "+33170000001", "+33612000001"
FILTER = "/applications/pbxd/eventFilter"


def types(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["type"] for entry in entries]


def allow(*names: str) -> list[dict[str, str]]:
    return [{"type": name} for name in names]


# ------------------------------------------------------------------ the rules, as data


@pytest.mark.parametrize(
    ("bodies", "event", "sent"),
    [
        ([], "ChannelVarset", True),  # no filter: everything
        ([{"allowed": allow("StasisStart")}], "StasisStart", True),
        ([{"allowed": allow("StasisStart")}], "ChannelVarset", False),  # not in allowed
        ([{"disallowed": allow("ChannelVarset")}], "ChannelVarset", False),
        ([{"disallowed": allow("ChannelVarset")}], "Dial", True),  # allowed empty: all
        # Disallowed wins over allowed.
        ([{"allowed": allow("Dial"), "disallowed": allow("Dial")}], "Dial", False),
        # A key absent leaves its list alone; an empty array empties it.
        ([{"allowed": allow("Dial")}, {"disallowed": allow("X")}], "StasisEnd", False),
        ([{"allowed": allow("Dial")}, {"allowed": []}], "StasisEnd", True),
        # No body, or {}: both emptied.
        ([{"allowed": allow("Dial")}, None], "StasisEnd", True),
        ([{"disallowed": allow("Dial")}, {}], "Dial", True),
        # A bare array is both lists at once.
        ([allow("Dial")], "Dial", False),
    ],
)
def test_filter_rules(bodies: list[Any], event: str, sent: bool) -> None:
    found = EventFilter()
    for body in bodies:
        found.set_from(body)
    assert found.allows(event) is sent


@pytest.mark.parametrize(
    "body",
    [
        {"allowed": "StasisStart"},
        {"allowed": [{"name": "StasisStart"}]},
        {"allowed": [{"type": ""}]},
        {"allowed": ["StasisStart"]},
        {"disallowed": None},
        "StasisStart",
        7,
    ],
)
def test_malformed_filters_are_refused(body: Any) -> None:
    with pytest.raises(FilterFormatError):
        EventFilter().set_from(body)


def test_a_bad_disallowed_list_comes_after_the_allowed_one_is_set() -> None:
    # app_event_filter_set runs for "allowed", then fails on "disallowed".
    found = EventFilter()
    with pytest.raises(FilterFormatError):
        found.set_from({"allowed": allow("Dial"), "disallowed": 3})
    assert found.allowed == allow("Dial")


# ------------------------------------------------------------------ over ARI


async def test_put_answers_the_application_with_its_filter(ari: Ari, events: EventReader) -> None:
    body = {"allowed": allow("StasisStart", "StasisEnd"), "disallowed": allow("ChannelVarset")}
    status, app = await ari.call("PUT", FILTER, body)
    assert status == 200
    assert app["events_allowed"] == allow("StasisStart", "StasisEnd")
    assert app["events_disallowed"] == allow("ChannelVarset")
    status, again = await ari.get("/applications/pbxd")
    assert (status, again["events_allowed"]) == (200, allow("StasisStart", "StasisEnd"))


async def test_put_errors(ari: Ari, events: EventReader) -> None:
    status, body = await ari.call("PUT", "/applications/nosuchapp/eventFilter", {})
    assert status == 404 and "not found" in body["message"]
    status, body = await ari.call("PUT", FILTER, {"allowed": [{"kind": "StasisStart"}]})
    assert (status, body) == (400, {"message": "Invalid format definition"})
    assert SWAGGER.find_operation("PUT", FILTER) is not None


async def test_only_allowed_events_are_sent(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    status, _ = await ari.call("PUT", FILTER, {"allowed": allow("StasisStart", "StasisEnd")})
    assert status == 200
    caller = await sim.inbound_call(DID, CALLER, "Caller")
    await events.next("StasisStart", caller)
    status, _ = await ari.delete(f"/channels/{caller}")
    assert status == 204
    await events.next("StasisEnd", caller)
    # ChannelHangupRequest, ChannelVarset, ChannelDialplan... were all held back.
    assert set(types(events.events)) == {"StasisStart", "StasisEnd"}
    assert set(types(e["data"] for e in sim.event_log)) == {"StasisStart", "StasisEnd"}


async def test_disallowed_events_are_not_sent(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    status, _ = await ari.call("PUT", FILTER, {"disallowed": allow("ChannelVarset", "Dial")})
    assert status == 200
    caller = await sim.inbound_call(DID, CALLER, "Caller")
    await events.next("StasisStart", caller)
    leg = await ari.create("PJSIP/alice", originator=caller)
    await events.next("StasisStart", leg["id"])
    assert (await ari.post(f"/channels/{leg['id']}/dial", timeout="1"))[0] == 204
    await events.next("ChannelDestroyed", leg["id"])  # the dial timed out
    sent = set(types(events.events))
    assert {"StasisStart", "ChannelStateChange", "ChannelDestroyed"} <= sent
    assert not sent & {"ChannelVarset", "Dial"}


async def test_the_filter_outlives_a_reconnection_while_the_app_holds_a_channel(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    await ari.call("PUT", FILTER, {"allowed": allow("StasisStart", "StasisEnd")})
    caller = await sim.inbound_call(DID, CALLER, "Caller")
    await events.next("StasisStart", caller)
    await events.close()
    again = await ari.events()
    await clock.drive(sim.wait_connected("pbxd"))
    _, app = await ari.get("/applications/pbxd")
    assert app["events_allowed"] == allow("StasisStart", "StasisEnd")
    await ari.delete(f"/channels/{caller}")
    await again.next("StasisEnd", caller)
    assert types(again.events) == ["StasisEnd"]
    await again.close()


async def test_an_idle_app_forgets_its_filter_with_its_websocket(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    await ari.call("PUT", FILTER, {"allowed": allow("StasisStart")})
    await events.close()
    await clock.run_until(lambda: not sim.hub.is_active("pbxd"), within=5)
    again = await ari.events()
    await clock.drive(sim.wait_connected("pbxd"))
    _, app = await ari.get("/applications/pbxd")
    assert app["events_allowed"] == []
    await again.close()


async def test_an_asterisk_without_the_feature_answers_404_and_sends_everything(
    clock: VirtualClock,
) -> None:
    sim = AriSimulator(clock=clock, username=USER, password=SECRET, event_filter=False)
    lab(sim)
    await sim.start("127.0.0.1", 0)
    try:
        import aiohttp

        headers = {"Authorization": aiohttp.encode_basic_auth(USER, SECRET)}
        async with aiohttp.ClientSession(headers=headers) as session:
            ari = Ari(session, sim.base_url, clock)
            reader = await ari.events()
            await clock.drive(sim.wait_connected("pbxd"))
            status, body = await ari.call("PUT", FILTER, {"allowed": allow("StasisStart")})
            assert (status, body) == (404, {"message": "Resource not found"})
            caller = await sim.inbound_call(DID, CALLER, "Caller")
            await ari.delete(f"/channels/{caller}")
            await reader.next("StasisEnd", caller)
            assert {"ChannelHangupRequest", "StasisStart"} <= set(types(reader.events))
            await reader.close()
    finally:
        await sim.stop()
