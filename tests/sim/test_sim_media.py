"""The simulator's media: prompts and their lengths, early media, keys, recordings and stored
files, as the Asterisk 22 media traces show them (README of captures/media)."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import pytest

from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator, PeerScript
from pbxd.sim.media import Outcome, SoundLibrary, wav_bytes

from .conftest import Ari, EventReader

DID, CALLER = "+33170000003", "+33612000001"


async def incoming(sim: AriSimulator, events: EventReader, **kw: Any) -> str:
    caller = await sim.inbound_call(DID, CALLER, "Caller", **kw)
    await events.next("StasisStart", caller)
    return caller


async def answered(sim: AriSimulator, ari: Ari, events: EventReader, **kw: Any) -> str:
    """An inbound call, answered by the app."""
    caller = await incoming(sim, events, **kw)
    await ari.post(f"/channels/{caller}/answer")
    return caller


async def finished(events: EventReader, playback_id: str) -> dict[str, Any]:
    event = await events.next(
        "PlaybackFinished", where=lambda e: e["playback"]["id"] == playback_id, within=10
    )
    return dict(event["playback"])


def write_wav(path: Path, seconds: float) -> None:
    """A mono 8 kHz 16-bit WAV of silence, as a sounds folder holds prompts."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(2 * round(8000 * seconds)))


# ------------------------------------------------------------------------------ sounds
def test_sound_lengths_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "custom").mkdir()
    write_wav(tmp_path / "custom" / "acme-welcome.wav", 1.5)
    (tmp_path / "closed.sln").write_bytes(bytes(8000))  # 0.5 s of 8 kHz signed linear
    (tmp_path / "broken.wav").write_bytes(b"not a wav")
    (tmp_path / "notes.txt").write_text("not a sound")
    sounds = SoundLibrary({})
    assert sorted(sounds.scan(tmp_path)) == ["closed", "custom/acme-welcome"]
    assert sounds.seconds("custom/acme-welcome") == pytest.approx(1.5)
    assert sounds.length("sound:closed").seconds == pytest.approx(0.5)
    assert sounds.length("sound:broken").outcome is Outcome.FAILS


def test_media_outcomes() -> None:
    sounds = SoundLibrary()
    assert sounds.length("sound:pbxd-prompt-menu").seconds == 5.0
    assert sounds.length("sound:pbxd-no-such-prompt").outcome is Outcome.FAILS
    assert sounds.length("tone:!1000/400").outcome is Outcome.FOREVER
    assert sounds.length("tone:ring").outcome is Outcome.FOREVER
    assert sounds.length("tone:beep").outcome is Outcome.FAILS  # no such indication
    assert sounds.length("nosuchscheme:x").outcome is Outcome.VANISHES
    assert sounds.length("recording:vm-1").outcome is Outcome.FAILS
    assert sounds.length("recording:vm-1", 3.5).seconds == 3.5
    sounds.add("sound:custom/x", 7)
    assert sounds.length("sound:custom/x").seconds == 7.0
    with pytest.raises(ValueError):
        sounds.add("y", -1)


def test_wav_bytes_are_a_real_wav() -> None:
    data = wav_bytes(3.09, tone_hz=440)
    assert len(data) == 44 + 49440  # the size voicemail_record's 3.09 s message had
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
        assert wav.getnframes() == 24720


