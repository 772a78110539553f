"""Two simulators tell themselves apart as two Asterisk servers do: entity id (every event's
`asterisk_id`) and system name (`GET /asterisk/info` config.name, the prefix of channel ids)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from pbxd.ari.models import AsteriskInfo
from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator

from .conftest import SECRET, SWAGGER, USER, Ari, lab, validate_run

LYON_ID = "02:fc:00:00:00:02"


@pytest.fixture
async def lyon(clock: VirtualClock) -> AsyncIterator[AriSimulator]:
    simulator = AriSimulator(clock, USER, SECRET, asterisk_id=LYON_ID, system_name="ast-lyon")
    lab(simulator)
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.stop()
    assert validate_run(SWAGGER, simulator.rest_log, simulator.event_log, requests=False) == []


async def test_a_named_simulator_reports_its_identity_everywhere(
    lyon: AriSimulator, clock: VirtualClock
) -> None:
    headers = {"Authorization": aiohttp.encode_basic_auth(USER, SECRET)}
    async with aiohttp.ClientSession(headers=headers) as session:
        ari = Ari(session, lyon.base_url, clock)
        status, body = await ari.get("/asterisk/info")
        assert status == 200
        info = AsteriskInfo.from_json(body)
        assert (info.entity_id, info.system_name, info.server) == (LYON_ID, "ast-lyon", "ast-lyon")
        assert (await ari.get("/asterisk/ping"))[1]["asterisk_id"] == LYON_ID  # type: ignore[index]
        reader = await ari.events()
        await clock.drive(lyon.wait_connected("pbxd"))
        call_id = await lyon.inbound_call("+33170000001", "+33612000001", "Jean")
        assert call_id.startswith("ast-lyon-")
        event = await reader.next("StasisStart", call_id)
        assert event["asterisk_id"] == LYON_ID
        channel = await ari.create("PJSIP/alice")
        assert str(channel["id"]).startswith("ast-lyon-")  # type: ignore[index]
        await reader.close()


async def test_an_unnamed_simulator_is_known_by_its_entity_id(sim: AriSimulator, ari: Ari) -> None:
    status, body = await ari.get("/asterisk/info")
    info = AsteriskInfo.from_json(body)
    assert status == 200 and body["config"]["name"] == ""  # type: ignore[index]
    assert (info.system_name, info.server) == (None, "02:fc:00:00:00:01")
    channel = await ari.create("PJSIP/alice")
    assert "-" not in str(channel["id"])  # type: ignore[index]
