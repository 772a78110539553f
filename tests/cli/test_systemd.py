"""sd_notify: the protocol against a real datagram socket, and `pbxd run` under a fake systemd."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog.testing

from pbxd.sim import AriSimulator, PeerScript
from pbxd.systemd import Notifier, keep_systemd_informed
from tests.cli.test_run import start_daemon


class FakeSystemd:
    """The service manager's side: a bound AF_UNIX datagram socket collecting messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        self.seen = 0  # messages `until` has looked at
        self._arrived: asyncio.Event | None = None  # set by the loop's reader while listening

    def drain(self) -> list[dict[str, str]]:
        """Every message already delivered (without waiting)."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append(_fields(data))

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Take each message as it arrives, as systemd does: the kernel queues only 10 unread
        datagrams (net.unix.max_dgram_qlen) and refuses the next ones to the sender."""
        loop = asyncio.get_running_loop()
        arrived = self._arrived = asyncio.Event()

        def take() -> None:
            self.drain()
            arrived.set()

        loop.add_reader(self.sock.fileno(), take)
        try:
            yield
        finally:
            loop.remove_reader(self.sock.fileno())
            self._arrived = None

    async def until(
        self, found: Callable[[dict[str, str]], bool], seconds: float = 20.0
    ) -> dict[str, str]:
        """The first message after the last one `until` returned that `found` accepts."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(seconds):
            while True:
                self.drain()
                while self.seen < len(self.messages):
                    message = self.messages[self.seen]
                    self.seen += 1
                    if found(message):
                        return message
                if self._arrived is not None:
                    self._arrived.clear()
                    await self._arrived.wait()
                else:
                    self.messages.append(_fields(await loop.sock_recv(self.sock, 4096)))

    def close(self) -> None:
        self.sock.close()


def _fields(data: bytes) -> dict[str, str]:
    lines = data.decode().split("\n")
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def fake_systemd() -> Iterator[FakeSystemd]:
    fake = FakeSystemd(f"@pbxd-test-{uuid.uuid4().hex}")  # abstract: no path length limit
    yield fake
    fake.close()


# ------------------------------------------------------------------------- the protocol


def test_messages_reach_a_socket_path_as_key_value_lines() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        fake = FakeSystemd(str(Path(folder) / "notify"))
        try:
            notifier = Notifier(fake.address)
            assert notifier.ready("ARI connected; 0 calls in progress")
            assert notifier.status("two\nlines")  # a newline must not start a new field
            assert notifier.stopping()
            assert fake.drain() == [
                {"READY": "1", "STATUS": "ARI connected; 0 calls in progress"},
                {"STATUS": "two lines"},
                {"STOPPING": "1", "STATUS": "stopping"},
            ]
        finally:
            fake.close()


def test_reloading_wraps_a_reload_even_when_it_fails(fake_systemd: FakeSystemd) -> None:
    notifier = Notifier(fake_systemd.address)
    notifier.ready()
    with pytest.raises(RuntimeError), notifier.reloading():
        raise RuntimeError("bad configuration")
    _, reloading, ready = fake_systemd.drain()
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert ready == {"READY": "1"}


def test_a_reload_during_start_up_never_says_ready(fake_systemd: FakeSystemd) -> None:
    notifier = Notifier(fake_systemd.address)
    with notifier.reloading():
        pass
    assert fake_systemd.drain() == []  # READY=1 waits for ARI and recovery


def test_environment_is_read_once_and_removed() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier.from_environment(env)
    assert notifier.address == "@x" and notifier.watchdog_interval == 15.0
    assert env == {}  # a child process must not speak for pbxd


@pytest.mark.parametrize(
    "env",
    [
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "soon"},
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "0"},
    ],
)
def test_a_watchdog_for_another_process_or_unreadable_is_ignored(env: dict[str, str]) -> None:
    assert Notifier.from_environment(env).watchdog_interval is None


def test_without_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and notifier.sent == 0


def test_a_vanished_socket_loses_messages_without_raising() -> None:
    notifier = Notifier(f"@pbxd-nobody-{uuid.uuid4().hex}")
    with structlog.testing.capture_logs() as logs:
        assert not notifier.watchdog()
        assert not notifier.watchdog()
    assert notifier.sent == 0
    assert [e["event"] for e in logs] == ["systemd_notify_failed"]  # once, not per message


async def test_watchdog_and_status_come_from_the_loop_status_only_on_change(
    fake_systemd: FakeSystemd,
) -> None:
    notifier = Notifier(fake_systemd.address, watchdog_usec=2_000)  # ping every 1 ms
    texts = iter(["starting", "starting", "1 call", "1 call", "1 call", "0 calls"])
    last = "0 calls"

    def status() -> str:
        return next(texts, last)

    informing = asyncio.create_task(keep_systemd_informed(notifier, status, status_every=0.001))
    await fake_systemd.until(lambda m: m.get("STATUS") == "0 calls")
    pings = sum(m == {"WATCHDOG": "1"} for m in fake_systemd.drain())
    await fake_systemd.until(lambda m: m == {"WATCHDOG": "1"})  # still pinging after that
    informing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await informing
    statuses = [m["STATUS"] for m in fake_systemd.drain() if "STATUS" in m]
    assert statuses == ["starting", "1 call", "0 calls"]
    assert pings >= 3  # one per pass of the loop: at least one per status read


async def test_a_status_systemd_did_not_take_is_sent_again() -> None:
    address = f"@pbxd-test-{uuid.uuid4().hex}"
    notifier = Notifier(address)  # nobody listens there yet: the first STATUS= is refused
    with structlog.testing.capture_logs() as logs:
        informing = asyncio.create_task(
            keep_systemd_informed(notifier, lambda: "connecting to ARI", status_every=0.001)
        )
        await asyncio.sleep(0)  # the informer's first pass
    assert notifier.sent == 0 and [e["event"] for e in logs] == ["systemd_notify_failed"]
    fake = FakeSystemd(address)
    try:
        assert await fake.until(lambda m: "STATUS" in m) == {"STATUS": "connecting to ARI"}
    finally:
        informing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await informing
        fake.close()
    assert notifier.sent == 1  # once delivered, the same status is not sent again


async def test_a_wedged_loop_sends_no_watchdog_ping(fake_systemd: FakeSystemd) -> None:
    notifier = Notifier(fake_systemd.address, watchdog_usec=2_000)
    informing = asyncio.create_task(keep_systemd_informed(notifier, lambda: "x"))
    await fake_systemd.until(lambda m: m == {"WATCHDOG": "1"})
    before = len(fake_systemd.drain())
    # A blocking call holds the loop: the informer cannot run, so systemd hears nothing.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as blocked:
        blocked.settimeout(0.05)
        with pytest.raises(TimeoutError):
            blocked.recv(1)
    assert len(fake_systemd.drain()) == before
    informing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await informing


# ------------------------------------------------------------- pbxd run under "systemd"


async def _log_until(process: asyncio.subprocess.Process, event: str, count: int = 1) -> None:
    assert process.stderr is not None
    seen = 0
    async with asyncio.timeout(20):
        while seen < count:
            raw = await process.stderr.readline()
            assert raw, "pbxd exited"
            seen += json.loads(raw).get("event") == event


@pytest.mark.timeout(180)  # a child process compiles: slow on a loaded machine
async def test_pbxd_run_tells_systemd_ready_status_reload_watchdog_and_stopping(
    example: Path, fake_systemd: FakeSystemd, unused_tcp_port: int
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/ari"
    db = f"sqlite:///{example / 'cdr.db'}"
    # Read as systemd reads: unread, the kernel would refuse pbxd's next messages.
    with fake_systemd.listening():
        # A ping every 0.1 s; no WATCHDOG_PID: the watchdog is the child's own.
        process = await start_daemon(
            example, url, db, NOTIFY_SOCKET=fake_systemd.address, WATCHDOG_USEC="200000"
        )
        sim = AriSimulator()
        try:
            # Asterisk is not up yet: pbxd retries, pings the watchdog, and is not READY.
            await _log_until(process, "ari_events_retry", count=2)
            # STATUS= is read once a second: the retries may come before it says so.
            await fake_systemd.until(lambda m: m.get("STATUS") == "connecting to ARI")
            early = fake_systemd.drain()
            assert not any("READY" in m for m in early)
            # A new database: migrated by a child before the daemon's loop opens it.
            statuses = [m["STATUS"] for m in early if "STATUS" in m]
            assert statuses == [
                "migrating the CDR database",
                "opening the CDR database",
                "connecting to ARI",
            ]
            assert {"WATCHDOG": "1"} in early

            for endpoint in ("trunk-in", "trunk-out", "alice", "bob"):
                sim.add_endpoint("PJSIP", endpoint)
            sim.script("PJSIP/alice", PeerScript())  # rings, never answers
            sim.script("PJSIP/bob", PeerScript())
            await sim.start(port=unused_tcp_port)
            ready = await fake_systemd.until(lambda m: m.get("READY") == "1")
            # READY only after recovery: the sweep of the app's channels has been asked already.
            assert any(r["path"] == "/applications/pbxd" for r in sim.rest_log)
            assert ready["STATUS"] == "ARI connected; 0 calls in progress"

            caller = await sim.inbound_call("+33170000001", "+33612000001", "Jean")
            await fake_systemd.until(
                lambda m: m.get("STATUS") == "ARI connected; 1 call in progress"
            )
            sim.hangup(caller)
            await fake_systemd.until(
                lambda m: m.get("STATUS") == "ARI connected; 0 calls in progress"
            )

            process.send_signal(signal.SIGHUP)  # systemctl reload: pbxd must survive it
            await fake_systemd.until(lambda m: m.get("RELOADING") == "1")
            # READY=1 once the configuration is compiled (in a process of its own) and swapped.
            await fake_systemd.until(lambda m: m.get("READY") == "1", seconds=90)
            assert process.returncode is None

            process.send_signal(signal.SIGTERM)
            await fake_systemd.until(lambda m: m.get("STOPPING") == "1")
            async with asyncio.timeout(15):
                _, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            pings = [m for m in fake_systemd.drain() if m == {"WATCHDOG": "1"}]
            assert len(pings) >= 3
            assert '"event": "config_reloaded"' in err.decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await sim.stop()
