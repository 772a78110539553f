"""The collector through pbxd's ARI client against the simulator's stored recordings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pbxd.ari.client import AriClient
from pbxd.sim import AriSimulator
from pbxd.sim.media import wav_bytes
from pbxd.voicemail.collector import AriRecordings, RecordingCollector
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageStore

from .conftest import T0, ManualClock

DID = "+33170000001"


@pytest.fixture
async def sim() -> AsyncIterator[AriSimulator]:
    simulator = AriSimulator()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def message(recording: str) -> Message:
    return Message(recording, DID, "1733.42", T0, 3, "reception", "+33612345678")


async def test_a_stored_recording_is_copied_off_asterisk_and_deleted_there(
    sim: AriSimulator, tmp_path: Path, clock: ManualClock
) -> None:
    sim.recordings.add_stored("vm-1733.42", 3.0)
    async with AriClient(sim.base_url, "pbxd", "pbxd-secret", "pbxd") as client:
        collector = RecordingCollector(MessageStore(tmp_path), AriRecordings(client), clock)
        await collector.keep("vm-1733.42", message("vm-1733.42"), email=None, timezone="UTC")
        assert await collector.collect_due() == 1
    assert collector.store.audio(DID, "vm-1733.42") == wav_bytes(3.0)
    assert "vm-1733.42" not in sim.recordings.stored


async def test_asterisk_restarting_is_retried_and_loses_nothing(
    sim: AriSimulator, tmp_path: Path, clock: ManualClock
) -> None:
    sim.recordings.add_stored("vm-1", 2.0)
    port = urlsplit(sim.base_url).port
    assert port is not None
    async with AriClient(sim.base_url, "pbxd", "pbxd-secret", "pbxd", timeout=2) as client:
        collector = RecordingCollector(MessageStore(tmp_path), AriRecordings(client), clock)
        await sim.stop()  # Asterisk's HTTP side goes away
        await collector.keep("vm-1", message("vm-1"), email=None, timezone="UTC")
        assert await collector.collect_due() == 0
        assert len(collector.pending()) == 1
        await sim.start(port=port)
        await clock.advance(5)
        assert await collector.collect_due() == 1
    assert collector.store.audio(DID, "vm-1") == wav_bytes(2.0)
    assert sim.recordings.stored == {}
