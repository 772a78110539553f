"""CallDaemon without a network: fallback to the dialplan, trunk limits, bad events."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from pbxd.ari import AriNotFound, parse_event
from pbxd.calls import daemon as daemon_module
from pbxd.calls.daemon import CallDaemon
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.clock import RealClock
from pbxd.config.compile import compile_config

REPO = Path(__file__).resolve().parents[2]


class FakeAri:
    """Records the requests the daemon makes."""

    app = "pbxd"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    async def continue_in_dialplan(self, channel_id: str, **kwargs: Any) -> None:
        self.requests.append(("continue", channel_id, kwargs))

    async def hangup(self, channel_id: str, **kwargs: Any) -> None:
        self.requests.append(("hangup", channel_id, kwargs))

    async def subscribe(self, event_source: Any) -> None:
        """Endpoint events: none ever come from this Asterisk."""

    async def list_endpoints(self) -> list[Any]:
        return []


class NullCdr:
    def record_call(self, record: CallRecord) -> None:
        pass

    def record_leg(self, record: LegRecord) -> None:
        pass

    async def open_calls(self) -> list[CallRecord]:
        return []

    async def legs_of(self, call_id: str) -> list[LegRecord]:
        return []


def stasis_start(channel_id: str, args: list[str] | None = None) -> Any:
    return parse_event(
        {
            "type": "StasisStart",
            "application": "pbxd",
            "timestamp": "2026-11-23T19:02:21.212+0000",
            "args": args or [],
            "channel": {
                "id": channel_id,
                "name": "PJSIP/trunk-in-0000001c",
                "state": "Ring",
                "caller": {"name": "", "number": "+33612000001"},
                "connected": {"name": "", "number": ""},
                "accountcode": "",
                "creationtime": "2026-11-23T19:02:21.211+0000",
                "language": "en",
                "dialplan": {
                    "context": "from-trunk",
                    "exten": "+33170000001",
                    "priority": 1,
                    "app_name": "Stasis",
                    "app_data": "pbxd",
                },
            },
        }
    )


@pytest.fixture
def daemon() -> tuple[CallDaemon, FakeAri]:
    config = compile_config(REPO / "pbxd.yaml").config
    assert config is not None
    ari = FakeAri()
    return CallDaemon(config, ari, NullCdr(), RealClock()), ari  # type: ignore[arg-type]


async def test_a_failure_to_set_up_a_call_returns_it_to_the_dialplan(
    daemon: tuple[CallDaemon, FakeAri], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, ari = daemon

    def broken(*_: object) -> None:
        raise RuntimeError("routing bug")

    monkeypatch.setattr(daemon_module, "plan_call", broken)
    with structlog.testing.capture_logs() as logs:
        calls.on_event(stasis_start("1.1"))
        await calls.wait_idle()
    assert ari.requests == [("continue", "1.1", {"label": "unavailable"})]
    assert calls.bad_events == 1
    assert any(entry["event"] == "event handling failed" for entry in logs)


async def test_an_orphan_leg_of_a_previous_run_is_hung_up(
    daemon: tuple[CallDaemon, FakeAri],
) -> None:
    calls, ari = daemon
    calls.on_event(stasis_start("9.9-1", ["pbxd-leg", "9.9"]))
    await calls.wait_idle()
    assert ari.requests == [("hangup", "9.9-1", {"reason": "normal"})]
    assert calls.calls == {}


def test_trunk_leg_limit(daemon: tuple[CallDaemon, FakeAri]) -> None:
    calls, _ = daemon
    limit = calls.config.trunks["carrier-uk"].max_outbound_legs
    assert [calls.take_trunk_slot("carrier-uk") for _ in range(limit + 1)] == [True] * limit + [
        False
    ]
    calls.give_trunk_slot("carrier-uk")
    assert calls.trunk_legs("carrier-uk") == limit - 1
    assert calls.take_trunk_slot("carrier-uk") is True
    assert calls.take_trunk_slot("no-such-trunk") is False


async def test_events_of_other_apps_and_bad_events_are_ignored(
    daemon: tuple[CallDaemon, FakeAri],
) -> None:
    calls, ari = daemon
    other = stasis_start("2.2")
    object.__setattr__(other, "application", "someone-else")
    calls.on_event(other)
    calls.on_bad_event("{not json", ValueError("bad"))
    await asyncio.sleep(0)
    assert ari.requests == [] and calls.calls == {} and calls.bad_events == 1


class OpenCallsCdr(NullCdr):
    """Two calls left open by a previous run; the first one's legs cannot be read."""

    def __init__(self) -> None:
        self.written: list[CallRecord] = []

    async def open_calls(self) -> list[CallRecord]:
        start = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
        return [
            CallRecord(call_id="1.1", did="+33170000001", started_at=start),
            CallRecord(call_id="2.2", did="+33170000001", started_at=start),
        ]

    async def legs_of(self, call_id: str) -> list[LegRecord]:
        if call_id == "1.1":
            raise RuntimeError("corrupt row")
        return []

    def record_call(self, record: CallRecord) -> None:
        self.written.append(record)


