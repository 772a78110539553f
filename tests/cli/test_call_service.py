"""CallService, the call path `pbxd run` starts: an event stream that dies is restarted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from pbxd.ari.stream import EventStream
from pbxd.calls.runtime import AriEndpoint, CallService
from pbxd.cdr.store import CdrStore
from pbxd.clock import RealClock
from pbxd.config.compile import compile_config
from pbxd.sim import AriSimulator, PeerScript
from tests.classic_example import copy_example, open_round_the_clock

REPO = Path(__file__).resolve().parents[2]
WITHIN = 20.0  # generous: bounds waits on a loaded machine, asserts no speed


@pytest.fixture
def logs() -> Any:
    # An earlier in-process command may have left a level filter that drops lines.
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as captured:
        yield captured


@pytest.fixture
async def sim() -> AsyncIterator[AriSimulator]:
    simulator = AriSimulator()
    for endpoint in ("trunk-in", "trunk-out", "trunk-uk", "alice", "bob"):
        simulator.add_endpoint("PJSIP", endpoint)
    simulator.script("PJSIP/alice", PeerScript(answer_after=0.1))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_an_event_stream_that_dies_after_start_is_logged_and_restarted(
    sim: AriSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: list[dict[str, Any]],
) -> None:
    example = tmp_path / "example"
    copy_example(example)
    open_round_the_clock(example)  # the reception rings whatever the hour of the run
    compiled = compile_config(example / "pbxd.yaml")
    assert compiled.config is not None
    real_run = EventStream.run
    runs = 0
    kill_stream = asyncio.Event()

    async def dies_once(stream: EventStream) -> None:
        """The first run reads events normally, then fails as an unforeseen bug would."""
        nonlocal runs
        runs += 1
        if runs > 1:
            await real_run(stream)
            return
        reader = asyncio.create_task(real_run(stream))
        await kill_stream.wait()
        await stream.stop()  # the real reader goes away with its WebSocket ...
        await reader
        stream._stopping = False  # ... but nobody asked it to stop: run() just died
        raise RuntimeError("event reader bug")

    monkeypatch.setattr(EventStream, "run", dies_once)
    store = await CdrStore.open(f"sqlite:///{tmp_path / 'cdr.db'}")
    service = CallService(
        compiled.config,
        AriEndpoint(sim.base_url, "pbxd", "pbxd-secret", "pbxd"),
        store,
        RealClock(),
    )
    try:
        async with asyncio.timeout(WITHIN):
            await service.start()
            kill_stream.set()
            assert service.stream is not None
            # Polling: the stream offers no event for "connected again".
            while service.stream.connections < 2 or not service.stream.connected:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await sim.wait_connected("pbxd")
        assert runs == 2 and service.stream.connections == 2
        [failure] = [e for e in logs if e["event"] == "ari event stream died; restarting it"]
        assert failure["log_level"] == "error"
        assert isinstance(failure["exc_info"], RuntimeError)
        assert failure["error"] == "RuntimeError('event reader bug')"
        assert failure["failures"] == 1 and service.stream_failures == 1

        # Not deaf: a call placed now is answered and bridged.
        caller = await sim.inbound_call("+33170000001", "+33612000001", "Jean")
        assert service.daemon is not None
        calls = service.daemon.calls
        async with asyncio.timeout(WITHIN):
            # The simulator's bridge fills a moment before pbxd reads addChannel's answer.
            while not any(len(b.channels) == 2 for b in sim.bridges) or (  # noqa: ASYNC110
                caller in calls and calls[caller].state != "bridged"
            ):
                await asyncio.sleep(0.01)
        assert calls[caller].state == "bridged"
        sim.hangup(caller)
        async with asyncio.timeout(WITHIN):
            await sim.wait_until_idle()
            await service.daemon.wait_idle()
    finally:
        await service.stop()
        await store.close()
    assert runs == 2


async def test_stop_during_the_restart_delay_returns_at_once(
    sim: AriSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: list[dict[str, Any]],
) -> None:
    compiled = compile_config(REPO / "pbxd.yaml")
    assert compiled.config is not None
    real_run = EventStream.run
    runs = 0

    async def always_dies_after_connecting(stream: EventStream) -> None:
        nonlocal runs
        runs += 1
        reader = asyncio.create_task(real_run(stream))
        await stream.wait_connected()
        await stream.stop()
        await reader
        stream._stopping = False
        raise RuntimeError(f"event reader bug #{runs}")

    monkeypatch.setattr(EventStream, "run", always_dies_after_connecting)
    monkeypatch.setattr("pbxd.calls.runtime.STREAM_RESTART_S", 3600.0)
    store = await CdrStore.open(f"sqlite:///{tmp_path / 'cdr.db'}")
    service = CallService(
        compiled.config,
        AriEndpoint(sim.base_url, "pbxd", "pbxd-secret", "pbxd"),
        store,
        RealClock(),
    )
    try:
        async with asyncio.timeout(WITHIN):
            await service.start()
            while service.stream_failures < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        async with asyncio.timeout(WITHIN):  # not the hour-long restart delay
            await service.stop()
        await store.close()
    assert runs == 1
    [failure] = [e for e in logs if e["event"] == "ari event stream died; restarting it"]
    assert failure["restart_in_s"] == 3600.0
