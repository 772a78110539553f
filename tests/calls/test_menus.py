"""Voice menus end to end: the daemon runs a `menu` step against the simulator.

The caller's keys arrive as ChannelDtmfReceived (as Asterisk reports RFC 4733 and SIP INFO
alike); the menu prompt is the lab's 5 s `pbxd-prompt-menu`. Checked on what Asterisk was
asked (plays, stops) and on the CDR's path, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from pbxd.cdr.records import Disposition, format_path
from pbxd.cdr.schema import CallEventRow
from pbxd.config.model import Config
from pbxd.sim import PeerScript

from .conftest import (
    CALLER,
    TRUNKS_YAML,
    CallLab,
    assert_no_errors,
    write_config,
)
from .test_traffic import what_a_call_costs

MAIN = "+33170000001"  # the main menu
DIRECT_SUB = "+33170000002"  # a number straight into the nested menu

MENU_ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      dave: {softphone: PJSIP/dave}
    mailboxes:
      billing:
        greeting: [pbxd-prompt-welcome]
        max_seconds: 30
    routes:
      - name: main
        numbers: [01 70 00 00 01]
        menu:
          prompt: pbxd-prompt-menu
          options:
            1: sales
            2: support
            0: reception
            42: {voicemail: billing}
            9: more
            "*": repeat
          timeout: 4
          digit_timeout: 2
          retries: 1
          invalid_prompt: pbxd-beep
          timeout_prompt: pbxd-beep
          fallback: {goto: reception}
      - name: more
        numbers: [01 70 00 00 02]
        menu:
          prompt: [pbxd-prompt-welcome]
          options: {1: sales, "#": main}
          retries: 0
          fallback: {hangup: busy}
      - name: sales
        targets: [alice]
        timeout: 10
      - name: support
        targets: [bob]
        timeout: 10
      - name: reception
        targets: [dave]
        timeout: 10
"""
ARROW = " \N{RIGHTWARDS ARROW} "
MENU_PROMPT = "sound:pbxd-prompt-menu"


@pytest.fixture
def lab_config(tmp_path: Any) -> Config:
    return write_config(tmp_path / "config", TRUNKS_YAML, MENU_ROUTING)


async def menu_call(
    lab: CallLab, did: str, *keys: tuple[float, str], hangup_after: float | None = None
) -> str:
    """A caller who presses `keys` (seconds after the menu answers, digits)."""
    return await lab.sim.inbound_call(
        did, CALLER, "Jean", hangup_after=hangup_after, script=PeerScript(keys=tuple(keys))
    )


def stops(lab: CallLab) -> list[str]:
    return [str(r["path"]) for r in lab.requests("DELETE", "/playbacks/")]


def plays(lab: CallLab, call_id: str) -> list[str]:
    return [str(r["params"]["media"]) for r in lab.requests("POST", f"/channels/{call_id}/play")]


async def test_caller_chooses_2_after_the_prompt(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=3))
    call_id = await menu_call(lab, MAIN, (6.0, "2"))  # the 5 s prompt is over
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    assert [leg.target for leg in entry.legs] == ["bob"]
    assert plays(lab, call_id) == ["sound:pbxd-prompt-menu"]
    assert stops(lab) == []  # it played out
    assert format_path(call.path).startswith(f"menu: 2{ARROW}support{ARROW}"), format_path(
        call.path
    )
    assert call.path[0].token() == "menu:chosen:2%3Esupport"
    assert call.path[-1].token() == "ring:answered"
    assert_no_errors(logs)


