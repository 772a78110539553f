"""Calls taken up after pbxd stops or dies mid-step: a menu, an announcement, voicemail, a
call through (the daemon against the simulator, on SQLite and PostgreSQL).

A crash loses what the CDR writer had not committed (its 0.2 s batch): tests delete those
journal events from the database between the two runs, as the crash would have.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from pbxd.cdr.records import Disposition
from pbxd.cdr.schema import CallEventRow
from pbxd.config.model import Config
from pbxd.sim import PeerScript
from pbxd.voicemail.store import MessageStore

from .conftest import TRUNKS_YAML, CallLab, assert_no_errors, seconds, write_config

ANNOUNCED = "+33170000001"  # a 5 s announcement (early media), then alice
MENU = "+33170000002"  # the 5 s menu: 1 for bob
CLOSED = "+33170000003"  # voicemail: greeting (2 s) and beep, then the message
ACCESS = "+33170000004"  # call through for a registered mobile
MOBILE = "+33600000042"

ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
    hours:
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
      - name: announced
        numbers: [01 70 00 00 01]
        greeting: {play: [pbxd-prompt-menu]}
        targets: [alice]
        timeout: 10
      - name: main
        numbers: [01 70 00 00 02]
        menu:
          prompt: pbxd-prompt-menu
          options: {1: sales}
          retries: 2
          invalid_prompt: pbxd-beep
          fallback: {hangup: busy}
      - name: sales
        targets: [bob]
        timeout: 10
      - name: closed
        numbers: [01 70 00 00 03]
        hours: closed-for-works
        closed: {voicemail: front-desk}
        targets: [alice]
    outbound:
      ceo:
        softphones: [alice]
        outbound_number: 01 70 00 00 01
        mobiles: [06 00 00 00 42]
        pin: "4321"
        timeout: 20
    call_through:
      numbers: [01 70 00 00 04]
      timeout: 10
"""
MENU_PROMPT = "sound:pbxd-prompt-menu"
ANNOUNCEMENT_SECONDS = 5.0


@pytest.fixture
def lab_config(tmp_path: Any) -> Config:
    return write_config(tmp_path / "config", TRUNKS_YAML, ROUTING)


def plays(lab: CallLab, call_id: str) -> list[str]:
    return [str(r["params"]["media"]) for r in lab.requests("POST", f"/channels/{call_id}/play")]


def stops(lab: CallLab) -> list[str]:
    return [str(r["path"]).rsplit("/", 1)[-1] for r in lab.requests("DELETE", "/playbacks/")]


def tokens(entry: Any) -> list[str]:
    return [step.token() for step in entry.call.path]


def watch_plays(lab: CallLab, call_id: str) -> list[bool]:
    """At each prompt asked for the caller, whether one was already queued or playing."""
    seen: list[bool] = []
    lab.sim.faults.on_request(
        "POST",
        f"/channels/{call_id}/play/*",
        before=lambda: seen.append(lab.sim.pbx.is_playing(f"channel:{call_id}")),
        times=None,
    )
    return seen


async def lose_journal_from(lab: CallLab, call_id: str, kind: str, nth: int = 1) -> None:
    """The journal's last batch never reached the database: from the `nth` `kind` on."""
    async with lab.store.engine.begin() as conn:
        rows = await conn.execute(
            select(CallEventRow.seq)
            .where(CallEventRow.call_id == call_id, CallEventRow.kind == kind)
            .order_by(CallEventRow.seq)
        )
        first = rows.scalars().all()[nth - 1]
        await conn.execute(
            delete(CallEventRow).where(CallEventRow.call_id == call_id, CallEventRow.seq >= first)
        )


async def crash(lab: CallLab, call_id: str, kind: str, nth: int = 1) -> None:
    """pbxd dies with the journal's events from the `nth` `kind` on not yet written."""
    await lab.kill_service()
    await lab.reopen_store()
    await lose_journal_from(lab, call_id, kind, nth)


async def start_again(lab: CallLab, call_id: str) -> None:
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted


# ------------------------------------------------------------------------------ menus


