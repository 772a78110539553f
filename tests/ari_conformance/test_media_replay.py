"""Replay the media traces (captures/media, Asterisk 22.10.1, 2026-12-03) against the simulator.

Same harness and checks as test_replay.py (REST statuses and bodies, event sequences per
channel / playback / recording, their interleaving, Swagger validity), with the traces' own
roles: `playbackN` ids are our own (`/play/{playbackId}`), bound with `Bind` before the call.
The SIP side comes from the capture README: callers on trunk-info press keys (SIP INFO, times
from the answer) and talk (`talk`: seconds of speech from the first recording's start).
"""

from __future__ import annotations

import pytest

from .captures import captures_dir, load_capture, media_capture_names
from .replay import Bind, Do, IncomingCall, Register, Scenario, Sleep, Step, When
from .swagger import Swagger
from .test_replay import capture_requests, check_replay, create, dial, table_requests

pytestmark = pytest.mark.skipif(
    not (captures_dir() / "media").is_dir(), reason="media captures not available"
)

# The lab's dialplan when these traces were recorded: Stasis(pbxd,${CALLERID(pres)}), no Ringing().
LAB_STASIS_ARGS = ("${CALLERID(pres)}",)
PROMPT_MENU = {"media": "sound:pbxd-prompt-menu"}
WELCOME = {"media": "sound:pbxd-prompt-welcome"}


def play(role: str, playback: str) -> str:
    return f"/channels/{{{role}}}/play/{{{playback}}}"


# Answered at once; the caller presses 2 1.5 s after the answer and # 3.5 s later, hangs up
# 1 s after #. Missing sound: failed at once; unknown scheme: started, never finished.
IVR_MENU_DTMF = Scenario(
    capture="media/ivr_menu_dtmf",
    steps=(
        IncomingCall(
            did="+33170000002",
            trunk="trunk-info",
            stasis_args=LAB_STASIS_ARGS,
            hangup_after=6.016,
            keys=((1.506, "2"), (5.01, "#")),
        ),
        When("StasisStart", "caller"),
        Do("POST", "/channels/{caller}/answer"),
        Bind("playback1", "menu-{caller}"),
        Do("POST", play("caller", "playback1"), PROMPT_MENU),
        Do("GET", "/playbacks/{playback1}"),
        When("ChannelDtmfReceived", "caller"),
        Do("DELETE", "/playbacks/{playback1}"),
        When("PlaybackFinished", "playback1"),
        Do("GET", "/playbacks/{playback1}"),
        Do("DELETE", "/playbacks/{playback1}"),
        Bind("playback2", "welcome-{caller}"),
        Do("POST", "/channels/{caller}/play", {**WELCOME, "playbackId": "{playback2}"}),
        When("PlaybackFinished", "playback2"),
        Bind("playback3", "list-{caller}"),
        Do("POST", play("caller", "playback3"), {"media": "sound:pbxd-beep,sound:pbxd-beep"}),
        When("PlaybackFinished", "playback3"),
        Bind("playback4", "missing-{caller}"),
        Do("POST", play("caller", "playback4"), {"media": "sound:pbxd-no-such-prompt"}),
        When("PlaybackFinished", "playback4"),
        Bind("playback5", "bad-{caller}"),
        Do("POST", play("caller", "playback5"), {"media": "nosuchscheme:x"}),
        Sleep(0.5),
        Do("GET", "/playbacks/{playback5}"),
        When("ChannelDtmfReceived", "caller", count=2),
        Bind("playback6", "bye-{caller}"),
        Do("POST", play("caller", "playback6"), PROMPT_MENU),
        When("StasisEnd", "caller"),
        Sleep(0.5),
        Do("GET", "/playbacks/{playback5}"),
    ),
)