class GoneAri(FakeAri):
    async def get_channel(self, channel_id: str) -> None:
        raise AriNotFound(404, "Channel not found", "GET", f"/channels/{channel_id}")

    async def destroy_bridge(self, bridge_id: str) -> None:
        raise AriNotFound(404, "Bridge not found", "DELETE", f"/bridges/{bridge_id}")


async def test_one_bad_open_call_does_not_stop_the_recovery_of_the_others() -> None:
    config = compile_config(REPO / "pbxd.yaml").config
    assert config is not None
    cdr = OpenCallsCdr()
    calls = CallDaemon(config, GoneAri(), cdr, RealClock())  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        await calls.on_connected()
    assert calls.recovered.is_set()
    assert [(r.call_id, r.disposition, r.ended_at is not None) for r in cdr.written] == [
        ("2.2", Disposition.FAILED, True)
    ]
    assert [e["call_id"] for e in logs if e["event"] == "recovery of a call failed"] == ["1.1"]


class RingingCallerAri(FakeAri):
    """Asterisk still has the caller of call 3.3, ringing; nothing else."""

    async def get_channel(self, channel_id: str) -> Any:
        if channel_id != "3.3":
            raise AriNotFound(404, "Channel not found", "GET", f"/channels/{channel_id}")
        return stasis_start("3.3").channel


class OneRingingCallCdr(NullCdr):
    async def open_calls(self) -> list[CallRecord]:
        start = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
        return [
            CallRecord(
                call_id="3.3",
                did="+33170000001",
                started_at=start,
                route="main-line",
                strategy="ringall",
            )
        ]


async def test_a_ringing_caller_whose_recovery_fails_goes_to_the_dialplan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nobody would drive it otherwise: it would ring in Stasis until the caller gives up.
    config = compile_config(REPO / "pbxd.yaml").config
    assert config is not None
    ari = RingingCallerAri()
    calls = CallDaemon(config, ari, OneRingingCallCdr(), RealClock())  # type: ignore[arg-type]

    def broken(*_: object) -> None:
        raise RuntimeError("routing bug")

    monkeypatch.setattr(daemon_module, "plan_call", broken)
    with structlog.testing.capture_logs() as logs:
        await calls.on_connected()
    assert ari.requests == [("continue", "3.3", {"label": "unavailable"})]
    assert calls.calls == {}
    assert [e["call_id"] for e in logs if e["event"] == "recovery of a call failed"] == ["3.3"]


@pytest.mark.parametrize(
    ("channel_id", "app_data", "ours"),
    [
        ("1795460593.239-2", "pbxd", True),  # `<call id>-<n>`
        ("1795460593.239", "pbxd,pbxd-leg,1795460593.239", True),  # its Stasis args
        ("1795460593.239", "pbxd", False),  # an inbound caller
        ("5cce98c0-2f3f-41c1-a215-116869085123", "pbxd", False),  # a UUID ending in digits
        ("1795460593.239", "pbxd,+33612000001", False),  # a caller with args of its own
    ],
)
def test_the_sweep_tells_our_legs_from_callers(channel_id: str, app_data: str, ours: bool) -> None:
    channel = stasis_start(channel_id).channel
    channel = replace(channel, dialplan=replace(channel.dialplan, app_data=app_data))
    assert daemon_module._is_our_leg(channel) is ours


def test_a_swept_caller_keeps_its_stasis_args() -> None:
    channel = stasis_start("1795460593.239").channel
    assert daemon_module._stasis_args(channel) == ()
    channel = replace(channel, dialplan=replace(channel.dialplan, app_data="pbxd,withheld,x"))
    assert daemon_module._stasis_args(channel) == ("withheld", "x")
    channel = replace(channel, dialplan=replace(channel.dialplan, app_name="Dial"))
    assert daemon_module._stasis_args(channel) == ()