# ------------------------------------------------------------------------------ playbacks
async def test_added_sound_plays_its_length(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    sim.add_sound("custom/acme-closed", 3.0)
    caller = await answered(sim, ari, events)
    t0 = clock.monotonic()
    status, playback = await ari.post(
        f"/channels/{caller}/play/p1", media="sound:custom/acme-closed"
    )
    assert status == 201 and playback["id"] == "p1"
    assert (await finished(events, "p1"))["state"] == "done"
    assert 2.9 <= clock.monotonic() - t0 <= 3.6


async def test_missing_sound_fails_at_once_and_unknown_scheme_vanishes(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events)
    await ari.post(f"/channels/{caller}/play/missing", media="sound:nope")
    assert (await finished(events, "missing"))["state"] == "failed"
    await ari.post(f"/channels/{caller}/play/bad", media="nosuchscheme:x")
    await events.next("PlaybackStarted", where=lambda e: e["playback"]["id"] == "bad")
    assert (await ari.get("/playbacks/bad"))[0] == 404
    await ari.post(f"/channels/{caller}/play/next", media="sound:pbxd-beep")
    assert (await finished(events, "next"))["state"] == "done"  # the queue went on
    assert not [e for e in events.events if e.get("playback", {}).get("id") == "bad"][1:]


async def test_several_media_continue_with_the_next_uri(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events)
    await ari.post(f"/channels/{caller}/play/l", media="sound:pbxd-beep,sound:pbxd-prompt-welcome")
    await finished(events, "l")
    seen = [
        (e["type"], e["playback"]["media_uri"], e["playback"].get("next_media_uri"))
        for e in events.events
        if e["type"].startswith("Playback")
    ]
    assert seen == [
        ("PlaybackStarted", "sound:pbxd-beep", "sound:pbxd-prompt-welcome"),
        ("PlaybackContinuing", "sound:pbxd-beep", "sound:pbxd-prompt-welcome"),
        ("PlaybackStarted", "sound:pbxd-prompt-welcome", None),
        ("PlaybackFinished", "sound:pbxd-prompt-welcome", None),
    ]


async def test_greeting_as_early_media_does_not_answer(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await incoming(sim, events)
    await ari.post(f"/channels/{caller}/play/early", media="sound:pbxd-prompt-welcome")
    assert (await finished(events, "early"))["state"] == "done"
    status, channel = await ari.get(f"/channels/{caller}")
    assert status == 200 and channel["state"] == "Ring"
    await ari.post(f"/channels/{caller}/ring")
    chan = sim.channel(caller)
    assert chan is not None and chan.early_media and not chan.answered
    assert [(h.media_uri, h.early, h.complete) for h in chan.heard] == [
        ("sound:pbxd-prompt-welcome", True, True)
    ]
    assert chan.heard[0].seconds == pytest.approx(2.0, abs=0.3)
    await ari.delete(f"/channels/{caller}", reason="normal")
    await events.next("StasisEnd", caller)
    # 100 Trying, 183 with the prompt, 183 again for `ring`, 603 Decline for reason normal.
    assert chan.sip_responses == [100, 183, 183, 603]
    assert sim.channel(caller) is None and sim.channel_history(caller) is chan
    assert not [e for e in events.of(caller) if e["type"] == "ChannelStateChange"]


async def test_ring_then_answer_is_180_then_200(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await incoming(sim, events)
    await ari.post(f"/channels/{caller}/ring")
    await ari.post(f"/channels/{caller}/answer")
    await ari.post(f"/channels/{caller}/play/p", media="sound:pbxd-beep")
    await finished(events, "p")
    chan = sim.channel(caller)
    assert chan is not None and chan.sip_responses == [100, 180, 200]
    assert not chan.early_media and [h.early for h in chan.heard] == [False]


async def test_hangup_mid_prompt_fails_the_playback(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events, hangup_after=1.0)
    await ari.post(f"/channels/{caller}/play/menu", media="sound:pbxd-prompt-menu")
    assert (await finished(events, "menu"))["state"] == "failed"
    order = [e["type"] for e in events.events if e["type"] != "ChannelStateChange"]
    assert order.index("ChannelHangupRequest") < order.index("PlaybackFinished")
    assert order.index("PlaybackFinished") < order.index("StasisEnd")


# ------------------------------------------------------------------------------- keys
async def test_callers_press_keys_at_given_times(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    script = PeerScript(keys=((0.5, "1"), (1.5, "#")))
    caller = await answered(sim, ari, events, script=script)
    await events.next("ChannelDtmfReceived", caller, where=lambda e: e["digit"] == "#")
    keys = [e for e in events.of(caller) if e["type"] == "ChannelDtmfReceived"]
    assert [(k["digit"], k["duration_ms"]) for k in keys] == [("1", 160), ("#", 160)]


# ------------------------------------------------------------------------------ recordings
async def record(ari: Ari, caller: str, name: str, **params: str) -> tuple[int, Any]:
    params.setdefault("format", "wav")
    return await ari.post(f"/channels/{caller}/record", name=name, **params)


async def recording_finished(events: EventReader, name: str) -> dict[str, Any]:
    event = await events.next(
        "RecordingFinished", where=lambda e: e["recording"]["name"] == name, within=15
    )
    return dict(event["recording"])


async def test_silence_ends_a_message_and_keeps_200_ms(
    sim: AriSimulator, ari: Ari, events: EventReader, clock: VirtualClock
) -> None:
    caller = await answered(sim, ari, events, script=PeerScript(talk=2.5))
    t0 = clock.monotonic()
    status, live = await record(ari, caller, "vm-1", maxSilenceSeconds="3", terminateOn="#")
    assert status == 201 and live["state"] in ("queued", "recording")
    done = await recording_finished(events, "vm-1")
    assert 5.4 <= clock.monotonic() - t0 <= 6.5  # 2.5 s of talk, then 3 s of silence
    assert (done["state"], done["duration"], done["talking_duration"]) == ("done", 2, 2)
    assert done["silence_duration"] == 0
    assert sim.recordings.stored["vm-1"].seconds == pytest.approx(2.7, abs=0.05)


async def test_max_duration_cuts_a_long_message(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events, script=PeerScript(talk=30))
    await record(ari, caller, "vm-1", maxDurationSeconds="3", maxSilenceSeconds="2")
    done = await recording_finished(events, "vm-1")
    assert (done["duration"], done["talking_duration"], done["silence_duration"]) == (3, 3, 0)


async def test_a_caller_who_talks_then_hangs_up_leaves_a_wav(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events, script=PeerScript(talk=2.0, hangup_after_talk=True))
    await record(ari, caller, "vm-1", maxSilenceSeconds="5")
    done = await recording_finished(events, "vm-1")
    assert done["duration"] == 2 and "talking_duration" in done
    await events.next("StasisEnd", caller)
    async with ari.session.get(f"{ari.base_url}/recordings/stored/vm-1/file") as resp:
        assert resp.status == 200 and resp.content_type == "audio/wav"
        data = await resp.read()
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(2.5, abs=0.4)
    assert len(data) == 44 + 2 * wav.getnframes()
    assert (await ari.get("/recordings/stored"))[1] == [{"format": "wav", "name": "vm-1"}]


async def test_recording_names_and_if_exists(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events)
    sim.recordings.add_stored("old", 4.0)
    status, body = await record(ari, caller, "old")
    assert status == 409 and "already exists" in body["message"]  # ifExists=fail
    assert (await record(ari, caller, "x", format="mp9"))[0] == 422
    assert (await record(ari, caller, "x", terminateOn="5"))[0] == 400
    assert (await record(ari, caller, "old", ifExists="append"))[0] == 201
    assert (await record(ari, caller, "old", ifExists="overwrite"))[0] == 409  # live: always
    assert (await ari.post("/recordings/live/old/stop"))[0] == 204
    done = await recording_finished(events, "old")
    assert sim.recordings.stored["old"].seconds >= 4.0  # appended
    assert done["duration"] == 0 and "talking_duration" not in done
    assert (await record(ari, caller, "gone"))[0] == 201
    assert (await ari.delete("/recordings/live/gone"))[0] == 204
    canceled = await recording_finished(events, "gone")
    assert canceled["state"] == "canceled" and "gone" not in sim.recordings.stored
    status, copy = await ari.post("/recordings/stored/old/copy", destinationRecordingName="c")
    assert status == 200 and copy == {"format": "wav", "name": "c"}
    assert (await ari.post("/recordings/stored/old/copy", destinationRecordingName="c"))[0] == 409
    assert (await ari.get("/recordings/stored/nope/file"))[0] == 404


# ------------------------------------------------------------------ presence and snoop
async def test_registration_events_only_after_a_subscription(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    sim.register("carol", "sip:carol@127.0.0.4:5074")  # nobody subscribed: no event
    assert (await ari.get("/endpoints/PJSIP/carol"))[1]["state"] == "online"
    status, app = await ari.post("/applications/pbxd/subscription", eventSource="endpoint:PJSIP")
    assert status == 200 and app["endpoint_ids"] == ["PJSIP"]
    sim.unregister("carol")
    await events.next("ContactStatusChange")
    seen = [(e["type"], e["endpoint"]["state"]) for e in events.events]
    assert seen == [
        ("EndpointStateChange", "offline"),
        ("PeerStatusChange", "offline"),
        ("ContactStatusChange", "offline"),
    ]
    assert events.events[1]["peer"] == {"peer_status": "Unreachable"}
    assert events.events[2]["contact_info"]["contact_status"] == "Removed"
    sub = "/applications/pbxd/subscription"
    assert (await ari.post(sub, eventSource="endpoint:PJSIP/nobody"))[0] == 422
    assert (await ari.post(sub, eventSource="mailbox:x"))[0] == 400
    assert (await ari.delete(sub, eventSource="deviceState:Stasis:x"))[0] == 409
    assert (await ari.post("/applications/nosuchapp/subscription", eventSource="x:y"))[0] == 404


async def test_device_states(sim: AriSimulator, ari: Ari, events: EventReader) -> None:
    caller = await incoming(sim, events)
    leg = await ari.create("PJSIP/alice", originator=caller)
    await events.next("StasisStart", leg["id"])
    await ari.post(f"/channels/{leg['id']}/dial")
    await events.next("ChannelStateChange", leg["id"])
    assert (await ari.get("/deviceStates/PJSIP%2Falice"))[1]["state"] == "RINGING"
    assert (await ari.get("/deviceStates/PJSIP%2Fbob"))[1]["state"] == "NOT_INUSE"
    assert (await ari.get("/deviceStates/PJSIP%2Fcarol"))[1]["state"] == "UNAVAILABLE"
    assert (await ari.call("PUT", "/deviceStates/Stasis:q", deviceState="BUSY"))[0] == 204
    assert (await ari.get("/deviceStates"))[1] == [{"name": "Stasis:q", "state": "BUSY"}]
    assert (await ari.delete("/deviceStates/Stasis:q"))[0] == 204
    assert (await ari.delete("/deviceStates/Stasis:q"))[0] == 404
    assert (await ari.get("/deviceStates/Stasis:q"))[1]["state"] == "UNKNOWN"


async def test_a_snoop_ends_with_the_channel_it_snoops_on(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events)
    path = f"/channels/{caller}/snoop"
    assert (await ari.post(path, app="pbxd"))[0] == 400  # neither spy nor whisper
    assert (await ari.post(path, app="pbxd", spy="sideways"))[0] == 400
    assert (await ari.post("/channels/nope/snoop", app="pbxd", spy="in"))[0] == 404
    status, snoop = await ari.post(path, app="pbxd", spy="in", appArgs="listen")
    assert status == 200 and snoop["name"] == f"Snoop/{caller}-00000001"
    start = await events.next("StasisStart", snoop["id"])
    assert start["args"] == ["listen"] and start["channel"]["state"] == "Up"
    await ari.delete(f"/channels/{caller}")
    await events.next("StasisEnd", snoop["id"])
    assert sim.channel(snoop["id"]) is None
    assert not [e for e in events.of(snoop["id"]) if e["type"] == "ChannelDialplan"]


async def test_a_record_sent_during_a_prompt_starts_after_it(
    sim: AriSimulator, ari: Ari, events: EventReader
) -> None:
    caller = await answered(sim, ari, events)
    await ari.post(f"/channels/{caller}/play/greet", media="sound:pbxd-prompt-welcome")
    status, live = await record(ari, caller, "vm-1", maxDurationSeconds="1")
    assert status == 201 and live["state"] == "queued"
    await recording_finished(events, "vm-1")
    order = [e["type"] for e in events.events if e["type"].startswith(("Playback", "Recording"))]
    assert order == ["PlaybackStarted", "PlaybackFinished", "RecordingStarted", "RecordingFinished"]


def test_dry_runs_know_the_configured_prompts(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pbxd.sim.scenario import prepare_sounds

    write_wav(tmp_path / "acme-welcome.wav", 1.5)
    greeting = SimpleNamespace(prompts=("sound:acme-welcome", "sound:acme-hours"))
    config = SimpleNamespace(
        routes={
            "reception": SimpleNamespace(
                greeting=greeting,
                menu=SimpleNamespace(
                    prompts=("sound:acme-menu",), invalid_prompts=(), timeout_prompts=()
                ),
                whisper=("sound:acme-welcome",),
                confirm_prompt=("sound:acme-confirm",),
            )
        },
        blocks={"direct": SimpleNamespace(whisper=("sound:acme-direct",))},
        numbers={
            "+33170000100": SimpleNamespace(block="direct", whisper=("sound:acme-direct",)),
            "+33170000030": SimpleNamespace(block=None, whisper=("sound:acme-line",)),
        },
        mailboxes={"acme": SimpleNamespace(greeting=("sound:acme-vm",))},
        plans={},
        settings=SimpleNamespace(sounds_dir=tmp_path),
    )
    sim = AriSimulator()
    assumed = prepare_sounds(sim, config)  # type: ignore[arg-type]
    assert assumed == [
        "sound:acme-hours",
        "sound:acme-menu",
        "sound:acme-confirm",
        "sound:acme-direct",  # a block's and a number's whisper
        "sound:acme-line",
        "sound:acme-vm",
    ]
    assert sim.sounds.seconds("acme-welcome") == pytest.approx(1.5)  # the real file
    assert sim.sounds.seconds("acme-hours") == 3.0
    assert sim.sounds.seconds("vm-intro") is not None  # a core sound of a real Asterisk
