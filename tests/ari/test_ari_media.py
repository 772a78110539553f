"""Media, recordings, presence and snoop in the ARI client: requests built as Asterisk 22 takes
them, answers and events parsed as the media captures (2026-12-03) show them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pbxd.ari import events as ev
from pbxd.ari.client import AriClient
from pbxd.ari.errors import AriConflict, AriError, AriNotFound, AriServerError
from pbxd.ari.models import Application, Channel, DeviceState, LiveRecording, StoredRecording

from .fakes import APP, PASSWORD, USERNAME, FakeAri

T = "2026-12-03T04:52:43.913+0000"
TARGET = "channel:1796273563.5252"
# Answers and events as voicemail_record, ivr_menu_dtmf and endpoint_presence recorded them.
LIVE = {"format": "wav", "name": "vm-test-1", "state": "recording", "target_uri": TARGET}
FINISHED = {
    "duration": 3,
    "format": "wav",
    "name": "vm-test-1",
    "silence_duration": 0,
    "state": "done",
    "talking_duration": 3,
    "target_uri": TARGET,
}
CAROL = {"channel_ids": [], "resource": "carol", "state": "online", "technology": "PJSIP"}
APPLICATION = {
    "bridge_ids": [],
    "channel_ids": [],
    "device_names": [],
    "endpoint_ids": ["PJSIP/carol"],
    "events_allowed": [],
    "events_disallowed": [],
    "name": "pbxd",
}
SNOOP = {
    "accountcode": "",
    "caller": {"name": "", "number": ""},
    "connected": {"name": "", "number": ""},
    "creationtime": "2026-12-03T04:53:16.173+0000",
    "dialplan": {"app_data": "", "app_name": "", "context": "default", "exten": "s", "priority": 1},
    "id": "1796273596.5257",
    "language": "en",
    "name": "Snoop/1796273594.5256-00000001",
    "protocol_id": "",
    "state": "Up",
}


def _event(event_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "timestamp": T,
        "application": "pbxd",
        "asterisk_id": "02:fc:00:00:00:01",
        **fields,
    }


@pytest.fixture
async def client(fake_ari: FakeAri) -> AsyncIterator[AriClient]:
    async with AriClient(fake_ari.base_url, USERNAME, PASSWORD, APP) as ari:
        yield ari


# ------------------------------------------------------------------------------ events
def test_recording_events_carry_the_durations_and_the_channel() -> None:
    started = ev.parse_event(_event("RecordingStarted", recording=LIVE))
    assert isinstance(started, ev.RecordingStarted)
    assert started.recording.duration is None and started.channel_ids() == ("1796273563.5252",)
    finished = ev.parse_event(_event("RecordingFinished", recording=FINISHED))
    assert isinstance(finished, ev.RecordingFinished)
    rec = finished.recording
    assert (rec.state, rec.duration, rec.talking_duration, rec.silence_duration) == (
        "done",
        3,
        3,
        0,
    )
    failed = ev.parse_event(_event("RecordingFailed", recording={**LIVE, "state": "failed"}))
    assert isinstance(failed, ev.RecordingFailed) and failed.recording.state == "failed"


def test_a_recording_event_without_its_name_is_refused() -> None:
    bad = {k: v for k, v in LIVE.items() if k != "name"}
    with pytest.raises(Exception, match="name"):
        ev.parse_event(_event("RecordingStarted", recording=bad))


def test_playback_continuing_names_the_next_medium() -> None:
    playback = {
        "id": "list-1",
        "language": "en",
        "media_uri": "sound:pbxd-beep",
        "next_media_uri": "sound:pbxd-beep",
        "state": "continuing",
        "target_uri": "channel:c1",
    }
    event = ev.parse_event(_event("PlaybackContinuing", playback=playback))
    assert isinstance(event, ev.PlaybackContinuing)
    assert event.playback.next_media_uri == "sound:pbxd-beep"
    assert event.channel_ids() == ("c1",)


def test_presence_events() -> None:
    state = ev.parse_event(_event("EndpointStateChange", endpoint=CAROL))
    assert isinstance(state, ev.EndpointStateChange) and state.endpoint.state == "online"
    assert state.channel_ids() == ()
    peer = ev.parse_event(
        _event("PeerStatusChange", endpoint=CAROL, peer={"peer_status": "Reachable"})
    )
    assert isinstance(peer, ev.PeerStatusChange) and peer.peer.peer_status == "Reachable"
    contact = ev.parse_event(
        _event(
            "ContactStatusChange",
            endpoint=CAROL,
            contact_info={
                "aor": "carol",
                "contact_status": "NonQualified",
                "roundtrip_usec": "0",
                "uri": "sip:carol@127.0.0.4:5074",
            },
        )
    )
    assert isinstance(contact, ev.ContactStatusChange)
    assert contact.contact_info.roundtrip_usec == "0"  # a string, as Asterisk sends it
    device = ev.parse_event(
        _event(
            "DeviceStateChanged",
            device_state={"name": "Stasis:pbxd-presence-alice", "state": "INUSE"},
        )
    )
    assert isinstance(device, ev.DeviceStateChanged)
    assert device.device_state == DeviceState("Stasis:pbxd-presence-alice", "INUSE")


def test_a_peer_event_without_its_status_is_refused() -> None:
    with pytest.raises(Exception, match="peer_status"):
        ev.parse_event(_event("PeerStatusChange", endpoint=CAROL, peer={}))


# ------------------------------------------------------------------------------ client
async def test_play_with_our_own_id_in_the_path(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(
        201,
        {
            "id": "menu-1",
            "language": "fr",
            "media_uri": "sound:pbxd-prompt-menu",
            "state": "queued",
            "target_uri": "channel:c.1",
        },
    )
    playback = await client.play_with_id("c.1", "menu-1", ["sound:a", "sound:b"], lang="fr")
    assert playback.id == "menu-1" and playback.channel_id == "c.1"
    sent = fake_ari.requests[0]
    assert (sent.method, sent.path) == ("POST", "/channels/c.1/play/menu-1")
    assert sent.query == {"media": "sound:a,sound:b", "lang": "fr"}


async def test_playback_get_and_stop(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(404, {"message": "Playback not found"})
    with pytest.raises(AriNotFound, match="Playback not found"):
        await client.get_playback("menu-1")
    await client.stop_playback("menu-1")
    assert [(r.method, r.path) for r in fake_ari.requests] == [
        ("GET", "/playbacks/menu-1"),
        ("DELETE", "/playbacks/menu-1"),
    ]


async def test_record_sends_asterisk_parameter_names(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(201, LIVE)
    recording = await client.record(
        "c.1",
        "vm-test-1",
        max_duration_seconds=10,
        max_silence_seconds=3,
        if_exists="overwrite",
        beep=False,
        terminate_on="#",
    )
    assert isinstance(recording, LiveRecording) and recording.state == "recording"
    assert fake_ari.requests[0].path == "/channels/c.1/record"
    assert fake_ari.requests[0].query == {
        "name": "vm-test-1",
        "format": "wav",
        "maxDurationSeconds": "10",
        "maxSilenceSeconds": "3",
        "ifExists": "overwrite",
        "beep": "false",
        "terminateOn": "#",
    }
    message = "Recording 'vm-test-1' already exists and can not be overwritten"
    fake_ari.respond(409, {"message": message})
    with pytest.raises(AriConflict, match="already exists"):
        await client.record("c.1", "vm-test-1")


async def test_live_and_stored_recordings(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, LIVE)
    assert (await client.get_live_recording("vm-test-1")).name == "vm-test-1"
    await client.stop_recording("vm-test-1")
    await client.cancel_recording("vm-test-2")
    fake_ari.respond(200, [{"format": "wav", "name": "vm-test-1"}])
    assert await client.list_stored_recordings() == [StoredRecording("vm-test-1", "wav")]
    fake_ari.respond(200, {"format": "wav", "name": "vm-test-1"})
    assert (await client.get_stored_recording("vm-test-1")).format == "wav"
    fake_ari.respond(200, {"format": "wav", "name": "vm/copy"})
    copied = await client.copy_stored_recording("vm-test-1", "vm/copy")
    assert copied.name == "vm/copy"
    await client.delete_stored_recording("vm-test-1")
    assert [(r.method, r.path, r.query) for r in fake_ari.requests] == [
        ("GET", "/recordings/live/vm-test-1", {}),
        ("POST", "/recordings/live/vm-test-1/stop", {}),
        ("DELETE", "/recordings/live/vm-test-2", {}),
        ("GET", "/recordings/stored", {}),
        ("GET", "/recordings/stored/vm-test-1", {}),
        ("POST", "/recordings/stored/vm-test-1/copy", {"destinationRecordingName": "vm/copy"}),
        ("DELETE", "/recordings/stored/vm-test-1", {}),
    ]


async def test_stored_file_is_bytes_with_a_size_cap(fake_ari: FakeAri, client: AriClient) -> None:
    wav = b"RIFF" + bytes(49480)
    fake_ari.respond(200, wav)
    assert await client.stored_recording_file("vm-test-1") == wav
    fake_ari.respond(200, wav)
    with pytest.raises(AriError, match="exceeds 1000"):
        await client.stored_recording_file("vm-test-1", max_bytes=1000)
    fake_ari.respond(404, {"message": "Recording not found"})
    with pytest.raises(AriNotFound, match="Recording not found"):
        await client.stored_recording_file("vm-test-1")
    assert fake_ari.requests[0].path == "/recordings/stored/vm-test-1/file"


async def test_snoop_answers_a_channel(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, SNOOP)
    snoop = await client.snoop("c.1", spy="none", whisper="out", app_args="whisper")
    assert isinstance(snoop, Channel) and snoop.name.startswith("Snoop/")
    sent = fake_ari.requests[0]
    assert sent.path == "/channels/c.1/snoop"
    assert sent.query == {"app": "pbxd", "appArgs": "whisper", "spy": "none", "whisper": "out"}


async def test_subscriptions(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, APPLICATION)
    app = await client.subscribe("endpoint:PJSIP/carol")
    assert isinstance(app, Application) and app.endpoint_ids == ("PJSIP/carol",)
    fake_ari.respond(200, {**APPLICATION, "endpoint_ids": []})
    assert (await client.unsubscribe("endpoint:PJSIP/carol")).endpoint_ids == ()
    assert [(r.method, r.path, r.query) for r in fake_ari.requests] == [
        ("POST", "/applications/pbxd/subscription", {"eventSource": "endpoint:PJSIP/carol"}),
        ("DELETE", "/applications/pbxd/subscription", {"eventSource": "endpoint:PJSIP/carol"}),
    ]


async def test_device_states_encode_the_slash(fake_ari: FakeAri, client: AriClient) -> None:
    fake_ari.respond(200, {"name": "PJSIP/alice", "state": "NOT_INUSE"})
    assert (await client.get_device_state("PJSIP/alice")).state == "NOT_INUSE"
    assert "/deviceStates/PJSIP%2Falice" in fake_ari.requests[0].url
    fake_ari.respond(409, {"message": "Uncontrolled device specified"})
    with pytest.raises(AriConflict):
        await client.set_device_state("PJSIP/alice", "BUSY")
    fake_ari.respond(500, {"message": "Unknown device"})
    with pytest.raises(AriServerError):
        await client.set_device_state("Stasis:x", "NOSUCHSTATE")
    await client.set_device_state("Stasis:x", "INUSE")
    assert fake_ari.requests[-1].query == {"deviceState": "INUSE"}
    await client.delete_device_state("Stasis:x")
    fake_ari.respond(200, [{"name": "Stasis:x", "state": "INUSE"}])
    assert await client.list_device_states() == [DeviceState("Stasis:x", "INUSE")]
    assert fake_ari.requests[-2].method == "DELETE"
