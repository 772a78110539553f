"""Confirm calls (press 1 to accept) and whisper, end to end through the daemon and the
simulator, on SQLite and PostgreSQL.

The lab's screening prompt is the 4 s `pbxd-prompt-screen` of the real trace
`captures/media/screening_press1`; the whisper is the 2 s `pbxd-prompt-welcome`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import delete, select

from pbxd.cdr.records import Disposition
from pbxd.cdr.schema import CallEventRow
from pbxd.config.model import Config
from pbxd.sim import PeerScript

from .conftest import MOBILE, TRUNKS_YAML, CallLab, assert_no_errors, seconds, write_config
from .test_traffic import what_a_call_costs

CONFIRMED = "+33170000001"  # alice (softphone) and m1 (confirm) at once; 30 s
WHISPERED = "+33170000002"  # alice, whispered
BOTH = "+33170000003"  # m2 with confirm set on the route's entry, and a whisper; 20 s
TWO_MOBILES = "+33170000004"  # m1 and m3, both confirm; 25 s
# One route (`whisper: number`) for two numbers, each announced by its own inventory prompt.
SALES_LINE, SUPPORT_LINE = "+33170000005", "+33170000006"
LINE_PROMPTS = {SALES_LINE: "sound:acme-sales-line", SUPPORT_LINE: "sound:acme-support-line"}
LINE_SECONDS = {"acme-sales-line": 2.0, "acme-support-line": 3.5}

SCREEN_TRUNKS = TRUNKS_YAML.replace(
    "          - number: 01 70 00 00 05\n",
    "          - {number: 01 70 00 00 05, label: Sales line, whisper: acme-sales-line}\n",
).replace(
    "          - number: 01 70 00 00 06\n",
    "          - {number: 01 70 00 00 06, label: Support line, whisper: [acme-support-line]}\n",
)

SCREEN_ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      m1: {external: 06 12 34 56 71, trunk: carrier-fr, confirm: true}
      m2: {external: 06 12 34 56 72, trunk: carrier-fr}
      m3: {external: 06 12 34 56 73, trunk: carrier-fr, confirm: true}
    routes:
      - name: confirmed
        numbers: [01 70 00 00 01]
        targets: [alice, m1]
        ring_time: 30
        timeout: 30
        confirm_prompt: pbxd-prompt-screen
      - name: whispered
        numbers: [01 70 00 00 02]
        targets: [alice]
        whisper: pbxd-prompt-welcome
        timeout: 20
      - name: both
        numbers: [01 70 00 00 03]
        targets: [{target: m2, confirm: true}]
        whisper: [pbxd-prompt-welcome]
        confirm_prompt: pbxd-prompt-screen
        ring_time: 20
        timeout: 20
      - name: two-mobiles
        numbers: [01 70 00 00 04]
        targets: [m1, m3]
        confirm_prompt: pbxd-prompt-screen
        ring_time: 25
        timeout: 25
      - name: shared-lines
        numbers: [01 70 00 00 05, 01 70 00 00 06]
        targets: [alice]
        whisper: number
        timeout: 20
"""
M1, M2, M3 = MOBILE[1], MOBILE[2], MOBILE[3]


@pytest.fixture
def lab_config(tmp_path: Any) -> Config:
    assert SCREEN_TRUNKS.count("whisper") == 2
    return write_config(tmp_path / "config", SCREEN_TRUNKS, SCREEN_ROUTING)


def trace(lab: CallLab, call_id: str) -> list[str]:
    """The daemon's requests as `METHOD what`, channel ids named caller / leg N."""
    names = {call_id: "caller", **{f"{call_id}-{n}": f"leg{n}" for n in range(1, 5)}}
    out = []
    for request in lab.sim.rest_log:
        path = str(request["path"])
        for channel, name in sorted(names.items(), key=lambda kv: -len(kv[0])):
            path = path.replace(channel, name)
        parts = path.strip("/").split("/")
        if parts[0] == "playbacks":
            parts = parts[:1]
        elif parts[0] == "channels" and len(parts) >= 3 and parts[2] == "play":
            parts = parts[:3]
        elif parts[0] == "bridges":
            parts = [parts[0], *parts[2:]]
        out.append(f"{request['method']} {'/'.join(parts)}")
    return out


