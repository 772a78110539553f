"""The shipped scenario, played by `pbxd simulate` through the real daemon, speaks valid ARI.

Every REST answer and every event the simulator sent during the whole run validates against
Asterisk 22's Swagger models, and every request pbxd sent names only parameters the API
declares, with allowed values (e.g. a hangup `reason` Asterisk knows).
"""

from __future__ import annotations

import collections
import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

import pbxd.cli.simulate as simulate_cli
from pbxd.cli.main import main
from pbxd.sim import AriSimulator

from .swagger import Swagger, validate_run

REPO = Path(__file__).resolve().parents[2]

# What the morning at Acme must exercise for the validation to mean something.
EXPECTED_EVENT_TYPES = {
    "StasisStart",
    "StasisEnd",
    "ChannelDialplan",
    "ChannelConnectedLine",
    "ChannelStateChange",
    "Dial",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
    "ChannelHangupRequest",
    "ChannelDestroyed",
}
# Not BridgeDestroyed: calls give their bridge back for the next ones, and the stop destroys
# the idle bridges after its event stream closed (the capture replays validate that event).


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped configuration and scenarios in tmp_path, the working directory."""
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("routing", "scenarios", "sounds"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_DATABASE_URL", "PBXD_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def swagger() -> Swagger:
    return Swagger.load()


@pytest.fixture
def acme_run(example: Path, monkeypatch: pytest.MonkeyPatch) -> AriSimulator:
    """Play scenarios/acme-morning.yaml; returns the simulator with its logs."""
    made: list[AriSimulator] = []

    class RecordedSimulator(AriSimulator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # No event filter (an older Asterisk): every event type the morning causes is
            # sent, so all of them are validated, and pbxd runs on its fallback.
            super().__init__(*args, **{**kwargs, "event_filter": False})
            made.append(self)

    monkeypatch.setattr(simulate_cli, "AriSimulator", RecordedSimulator)
    db = f"sqlite:///{example / 'cdr.db'}"
    argv = ["simulate", "scenarios/acme-morning.yaml", "--database", db]
    assert main(argv) == 0
    assert len(made) == 1
    return made[0]


def test_the_shipped_scenario_is_valid_ari(acme_run: AriSimulator, swagger: Swagger) -> None:
    events, rest = acme_run.event_log, acme_run.rest_log
    types = collections.Counter(e["data"]["type"] for e in events)
    assert types.keys() >= EXPECTED_EVENT_TYPES, types
    assert types["StasisStart"] == types["StasisEnd"]
    # Every channel ends with a ChannelDestroyed, except callers that originated no leg
    # (rejected, closed): Asterisk 22 stops watching those at their StasisEnd.
    creates = [r["params"] for r in rest if r["path"] == "/channels/create" and r["status"] == 200]
    legs = {c.get("channelId") for c in creates}
    originators = {c.get("originator") for c in creates}
    lone = {
        e["data"]["channel"]["id"]
        for e in events
        if e["data"]["type"] == "StasisStart"
        and e["data"]["channel"]["id"] not in legs | originators
    }
    # The unknown number, the two closed calls, the sales line's overflow to voicemail
    # (its plan used up) and alice's call to Germany (refused before any channel).
    assert len(lone) == 5
    assert types["ChannelDestroyed"] == types["StasisEnd"] - len(lone)
    refused = [r for r in rest if r["path"] == "/applications/pbxd/eventFilter"]
    assert [r["status"] for r in refused] == [404]  # asked once; fell back to every event
    # carol's softphone registers at noon and drops at half past, as Asterisk reports it.
    assert types["EndpointStateChange"] == types["PeerStatusChange"] == 2
    assert types["ContactStatusChange"] == 2
    # pbxd never asks for a channel to an offline softphone: no 500 Allocation failed.
    assert collections.Counter(int(r["status"]) for r in rest)[500] == 0
    assert validate_run(swagger, rest, events) == []


def test_a_broken_event_or_answer_of_the_run_is_reported(
    acme_run: AriSimulator, swagger: Swagger
) -> None:
    events = copy.deepcopy(acme_run.event_log)
    rest = copy.deepcopy(acme_run.rest_log)
    destroyed = next(i for i, e in enumerate(events) if e["data"]["type"] == "ChannelDestroyed")
    del events[destroyed]["data"]["cause_txt"]
    created = next(i for i, r in enumerate(rest) if r["path"] == "/channels/create")
    rest[created]["body"]["state"] = "Rung"
    rest[created]["params"]["originater"] = "x"
    assert validate_run(swagger, rest, events) == [
        f"event #{destroyed} (ChannelDestroyed): ChannelDestroyed: missing required property"
        " 'cause_txt'",
        f"REST #{created}: POST /channels/create -> 200 Channel.state: 'Rung' not in"
        " ['Down', 'Rsrved', 'OffHook', 'Dialing', 'Ring', 'Ringing', 'Up', 'Busy',"
        " 'Dialing Offhook', 'Pre-ring', 'Unknown']",
        f"REST #{created}: POST /channels/create: unknown parameter 'originater'",
    ]
