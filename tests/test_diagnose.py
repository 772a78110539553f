"""The diagnose verdict: a pure function over plain facts, as a table of cases; and the
flow walked at a given instant with the dialplan's own planner."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.diagnose import (
    Facts,
    FlowNow,
    PlanCheck,
    Presence,
    TargetCheck,
    examine,
    format_text,
    rings_somebody,
    verdict,
)
from pbxd.dialplan.limits import Billable, UsageKind

RING = FlowNow(
    ("open", "ring alice, bob, mobile (ringall)"), True, "ring", ("alice", "bob", "mobile")
)


def phone(name: str, presence: str | None = "online", dnd: bool = False) -> TargetCheck:
    return TargetCheck(name, "softphone", f"PJSIP/{name}", presence, dnd)


def mobile(cause: int | None = None, dnd: bool = False) -> TargetCheck:
    return TargetCheck("mobile", "external", None, None, dnd, cause)


def facts(*targets: TargetCheck, flow: FlowNow = RING, failed: int = 0, **kw: object) -> Facts:
    base: dict[str, object] = {
        "number": "+33170000001",
        "in_inventory": True,
        "status": "active",
        "route": "reception",
        "flow": flow,
        "targets": targets,
        "failed_calls": failed,
    }
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


CASES = [
    (
        Facts("+33170009999", in_inventory=False),
        "not ours: +33170009999 is not in the inventory, calls to it are refused",
    ),
    (facts(status="reserved", flow=None), "reserved: the number takes no calls"),
    (
        facts(
            status="porting", port_date=date(2026, 12, 15), days_to_port=12, losing_carrier="Orange"
        ),
        "porting: calls reach pbxd once the port from Orange completes on 2026-12-15 "
        "(12 day(s) left)",
    ),
    # Port date passed but still marked porting: judged on its route like any number.
    (
        facts(phone("alice"), status="porting", port_date=date(2026, 12, 1), days_to_port=-2),
        "rings alice now; no failed call recorded",
    ),
    (
        facts(route=None, flow=FlowNow(("refused",), None, "reject", rejected="x has no route")),
        "refused: x has no route",
    ),
    (
        facts(flow=FlowNow(("closed", "voicemail reception"), False, "voicemail")),
        "closed now: a call goes closed → voicemail reception (no phone rings)",
    ),
    (
        facts(flow=FlowNow(("open", "voice menu"), True, "menu")),
        "open now: a call goes open → voice menu (no phone rings)",
    ),
    (
        facts(phone("alice", "offline"), phone("bob", "offline"), mobile(21)),
        "rings nobody: every softphone offline and mobile refused by the carrier, cause 21 "
        "(call rejected)",
    ),
    (
        facts(phone("alice", "offline"), phone("bob", dnd=True), mobile(1)),
        "rings nobody: alice offline, bob on do-not-disturb and mobile refused by the carrier, "
        "cause 1 (unallocated number)",
    ),
    (
        facts(phone("alice", None), phone("bob", None), mobile(21), presence_error="can't ask"),
        "may ring nobody: can't tell if alice, bob online (presence can't be asked); mobile "
        "refused by the carrier, cause 21 (call rejected)",
    ),
    (
        facts(phone("alice", "unknown"), phone("bob", "offline"), mobile(19)),
        "rings mobile now; bob offline; can't tell if alice online; no failed call recorded",
    ),
    (
        facts(phone("alice"), phone("bob", "offline"), mobile(21), failed=3),
        "rings alice now; bob offline and mobile refused by the carrier, cause 21 (call "
        "rejected); 3 failed call(s) below",
    ),
    (
        facts(phone("alice"), phone("bob"), mobile()),
        "rings alice, bob, mobile now; no failed call recorded",
    ),
    (
        facts(flow=FlowNow(("ring nobody (ringall)",), None, "ring", ())),
        "rings nobody: the route's ring step has no enabled target",
    ),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_verdict(given: Facts, expected: str) -> None:
    assert verdict(given) == expected


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("routing", "sounds"):
        shutil.copytree(REPO / name, tmp_path / name)
    result = compile_config(tmp_path / "pbxd.yaml")
    assert result.config is not None
    return result.config


@pytest.mark.parametrize(
    ("at", "steps", "open_now"),
    [
        # Thursday 3 Dec 2026, Paris: open at 16:00, closed for lunch at 13:00, closed at 22:00.
        (datetime(2026, 12, 3, 15, 0, tzinfo=UTC), ("open", "greeting"), True),
        (datetime(2026, 12, 3, 12, 0, tzinfo=UTC), ("closed", "voicemail reception"), False),
        (datetime(2026, 12, 3, 21, 0, tzinfo=UTC), ("closed", "voicemail reception"), False),
    ],
)
def test_the_flow_is_walked_at_the_instant_asked(
    config: Config, at: datetime, steps: tuple[str, ...], open_now: bool
) -> None:
    presence = Presence({"PJSIP/alice": "online"}, "test")
    found = examine(config, "+33170000001", at, [], presence, set())
    assert found.facts.flow is not None
    assert found.facts.flow.steps[: len(steps)] == steps
    assert found.facts.flow.open_now is open_now
    alice = next(t for t in found.facts.targets if t.name == "alice")
    assert alice.presence == "online"
    bob = next(t for t in found.facts.targets if t.name == "bob")
    assert bob.presence == "unknown"  # the daemon's table did not name it


def starter(**kw: object) -> PlanCheck:
    base: dict[str, object] = {
        "name": "starter",
        "used": {UsageKind.FORWARDED: 150, UsageKind.OUTBOUND: 0},
        "allowed": {UsageKind.FORWARDED: 120, UsageKind.OUTBOUND: None},
        "calls_in_progress": 0,
        "max_calls": 2,
        "finish": False,
    }
    base.update(kw)
    return PlanCheck(**base)  # type: ignore[arg-type]


USED_UP = "forwarded minutes of plan 'starter' used up (2 of 2)"
TWO_CALLS = "2 calls in progress: plan 'starter' allows 2"
OUT_USED_UP = "outbound minutes of plan 'starter' used up (600 of 600)"
AT_LIMIT = FlowNow(("plan limit", "voicemail reception"), None, "voicemail")
OVERFLOW = FlowNow(("plan limit", "goto overflow", "ring bob (hunt)"), None, "ring", ("bob",))

PLAN_CASES = [
    # Within the plan: the verdict is the flow's alone.
    (facts(phone("alice"), plan=starter()), "rings alice now; no failed call recorded", True),
    (
        facts(flow=AT_LIMIT, plan=starter(inbound_refused=USED_UP)),
        f"plan limit: {USED_UP}; a call goes plan limit → voicemail reception (no phone rings)",
        False,
    ),
    # The plan's at_limit may ring somebody else.
    (
        facts(phone("bob"), flow=OVERFLOW, plan=starter(inbound_refused=USED_UP)),
        f"plan limit: {USED_UP}; rings bob now; no failed call recorded",
        True,
    ),
    # Calls at once: both ways refused, said once.
    (
        facts(flow=AT_LIMIT, plan=starter(inbound_refused=TWO_CALLS, outbound_refused=TWO_CALLS)),
        f"plan limit: {TWO_CALLS}; a call goes plan limit → voicemail reception (no phone rings)",
        False,
    ),
    (
        facts(phone("alice"), plan=starter(outbound_refused=OUT_USED_UP)),
        "rings alice now; no failed call recorded; calls going out refused, those in progress "
        f"cut: {OUT_USED_UP}",
        True,
    ),
    (
        facts(phone("alice"), plan=starter(outbound_refused=OUT_USED_UP, finish=True)),
        f"rings alice now; no failed call recorded; calls going out refused: {OUT_USED_UP}",
        True,
    ),
]


@pytest.mark.parametrize(("given", "expected", "rings"), PLAN_CASES)
def test_the_verdict_says_when_the_plan_refuses_calls(
    given: Facts, expected: str, rings: bool
) -> None:
    assert verdict(given) == expected
    assert rings_somebody(given) is rings


def test_a_used_up_plan_sends_the_call_where_the_plan_says(config: Config) -> None:
    at = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    presence = Presence({}, "test")
    leg = Billable(
        "leg-1", UsageKind.FORWARDED, at - timedelta(hours=1), at - timedelta(minutes=57)
    )
    within = examine(config, "+33972100002", at, [], presence, set(), billed=[])
    assert within.facts.plan is not None and within.facts.plan.inbound_refused is None
    assert within.facts.flow is not None and within.facts.flow.ends_in == "ring"
    found = examine(config, "+33972100002", at, [], presence, set(), billed=[leg])
    assert found.facts.flow is not None
    assert found.facts.flow.steps == ("plan limit", "voicemail reception")
    assert found.verdict.startswith("plan limit: forwarded minutes of plan 'starter' used up")
    assert "plan starter: forwarded 3:00 of 2 min, outbound 0:00 of unlimited" in format_text(found)
    busy = examine(config, "+33170000001", at, [], presence, set(), calls_in_progress=10)
    assert busy.verdict.startswith(
        "plan limit: 10 calls in progress: plan 'reception' allows 10; a call goes plan limit "
        "→ hang up"
    )