async def verdicts(lab: CallLab, call_id: str) -> list[tuple[str, str]]:
    """The screening verdicts the call's journal stored, by target."""
    session = lab.finished[call_id]
    targets = {leg.channel_id: leg.plan.target for leg in session.legs}
    return [
        (targets[e.data["leg"]], e.data["verdict"])
        for e in await lab.store.events_of(call_id)
        if e.kind == "leg_screened"
    ]


async def test_press_1_follows_the_real_trace(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # screening_press1: the mobile answers after 1 s and presses 1 one second into the prompt.
    lab.sim.script(M1, PeerScript(answer_after=1, dtmf="1", dtmf_after=1, hangup_after=3))
    call_id = await lab.call(CONFIRMED)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "m1"
    steps = trace(lab, call_id)
    # Leg up: its prompt (caller still ringing), 1, marked accepted on the leg (what a
    # restart reads back), stop the prompt, answer, bridge.
    screen = steps.index("POST channels/leg2/play")
    assert steps[screen : screen + 6] == [
        "POST channels/leg2/play",
        "POST channels/leg2/variable",
        "DELETE playbacks",
        "DELETE channels/leg1",  # alice, answered elsewhere
        "POST channels/caller/answer",
        "POST bridges",
    ], steps
    assert "POST channels/caller/answer" not in steps[:screen]
    assert lab.final_cause(f"{call_id}-1") == 26
    heard = lab.sim.channel_history(f"{call_id}-2").heard  # type: ignore[union-attr]
    assert [h.media_uri for h in heard] == ["sound:pbxd-prompt-screen"]
    assert not lab.sim.channel_history(call_id).heard  # type: ignore[union-attr]
    # Billed from the press, not from the mobile's answer.
    assert seconds(call.started_at, call.answered_at) >= 2.0
    assert await verdicts(lab, call_id) == [("m1", "accepted")]
    assert_no_errors(logs)


async def test_mobile_voicemail_is_refused_and_the_softphone_answers(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # The mobile's voicemail picks up at 2 s and never presses; alice answers at 15 s.
    lab.sim.script(M1, PeerScript(voicemail_after=2))
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=15, hangup_after=2))
    call_id = await lab.call(CONFIRMED)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.answered_by == "alice", lab.timeline(call_id)
    legs = {leg.target: leg for leg in entry.legs}
    # The voicemail answered, heard the prompt, waited 6 s in silence, was put down (16).
    assert legs["m1"].answered_at is not None
    assert legs["m1"].hangup_cause == 16
    assert legs["m1"].ended_at < legs["alice"].answered_at  # type: ignore[operator]
    assert 11.5 <= seconds(call.started_at, legs["m1"].ended_at) <= 14.5
    assert await verdicts(lab, call_id) == [("m1", "refused_silence")]
    assert_no_errors(logs)


async def test_any_other_key_refuses_and_the_call_goes_on(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script(M1, PeerScript(answer_after=1, dtmf="2", dtmf_after=1))
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=5, hangup_after=2))
    call_id = await lab.call(CONFIRMED)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "alice", lab.timeline(call_id)
    assert await verdicts(lab, call_id) == [("m1", "refused_key")]
    assert lab.final_cause(f"{call_id}-2") == 16
    assert_no_errors(logs)


async def test_mobile_hanging_up_during_the_prompt(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script(M1, PeerScript(answer_after=1, hangup_after=1))
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=5, hangup_after=2))
    call_id = await lab.call(CONFIRMED)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "alice", lab.timeline(call_id)
    assert await verdicts(lab, call_id) == []
    assert_no_errors(logs)


