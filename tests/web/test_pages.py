"""The server-rendered pages (no JavaScript needed), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pbxd.web import pages
from tests.web.conftest import RECEPTION, Tokens, bearer

Client = TestClient[Any, Any]
HTML = {"Accept": "text/html"}


@pytest.fixture
async def viewer(client: Client, tokens: Tokens) -> AsyncIterator[dict[str, str]]:
    """Pages read with a viewer's token (the session flow is tested in test_auth)."""
    yield {**HTML, **bearer(tokens.viewer)}


async def page(client: Client, path: str, headers: dict[str, str], status: int = 200) -> str:
    response = await client.get(path, headers=headers)
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    # Nothing is loaded from another site: pbxd hosts are often offline.
    assert not re.search(r'(src|href)="(https?:)?//', text)
    return text


async def test_numbers_page(client: Client, viewer: dict[str, str]) -> None:
    text = await page(client, "/", viewer)
    assert 'href="/numbers/%2B33170000001"' in text and "01 70 00 00 01" in text
    assert "Acme Paris reception" in text and "paris-reception" in text
    assert "port 2026-12-15 from Orange" in text
    assert 'name="viewport"' in text  # phone-friendly


async def test_numbers_page_pages_and_finds_numbers(
    client: Client, viewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "NUMBERS_PER_PAGE", 2)
    first = await page(client, "/", viewer)
    assert first.count('<tr>\n  <td><a href="/numbers/') == 2
    assert "page 1 of" in first and 'href="/?page=2"' in first and "Previous" not in first
    second = await page(client, "/?page=2", viewer)
    assert 'href="/?page=1"' in second and "page 2 of" in second
    assert (
        re.findall(r'href="/numbers/([^"]+)"', first)[:2]
        != re.findall(r'href="/numbers/([^"]+)"', second)[:2]
    )
    # The reception is found by its label or by national digits; its calls today shown.
    for query in ("q=reception", "q=01+70+00+00+01"):
        found = await page(client, f"/?{query}", viewer)
        assert 'href="/numbers/%2B33170000001"' in found and " of " in found
    assert '<td class="num">4</td>' in await page(client, "/?q=paris+reception", viewer)
    text = await page(client, "/?page=soon", viewer, status=400)
    assert "page: expected a page number" in text


async def test_call_log_page_expands_each_call_to_its_legs(
    client: Client, viewer: dict[str, str]
) -> None:
    text = await page(client, f"/numbers/{RECEPTION}", viewer)
    assert "Times in Europe/Paris" in text
    assert text.count("<details") == 4
    # Newest first, local time with the zone's abbreviation.
    assert text.index("2026-12-03 15:50:00 CET") < text.index("2026-12-03 11:00:00 CET")
    assert "<td>bob</td><td>answered elsewhere</td>" in text
    assert "21 (call rejected)" in text  # causes in words
    assert "closed → voicemail" in text


async def test_call_log_filters_and_download_links_keep_them(
    client: Client, viewer: dict[str, str]
) -> None:
    text = await page(client, f"/numbers/{RECEPTION}?disposition=no_answer&caller=0002", viewer)
    assert text.count("<details") == 1 and "+33612000002" in text
    assert '<option value="no_answer" selected>' in text
    assert "calls.csv?disposition=no_answer&amp;caller=0002" in text


async def test_a_bad_filter_on_the_page_says_which_field(
    client: Client, viewer: dict[str, str]
) -> None:
    text = await page(client, f"/numbers/{RECEPTION}?since=soon", viewer, status=400)
    assert "since: expected a date" in text and "bad_filter" in text


async def test_an_unknown_number_page_is_404(client: Client, viewer: dict[str, str]) -> None:
    text = await page(client, "/numbers/+33999999999", viewer, status=404)
    assert "unknown_number" in text


async def test_pagination_links_to_older_calls(client: Client, viewer: dict[str, str]) -> None:
    text = await page(client, f"/numbers/{RECEPTION}?limit=2", viewer)
    assert text.count("<details") == 2
    found = re.search(r'href="(/numbers/[^"]+cursor=[^"]+)"', text)
    assert found is not None
    older = await page(client, found[1].replace("&amp;", "&"), viewer)
    assert "+33612000002" in older and "+33612000004" not in older


async def test_csv_and_json_downloads(client: Client, tokens: Tokens) -> None:
    response = await client.get(
        f"/numbers/{RECEPTION}/calls.csv?disposition=answered", headers=bearer(tokens.viewer)
    )
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["call_id"] for r in rows] == ["call-answered"]
    assert rows[0]["started_at"] == "2026-12-03T11:00:00+01:00"
    response = await client.get(f"/numbers/{RECEPTION}/calls.json", headers=bearer(tokens.viewer))
    calls = json.loads(await response.text())
    assert len(calls) == 4 and calls[0]["call_id"] == "call-abandoned"


async def test_report_page_has_figures_and_two_svg_charts(
    client: Client, viewer: dict[str, str]
) -> None:
    text = await page(client, f"/numbers/{RECEPTION}/report?period=2026-12", viewer)
    assert '<dd id="fig-calls">4</dd>' in text and "25%" in text
    assert text.count("<svg") == 2 and "pygal-chart" in text
    assert "Calls per day, 2026-12" in text and "Calls per hour of the week" in text
    assert "11:00-12:00 (1)" in text  # busiest hours, local


async def test_targets_page_shows_buttons_to_an_admin_only(
    client: Client, tokens: Tokens, viewer: dict[str, str]
) -> None:
    as_viewer = await page(client, "/targets", viewer)
    as_admin = await page(client, "/targets", {**HTML, **bearer(tokens.admin)})
    assert "Turn on" not in as_viewer and "Turn on" in as_admin
    assert "alice" in as_viewer
