"""Call-flow steps end to end: the daemon runs a route's flow against the simulator.

Greetings (early media and answered), opening hours, voicemail (kept, too short, caller
hanging up mid-message), goto into another route, and hangup causes, each on SQLite and
PostgreSQL, checked on what Asterisk was asked (the simulator's REST log) and on the CDR.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from pbxd.cdr.records import Disposition, format_path
from pbxd.config.model import Config
from pbxd.sim import PeerScript
from pbxd.voicemail.store import MessageStore

from .conftest import (
    CALLER,
    TRUNKS_YAML,
    CallLab,
    LabFactory,
    assert_no_errors,
    seconds,
    write_config,
)

GREETED = "+33170000001"  # welcome (early media), then alice
GREETED_ANSWERED = "+33170000002"  # welcome after answering, then alice
CLOSED = "+33170000003"  # always closed -> voicemail
NO_ANSWER_VOICEMAIL = "+33170000004"  # bob, 4 s, then voicemail
GOTO = "+33170000005"  # carol (offline) -> unavailable -> goto `second` (alice)
OPEN = "+33170000006"  # always open -> alice

FLOW_ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      carol: {softphone: PJSIP/carol}
    hours:
      always:
        weekly:
          mon-sun: [00:00-24:00]
      closed-for-works:
        weekly:
          mon-sun: [00:00-24:00]
        closed:
          - 2020-01-01 to 2035-12-31
    mailboxes:
      front-desk:
        greeting: [pbxd-prompt-welcome]
        max_seconds: 30
        min_seconds: 2
        silence_seconds: 3
    routes:
      - name: greeted
        numbers: [01 70 00 00 01]
        greeting: {play: [pbxd-prompt-welcome]}
        targets: [alice]
        timeout: 10
      - name: greeted-answered
        numbers: [01 70 00 00 02]
        greeting: {play: [pbxd-prompt-welcome], answer: true}
        targets: [alice]
        timeout: 10
      - name: closed
        numbers: [01 70 00 00 03]
        hours: closed-for-works
        closed: {voicemail: front-desk}
        targets: [alice]
      - name: no-answer-voicemail
        numbers: [01 70 00 00 04]
        targets: [{target: bob, ring_time: 4}]
        timeout: 4
        no_answer: {voicemail: front-desk}
      - name: goto
        numbers: [01 70 00 00 05]
        targets: [carol]
        timeout: 10
        unavailable: {goto: second}
      - name: second
        targets: [alice]
        timeout: 10
      - name: open
        numbers: [01 70 00 00 06]
        hours: always
        closed: {hangup: busy}
        targets: [alice]
        timeout: 10
"""

SLACK = 1.5


@pytest.fixture
def lab_config(tmp_path: Any) -> Config:
    return write_config(tmp_path / "config", TRUNKS_YAML, FLOW_ROUTING)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def path_of(entry: Any) -> str:
    return format_path(entry.call.path)


def caller_state_during_first_play(lab: CallLab, call_id: str) -> list[str]:
    """Requests on the caller's channel up to its first play, in order."""
    out = []
    for request in lab.sim.rest_log:
        path = str(request["path"])
        if path.startswith(f"/channels/{call_id}/"):
            out.append(path.rsplit("/", 2)[-2] if "/play/" in path else path.rsplit("/", 1)[-1])
            if "/play/" in path:
                break
    return out


# ------------------------------------------------------------------------ greetings