async def test_every_mobile_refuses_then_no_answer(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    lab.sim.script(M1, PeerScript(voicemail_after=1))
    lab.sim.script(M3, PeerScript(answer_after=2, dtmf="9", dtmf_after=0.5))
    call_id = await lab.call(TWO_MOBILES)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.answered_at is None, lab.timeline(call_id)
    assert call.disposition is Disposition.NO_ANSWER
    assert sorted(await verdicts(lab, call_id)) == [
        ("m1", "refused_silence"),
        ("m3", "refused_key"),
    ]
    assert "POST channels/caller/answer" not in trace(lab, call_id)
    assert_no_errors(logs)


async def test_the_first_mobile_to_press_1_wins(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # Both answer; m3 presses 1 first, m1 (still deciding) is answered elsewhere.
    lab.sim.script(M1, PeerScript(answer_after=1, dtmf="1", dtmf_after=3))
    lab.sim.script(M3, PeerScript(answer_after=1, dtmf="1", dtmf_after=1, hangup_after=3))
    call_id = await lab.call(TWO_MOBILES)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "m3", lab.timeline(call_id)
    assert lab.final_cause(f"{call_id}-1") == 26
    assert await verdicts(lab, call_id) == [("m3", "accepted")]
    assert_no_errors(logs)


async def test_whisper_is_for_the_callee_alone(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=5))
    call_id = await lab.call(WHISPERED)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.answered_by == "alice", lab.timeline(call_id)
    alice = lab.sim.channel_history(f"{call_id}-1")
    caller = lab.sim.channel_history(call_id)
    assert alice is not None and caller is not None
    assert [(h.media_uri, h.complete) for h in alice.heard] == [("sound:pbxd-prompt-welcome", True)]
    assert caller.heard == []  # the caller heard ringing, never the whisper
    steps = trace(lab, call_id)
    assert steps.index("POST channels/caller/answer") > steps.index("POST channels/leg1/play")
    assert "DELETE playbacks" not in steps  # played out, not cut
    # Answered once the 2 s whisper had played (alice picked up at 1 s).
    assert seconds(call.started_at, call.answered_at) >= 3.0
    assert await verdicts(lab, call_id) == [("alice", "accepted")]
    assert_no_errors(logs)


async def test_whisper_then_confirm_in_one_prompt(logs: list[dict[str, Any]], lab: CallLab) -> None:
    lab.sim.script(M2, PeerScript(answer_after=1, dtmf="1", dtmf_after=4, hangup_after=8))
    call_id = await lab.call(BOTH)
    entry = await lab.finish(call_id)
    assert entry.call.answered_by == "m2", lab.timeline(call_id)
    [play] = lab.requests("POST", f"/channels/{call_id}-1/play")
    assert play["params"]["media"] == "sound:pbxd-prompt-welcome,sound:pbxd-prompt-screen"
    assert_no_errors(logs)


async def test_each_number_whispers_its_own_line_on_a_shared_route(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # Two callers at once, one on each line of the same route; alice answers both after 1 s.
    for name, length in LINE_SECONDS.items():
        lab.sim.add_sound(name, length)
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=6))
    calls = {
        did: await lab.call(did, caller=f"+3361200000{n}") for n, did in enumerate(LINE_PROMPTS)
    }
    await lab.settle()
    lab.assert_nothing_leaked()
    for did, call_id in calls.items():
        entry = await lab.store.get_call(call_id)
        assert entry is not None
        call = entry.call
        assert (call.did, call.answered_by) == (did, "alice"), lab.timeline(call_id)
        alice = lab.sim.channel_history(f"{call_id}-1")
        caller = lab.sim.channel_history(call_id)
        assert alice is not None and caller is not None
        # The callee heard this line's prompt, played out; the caller no playback at all.
        assert [(h.media_uri, h.complete) for h in alice.heard] == [(LINE_PROMPTS[did], True)]
        assert caller.heard == []
        assert lab.requests("POST", f"/channels/{call_id}/play") == []
        # The caller heard ringing (180) from before the whisper until the answer (200).
        assert caller.sip_responses[-2:] == [180, 200], caller.sip_responses
        assert 183 not in caller.sip_responses
        steps = trace(lab, call_id)
        ring, play = (
            steps.index("POST channels/caller/ring"),
            steps.index("POST channels/leg1/play"),
        )
        assert ring < play < steps.index("POST channels/caller/answer"), steps
        # Answered once this line's whisper had played (alice picked up at 1 s).
        whisper_seconds = LINE_SECONDS[LINE_PROMPTS[did].removeprefix("sound:")]
        assert seconds(call.started_at, call.answered_at) >= 1 + whisper_seconds
        assert await verdicts(lab, call_id) == [("alice", "accepted")]
    assert_no_errors(logs)


