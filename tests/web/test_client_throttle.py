"""Wrong API tokens wait like failed logins, per client address; the client's address behind
trusted reverse proxies (X-Forwarded-For), and spoofing attempts that must not work."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from pbxd.cdr.store import CdrStore
from pbxd.cli.main import main
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.web.app import build_app
from pbxd.web.state import CLOCK, USERS, Runtime
from pbxd.web.throttle import FREE_FAILURES
from tests.web.conftest import NOW, PASSWORD, Tokens, bearer

Client = TestClient[Any, Any]
XFF = "X-Forwarded-For"


@pytest.fixture
async def cdr_url(tmp_path: Path) -> AsyncIterator[str]:
    """Authentication reads no CDR: SQLite is enough here."""
    yield f"sqlite:///{tmp_path / 'cdr.db'}"


class CountingHasher(PasswordHasher):
    """argon2 that counts its checks: a refused try must not cost one."""

    checks = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.checks += 1
        return super().verify(hash, password)


async def serve(config: Config, store: CdrStore, *trusted: str) -> Client:
    config.settings = dataclasses.replace(
        config.settings,
        http_secure_cookies=False,
        http_trusted_proxies=tuple(ipaddress.ip_network(t) for t in trusted),
    )
    app = build_app(config, Runtime(store=store), clock=VirtualClock(origin=NOW))
    app[USERS].hasher = CountingHasher()
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def forged(token: str) -> str:
    """The token's id with a wrong secret: costs a real argon2 check."""
    return token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")


def hasher_of(client: Client) -> CountingHasher:
    hasher = client.app[USERS].hasher  # type: ignore[index]
    assert isinstance(hasher, CountingHasher)
    return hasher


async def advance(client: Client, seconds: float) -> None:
    clock = client.app[CLOCK]  # type: ignore[index]
    assert isinstance(clock, VirtualClock)
    await clock.advance(seconds)


async def test_wrong_tokens_make_their_address_wait_429_before_any_hash_check(
    config: Config, store: CdrStore, tokens: Tokens
) -> None:
    client = await serve(config, store)
    try:
        hasher = hasher_of(client)
        with structlog.testing.capture_logs() as logs:
            # The viewer's script has been verified once: it goes on whatever happens next.
            assert (await client.get("/api/targets", headers=bearer(tokens.viewer))).status == 200
            before = hasher.checks
            for _ in range(FREE_FAILURES):
                wrong = await client.get("/api/targets", headers=bearer(forged(tokens.admin)))
                assert wrong.status == 401
            assert hasher.checks == before + FREE_FAILURES
            refused = await client.get("/api/targets", headers=bearer(forged(tokens.admin)))
            assert refused.status == 429 and refused.headers["Retry-After"] == "1"
            assert (await refused.json())["error"]["code"] == "too_many_attempts"
            # A token never verified waits too, even a right one: nothing is checked.
            later = await client.get("/api/targets", headers=bearer(tokens.admin))
            assert later.status == 429
            assert hasher.checks == before + FREE_FAILURES
            ok = await client.get("/api/targets", headers=bearer(tokens.viewer))
            assert ok.status == 200
            await advance(client, 1)
            assert (await client.get("/api/targets", headers=bearer("garbage"))).status == 401
            again = await client.get("/api/targets", headers=bearer(tokens.admin))
            assert again.status == 429 and again.headers["Retry-After"] == "2"  # doubled
            await advance(client, 2)
            assert (await client.get("/api/targets", headers=bearer(tokens.admin))).status == 200
        throttled = [e for e in logs if e["event"] == "token_throttled"]
        assert [e["address"] for e in throttled] == ["127.0.0.1"] * 3
        assert [e["retry_after"] for e in throttled] == [1, 1, 2]
        assert len([e for e in logs if e["event"] == "token_refused"]) == FREE_FAILURES + 1
        secrets = (tokens.admin, tokens.viewer, forged(tokens.admin), "garbage")
        assert not any(secret in repr(e) for e in logs for secret in secrets)
    finally:
        await client.close()


async def test_wrong_tokens_and_failed_logins_count_against_one_address(
    config: Config, store: CdrStore, tokens: Tokens
) -> None:
    client = await serve(config, store)
    try:
        for _ in range(FREE_FAILURES):
            assert (await client.get("/api/targets", headers=bearer("garbage"))).status == 401
        assert (await log_in(client, "vera", PASSWORD)).status == 429  # not checked
    finally:
        await client.close()


HTML = {"Accept": "text/html"}


async def log_in(client: Client, name: str, password: str, **headers: str) -> Any:
    page = await client.get("/login", headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    return await client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf[1]},
        headers={**HTML, **headers},
        allow_redirects=False,
    )