# Two calls never answered: a prompt played as early media (the channel stays Ring), then
# `ring`, then a hangup with reason normal; the second call sends `progress` first.
EARLY_MEDIA_PLAYBACK = Scenario(
    capture="media/early_media_playback",
    steps=(
        IncomingCall(did="+33170000004", stasis_args=LAB_STASIS_ARGS),
        When("StasisStart", "caller"),
        Bind("playback1", "early-{caller}"),
        Do("POST", play("caller", "playback1"), WELCOME),
        When("PlaybackFinished", "playback1"),
        Do("GET", "/channels/{caller}"),
        Do("POST", "/channels/{caller}/ring"),
        Sleep(0.5),
        Do("DELETE", "/channels/{caller}", {"reason": "normal"}),
        When("StasisEnd", "caller"),
        Sleep(1.6),
        IncomingCall(did="+33170000004", stasis_args=LAB_STASIS_ARGS, role="leg1"),
        When("StasisStart", "leg1"),
        Do("POST", "/channels/{leg1}/progress"),
        Sleep(0.3),
        Bind("playback2", "early-{leg1}"),
        Do("POST", play("leg1", "playback2"), WELCOME),
        When("PlaybackFinished", "playback2"),
        Do("GET", "/channels/{leg1}"),
        Do("POST", "/channels/{leg1}/ring"),
        Sleep(0.5),
        Do("DELETE", "/channels/{leg1}", {"reason": "normal"}),
        When("StasisEnd", "leg1"),
    ),
)

VM_RECORD = {
    "beep": "false",
    "format": "wav",
    "ifExists": "overwrite",
    "maxDurationSeconds": "10",
    "maxSilenceSeconds": "3",
    "terminateOn": "#",
}
# The caller (trunk-info) talks; presses # 3.1 s into the first recording and 5 1.3 s into
# the second, then hangs up 1.5 s later (7.0 s after arriving).
VOICEMAIL_RECORD = Scenario(
    capture="media/voicemail_record",
    steps=(
        Sleep(0.5),
        Do("DELETE", "/recordings/stored/vm-test-1"),
        Do("DELETE", "/recordings/stored/vm-test-2"),
        IncomingCall(
            did="+33170000003",
            trunk="trunk-info",
            stasis_args=LAB_STASIS_ARGS,
            hangup_after=7.017,
            keys=((4.006, "#"), (5.506, "5")),
            talk=6.5,
        ),
        When("StasisStart", "caller"),
        Do("POST", "/channels/{caller}/answer"),
        Bind("playback1", "tone0-{caller}"),
        Do("POST", play("caller", "playback1"), {"media": "tone:beep"}),
        When("PlaybackFinished", "playback1"),
        Bind("playback2", "tone1-{caller}"),
        Do("POST", play("caller", "playback2"), {"media": "tone:!1000/400"}),
        Sleep(0.6),
        Do("DELETE", "/playbacks/{playback2}"),
        When("PlaybackFinished", "playback2"),
        Bind("playback3", "beep-{caller}"),
        Do("POST", play("caller", "playback3"), {"media": "sound:pbxd-beep"}),
        When("PlaybackFinished", "playback3"),
        Bind("vm-test-1", "vm-test-1"),  # recordings are named by us: the name is the role
        Do("POST", "/channels/{caller}/record", {**VM_RECORD, "name": "vm-test-1"}),
        Do("GET", "/recordings/live/vm-test-1"),
        Do(
            "POST",
            "/channels/{caller}/record",
            {"format": "wav", "ifExists": "overwrite", "name": "vm-test-1"},
        ),
        When("RecordingFinished", "vm-test-1"),
        Do("GET", "/recordings/live/vm-test-1"),
        Do("GET", "/recordings/stored"),
        Do("GET", "/recordings/stored/vm-test-1"),
        Do("GET", "/recordings/stored/vm-test-1/file"),
        Do("POST", "/channels/{caller}/record", {**VM_RECORD, "name": "vm-test-2"}),
        When("StasisEnd", "caller"),
        Sleep(0.5),
        Do("GET", "/recordings/live/vm-test-2"),
        Do("GET", "/recordings/stored"),
        Do("GET", "/recordings/stored/vm-test-2"),
        Do("GET", "/recordings/stored/vm-test-2/file"),
        Do("DELETE", "/recordings/stored/vm-test-1"),
        Do("DELETE", "/recordings/stored/vm-test-2"),
        Do("GET", "/recordings/stored/vm-test-1"),
        Do("GET", "/recordings/stored/vm-test-1/file"),
    ),
)

