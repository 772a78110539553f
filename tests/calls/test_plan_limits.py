"""Plans with limits, through the daemon against the simulator, on SQLite and PostgreSQL.

Minutes are counted from the CDRs (forwarded legs and calls going out, a call in progress up
to now), in the calendar month of the number's time zone; a call that reaches the limit is
warned then cut; a new call meets the plan's `at_limit`; emergency calls never count and are
never refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbxd.cdr.records import Disposition, StepKind
from pbxd.config.model import Config
from pbxd.dialplan.limits import UsageKind, month_of, used_seconds
from pbxd.sim import PeerScript

from .conftest import ROUTING_YAML, CallLab, LabFactory, lose_every_cdr_write, write_config

VIRTUAL = "+33170000001"  # alice and bob call out as it; 3 outbound minutes, 2 calls at once
MOBILES = "+33170000005"  # forwards to m1, m2, m3; 2 forwarded minutes, then voicemail
PARIS = ZoneInfo("Europe/Paris")
WARNING = "sound:plan-limit-warning"
LONG = 400.0  # virtual seconds a call may take to be cut at the plan's minutes

PLANS_YAML = """\
    outbound:
      reception:
        softphones: [alice, bob, dave]
        outbound_number: 01 70 00 00 01
        timeout: 20
    mailboxes:
      overflow: {min_seconds: 0}
    plans:
      calling-out:
        numbers: [01 70 00 00 01]
        outbound_minutes: 3
        max_calls: 2
        warn_before: 60
      forwarding:
        numbers: [01 70 00 00 05]
        forwarded_minutes: 2
        max_destinations: 3
        at_limit: {voicemail: overflow}