async def test_greeting_before_ringing_is_early_media(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The caller hears the welcome without being answered (183 + audio on Asterisk):
    # no answer request before the prompt, billed only from alice's answer.
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(GREETED, hangup_after=8)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "alice"
    assert caller_state_during_first_play(lab, call_id) == ["play"]  # not answered first
    plays = lab.requests("POST", f"/channels/{call_id}/play/")
    assert [r["params"]["media"] for r in plays] == ["sound:pbxd-prompt-welcome"]
    ours = plays[0]["path"].rsplit("/", 1)[-1]
    finished = [e for e in lab.events("PlaybackFinished") if e["playback"]["id"] == ours]
    assert [e["playback"]["state"] for e in finished] == ["done"]
    # Ringing starts once the 2 s prompt is over: alice is created after it.
    created = lab.requests("POST", "/channels/create")
    assert len(created) == 1
    # Answered when alice answered (after the 2 s prompt), not when the greeting started.
    assert call.answered_at is not None
    assert seconds(call.started_at, call.answered_at) >= 3 - 0.1, lab.timeline(call_id)
    greeting_end = parse_time(finished[0]["timestamp"])
    assert call.answered_at > greeting_end
    assert path_of(entry) == "greeting \N{RIGHTWARDS ARROW} ring \N{RIGHTWARDS ARROW} answered"
    assert_no_errors(logs)


async def test_ringing_after_a_greeting_is_indicated_even_after_the_dialplans(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The shipped dialplan sent 180 before Stasis; the greeting's early media came after it,
    # so the ring step indicates ringing again (as it does without the dialplan's Ringing()).
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(GREETED, hangup_after=8, shipped_dialplan=True)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    caller = [
        str(r["path"]).split("/")[3]
        for r in lab.sim.rest_log
        if str(r["path"]).startswith(f"/channels/{call_id}/")
    ]
    assert caller == ["play", "ring", "answer"]
    chan = lab.sim.channel_history(call_id)
    assert chan is not None and chan.sip_responses == [100, 180, 183, 183, 200]
    assert_no_errors(logs)


async def test_greeting_after_answering(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    call_id = await lab.call(GREETED_ANSWERED, hangup_after=8)
    entry = await lab.finish(call_id)
    call = entry.call
    assert caller_state_during_first_play(lab, call_id) == ["answer", "play"]
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "alice"
    # Answered (and billed) from the greeting on: the caller heard it answered.
    assert call.answered_at is not None
    assert seconds(call.started_at, call.answered_at) < SLACK
    assert path_of(entry) == "greeting \N{RIGHTWARDS ARROW} ring \N{RIGHTWARDS ARROW} answered"
    assert_no_errors(logs)


async def test_caller_hanging_up_during_the_greeting(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await lab.call(GREETED, hangup_after=1)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ABANDONED, lab.timeline(call_id)
    assert call.answered_at is None and call.billsec == 0
    assert lab.requests("POST", "/channels/create") == []  # nobody rung
    assert [step.token() for step in call.path] == ["play:abandoned"]
    assert_no_errors(logs)


# ------------------------------------------------------------------------ schedule


async def test_open_hours_ring(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
    call_id = await lab.call(OPEN)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert [step.token() for step in entry.call.path] == ["schedule:open", "ring:answered"]
    assert_no_errors(logs)


# ------------------------------------------------------------------------ voicemail


async def test_closed_line_takes_a_message(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # Outside opening hours: answer, greeting and beep, record; the caller talks 4 s and
    # presses # to finish. The message is kept (4 s >= the 2 s minimum).
    call_id = await lab.sim.inbound_call(
        CLOSED, CALLER, "Jean", script=PeerScript(talk=4, keys=((9.0, "#"),))
    )
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.VOICEMAIL, lab.timeline(call_id)
    assert call.voicemail is not None and call.voicemail.duration >= 4
    assert lab.requests("POST", "/channels/create") == []  # closed: nobody rung
    [record] = lab.requests("POST", f"/channels/{call_id}/record")
    assert (
        record["params"]["maxDurationSeconds"],
        record["params"]["maxSilenceSeconds"],
        record["params"]["terminateOn"],
    ) == ("30", "3", "#")
    plays = lab.requests("POST", f"/channels/{call_id}/play/")
    assert [r["params"]["media"] for r in plays] == ["sound:pbxd-prompt-welcome,sound:beep"]
    assert [step.token() for step in call.path] == ["schedule:closed", "voicemail:left"]
    assert path_of(entry) == "closed \N{RIGHTWARDS ARROW} voicemail"
    assert lab.final_cause(call_id) == 16
    # The back office copies it off Asterisk into the number's box, linked to its call.
    box = MessageStore(lab.config.settings.voicemail_folder)
    await lab.wait_for(lambda: len(box.messages(CLOSED)) == 1, what="message filed")
    [message] = box.messages(CLOSED)
    assert (message.message_id, message.call_id, message.mailbox) == (
        call.voicemail.message_id,
        call_id,
        "front-desk",
    )
    assert len(box.audio(CLOSED, message.message_id)) > 44  # a WAV with sound in it
    assert_no_errors(logs)


async def test_a_message_under_the_minimum_is_dropped(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # 1 s of talk, then silence: Asterisk stops at 3 s of silence; 1 s < 2 s minimum.
    call_id = await lab.sim.inbound_call(CLOSED, CALLER, "Jean", script=PeerScript(talk=1))
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.voicemail is None, lab.timeline(call_id)
    assert call.disposition is Disposition.CLOSED
    assert [step.token() for step in call.path] == ["schedule:closed", "voicemail:too_short"]
    name = lab.requests("POST", f"/channels/{call_id}/record")[0]["params"]["name"]
    assert lab.requests("DELETE", f"/recordings/stored/{name}")  # not kept as noise
    assert_no_errors(logs)


async def test_nobody_answers_then_voicemail_and_the_caller_hangs_up_mid_message(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # bob rings 4 s; voicemail; the caller talks 3 s and hangs up: the message is kept.
    call_id = await lab.sim.inbound_call(
        NO_ANSWER_VOICEMAIL, CALLER, "Jean", script=PeerScript(talk=3, hangup_after_talk=True)
    )
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.VOICEMAIL, lab.timeline(call_id)
    assert call.voicemail is not None and call.voicemail.duration >= 2
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [("bob", 19)]
    assert [step.token() for step in call.path] == ["ring:no_answer", "voicemail:left"]
    assert_no_errors(logs)


# ------------------------------------------------------------------------ goto, hangup


async def test_unavailable_goes_to_another_route(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
    call_id = await lab.call(GOTO)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "alice"
    assert [(leg.target, leg.hangup_cause) for leg in entry.legs] == [
        ("carol", None),
        ("alice", 16),
    ]
    # Leg ids run on across the two ring steps.
    assert [leg.leg_id for leg in entry.legs] == [f"{call_id}-1", f"{call_id}-2"]
    assert [step.token() for step in call.path] == [
        "ring:unavailable",
        "goto:jumped",
        "ring:answered",
    ]
    assert_no_errors(logs)


async def test_closed_with_a_hangup_cause(make_lab: LabFactory, tmp_path: Any) -> None:
    routing = FLOW_ROUTING.replace("hours: always\n", "hours: closed-for-works\n")
    lab = await make_lab(write_config(tmp_path / "v2", TRUNKS_YAML, routing))
    call_id = await lab.call(OPEN)
    entry = await lab.finish(call_id)
    assert entry.call.disposition is Disposition.CLOSED, lab.timeline(call_id)
    assert lab.final_cause(call_id) == 17
    assert [r["params"].get("reason") for r in lab.requests("DELETE", f"/channels/{call_id}")] == [
        "busy"
    ]
    assert [step.token() for step in entry.call.path] == ["schedule:closed", "hangup:hung_up"]
