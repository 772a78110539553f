"""The JSON API under aiohttp's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageStore
from tests.web.conftest import NOW, RECEPTION, Tokens, bearer

Client = TestClient[Any, Any]


async def _json(client: Client, path: str, token: str, status: int = 200, **params: str) -> Any:
    response = await client.get(path, headers=bearer(token), params=params)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_numbers_list_the_inventory_with_route_status_and_calls_today(
    client: Client, tokens: Tokens
) -> None:
    body = await _json(client, "/api/numbers", tokens.viewer)
    by_number = {n["number"]: n for n in body["numbers"]}
    reception = by_number[RECEPTION]
    assert reception["label"] == "Acme Paris reception"
    assert reception["route"] == "paris-reception" and reception["status"] == "active"
    # All four morning calls are on 3 Dec in Paris; NOW is 16:00 there.
    assert reception["calls_today"] == 4
    porting = by_number["+33170000100"]
    assert porting["status"] == "porting" and porting["port_date"] == "2026-12-15"
    assert porting["losing_carrier"] == "Orange" and porting["calls_today"] == 0
    assert by_number["+442079460123"]["time_zone"] == "Europe/London"
    assert by_number["+33170000012"]["whisper"] == ["sound:acme-whisper-sales"]
    assert reception["whisper"] == []
    assert body["next_cursor"] is None  # the shipped 20 numbers fit the default page (100)


async def _all_pages(client: Client, token: str, **params: str) -> list[list[str]]:
    """The numbers of each page, following next_cursor to the end."""
    pages: list[list[str]] = []
    query = dict(params)
    while True:
        response = await client.get("/api/numbers", headers=bearer(token), params=query)
        assert response.status == 200, await response.text()
        body = await response.json()
        pages.append([n["number"] for n in body["numbers"]])
        if body["next_cursor"] is None:
            return pages
        query = {**params, "cursor": body["next_cursor"]}


async def test_numbers_page_through_the_inventory_once_in_order(
    client: Client, tokens: Tokens
) -> None:
    whole = (await _json(client, "/api/numbers", tokens.viewer))["numbers"]
    every = [n["number"] for n in whole]
    assert len(every) == 20 and every == sorted(every)
    pages = await _all_pages(client, tokens.viewer, limit="6")
    assert [len(p) for p in pages] == [6, 6, 6, 2]
    assert [n for p in pages for n in p] == every
    # Exactly a page's worth left: the last full page says there is no more.
    assert [len(p) for p in await _all_pages(client, tokens.viewer, limit="10")] == [10, 10]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "porting"}, [f"+3317000010{i}" for i in range(10)]),
        ({"trunk": "carrier-uk"}, ["+442079460123"]),
        ({"q": "01 70 00 01 0"}, [f"+3317000010{i}" for i in range(10)]),
        ({"q": "PARIS RECEPTION"}, [RECEPTION]),
        ({"q": "sales", "status": "active"}, ["+33170000010", "+33170000012", "+33972100002"]),
        ({"status": "reserved", "trunk": "carrier-uk"}, []),
    ],
)
async def test_numbers_filters_hold_from_page_to_page(
    client: Client, tokens: Tokens, params: dict[str, str], expected: list[str]
) -> None:
    pages = await _all_pages(client, tokens.viewer, limit="3", **params)
    assert [n for p in pages for n in p] == expected
    assert all(len(p) == 3 for p in pages[:-1])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "ported"}, "status"),
        ({"trunk": "carrier-xx"}, "trunk"),
        ({"q": "x" * 65}, "q"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJhIiwgImIiXQ"}, "cursor"),  # a call log's cursor shape: two values
    ],
)
async def test_a_bad_numbers_filter_is_400_naming_the_field(
    client: Client, tokens: Tokens, params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/numbers", headers=bearer(tokens.viewer), params=params)
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "bad_filter" and body["error"]["field"] == field


async def test_call_log_newest_first_in_the_numbers_zone_with_legs(
    client: Client, tokens: Tokens
) -> None:
    body = await _json(client, "/api/numbers/01 70 00 00 01/calls", tokens.viewer)
    assert body["number"] == RECEPTION and body["time_zone"] == "Europe/Paris"
    ids = [c["call_id"] for c in body["calls"]]
    assert ids == ["call-abandoned", "call-voicemail", "call-missed", "call-answered"]
    answered = body["calls"][-1]
    assert answered["started_at"] == "2026-12-03T11:00:00+01:00"
    assert answered["started_at_utc"] == "2026-12-03T10:00:00+00:00"
    assert [(leg["target"], leg["outcome"]) for leg in answered["legs"]] == [
        ("alice", "answered"),
        ("bob", "answered elsewhere"),
    ]
    assert body["next_cursor"] is None


async def test_cursor_pagination_walks_every_call_once(client: Client, tokens: Tokens) -> None:
    seen: list[str] = []
    params = {"limit": "3"}
    while True:
        body = await _json(client, f"/api/numbers/{RECEPTION}/calls", tokens.viewer, **params)
        seen += [c["call_id"] for c in body["calls"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": "3", "cursor": body["next_cursor"]}
    assert seen == ["call-abandoned", "call-voicemail", "call-missed", "call-answered"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"disposition": "no_answer"}, ["call-missed"]),
        ({"disposition": "no_answer,voicemail"}, ["call-voicemail", "call-missed"]),
        ({"caller": "000002"}, ["call-missed"]),
        ({"since": "2026-12-03T14:00"}, ["call-abandoned", "call-voicemail"]),
        ({"until": "2026-12-03T12:00"}, ["call-answered"]),
        ({"since": "2026-12-04"}, []),
        ({"server": "ast-lyon-2"}, []),  # every seeded call came through no named server
    ],
)
async def test_filters(
    client: Client, tokens: Tokens, params: dict[str, str], expected: list[str]
) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/calls", tokens.viewer, **params)
    assert [c["call_id"] for c in body["calls"]] == expected


@pytest.mark.parametrize(
    "caller",
    ["%", "_", "' OR 1=1 --", "0'; DROP TABLE calls; --", '" OR ""="', "\\", "%00"],
)
async def test_sql_metacharacters_in_filters_have_no_effect(
    client: Client, tokens: Tokens, caller: str
) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/calls", tokens.viewer, caller=caller)
    assert body["calls"] == []  # taken literally: no caller number contains them
    # ... and the table is still there, whole.
    again = await _json(client, f"/api/numbers/{RECEPTION}/calls", tokens.viewer)
    assert len(again["calls"]) == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-12-04", "until": "2026-12-01"}, "until"),
        ({"disposition": "answered,lost"}, "disposition"),
        ({"limit": "0"}, "limit"),
        ({"limit": "9999"}, "limit"),
        ({"limit": "١٠"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"caller": "1" * 40}, "caller"),
        ({"server": "a" * 40}, "server"),
    ],
)
async def test_a_bad_filter_is_400_naming_the_field(
    client: Client, tokens: Tokens, params: dict[str, str], field: str
) -> None:
    body = await _json(
        client, f"/api/numbers/{RECEPTION}/calls", tokens.viewer, status=400, **params
    )
    assert body["error"]["code"] == "bad_filter" and body["error"]["field"] == field
    assert body["error"]["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("number", ["+33170009999", "not-a-number", "0170000099"])
async def test_an_unknown_number_is_404(client: Client, tokens: Tokens, number: str) -> None:
    for tail in ("calls", "report", "diagnose", "voicemail"):
        body = await _json(client, f"/api/numbers/{number}/{tail}", tokens.viewer, status=404)
        assert body["error"]["code"] == "unknown_number"


async def test_one_call_with_its_legs_and_path(client: Client, tokens: Tokens) -> None:
    body = await _json(client, "/api/calls/call-voicemail", tokens.viewer)
    assert body["disposition"] == "voicemail" and body["path_text"] == "closed → voicemail"
    assert body["voicemail"] == {"message_id": "msg-1", "duration": 12}
    missing = await _json(client, "/api/calls/nope", tokens.viewer, status=404)
    assert missing["error"]["code"] == "unknown_call"


async def test_report_of_a_month(client: Client, tokens: Tokens) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/report", tokens.viewer, period="2026-12")
    assert body["period"]["label"] == "2026-12" and body["time_zone"] == "Europe/Paris"
    assert (body["calls"], body["answered"], body["missed"]) == (4, 1, 3)
    assert (body["abandoned"], body["voicemail"]) == (1, 1)
    assert body["answer_rate"] == 0.25
    assert body["average_wait_seconds"] == 6.0 and body["longest_wait_seconds"] == 6
    assert body["talk_seconds"] == 594
    assert body["per_day"][2] == {"day": "2026-12-03", "answered": 1, "missed": 3}
    assert body["by_hour_of_week"]["Thu"][11] == 1  # 11:00 Paris, a Thursday
    november = await _json(
        client, f"/api/numbers/{RECEPTION}/report", tokens.viewer, period="2026-11"
    )
    assert november["calls"] == 0 and len(november["per_day"]) == 30
    # Without a period: this month where the number is.
    default = await _json(client, f"/api/numbers/{RECEPTION}/report", tokens.viewer)
    assert default["period"]["label"] == "2026-12"
    bad = await _json(
        client, f"/api/numbers/{RECEPTION}/report", tokens.viewer, status=400, period="2026-13"
    )
    assert bad["error"]["field"] == "period"


async def test_diagnose_names_the_last_failed_calls_with_local_time(
    client: Client, tokens: Tokens
) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/diagnose", tokens.viewer)
    assert body["in_inventory"] and body["status"] == "active"
    assert body["route"] == "paris-reception"
    failed = body["last_failed_calls"]
    # Failed: nobody took the call and no message was left (the voicemail call is not one).
    assert [c["call_id"] for c in failed] == ["call-abandoned", "call-missed"]
    missed = failed[1]
    assert (missed["called"], missed["calling"]) == (RECEPTION, "+33612000002")
    assert (missed["date"], missed["time"]) == ("2026-12-03", "12:40:00")
    assert missed["time_zone"] == "Europe/Paris (CET)"
    assert missed["legs"] == [
        {"target": "ceo-mobile", "outcome": "rejected", "cause": "21 (call rejected)"}
    ]
    porting = await _json(client, "/api/numbers/+33170000100/diagnose", tokens.viewer)
    assert porting["days_to_port"] == 12 and porting["verdict"].startswith("porting")


@pytest.fixture
def voicemail_box(client: Client) -> MessageStore:
    from pbxd.web.state import VOICEMAIL

    box: MessageStore = client.app[VOICEMAIL]  # type: ignore[index]
    message = Message(
        message_id="msg-1",
        did=RECEPTION,
        mailbox="reception",
        call_id="call-voicemail",
        caller_number="+33612000003",
        caller_name=None,
        recorded_at=NOW,
        duration=12,
    )
    box.save(message, b"RIFF....WAVEfmt ")
    return box


async def test_voicemail_list_and_download(
    client: Client, tokens: Tokens, voicemail_box: MessageStore
) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/voicemail", tokens.viewer)
    [message] = body["messages"]
    assert (
        message["message_id"] == "msg-1" and message["recorded_at"] == "2026-12-03T16:00:00+01:00"
    )
    response = await client.get(message["audio"], headers=bearer(tokens.viewer))
    assert response.status == 200 and response.content_type == "audio/wav"
    assert await response.read() == b"RIFF....WAVEfmt "


@pytest.mark.parametrize(
    "message_id",
    ["..%2F..%2Fpbxd.yaml", "%2E%2E%2Fsecret", "..", "msg-1%2F..%2F..%2Fx", "nope"],
)
async def test_a_voicemail_path_with_dots_is_404(
    client: Client, tokens: Tokens, voicemail_box: MessageStore, message_id: str, example: Path
) -> None:
    response = await client.get(
        f"/api/numbers/{RECEPTION}/voicemail/{message_id}", headers=bearer(tokens.viewer)
    )
    assert response.status == 404
    assert (await response.json())["error"]["code"] in ("unknown_message", "not_found")


async def test_dnd_admin_may_change_viewer_may_not(client: Client, tokens: Tokens) -> None:
    path = "/api/targets/alice/dnd"
    refused = await client.post(path, json={"on": True}, headers=bearer(tokens.viewer))
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "forbidden"
    done = await client.post(path, json={"on": True}, headers=bearer(tokens.admin))
    assert done.status == 200
    assert (await done.json())["do_not_disturb"] is True
    listing = await _json(client, "/api/targets", tokens.viewer)
    alice = next(t for t in listing["targets"] if t["target"] == "alice")
    assert alice["do_not_disturb"] is True and alice["set_by"] == "adam"
    unknown = await client.post(
        "/api/targets/zed/dnd", json={"on": True}, headers=bearer(tokens.admin)
    )
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "unknown_target"
    bad = await client.post(path, json={"on": "yes"}, headers=bearer(tokens.admin))
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "on"


async def test_reload_is_for_admins_and_refuses_a_broken_configuration_whole(
    client: Client, tokens: Tokens, example: Path
) -> None:
    viewer = await client.post("/api/config/reload", headers=bearer(tokens.viewer))
    assert viewer.status == 403
    accepted = await client.post("/api/config/reload", headers=bearer(tokens.admin))
    assert accepted.status == 200, await accepted.text()
    assert (await accepted.json())["outcome"] == "accepted"
    routing = example / "routing" / "acme.yaml"
    routing.write_text(routing.read_text().replace("targets: [alice", "targets: [alicia", 1))
    refused = await client.post("/api/config/reload", headers=bearer(tokens.admin))
    assert refused.status == 422
    body = await refused.json()
    assert body["error"]["code"] == "config_refused" and "alicia" in body["error"]["message"]
    # The numbers are still served from the configuration in force.
    assert (await client.get("/api/numbers", headers=bearer(tokens.viewer))).status == 200


async def test_diagnose_says_why_presence_is_unknown_without_a_call_service(
    client: Client, tokens: Tokens
) -> None:
    body = await _json(client, f"/api/numbers/{RECEPTION}/diagnose", tokens.viewer)
    assert body["endpoints_online"] is None
    assert body["presence_error"] == (
        "can't ask: the daemon is not running calls (standby, or starting)"
    )
    assert body["verdict"].startswith("may ring nobody: can't tell if alice, bob online")


@pytest.mark.parametrize("connected", [True, False])
async def test_diagnose_fills_endpoints_online_from_the_live_presence_table(
    client: Client, tokens: Tokens, connected: bool
) -> None:
    from types import SimpleNamespace

    from pbxd.calls.presence import Presence
    from pbxd.web.state import RUNTIME

    table = Presence({"PJSIP/alice": "online", "PJSIP/bob": "offline"})
    client.app[RUNTIME].service = SimpleNamespace(  # type: ignore[index]
        daemon=SimpleNamespace(roster=SimpleNamespace(presence=table)),
        stream=SimpleNamespace(connected=connected),
    )
    body = await _json(client, f"/api/numbers/{RECEPTION}/diagnose", tokens.viewer)
    if not connected:
        assert body["endpoints_online"] is None
        assert body["presence_error"] == "can't ask: the daemon is not connected to Asterisk (ARI)"
        return
    assert body["endpoints_online"] == {"PJSIP/alice": "online", "PJSIP/bob": "offline"}
    assert body["presence_source"] == "the daemon's presence table (ARI)"
    rings = {t["target"]: t["rings_now"] for t in body["targets"]}
    assert rings == {"alice": True, "bob": True, "ceo-mobile": True}
    assert body["verdict"] == (
        "rings alice now; bob offline and ceo-mobile refused by the carrier, cause 21 "
        "(call rejected); 2 failed call(s) below"
    )