"""


FINISH = "warn_before: 60\n        when_crossed: finish\n"


@pytest.fixture
def lab_config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "config", routing=ROUTING_YAML + PLANS_YAML)


async def usage(lab: CallLab, did: str) -> dict[UsageKind, int]:
    await lab.store.flush()
    now = lab.clock.now()
    since, until = month_of(now, PARIS)
    return used_seconds(await lab.store.billables_of(did, since, until), now)


def creates(lab: CallLab) -> list[str]:
    return [str(r["params"].get("endpoint")) for r in lab.requests("POST", "/channels/create")]


def warnings_played(lab: CallLab, channel_id: str) -> list[str]:
    return [
        str(r["params"].get("media"))
        for r in lab.requests("POST", f"/channels/{channel_id}/play")
        if "plan-limit-warning" in str(r["params"].get("media"))
    ]


async def test_a_call_going_out_is_warned_then_cut_at_the_plans_minutes(lab: CallLab) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=2))  # talks until cut
    call_id = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    entry = await lab.finish(call_id, within=LONG)

    assert entry.call.billsec == 180
    assert entry.call.disposition is Disposition.ANSWERED
    assert warnings_played(lab, call_id) == [WARNING]
    assert (await usage(lab, VIRTUAL))[UsageKind.OUTBOUND] == 180
    # Used up: the next call is refused (the plan's default cause: busy) before any channel.
    second = await lab.sim.softphone_call("bob", "06 12 34 56 79")
    refused = await lab.finish(second, within=LONG)
    assert creates(lab) == ["PJSIP/+33612345678@trunk-out"]
    assert lab.final_cause(second) == 17
    assert refused.call.path[-1].kind is StepKind.HANGUP
    # ... but an emergency call goes out, and counts for nothing.
    lab.sim.script("PJSIP/112@trunk-out", PeerScript(answer_after=1, hangup_after=30))
    emergency = await lab.sim.softphone_call("bob", "112")
    sent = await lab.finish(emergency, within=LONG)
    assert sent.call.emergency and sent.call.billsec == 30
    assert creates(lab)[-1] == "PJSIP/112@trunk-out"
    assert (await usage(lab, VIRTUAL))[UsageKind.OUTBOUND] == 180


async def test_two_calls_at_once_share_the_minutes_each_counted_once(lab: CallLab) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=2))
    first = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    second = await lab.sim.softphone_call("bob", "06 12 34 56 79")
    one, two = await lab.finish(first, within=LONG), await lab.finish(second, within=LONG)

    # Both talk at once: the 180 s run out together, after 90 s each (each warned at 30 s).
    assert (one.call.billsec, two.call.billsec) == (90, 90)
    assert warnings_played(lab, first) == warnings_played(lab, second) == [WARNING]
    assert (await usage(lab, VIRTUAL))[UsageKind.OUTBOUND] == 180


async def test_max_calls_refuses_a_third_call_while_two_are_in_progress(lab: CallLab) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=10))
    first = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    second = await lab.sim.softphone_call("bob", "06 12 34 56 79")
    await lab.wait_for(lambda: len(creates(lab)) == 2, within=5, what="two calls out")
    third = await lab.sim.softphone_call("dave", "06 12 34 56 71")
    refused = await lab.finish(third, within=LONG)
    assert refused.call.disposition is not Disposition.ANSWERED
    assert lab.final_cause(third) == 17
    assert len(creates(lab)) == 2
    for call_id in (first, second):
        assert (await lab.finish(call_id, within=LONG)).call.billsec == 10


async def test_forwarded_minutes_then_voicemail_and_a_restart_sees_the_same_count(
    lab: CallLab, make_lab: LabFactory
) -> None:
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1))
    call_id = await lab.call(MOBILES)
    entry = await lab.finish(call_id, within=LONG)
    answered = [leg for leg in entry.legs if leg.answered_at is not None]
    assert len(answered) == 1
    assert entry.call.billsec is not None and 119 <= entry.call.billsec <= 121
    assert (await usage(lab, MOBILES))[UsageKind.FORWARDED] == 120
    # A restarted daemon reads the same count from the CDRs: the next caller gets voicemail.
    await lab.kill_service()
    await lab.start_service()
    creates_before = len(creates(lab))
    next_call = await lab.call(MOBILES, hangup_after=5)
    overflowed = await lab.finish(next_call, within=LONG)
    assert len(creates(lab)) == creates_before  # nobody rung
    assert overflowed.call.path[0].kind is StepKind.VOICEMAIL


async def test_the_month_is_the_numbers_own(make_lab: LabFactory, lab_config: Config) -> None:
    # 22:55 UTC on 30 November is 23:55 in Paris: still November there.
    lab = await make_lab(lab_config, origin=datetime(2026, 11, 30, 22, 55, tzinfo=UTC))
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=180))
    november = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    assert (await lab.finish(november, within=LONG)).call.billsec == 180
    # 23:05 UTC: still November in UTC, but 1 December in Paris: a new month, 3 minutes again.
    await lab.virtual_sleep(
        (datetime(2026, 11, 30, 23, 5, tzinfo=UTC) - lab.clock.now()).total_seconds()
    )
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=20))
    december = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    entry = await lab.finish(december, within=LONG)
    assert entry.call.disposition is Disposition.ANSWERED and entry.call.billsec == 20
    assert (await usage(lab, VIRTUAL))[UsageKind.OUTBOUND] == 20


async def test_when_crossed_finish_lets_the_call_end_by_itself(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "finish",
        routing=ROUTING_YAML
        + PLANS_YAML.replace(
            "warn_before: 60\n", "warn_before: 60\n        when_crossed: finish\n"
        ),
    )
    lab = await make_lab(config)
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=300))
    call_id = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    entry = await lab.finish(call_id, within=400)
    assert entry.call.billsec == 300
    assert warnings_played(lab, call_id) == []


async def two_instances(make_lab: LabFactory, config: Config) -> tuple[CallLab, CallLab]:
    """Two pbxd (each with its Asterisk) on one database; the second Asterisk's clock an hour
    on, so their channel ids (`<epoch>.<seq>`) differ as two real Asterisks' do."""
    morning = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
    first = await make_lab(config, origin=morning)
    return first, await make_lab(config, origin=morning + timedelta(hours=1))


async def test_two_pbxd_on_one_database_see_the_same_count(
    make_lab: LabFactory, lab_config: Config
) -> None:
    first, second = await two_instances(make_lab, lab_config)
    first.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=150))
    second.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=100))
    early = await first.sim.softphone_call("alice", "06 12 34 56 78")
    assert (await first.finish(early, within=LONG)).call.billsec == 150
    # The other pbxd reads those 150 s from the database: 30 s left, warned at once, cut.
    late = await second.sim.softphone_call("bob", "06 12 34 56 79")
    entry = await second.finish(late, within=LONG)
    assert entry.call.billsec == 30
    assert warnings_played(second, late) == [WARNING]
    assert (await usage(second, VIRTUAL))[UsageKind.OUTBOUND] == 180


