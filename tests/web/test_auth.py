"""Who gets in: tokens, browser sessions, roles, CSRF; and `pbxd users`."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from pbxd.cdr.store import CdrStore
from pbxd.cli.main import main
from pbxd.clock import VirtualClock
from pbxd.config.model import Config
from pbxd.web.app import build_app
from pbxd.web.state import CLOCK, DND, Runtime
from pbxd.web.throttle import FREE_FAILURES
from pbxd.web.users import load_users, remove_user
from tests.web.conftest import NOW, PASSWORD, Tokens, bearer

Client = TestClient[Any, Any]


@pytest.fixture
async def cdr_url(tmp_path: Path) -> AsyncIterator[str]:
    """Authentication reads no CDR: SQLite is enough here."""
    yield f"sqlite:///{tmp_path / 'cdr.db'}"


@pytest.fixture
async def browser(config: Config, store: CdrStore, tokens: Tokens) -> AsyncIterator[Client]:
    """The app as a browser sees it over plain HTTP on loopback (cookies not Secure)."""
    config.settings = dataclasses.replace(config.settings, http_secure_cookies=False)
    app = build_app(config, Runtime(store=store), clock=VirtualClock(origin=NOW))
    async with TestClient(TestServer(app)) as client:
        yield client


HTML = {"Accept": "text/html"}


async def log_in(client: Client, name: str, password: str = PASSWORD) -> Any:
    page = await client.get("/login", headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    return await client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf[1], "next": "/targets"},
        headers=HTML,
        allow_redirects=False,
    )


async def session_csrf(client: Client) -> str:
    page = await client.get("/targets", headers=HTML)
    found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert found is not None
    return found[1]


# ------------------------------------------------------------------ tokens


@pytest.mark.parametrize("path", ["/api/numbers", "/api/targets", "/metrics", "/api/calls/x"])
async def test_no_token_is_401_with_a_stable_code(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "token", ["pbxd_00000000_wrong", "garbage", "pbxd__x", "Basic Zm9vOmJhcg==", "x" * 5000]
)
async def test_a_wrong_token_is_401(client: Client, tokens: Tokens, token: str) -> None:
    response = await client.get("/api/numbers", headers=bearer(token))
    assert response.status == 401


async def test_a_good_token_with_a_wrong_secret_is_401(client: Client, tokens: Tokens) -> None:
    forged = tokens.viewer[:-4] + ("AAAA" if not tokens.viewer.endswith("AAAA") else "BBBB")
    response = await client.get("/api/numbers", headers=bearer(forged))
    assert response.status == 401


async def test_a_removed_users_token_stops_working_at_once(
    client: Client, tokens: Tokens, config: Config
) -> None:
    assert (await client.get("/api/targets", headers=bearer(tokens.viewer))).status == 200
    assert remove_user(config.settings.users_file, "vera")
    assert (await client.get("/api/targets", headers=bearer(tokens.viewer))).status == 401
    assert (await client.get("/api/targets", headers=bearer(tokens.admin))).status == 200


async def test_health_needs_no_login(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")  # no call service in this app: not ready
    assert ready.status == 503
    assert (await ready.json())["error"]["code"] == "not_ready"


async def test_an_empty_users_file_lets_nobody_in(client: Client, config: Config) -> None:
    config.settings.users_file.unlink()
    page = await client.get("/login", headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    for name, password in [("admin", "admin"), ("admin", ""), ("root", "password")]:
        response = await client.post(
            "/login", data={"name": name, "password": password, "csrf": csrf[1]}, headers=HTML
        )
        assert response.status in (401, 403)


# ------------------------------------------------------------------ browser sessions


async def test_a_page_without_a_session_goes_to_the_login_form(browser: Client) -> None:
    response = await browser.get(
        "/numbers/+33170000001?since=2026-12-01", headers=HTML, allow_redirects=False
    )
    assert response.status == 303
    location = URL(response.headers["Location"])
    assert location.path == "/login"
    assert location.query["next"] == "/numbers/+33170000001?since=2026-12-01"


async def test_cookies_are_secure_httponly_samesite_by_default(
    client: Client, tokens: Tokens
) -> None:
    page = await client.get("/login", headers=HTML)
    login_cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in login_cookie and "SameSite=Strict" in login_cookie
    assert "Secure" in login_cookie
    # A client that keeps Secure cookies off plain HTTP: give the login cookie back by hand.
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    response = await client.post(
        "/login",
        data={"name": "vera", "password": PASSWORD, "csrf": csrf[1]},
        cookies={"pbxd_login": csrf[1]},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = response.headers["Set-Cookie"]
    assert "pbxd_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


async def test_log_in_read_log_out(browser: Client, tokens: Tokens) -> None:
    response = await log_in(browser, "vera")
    assert response.status == 303 and response.headers["Location"] == "/targets"
    assert "Secure" not in response.headers["Set-Cookie"]  # http.secure_cookies: false
    page = await browser.get("/", headers=HTML)
    assert page.status == 200 and "Acme Paris reception" in await page.text()
    # The session cookie also reads the API (for the pages' download links).
    assert (await browser.get("/api/numbers")).status == 200
    csrf = await session_csrf(browser)
    out = await browser.post("/logout", data={"csrf": csrf}, headers=HTML, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/login"
    assert (await browser.get("/api/numbers")).status == 401


async def test_a_wrong_password_is_refused_with_the_same_words_for_any_user(
    browser: Client, tokens: Tokens
) -> None:
    wrong = await log_in(browser, "vera", "not her password")
    nobody = await log_in(browser, "nobody", PASSWORD)
    assert wrong.status == nobody.status == 401
    assert "Wrong user or password." in await wrong.text()
    assert "Wrong user or password." in await nobody.text()


async def test_failed_logins_make_the_next_wait_429_with_retry_after(
    browser: Client, tokens: Tokens
) -> None:
    with structlog.testing.capture_logs() as logs:
        for _ in range(FREE_FAILURES):
            assert (await log_in(browser, "vera", "hunter2")).status == 401
        # The right password now waits too: it is not even checked.
        refused = await log_in(browser, "vera")
        assert refused.status == 429 and refused.headers["Retry-After"] == "1"
        assert "Too many failed logins: try again in 1 s." in await refused.text()
        clock = browser.app[CLOCK]  # type: ignore[index]
        assert isinstance(clock, VirtualClock)
        await clock.advance(1)
        assert (await log_in(browser, "vera")).status == 303
    throttled = [e for e in logs if e["event"] == "login_throttled"]
    assert len(throttled) == 1 and throttled[0]["user"] == "vera"
    assert throttled[0]["address"] == "127.0.0.1" and throttled[0]["retry_after"] == 1
    assert len([e for e in logs if e["event"] == "login_failed"]) == FREE_FAILURES
    assert not any(PASSWORD in repr(e) or "hunter2" in repr(e) for e in logs)


async def test_an_api_token_works_as_a_password(browser: Client, tokens: Tokens) -> None:
    assert (await log_in(browser, "adam", tokens.admin)).status == 303
    assert (await log_in(browser, "vera", tokens.admin)).status == 401  # adam's, not vera's


async def test_a_login_form_without_its_csrf_token_is_refused(
    browser: Client, tokens: Tokens
) -> None:
    response = await browser.post(
        "/login", data={"name": "vera", "password": PASSWORD}, headers=HTML, allow_redirects=False
    )
    assert response.status == 403
    assert "csrf_failed" in await response.text()


async def test_login_never_redirects_to_another_site(browser: Client, tokens: Tokens) -> None:
    page = await browser.get("/login", headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    response = await browser.post(
        "/login",
        data={"name": "vera", "password": PASSWORD, "csrf": csrf[1], "next": "//evil.example/"},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/"


async def test_a_session_expires(browser: Client, tokens: Tokens) -> None:
    await log_in(browser, "vera")
    assert (await browser.get("/api/targets")).status == 200
    clock = browser.app[CLOCK]  # type: ignore[index]
    assert isinstance(clock, VirtualClock)
    await clock.advance(12 * 3600 + 1)
    assert (await browser.get("/api/targets")).status == 401


# ------------------------------------------------------------------ CSRF and roles


async def test_a_forged_form_without_the_csrf_token_changes_nothing(
    browser: Client, tokens: Tokens
) -> None:
    await log_in(browser, "adam")
    forged = await browser.post(
        "/targets/alice/dnd", data={"on": "true"}, headers=HTML, allow_redirects=False
    )
    assert forged.status == 403 and "csrf_failed" in await forged.text()
    wrong = await browser.post(
        "/targets/alice/dnd", data={"on": "true", "csrf": "guess"}, allow_redirects=False
    )
    assert wrong.status == 403
    assert not browser.app[DND].is_on("alice")  # type: ignore[index]
    csrf = await session_csrf(browser)
    done = await browser.post(
        "/targets/alice/dnd", data={"on": "true", "csrf": csrf}, allow_redirects=False
    )
    assert done.status == 303 and browser.app[DND].is_on("alice")  # type: ignore[index]
    # The JSON API with a session cookie needs the token in a header.
    api = await browser.post("/api/targets/alice/dnd", json={"on": False})
    assert api.status == 403
    api = await browser.post(
        "/api/targets/alice/dnd", json={"on": False}, headers={"X-CSRF-Token": csrf}
    )
    assert api.status == 200 and not browser.app[DND].is_on("alice")  # type: ignore[index]


async def test_a_viewer_changing_state_is_403_even_with_the_csrf_token(
    browser: Client, tokens: Tokens
) -> None:
    await log_in(browser, "vera")
    page = await browser.get("/targets", headers=HTML)
    assert "Turn on" not in await page.text()  # no button for a viewer
    csrf = await session_csrf(browser)
    response = await browser.post(
        "/targets/alice/dnd", data={"on": "true", "csrf": csrf}, headers=HTML
    )
    assert response.status == 403 and "forbidden" in await response.text()
    assert not browser.app[DND].is_on("alice")  # type: ignore[index]


# ------------------------------------------------------------------ pbxd users


def test_users_add_prints_a_token_once_and_keeps_only_hashes(
    example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["users", "add", "olga", "--role", "admin", "--password"]) == 0
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1]
    assert re.fullmatch(r"pbxd_[0-9a-f]{8}_[\w-]{40,}", token)
    text = (example / "users.yaml").read_text()
    assert token not in text and token.split("_", 2)[2] not in text  # the secret may hold "_"
    assert "a long enough secret" not in text and "$argon2id$" in text
    assert (example / "users.yaml").stat().st_mode & 0o077 == 0
    [olga] = load_users(example / "users.yaml").values()
    assert olga.is_admin and olga.password_hash is not None
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "olga" in listing and "admin" in listing and token not in listing
    assert main(["users", "remove", "olga"]) == 0
    assert main(["users", "remove", "olga"]) == 1


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["users", "add", "Bad Name", "--role", "viewer"], "", "is not a user name"),
        (["users", "add", "ok", "--role", "viewer", "--password"], "short\n", "at least 12"),
        (["users", "add", "ok", "--role", "root"], "", "invalid choice"),
    ],
)
def test_users_add_refuses_bad_input(
    example: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (example / "users.yaml").exists()
