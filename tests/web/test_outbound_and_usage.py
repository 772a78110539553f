"""Issue 11 on the web: calls going out in a number's call log beside the inbound ones, and
the plan's minutes in the report (the API and the pages), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pbxd.cdr.records import CallRecord, Direction, Disposition, LegRecord
from pbxd.cdr.store import CdrStore
from pbxd.cli.main import main
from tests.web.conftest import NOW, RECEPTION, Tokens, bearer

Client = TestClient[Any, Any]
HTML = {"Accept": "text/html"}
CUSTOMER = "+33145678900"
OUT_TALK = 185  # seconds alice talked to the customer (3:05 of outbound minutes)
FORWARD_TALK = 75  # seconds the CEO's mobile took an inbound call (1:15 forwarded)


def call_out(store: CdrStore, call_id: str, start: datetime, talk: int, user: str) -> None:
    """`user` (a softphone) called the customer presenting the reception, for `talk` s."""
    store.record_call(
        CallRecord(
            call_id=call_id,
            did=RECEPTION,
            started_at=start,
            caller_number=user,
            answered_at=start + timedelta(seconds=5),
            ended_at=start + timedelta(seconds=5 + talk),
            disposition=Disposition.ANSWERED,
            answered_by=CUSTOMER,
            hangup_cause=16,
            direction=Direction.OUTBOUND,
            dialled=CUSTOMER,
            presented=RECEPTION,
        )
    )


def forwarded(
    store: CdrStore, call_id: str, did: str, route: str, target: str, start: datetime, talk: int
) -> None:
    """An inbound call to `did` that `target`, a mobile through the trunk, took for `talk` s."""
    answered, ended = start + timedelta(seconds=4), start + timedelta(seconds=4 + talk)
    store.record_call(
        CallRecord(
            call_id=call_id,
            did=did,
            started_at=start,
            caller_number="+33612000009",
            route=route,
            answered_at=answered,
            ended_at=ended,
            disposition=Disposition.ANSWERED,
            answered_by=target,
            hangup_cause=16,
        )
    )
    store.record_leg(
        LegRecord(
            f"{call_id}-1",
            call_id,
            target,
            "PJSIP/+33612345678@trunk-out",
            start,
            answered_at=answered,
            ended_at=ended,
            hangup_cause=16,
        )
    )


@pytest.fixture
async def out_store(store: CdrStore) -> CdrStore:
    """The morning's inbound calls, plus alice calling a customer and a forwarded call."""
    call_out(store, "call-out", NOW - timedelta(minutes=30), OUT_TALK, "alice")
    # 2 Dec in Paris: a second day of usage.
    forwarded(
        store,
        "call-forwarded",
        RECEPTION,
        "paris-reception",
        "ceo-mobile",
        NOW - timedelta(days=1),
        FORWARD_TALK,
    )
    await store.flush()
    return store


async def _json(client: Client, path: str, token: str, **params: str) -> Any:
    response = await client.get(path, headers=bearer(token), params=params)
    assert response.status == 200, await response.text()
    return await response.json()


async def _page(client: Client, path: str, token: str) -> str:
    response = await client.get(path, headers={**HTML, **bearer(token)})
    text = await response.text()
    assert response.status == 200, text
    return text


async def test_a_call_going_out_is_in_the_numbers_call_log_beside_the_inbound_ones(
    out_store: CdrStore, client: Client, tokens: Tokens
) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/calls", tokens.viewer)
    calls = {c["call_id"]: c for c in body["calls"]}
    assert len(calls) == 6  # the four morning calls, the forwarded one and alice's
    out = calls["call-out"]
    assert (out["direction"], out["user"], out["dialled"], out["presented"]) == (
        "outbound",
        "alice",
        CUSTOMER,
        RECEPTION,
    )
    inbound = calls["call-answered"]
    assert (inbound["direction"], inbound["user"], inbound["dialled"]) == ("inbound", None, None)
    one = await _json(client, "/api/calls/call-out", tokens.viewer)
    assert one == out