async def test_a_menu_prompt_the_journal_lost_is_stopped_before_the_menu_plays_again(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # 7 (no such option) stops the menu and starts the invalid prompt and the menu again;
    # pbxd dies before that prompt's journal is written. The new run must not play the
    # menu behind it (Asterisk queues a channel's playbacks): it stops it first.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=2))
    call_id = await lab.sim.inbound_call(MENU, "+33612000001", "Jean")
    asked = watch_plays(lab, call_id)
    await lab.wait_for(lambda: plays(lab, call_id) == [MENU_PROMPT], what="the menu plays")
    lab.sim.send_dtmf(call_id, "7")
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 2, what="the menu after 7")
    await lab.virtual_sleep(1)
    await crash(lab, call_id, "menu_prompted", nth=2)
    unjournaled = f"{call_id}-play-2"
    assert lab.sim.pbx.is_playing(f"channel:{call_id}")  # 4.3 s of it left
    await start_again(lab, call_id)
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 3, what="the menu again")
    assert plays(lab, call_id) == [MENU_PROMPT, f"sound:pbxd-beep,{MENU_PROMPT}", MENU_PROMPT]
    assert asked == [False, False, False]  # no prompt ever queued behind another
    assert stops(lab) == [f"{call_id}-play-1", unjournaled]  # the 7, then the adoption
    lab.sim.send_dtmf(call_id, "1")
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "bob", lab.timeline(call_id)
    # The journal kept no failure: the 7 is lost with it, the menu counts from there.
    assert tokens(entry) == ["menu:chosen:1%3Esales", "goto:jumped", "ring:answered"]
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


# ---------------------------------------------------------------------- announcements


@pytest.mark.parametrize("down", [1.0, ANNOUNCEMENT_SECONDS + 2], ids=["within", "after"])
async def test_an_announcement_is_heard_once_to_its_end_then_the_flow_goes_on(
    logs: list[dict[str, Any]], lab: CallLab, down: float
) -> None:
    # pbxd is back within the 5 s announcement (it plays on), or after it (the flow goes on
    # at once): never played again, alice rung once it is over.
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=3))
    call_id = await lab.call(ANNOUNCED)
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 1, what="the announcement")
    started = lab.clock.now()
    await lab.virtual_sleep(1)
    await lab.restart(call_id, down=down)
    entry = await lab.finish(call_id)
    assert plays(lab, call_id) == [MENU_PROMPT]  # heard once, to its end
    assert stops(lab) == []
    [alice] = entry.legs
    assert seconds(started, alice.started_at) >= ANNOUNCEMENT_SECONDS  # rung after it
    assert entry.call.answered_by == "alice", lab.timeline(call_id)
    assert tokens(entry) == ["play:played", "ring:answered"]
    # Early media: only alice's answer answered the caller.
    assert len(lab.requests("POST", f"/channels/{call_id}/answer")) == 1
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_an_announcement_the_journal_lost_plays_again_alone(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=3))
    call_id = await lab.call(ANNOUNCED)
    asked = watch_plays(lab, call_id)
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 1, what="the announcement")
    await lab.virtual_sleep(1)
    await crash(lab, call_id, "prompt_started")
    await start_again(lab, call_id)
    entry = await lab.finish(call_id)
    # Nothing says it was asked: it is stopped where it was, and heard again whole, alone.
    assert plays(lab, call_id) == [MENU_PROMPT, MENU_PROMPT]
    assert stops(lab) == [f"{call_id}-play-1"]
    assert asked == [False, False]
    assert entry.call.answered_by == "alice", lab.timeline(call_id)
    assert tokens(entry) == ["play:played", "ring:answered"]
    assert_no_errors(logs)


# -------------------------------------------------------------------------- voicemail