# dave answers after 1 s, presses 1 (SIP INFO) 1 s later, hangs up 1.5 s after that; the
# screening prompt is played to his leg while the caller still rings.
MEDIA_LAB_CODECS = {"trunk-in": "alaw", "trunk-info": "alaw"}
SCREENING_PRESS1 = Scenario(
    capture="media/screening_press1",
    codecs=MEDIA_LAB_CODECS,
    peers={
        "PJSIP/dave": {"answer_after": 1.0, "dtmf": "1", "dtmf_after": 1.0, "hangup_after": 2.5}
    },
    steps=(
        IncomingCall(did="+33170000005", stasis_args=LAB_STASIS_ARGS),
        When("StasisStart", "caller"),
        Do("POST", "/channels/{caller}/ring"),
        Do("POST", "/channels/create", create("PJSIP/dave"), save="leg1"),
        When("StasisStart", "leg1"),
        Do("POST", "/channels/{leg1}/dial", dial(15)),
        When("ChannelStateChange", "leg1", state="Up"),
        Bind("playback1", "screen-{leg1}"),
        Do("POST", play("leg1", "playback1"), {"media": "sound:pbxd-prompt-screen"}),
        When("ChannelDtmfReceived", "leg1"),
        Do("DELETE", "/playbacks/{playback1}"),
        Do("POST", "/channels/{caller}/answer"),
        Do("POST", "/bridges", {"type": "mixing"}, save="bridge1"),
        Do("POST", "/bridges/{bridge1}/addChannel", {"channel": "{caller},{leg1}"}),
        When("StasisEnd", "leg1"),
        Do("DELETE", "/channels/{caller}"),
        Do("DELETE", "/bridges/{bridge1}"),
        When("ChannelDestroyed", "caller"),
        When("BridgeDestroyed", "bridge1"),
    ),
)

# The caller (trunk-in) is bridged with alice (answers after 1 s) and hangs up after 6 s; a
# whisper=out snoop on alice's leg plays her the welcome prompt, then is hung up.
SNOOP_WHISPER = Scenario(
    capture="media/snoop_whisper",
    codecs=MEDIA_LAB_CODECS,
    peers={"PJSIP/alice": {"answer_after": 1.0}},
    steps=(
        IncomingCall(did="+33170000006", stasis_args=LAB_STASIS_ARGS, hangup_after=7.021),
        When("StasisStart", "caller"),
        Do("POST", "/channels/{caller}/ring"),
        Do("POST", "/bridges", {"type": "mixing"}, save="bridge1"),
        Do("POST", "/channels/create", create("PJSIP/alice"), save="leg1"),
        When("StasisStart", "leg1"),
        Do("POST", "/channels/{leg1}/dial", dial(15)),
        When("ChannelStateChange", "leg1", state="Up"),
        Do("POST", "/channels/{caller}/answer"),
        Do("POST", "/bridges/{bridge1}/addChannel", {"channel": "{caller},{leg1}"}),
        Sleep(0.3),
        Do(
            "POST",
            "/channels/{leg1}/snoop",
            {"app": "pbxd", "appArgs": "whisper", "spy": "none", "whisper": "out"},
            save="leg2",
        ),
        When("StasisStart", "leg2"),
        Bind("playback1", "whisper-{leg2}"),
        Do("POST", play("leg2", "playback1"), WELCOME),
        When("PlaybackFinished", "playback1"),
        Do("DELETE", "/channels/{leg2}"),
        When("StasisEnd", "caller"),
        Do("DELETE", "/channels/{leg1}"),
        When("ChannelDestroyed", "leg1"),
        Sleep(0.5),
        Do("DELETE", "/bridges/{bridge1}"),
        When("BridgeDestroyed", "bridge1"),
    ),
)

CAROL = "/endpoints/PJSIP/carol"
SUBSCRIPTION = "/applications/pbxd/subscription"
PRESENCE_ALICE = "/deviceStates/Stasis:pbxd-presence-alice"