async def lose_journal_from(lab: CallLab, call_id: str, kind: str) -> None:
    """The journal's last batch never reached the database: its events from `kind` on."""
    async with lab.store.engine.begin() as conn:
        rows = await conn.execute(
            select(CallEventRow.seq).where(
                CallEventRow.call_id == call_id, CallEventRow.kind == kind
            )
        )
        [first] = rows.scalars().all()
        await conn.execute(
            delete(CallEventRow).where(CallEventRow.call_id == call_id, CallEventRow.seq >= first)
        )


async def wait_bridged(lab: CallLab, call_id: str, leg: str, within: float = 60.0) -> None:
    await lab.wait_for(
        lambda: any({call_id, leg} <= set(b.channels) for b in lab.sim.bridges),
        within=within,
        what=f"caller and {leg} bridged",
    )


def screening_mark(lab: CallLab, channel_id: str) -> str | None:
    channel = lab.sim.channel(channel_id)
    return channel.variables.get("PBXD_SCREENING") if channel is not None else None


@pytest.mark.parametrize("journal", ["journaled", "batch lost"])
async def test_restart_after_the_callee_accepted_puts_the_call_through(
    logs: list[dict[str, Any]], lab: CallLab, journal: str
) -> None:
    # m1 presses 1 a second into its prompt; pbxd dies right then, before the call is put
    # through (the stop of the prompt never answered): the new run bridges, never asks again.
    lab.sim.script(M1, PeerScript(answer_after=1, dtmf="1", dtmf_after=1, hangup_after=8))
    call_id = await lab.call(CONFIRMED)
    m1 = f"{call_id}-2"
    lab.sim.faults.stall_requests("DELETE", "/playbacks/*")
    await lab.wait_for(lambda: screening_mark(lab, m1) == "accepted", what="m1 accepted")
    await lab.kill_service()
    await lab.reopen_store()
    if journal == "batch lost":  # only Asterisk's channel variable says m1 accepted
        await lose_journal_from(lab, call_id, "leg_screened")
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    await wait_bridged(lab, call_id, m1, within=2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "m1"
    assert len(lab.requests("POST", f"/channels/{m1}/play")) == 1  # asked once, not again
    assert lab.final_cause(f"{call_id}-1") == 26  # alice: answered elsewhere
    events = await lab.store.events_of(call_id)
    assert [e.data["verdict"] for e in events if e.kind == "leg_screened"] == ["accepted"]
    assert [e.kind for e in events].count("leg_answered") == 1  # answered once, not again
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_restart_while_the_callee_decides_asks_once_more_never_twice(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # m1 answers at 1 s, hears the 4 s question and waits: pbxd dies while it decides.
    lab.sim.script(M1, PeerScript(answer_after=1))
    call_id = await lab.call(CONFIRMED)
    m1 = f"{call_id}-2"
    await lab.wait_for(
        lambda: len(lab.requests("POST", f"/channels/{m1}/play")) == 1, what="m1 asked"
    )
    await lab.virtual_sleep(5)  # the question played out: m1 is deciding
    await lab.restart(call_id)
    await lab.wait_for(
        lambda: len(lab.requests("POST", f"/channels/{m1}/play")) == 2, what="m1 asked again"
    )
    assert screening_mark(lab, m1) == "asked-again"
    await lab.virtual_sleep(5)  # asked again, played out; a second restart while deciding
    await lab.restart(call_id)
    await lab.virtual_sleep(1)
    assert len(lab.requests("POST", f"/channels/{m1}/play")) == 2  # not a third time
    lab.sim.send_dtmf(m1, "1")  # within the 6 s the question waits for
    await wait_bridged(lab, call_id, m1)
    lab.sim.hangup(m1)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.answered_by == "m1", lab.timeline(call_id)
    assert await verdicts(lab, call_id) == [("m1", "accepted")]
    events = await lab.store.events_of(call_id)
    assert [e.kind for e in events].count("leg_answered") == 1
    assert_no_errors(logs)


async def test_restart_between_the_answer_and_the_bridge_puts_the_call_through(
    logs: list[dict[str, Any]], lab: CallLab
) -> None:
    # m1 accepts; the caller is answered for it, and pbxd dies before the bridge is made.
    lab.sim.script(M1, PeerScript(answer_after=1, dtmf="1", dtmf_after=1, hangup_after=8))
    call_id = await lab.call(CONFIRMED)
    m1 = f"{call_id}-2"
    lab.sim.faults.stall_requests("POST", "/bridges*")
    await lab.wait_for(
        lambda: lab.requests("POST", f"/channels/{call_id}/answer") != [], what="caller answered"
    )
    await lab.restart(call_id)
    await wait_bridged(lab, call_id, m1, within=2)
    entry = await lab.finish(call_id)
    call = entry.call
    assert call.disposition is Disposition.ANSWERED, lab.timeline(call_id)
    assert call.answered_by == "m1"
    assert len(lab.requests("POST", f"/channels/{m1}/play")) == 1
    assert len(lab.requests("POST", f"/channels/{call_id}/answer")) == 1
    assert await lab.store.open_calls() == []
    assert_no_errors(logs)


async def test_what_a_confirm_call_costs(logs: list[dict[str, Any]], lab: CallLab) -> None:
    # As the real trace: m1 answers after 1 s and presses 1 a second into its prompt.
    lab.sim.script(M1, PeerScript(answer_after=1, dtmf="1", dtmf_after=1, hangup_after=3))
    entry, events, requests, rows = await what_a_call_costs(lab, lab.call(CONFIRMED))
    assert entry.call.answered_by == "m1", lab.timeline(entry.call.call_id)
    # A two-leg ringall call's 17 events, plus m1's key and the end of the prompt it stopped.
    assert sum(events.values()) == 19, events
    assert events["ChannelDtmfReceived"] == events["PlaybackFinished"] == 1
    # A two-leg ringall call's requests (through a plain Stasis: with `ring`; the first call
    # of a run makes its bridge), plus m1's prompt, its mark (PBXD_SCREENING, for a restart)
    # and the stop of the prompt on the key.
    assert requests == Counter(
        {
            "POST /channels/{id}/ring": 1,
            "POST /channels/{id}": 2,
            "POST /channels/{id}/dial": 2,
            "POST /channels/{id}/play/{id}": 1,
            "POST /channels/{id}/variable": 1,
            "DELETE /playbacks/{id}": 1,
            "DELETE /channels/{id}": 2,
            "POST /channels/{id}/answer": 1,
            "POST /bridges": 1,
            "POST /bridges/{id}/addChannel": 1,
        }
    ), requests
    # A ringall call's journal and one row more: the verdict.
    assert rows == [
        "call_arrived",
        "step_entered",
        "leg_created",
        "leg_created",
        "leg_rung",
        "leg_rung",
        "leg_answered",
        "leg_screened",
        "caller_answered",
        "bridged",
        "step_left",
        "leg_ended",
        "leg_ended",
        "caller_gone",
        "caller_gone",
        "call_ended",
    ], rows
    assert_no_errors(logs)