async def test_a_message_being_recorded_goes_on_and_is_kept(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The caller talks 8 s then hangs up; pbxd is down for 2 s in the middle of it.
    call_id = await lab.sim.inbound_call(
        CLOSED, "+33612000001", "Jean", script=PeerScript(talk=8, hangup_after_talk=True)
    )
    await lab.wait_for(
        lambda: bool(lab.requests("POST", f"/channels/{call_id}/record")), what="recording"
    )
    await lab.virtual_sleep(2)
    await lab.restart(call_id, down=2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.VOICEMAIL, lab.timeline(call_id)
    assert call.voicemail is not None and call.voicemail.duration >= 7
    assert len(lab.requests("POST", f"/channels/{call_id}/record")) == 1  # one message
    assert tokens(entry) == ["schedule:closed", "voicemail:left"]
    box = MessageStore(lab.config.settings.voicemail_folder)
    await lab.wait_for(lambda: len(box.messages(CLOSED)) == 1, what="message filed")
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_a_message_finished_while_pbxd_was_down_is_kept(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The caller talks 4 s and presses # (at 8 s after the answer) while pbxd is down:
    # Asterisk stored the message; the new run keeps it and ends the call.
    call_id = await lab.sim.inbound_call(
        CLOSED, "+33612000001", "Jean", script=PeerScript(talk=4, keys=((8.0, "#"),))
    )
    await lab.wait_for(
        lambda: bool(lab.requests("POST", f"/channels/{call_id}/record")), what="recording"
    )
    await lab.kill_service()
    await lab.reopen_store()
    await lab.virtual_sleep(10)
    await lab.start_service()  # adopts the call and ends it at once: nothing to wait for
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.VOICEMAIL, lab.timeline(call_id)
    assert call.voicemail is not None and 4 <= call.voicemail.duration <= 6
    assert tokens(entry) == ["schedule:closed", "voicemail:left"]
    assert lab.final_cause(call_id) == 16
    box = MessageStore(lab.config.settings.voicemail_folder)
    await lab.wait_for(lambda: len(box.messages(CLOSED)) == 1, what="message filed")
    assert_no_errors(logs)


async def test_a_voicemail_greeting_is_heard_to_its_end_then_the_message_recorded(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await lab.sim.inbound_call(
        CLOSED, "+33612000001", "Jean", script=PeerScript(talk=4, hangup_after_talk=True)
    )
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 1, what="the greeting")
    await lab.restart(call_id, down=0.5)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.VOICEMAIL, lab.timeline(call_id)
    assert call.voicemail is not None and call.voicemail.duration >= 3
    assert plays(lab, call_id) == ["sound:pbxd-prompt-welcome,sound:beep"]  # once
    assert tokens(entry) == ["schedule:closed", "voicemail:left"]
    assert_no_errors(logs)


async def test_a_voicemail_greeting_the_journal_lost_plays_again_alone(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await lab.sim.inbound_call(
        CLOSED, "+33612000001", "Jean", script=PeerScript(talk=4, hangup_after_talk=True)
    )
    asked = watch_plays(lab, call_id)
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 1, what="the greeting")
    await crash(lab, call_id, "prompt_started")
    await start_again(lab, call_id)
    entry = await lab.finish(call_id)
    call = entry.call
    greeting = "sound:pbxd-prompt-welcome,sound:beep"
    assert plays(lab, call_id) == [greeting, greeting]
    assert asked == [False, False]
    assert stops(lab) == [f"{call_id}-play-1"]
    assert call.disposition is Disposition.VOICEMAIL, lab.timeline(call_id)
    assert len(lab.requests("POST", f"/channels/{call_id}/record")) == 1
    assert tokens(entry) == ["schedule:closed", "voicemail:left"]
    assert_no_errors(logs)


# ---------------------------------------------------------------------- call through


async def test_a_call_through_keying_its_pin_is_ended_cleanly(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # What the mobile keys (its PIN) is never journaled: a restart cannot know whether it
    # keys the PIN or the number, so the call is ended, its CDR closed and saying why.
    call_id = await lab.sim.inbound_call(
        ACCESS, MOBILE, "CEO", trunk="trunk-in", script=PeerScript(keys=((1.0, "43"),))
    )
    await lab.wait_for(
        lambda: bool(lab.requests("POST", f"/channels/{call_id}/answer")), what="answered"
    )
    await lab.virtual_sleep(2)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    entry = await lab.finish(call_id)
    call = entry.call
    assert lab.final_cause(call_id) == 16
    assert lab.requests("POST", "/channels/create") == []
    assert tokens(entry) == ["call_through:refused:pbxd%20restarted"]
    assert call.ended_at is not None and call.hangup_cause == 16
    assert call.disposition is Disposition.ANSWERED  # pbxd answered it: billed as such
    assert await lab.store.open_calls() == []
    assert not any("43" in str(line.get("keys", "")) for line in logs)
    assert_no_errors(logs)