async def test_calls_in_progress_on_another_pbxd_count_against_max_calls(
    make_lab: LabFactory, lab_config: Config
) -> None:
    first, second = await two_instances(make_lab, lab_config)
    first.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=20))
    second.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1, hangup_after=20))
    talking = await first.sim.softphone_call("alice", "06 12 34 56 78")
    await first.wait_for(lambda: len(creates(first)) == 1, within=5, what="alice's call out")
    await first.store.flush()  # its open row is what the other pbxd sees
    allowed = await second.sim.softphone_call("bob", "06 12 34 56 79")
    await second.wait_for(lambda: len(creates(second)) == 1, within=5, what="bob's call out")
    await second.store.flush()
    refused = await second.sim.softphone_call("dave", "06 12 34 56 71")
    assert (await second.finish(refused, within=LONG)).call.billsec == 0
    assert second.final_cause(refused) == 17
    assert len(creates(second)) == 1
    assert (await second.finish(allowed, within=LONG)).call.billsec == 20
    assert (await first.finish(talking, within=LONG)).call.billsec == 20


async def adopt_after_restart(lab: CallLab, call_id: str, talked: float) -> None:
    """Let a bridged call talk `talked` seconds, kill pbxd, start it again: it adopts the call."""
    await lab.wait_for(
        lambda: call_id in lab.daemon.calls and lab.daemon.calls[call_id].state == "bridged",
        what=f"{call_id} bridged",
    )
    await lab.virtual_sleep(talked)
    await lab.kill_service()
    await lab.reopen_store()
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted


async def test_a_forwarded_call_adopted_after_a_restart_is_cut_at_the_plans_minutes(
    lab: CallLab,
) -> None:
    # The mobile answers and would talk for ever; pbxd restarts 30 s into the call.
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=1))
    call_id = await lab.call(MOBILES)
    await adopt_after_restart(lab, call_id, 30)
    entry = await lab.finish(call_id, within=LONG)
    # Cut at the plan's 2 minutes, as the first run would have: warned a minute ahead.
    assert entry.call.billsec is not None and 119 <= entry.call.billsec <= 121, entry.call
    assert warnings_played(lab, call_id) == [WARNING]
    assert (await usage(lab, MOBILES))[UsageKind.FORWARDED] in (119, 120, 121)


async def test_a_call_going_out_adopted_after_a_restart_is_cut_at_the_plans_minutes(
    lab: CallLab,
) -> None:
    # Warned before the restart (a minute before its 3), then adopted: cut at 3 min all the same.
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=2))
    call_id = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    await adopt_after_restart(lab, call_id, 150)
    entry = await lab.finish(call_id, within=LONG)
    assert entry.call.billsec == 180, entry.call
    assert warnings_played(lab, call_id) == [WARNING]  # warned once, not again once adopted
    assert (await usage(lab, VIRTUAL))[UsageKind.OUTBOUND] == 180


async def test_a_call_warned_then_adopted_without_its_cdr_is_not_warned_again(
    lab: CallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Warned at 2 min of its 3, then pbxd dies before any CDR batch committed: no row, no
    # journal. The call is adopted from Asterisk's bridge; the caller's channel still says it
    # was warned (PBXD_PLAN_WARNED), so it is cut at 3 min without a second warning.
    lose_every_cdr_write(lab, monkeypatch)
    lab.sim.script("PJSIP/trunk-out", PeerScript(answer_after=2))
    call_id = await lab.sim.softphone_call("alice", "06 12 34 56 78")
    await lab.wait_for(lambda: warnings_played(lab, call_id) == [WARNING], within=LONG)
    await lab.virtual_sleep(10)
    await lab.kill_service()
    await lab.reopen_store()
    assert await lab.store.open_calls() == []
    await lab.start_service()
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call adopted")
    assert lab.daemon.calls[call_id].adopted
    entry = await lab.finish(call_id, within=LONG)
    # Billed from the leg's creation (nothing kept its answer): cut at the plan's 3 minutes.
    assert entry.call.billsec is not None and 178 <= entry.call.billsec <= 182, entry.call
    assert warnings_played(lab, call_id) == [WARNING]  # once, before the restart
