"""`pbxd run` serves HTTP in its own loop: health at once, ready once ARI and recovery are."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from pbxd.sim import AriSimulator
from tests.classic_example import open_round_the_clock
from tests.cli.test_run import read_until, shut_down, start_daemon, stop_daemon


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_healthz_at_once_readyz_503_until_ari_then_200(
    example: Path, unused_tcp_port: int
) -> None:
    ari = f"http://127.0.0.1:{unused_tcp_port}/ari"
    process = await start_daemon(example, ari, f"sqlite:///{example / 'cdr.db'}")
    sim = AriSimulator()
    try:
        lines = await read_until(process, lambda line: line["event"] == "http_listening")
        base = str(lines[-1]["url"])
        assert base.startswith("http://127.0.0.1:") and not base.endswith(":0/")
        assert await _get(base + "healthz") == (200, {"status": "alive"})
        status, body = await _get(base + "readyz")
        assert status == 503
        assert body == {
            "ready": False,
            "error": {"code": "not_ready", "message": "connecting to ARI"},
        }
        for endpoint in ("trunk-in", "trunk-out", "alice", "bob"):
            sim.add_endpoint("PJSIP", endpoint)
        await sim.start(port=unused_tcp_port)
        await read_until(process, lambda line: line["event"] == "pbxd ready")
        assert await _get(base + "readyz") == (
            200,
            {"ready": True, "status": "ARI connected; 0 calls in progress"},
        )
        # Everything else needs a login: the API refuses, with a stable code.
        status, body = await _get(base + "api/numbers")
        assert status == 401 and body["error"]["code"] == "unauthenticated"  # type: ignore[index]
        log = await stop_daemon(process)
        assert '"event": "pbxd stopped"' in log
    finally:
        await shut_down(sim, process)


async def test_a_busy_http_port_stops_pbxd_with_one_clear_line(example: Path) -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        process = await start_daemon(
            example,
            "http://127.0.0.1:9/ari",
            f"sqlite:///{example / 'cdr.db'}",
            PBXD_HTTP_BIND=f"127.0.0.1:{port}",
        )
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert process.returncode == 1
    text = err.decode()
    assert '"event": "http_bind_failed"' in text and f"127.0.0.1:{port}" in text
    assert "Traceback" not in text


async def test_metrics_count_a_call_by_route_and_say_ari_is_up(example: Path) -> None:
    open_round_the_clock(example)  # the reception rings whatever the hour of the run
    from argon2 import PasswordHasher

    from pbxd.web.users import Role, add_user
    from tests.cli.test_run import simulator_where_alice_answers, wait_for

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    token = add_user(example / "users.yaml", "prom", Role.VIEWER, password=None, hasher=hasher)
    sim = simulator_where_alice_answers()
    url = await sim.start()
    process = await start_daemon(example, url, f"sqlite:///{example / 'cdr.db'}")
    try:
        lines = await read_until(process, lambda line: line["event"] == "http_listening")
        base = str(lines[-1]["url"])
        await read_until(process, lambda line: line["event"] == "pbxd ready")
        caller = await sim.inbound_call("+33170000001", "+33612000001", "Jean")
        await wait_for(lambda: any(len(b.channels) == 2 for b in sim.bridges))
        sim.hangup(caller)
        await read_until(
            process, lambda line: line["event"] == "call ended" and line.get("call_id") == caller
        )
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "metrics") as refused:
                assert refused.status == 401
            async with session.get(base + "metrics", headers=headers) as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                text = await response.text()
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['pbxd_calls_total{disposition="answered",route="paris-reception"}'] == 1
        assert samples['pbxd_legs_total{outcome="answered"}'] == 1
        assert samples["pbxd_answer_delay_seconds_count"] == 1
        assert samples["pbxd_event_to_action_seconds_count"] == 1
        assert samples["pbxd_calls_in_progress"] == 0
        assert samples["pbxd_ari_connected"] == 1
        assert samples["pbxd_ari_reconnects_total"] == 0
        assert samples["pbxd_cdr_backlog"] >= 0
        assert samples['pbxd_http_requests_total{method="GET",route="/metrics",status="401"}'] == 1
        # Bounded labels: no caller number, no DID, no call id in any series.
        for secret in ("+33612000001", "+33170000001", caller):
            assert secret not in text
        await stop_daemon(process)
    finally:
        await shut_down(sim, process)