@pytest.mark.parametrize("trusted", [(), ("10.0.0.0/8",), ("192.0.2.0/24",)])
async def test_x_forwarded_for_from_a_client_that_is_no_trusted_proxy_is_ignored(
    config: Config, store: CdrStore, tokens: Tokens, trusted: tuple[str, ...]
) -> None:
    # The test client connects from 127.0.0.1: not a trusted proxy here.
    client = await serve(config, store, *trusted)
    try:
        with structlog.testing.capture_logs() as logs:
            for n in range(FREE_FAILURES):
                headers = {**bearer("garbage"), XFF: f"192.0.2.{n + 1}"}
                assert (await client.get("/api/targets", headers=headers)).status == 401
            # A fresh address in the header changes nothing: the peer is the client.
            spoofed = {**bearer(tokens.admin), XFF: "192.0.2.99"}
            assert (await client.get("/api/targets", headers=spoofed)).status == 429
        addresses = {e["address"] for e in logs if e["event"].startswith("token_")}
        assert addresses == {"127.0.0.1"}
    finally:
        await client.close()


async def test_behind_a_trusted_proxy_each_client_waits_for_its_own_failures(
    config: Config, store: CdrStore, tokens: Tokens
) -> None:
    client = await serve(config, store, "127.0.0.1")  # the test client plays the proxy
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(FREE_FAILURES):
                # The attacker writes its own X-Forwarded-For; the proxy appends the peer.
                headers = {**bearer("garbage"), XFF: "198.51.100.1, 192.0.2.7"}
                assert (await client.get("/api/targets", headers=headers)).status == 401
            for spoof in ("198.51.100.2, 192.0.2.7", "192.0.2.7", "10.1.1.1, 192.0.2.7"):
                headers = {**bearer(tokens.admin), XFF: spoof}
                assert (await client.get("/api/targets", headers=headers)).status == 429, spoof
            # Another client of the same proxy is not held up by 192.0.2.7's guesses.
            other = {**bearer(tokens.admin), XFF: "192.0.2.7, 192.0.2.8"}
            assert (await client.get("/api/targets", headers=other)).status == 200
            # A login through the proxy is logged and counted with the client's address.
            failed = await log_in(client, "vera", "hunter2", **{XFF: "203.0.113.5"})
            assert failed.status == 401
            throttled = await log_in(client, "vera", PASSWORD, **{XFF: "192.0.2.7"})
            assert throttled.status == 429
        refused = [e["address"] for e in logs if e["event"] == "token_refused"]
        assert refused == ["192.0.2.7"] * FREE_FAILURES
        [login] = [e for e in logs if e["event"] == "login_failed"]
        assert login["address"] == "203.0.113.5"
        [waiting] = [e for e in logs if e["event"] == "login_throttled"]
        assert waiting["address"] == "192.0.2.7" and waiting["waiting"] == "address"
    finally:
        await client.close()


# ------------------------------------------------------------------------ configuration


def _with_proxies(example: Path, value: str) -> None:
    path = example / "pbxd.yaml"
    text = path.read_text()
    path.write_text(text.replace("  bind: 127.0.0.1:8080", f"  bind: 127.0.0.1:8080\n{value}", 1))


def test_trusted_proxies_are_none_by_default(example: Path) -> None:
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None and config.settings.http_trusted_proxies == ()


def test_trusted_proxies_from_the_file_and_from_the_environment(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_proxies(example, "  trusted_proxies: [10.0.0.5, 2001:db8::/64]")
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    assert [str(n) for n in config.settings.http_trusted_proxies] == [
        "10.0.0.5/32",
        "2001:db8::/64",
    ]
    monkeypatch.setenv("PBXD_HTTP_TRUSTED_PROXIES", "192.0.2.1, 192.0.2.128/25")
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    assert [str(n) for n in config.settings.http_trusted_proxies] == [
        "192.0.2.1/32",
        "192.0.2.128/25",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[10.0.0.5/24]", "'10.0.0.5/24' is not an address or a network"),
        ("[proxy.example]", "'proxy.example' is not an address or a network"),
    ],
)
def test_check_refuses_a_trusted_proxy_that_is_no_address(
    example: Path, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_proxies(example, f"  trusted_proxies: {value}")
    assert main(["check"]) == 1
    assert f"http.trusted_proxies: {message}" in capsys.readouterr().err


def test_check_warns_when_every_client_is_trusted(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_proxies(example, "  trusted_proxies: [0.0.0.0/0]")
    assert main(["check"]) == 0
    assert "0.0.0.0/0 trusts every client" in capsys.readouterr().err