async def test_a_key_during_the_prompt_stops_it_and_counts(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
    call_id = await menu_call(lab, MAIN, (1.0, "1"))
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "alice", lab.timeline(call_id)
    [stop] = stops(lab)
    [play] = lab.requests("POST", f"/channels/{call_id}/play")
    assert stop.endswith(str(play["path"]).rsplit("/", 1)[-1])  # our playback, by its id
    finished = [e for e in lab.events("PlaybackFinished")]
    assert [e["playback"]["state"] for e in finished] == ["done"]
    assert entry.call.path[0].token() == "menu:chosen:1%3Esales"
    assert_no_errors(logs)


async def test_two_digit_entry_goes_to_voicemail(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # 4 then 2 (0.25 s apart): `4` alone is no option but starts `42`, so the menu waits.
    script = PeerScript(keys=((6.0, "42"),), talk=3, hangup_after_talk=True)
    call_id = await lab.sim.inbound_call(MAIN, CALLER, "Jean", script=script)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.path[0].token() == "menu:chosen:42%3Evoicemail%20billing", lab.timeline(call_id)
    assert format_path(call.path).startswith(f"menu: 42{ARROW}voicemail billing")
    assert call.disposition is Disposition.VOICEMAIL
    assert_no_errors(logs)


async def test_caller_who_never_presses_reaches_the_fallback(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/dave", PeerScript(answer_after=1, hangup_after=2))
    call_id = await menu_call(lab, MAIN)
    entry = await lab.finish(call_id)
    call = entry.call
    # The menu, 4 s of silence, the timeout beep and the menu again, 4 s more: fallback.
    assert plays(lab, call_id) == [
        "sound:pbxd-prompt-menu",
        "sound:pbxd-beep,sound:pbxd-prompt-menu",
    ]
    assert call.answered_by == "dave", lab.timeline(call_id)
    assert [s.token() for s in call.path][:2] == ["menu:timeout", "goto:jumped"]
    assert format_path(call.path).startswith(f"menu{ARROW}timeout")
    assert_no_errors(logs)


async def test_wrong_keys_then_fallback(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/dave", PeerScript(answer_after=1, hangup_after=2))
    # 7 (no option) during the prompt, then 5 during the replay: two failures, retries 1.
    call_id = await menu_call(lab, MAIN, (1.0, "7"), (2.0, "5"))
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.path[0].token() == "menu:invalid:75", lab.timeline(call_id)
    assert format_path(call.path).startswith(f"menu: 75{ARROW}invalid")
    assert call.answered_by == "dave"
    assert len(stops(lab)) == 2  # each wrong key stopped the prompt playing
    assert_no_errors(logs)


async def test_a_flood_of_keys_ends_in_the_fallback(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/dave", PeerScript(answer_after=1, hangup_after=2))
    call_id = await menu_call(lab, MAIN, (0.5, "8" * 30))
    entry = await lab.finish(call_id)
    assert entry.call.path[0].token() == "menu:invalid:88", lab.timeline(call_id)
    assert entry.call.answered_by == "dave"
    assert_no_errors(logs)


async def test_nested_menu_through_goto(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
    # 9 in the main menu (during its prompt), then 1 in the second menu's 2 s prompt.
    call_id = await menu_call(lab, MAIN, (1.0, "9"), (2.0, "1"))
    entry = await lab.finish(call_id)
    call = entry.call
    tokens = [s.token() for s in call.path]
    assert tokens[0] == "menu:chosen:9%3Emore", lab.timeline(call_id)
    assert "menu:chosen:1%3Esales" in tokens
    assert call.answered_by == "alice"
    assert_no_errors(logs)


async def test_nested_menu_gives_up_with_its_own_fallback(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    call_id = await menu_call(lab, DIRECT_SUB)
    entry = await lab.finish(call_id)
    call = entry.call
    assert [s.token() for s in call.path] == ["menu:timeout", "hangup:hung_up"], lab.timeline(
        call_id
    )
    assert lab.final_cause(call_id) == 17  # busy
    assert_no_errors(logs)


async def test_caller_hanging_up_in_the_menu(logs: list[dict[str, Any]], lab: CallLab) -> None:
    call_id = await menu_call(lab, MAIN, (1.0, "4"), hangup_after=2.5)
    entry = await lab.finish(call_id)
    call = entry.call
    assert [s.token() for s in call.path] == ["menu:abandoned:4"], lab.timeline(call_id)
    assert lab.requests("POST", "/channels/create") == []
    assert_no_errors(logs)


async def test_restart_keeps_the_caller_in_the_menu_and_the_call_goes_on(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=3))
    call_id = await menu_call(lab, MAIN)
    await lab.wait_for(lambda: plays(lab, call_id) == [MENU_PROMPT], what="the menu plays")
    await lab.virtual_sleep(2)
    # Down for longer than the 5 s prompt: the new run plays the menu again from the start.
    await lab.restart(call_id, down=10)
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 2, what="the menu again")
    assert plays(lab, call_id) == [MENU_PROMPT, MENU_PROMPT]
    lab.sim.send_dtmf(call_id, "2")
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    assert [s.token() for s in call.path] == [
        "menu:chosen:2%3Esupport",
        "goto:jumped",
        "ring:answered",
    ]
    assert [leg.target for leg in entry.legs] == ["bob"]
    # One call in the log, answered once by pbxd (billed from the menu's answer, not again).
    assert [e.call.call_id for e in await lab.store.call_log(MAIN)] == [call_id]
    assert len(lab.requests("POST", f"/channels/{call_id}/answer")) == 1
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_mid_prompt_keeps_the_prompt_and_the_menus_failures(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script("PJSIP/dave", PeerScript(answer_after=1, hangup_after=2))
    call_id = await menu_call(lab, MAIN)
    await lab.wait_for(lambda: plays(lab, call_id) == [MENU_PROMPT], what="the menu plays")
    lab.sim.send_dtmf(call_id, "7")  # no such option: one failure of the one forgiven
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 2, what="the menu after 7")
    await lab.virtual_sleep(1)
    # Back within the 5.3 s prompt: it goes on, nothing is played twice.
    await lab.restart(call_id, down=1)
    lab.sim.send_dtmf(call_id, "5")  # a second wrong key: retries 1, so the fallback
    entry = await lab.finish(call_id)
    call = entry.call
    assert plays(lab, call_id) == [MENU_PROMPT, f"sound:pbxd-beep,{MENU_PROMPT}"]
    assert call.path[0].token() == "menu:invalid:75", lab.timeline(call_id)
    assert call.answered_by == "dave"  # the fallback: reception
    assert len(stops(lab)) == 2  # each key stopped the prompt playing, across the restart
    assert [e.call.call_id for e in await lab.store.call_log(MAIN)] == [call_id]
    assert_no_errors(logs)


async def test_a_restart_numbers_new_events_after_those_it_cannot_read(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # A newer pbxd journaled an event of a kind this one does not know; this one (a
    # downgrade) adopts the call: its events go on after the highest stored number, never
    # over the unknown one, and none of its own is dropped as a twin.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=3))
    call_id = await menu_call(lab, MAIN)
    await lab.wait_for(lambda: plays(lab, call_id) == [MENU_PROMPT], what="the menu plays")
    await lab.virtual_sleep(2)
    await lab.kill_service()
    store = await lab.reopen_store()
    async with store.engine.begin() as conn:
        stored = (
            await conn.execute(
                select(func.max(CallEventRow.seq)).where(CallEventRow.call_id == call_id)
            )
        ).scalar_one()
        await conn.execute(
            insert(CallEventRow).values(
                call_id=call_id,
                seq=stored + 1,
                at=lab.clock.now(),
                kind="from_a_newer_pbxd",
                data={"what": "kept"},
            )
        )
    await lab.virtual_sleep(10)  # longer than the prompt: the menu plays again
    await lab.start_service()
    await lab.wait_for(lambda: len(plays(lab, call_id)) == 2, what="the menu again")
    lab.sim.send_dtmf(call_id, "2")
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "bob", lab.timeline(call_id)
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(CallEventRow.seq, CallEventRow.kind, CallEventRow.data)
                .where(CallEventRow.call_id == call_id)
                .order_by(CallEventRow.seq)
            )
        ).all()
    seqs = [row.seq for row in rows]
    assert seqs == list(range(1, len(rows) + 1))  # no gap, no twin
    unknown = [row for row in rows if row.kind == "from_a_newer_pbxd"]
    assert [(row.seq, row.data) for row in unknown] == [(stored + 1, {"what": "kept"})]
    after = [row.kind for row in rows if row.seq > stored + 1]
    # The adopted run's own events, every one: adopted, the menu again, the choice, the ring.
    assert after[:4] == ["call_adopted", "menu_prompted", "step_left", "step_entered"], after
    assert after[-1] == "call_ended"
    assert_no_errors(logs)


async def test_restart_while_the_chosen_option_rings_goes_on_ringing(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The caller chose 2 (support: bob), pbxd dies while bob rings, bob answers afterwards.
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=4, hangup_after=3))
    call_id = await menu_call(lab, MAIN, (1.0, "2"))
    await lab.wait_for(
        lambda: len(lab.requests("POST", "/channels/create")) == 1, what="bob is called"
    )
    await lab.virtual_sleep(1)
    await lab.restart(call_id, down=1)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "bob"
    assert [s.token() for s in call.path][-1] == "ring:answered"
    assert [leg.target for leg in entry.legs] == ["bob"]
    assert len(lab.requests("POST", "/channels/create")) == 1  # bob was not called twice
    assert len(lab.requests("POST", f"/channels/{call_id}/answer")) == 1
    assert_no_errors(logs)


async def test_what_a_menu_call_costs(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # The caller presses 1 a second into the prompt; alice answers a second after her call.
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
    entry, events, requests, rows = await what_a_call_costs(lab, menu_call(lab, MAIN, (1.0, "1")))
    assert entry.call.answered_by == "alice", lab.timeline(entry.call.call_id)
    # A two-leg ringall call's 17 events less the second leg's five (StasisStart, StasisEnd,
    # ChannelDestroyed, ChannelHangupRequest, Ringing), plus the key and the end of the
    # prompt the key stopped.
    assert sum(events.values()) == 14, events
    assert events["ChannelDtmfReceived"] == events["PlaybackFinished"] == 1
    # The menu's answer, prompt, stop of the prompt on the key and ringback for the caller
    # (answered: Asterisk plays it in band), then alice's create, dial, bridge, the caller
    # into it and the last hang-up (the first call of a run makes its bridge).
    assert requests == Counter(
        {
            "POST /channels/{id}/answer": 1,
            "POST /channels/{id}/play/{id}": 1,
            "DELETE /playbacks/{id}": 1,
            "POST /channels/{id}/ring": 1,
            "POST /channels/{id}": 1,
            "POST /channels/{id}/dial": 1,
            "POST /bridges": 1,
            "POST /bridges/{id}/addChannel": 1,
            "DELETE /channels/{id}": 1,
        }
    ), requests
    # The journal: one row per prompt (where a restart takes the menu up), the menu's and
    # the goto's steps, pbxd's answer, then the ringing as any call.
    assert rows == [
        "call_arrived",
        "step_entered",
        "caller_answered",
        "menu_prompted",
        "step_left",
        "step_entered",
        "step_left",
        "step_entered",
        "leg_created",
        "leg_rung",
        "leg_answered",
        "caller_answered",
        "bridged",
        "step_left",
        "leg_ended",
        "caller_gone",
        "caller_gone",
        "call_ended",
    ], rows
    assert_no_errors(logs)