async def test_the_call_log_page_says_which_way_a_call_went_and_who_called_out(
    out_store: CdrStore, client: Client, tokens: Tokens
) -> None:
    text = await _page(client, f"/numbers/{RECEPTION}", tokens.viewer)
    assert text.count("<details") == 6
    assert text.count('<span class="direction" title="outbound">out</span>') == 1
    assert text.count('<span class="direction" title="inbound">in</span>') == 5
    assert f'<span class="caller">alice → {CUSTOMER}</span>' in text
    assert (
        f'Outbound call by <strong class="user">alice</strong> to '
        f'<strong class="dialled">{CUSTOMER}</strong>, shown as {RECEPTION}'
    ) in text
    assert "Inbound call from Jean &lt;+33612000001&gt;" in text


async def test_the_report_shows_the_plans_minutes_as_pbxd_usage_does(
    out_store: CdrStore, client: Client, tokens: Tokens, cdr_url: str
) -> None:
    report = await _json(
        client, f"/api/numbers/{RECEPTION}/report", tokens.viewer, period="2026-12"
    )
    usage = report["usage"]
    # The shipped reception plan: 600 outbound minutes, forwarded minutes unlimited.
    assert usage == {
        "plan": "reception",
        "forwarded_seconds": FORWARD_TALK,
        "outbound_seconds": OUT_TALK,
        "forwarded_allowed_seconds": None,
        "outbound_allowed_seconds": 600 * 60,
        "days": [
            {"day": "2026-12-02", "forwarded_seconds": FORWARD_TALK, "outbound_seconds": 0},
            {"day": "2026-12-03", "forwarded_seconds": 0, "outbound_seconds": OUT_TALK},
        ],
    }
    args = ["usage", RECEPTION, "--period", "2026-12", "--format", "json", "--database", cdr_url]
    printed = await asyncio.to_thread(_stdout_of, args)
    cli = json.loads(printed)
    assert {k: v for k, v in cli.items() if k in usage} == usage  # the very same figures
    # Another month: nothing used.
    earlier = await _json(
        client, f"/api/numbers/{RECEPTION}/report", tokens.viewer, period="2026-11"
    )
    assert (earlier["usage"]["outbound_seconds"], earlier["usage"]["days"]) == (0, [])

    text = await _page(client, f"/numbers/{RECEPTION}/report?period=2026-12", tokens.viewer)
    assert "Plan minutes <small>plan reception</small>" in text
    assert '<td id="usage-outbound">3:05</td>' in text
    assert '<td id="usage-forwarded">1:15</td>' in text
    assert '<td id="allowed-outbound">600 min</td>' in text
    assert '<td id="allowed-forwarded">unlimited</td>' in text
    assert "<tr><td>2026-12-02</td><td>1:15</td><td>0:00</td></tr>" in text


def _stdout_of(args: list[str]) -> str:
    """What `pbxd ARGS` prints (run in a thread: it has its own event loop)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    return out.getvalue()


STARTER = "+33972100002"  # plan starter: 2 forwarded minutes a month, then voicemail


async def test_diagnose_says_when_the_plan_is_used_up(
    out_store: CdrStore, client: Client, tokens: Tokens
) -> None:
    # The sales mobile took 150 s this month (of 120); the reception's softphones called out
    # 600 minutes (of 600) on top of the morning's 3:05.
    forwarded(
        out_store,
        "call-sales",
        STARTER,
        "sales-line",
        "sales-mobile",
        NOW - timedelta(hours=2),
        150,
    )
    call_out(out_store, "call-out-long", NOW - timedelta(days=2), 600 * 60, "bob")
    await out_store.flush()

    sales = await _json(client, f"/api/numbers/{STARTER}/diagnose", tokens.viewer)
    assert sales["verdict"] == (
        "plan limit: forwarded minutes of plan 'starter' used up (2 of 2); "
        "a call goes plan limit → voicemail reception (no phone rings)"
    )
    assert sales["flow_now"] == ["plan limit", "voicemail reception"]
    assert sales["plan"]["forwarded_seconds"] == 150
    assert sales["plan"]["forwarded_allowed_seconds"] == 120
    assert sales["plan"]["outbound_refused"] is None

    reception = await _json(client, f"/api/numbers/{RECEPTION}/diagnose", tokens.viewer)
    assert reception["verdict"].endswith(
        "; calls going out refused, those in progress cut: outbound minutes of plan "
        "'reception' used up (603 of 600)"
    )
    assert reception["plan"]["inbound_refused"] is None  # its forwarded minutes: unlimited
    assert reception["plan"]["outbound_seconds"] == 600 * 60 + OUT_TALK