def _register_twice(source: str) -> tuple[Step, ...]:
    """carol registers (Expires 60), 2 s later unregisters (Expires 0), watched via `source`."""
    return (
        Do("POST", SUBSCRIPTION, {"eventSource": source}),
        Do("GET", "/applications/pbxd"),
        Sleep(0.1),
        Register("carol", "sip:carol@127.0.0.4:5074"),
        Sleep(0.3),
        Do("GET", CAROL),
        Sleep(1.7),
        Register("carol", expires=0),
        Sleep(0.5),
        Do("GET", CAROL),
    )


# carol REGISTERs and unREGISTERs twice, watched per endpoint then per technology; then the
# device states, with the traces' deliberately refused requests.
ENDPOINT_PRESENCE = Scenario(
    capture="media/endpoint_presence",
    invalid_requests=(f"PUT {PRESENCE_ALICE}?deviceState=NOSUCHSTATE",),
    steps=(
        Sleep(0.5),
        Do("GET", CAROL),
        *_register_twice("endpoint:PJSIP/carol"),
        Do("DELETE", SUBSCRIPTION, {"eventSource": "endpoint:PJSIP/carol"}),
        *_register_twice("endpoint:PJSIP")[:1],
        Do("GET", "/applications/pbxd"),
        *_register_twice("endpoint:PJSIP")[2:],
        Do("DELETE", SUBSCRIPTION, {"eventSource": "endpoint:PJSIP"}),
        Do("GET", "/applications/pbxd"),
        Do("GET", "/deviceStates"),
        Do("GET", "/deviceStates/PJSIP%2Falice"),
        Do("GET", "/deviceStates/PJSIP%2Fcarol"),
        Do("PUT", "/deviceStates/PJSIP%2Falice", {"deviceState": "BUSY"}),
        Do("PUT", PRESENCE_ALICE, {"deviceState": "NOT_INUSE"}),
        Do("POST", SUBSCRIPTION, {"eventSource": "deviceState:Stasis:pbxd-presence-alice"}),
        Do("PUT", PRESENCE_ALICE, {"deviceState": "INUSE"}),
        Do("PUT", PRESENCE_ALICE, {"deviceState": "NOSUCHSTATE"}),
        Sleep(0.3),
        Do("GET", "/deviceStates"),
        Do("GET", PRESENCE_ALICE),
        Do("DELETE", PRESENCE_ALICE),
        Sleep(0.3),
        Do("GET", PRESENCE_ALICE),
        Do("DELETE", SUBSCRIPTION, {"eventSource": "deviceState:Stasis:pbxd-presence-alice"}),
    ),
)

MEDIA_SCENARIOS = [
    IVR_MENU_DTMF,
    EARLY_MEDIA_PLAYBACK,
    VOICEMAIL_RECORD,
    SCREENING_PRESS1,
    SNOOP_WHISPER,
    ENDPOINT_PRESENCE,
]
# Requests the traces make on purpose with values the api-docs refuse (README: a validator
# should expect those to fail).
DELIBERATELY_INVALID = set(ENDPOINT_PRESENCE.invalid_requests)


def _signature(step: Do) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(step.params.items()))
    return f"{step.method} {step.path}{'?' + query if query else ''}"


@pytest.fixture(scope="module")
def swagger() -> Swagger:
    return Swagger.load()


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.id) for s in MEDIA_SCENARIOS])
def test_table_matches_media_capture(scenario: Scenario, swagger: Swagger) -> None:
    """The driving table performs exactly the trace's REST calls, and they are valid ARI."""
    assert table_requests(scenario) == capture_requests(load_capture(scenario.capture))
    for step in scenario.steps:
        if isinstance(step, Do) and _signature(step) not in DELIBERATELY_INVALID:
            assert swagger.validate_request(step.method, step.path, step.params) == []


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.id) for s in MEDIA_SCENARIOS])
async def test_media_replay(scenario: Scenario, swagger: Swagger) -> None:
    await check_replay(scenario, swagger)


def test_every_media_capture_has_a_scenario() -> None:
    assert sorted({s.capture for s in MEDIA_SCENARIOS}) == media_capture_names()
