"""EventStream against a fake /ari/events WebSocket: events, resync hook, bad input, reconnects."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from pbxd.ari.errors import AriEventError
from pbxd.ari.events import Event, StasisStart
from pbxd.ari.stream import EventStream, events_url

from .fakes import APP, CAPTURES, PASSWORD, USERNAME, FakeEventSocket

BACKOFF = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def _capture_events(name: str) -> list[dict[str, Any]]:
    lines = (CAPTURES / f"{name}.jsonl").read_text().splitlines()
    return [r["data"] for r in map(json.loads, lines) if r["kind"] == "event"]


STASIS_START = _capture_events("busy")[0]


class RecordingClock:
    """A Clock whose sleeps return at once, recording the backoff asked for."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.elapsed = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        await asyncio.sleep(0.001)  # yield, and keep a dead-server loop from spinning hot

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(seconds, callback)


async def eventually(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Wait until `predicate()` holds; polling keeps fakes simple. `within` is generous: a
    loaded machine may be slow, never wrong."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


class Recorder:
    """Collects what the stream hands to its callbacks."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.bad: list[tuple[dict[str, Any] | str, Exception]] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_bad_event(self, message: dict[str, Any] | str, error: Exception) -> None:
        self.bad.append((message, error))


@asynccontextmanager
async def running(stream: EventStream) -> AsyncIterator[asyncio.Task[None]]:
    """Run the stream in a task; stop it and check run() ended cleanly on exit."""
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(stream.stop(), 5)
        assert task.done()
        task.result()  # run() must end without an exception


def make_stream(base_url: str, recorder: Recorder, **kwargs: Any) -> EventStream:
    return EventStream(
        base_url,
        USERNAME,
        PASSWORD,
        APP,
        recorder.on_event,
        on_bad_event=recorder.on_bad_event,
        **kwargs,
    )


def test_events_url_from_base_url() -> None:
    assert events_url("http://127.0.0.1:8088/ari") == "ws://127.0.0.1:8088/ari/events"
    assert events_url("https://pbx.example:8089/ari/") == "wss://pbx.example:8089/ari/events"


async def test_receives_every_event_of_a_capture_in_order(fake_events: FakeEventSocket) -> None:
    recorder = Recorder()
    stream = make_stream(fake_events.base_url, recorder)
    captured = _capture_events("ringall_answer")
    async with running(stream):
        await asyncio.wait_for(stream.wait_connected(), 5)
        assert stream.connected
        for data in captured:
            await fake_events.send(data)
        await eventually(lambda: len(recorder.events) == len(captured))
    assert [e.type for e in recorder.events] == [d["type"] for d in captured]
    assert recorder.bad == []
    assert not stream.connected
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert fake_events.handshakes[0] == {"authorization": f"Basic {token}", "app": APP}


async def test_on_connected_runs_beside_the_reader_after_each_connection(
    fake_events: FakeEventSocket,
) -> None:
    recorder = Recorder()
    resyncs: list[str] = []
    never = asyncio.Event()

    async def resync() -> None:
        resyncs.append("started")
        try:
            await never.wait()  # a slow resync must not hold events back
        except asyncio.CancelledError:
            resyncs.append("cancelled")
            raise

    stream = make_stream(fake_events.base_url, recorder, on_connected=resync)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
        # on_connected is a task beside the reader: it may start just after the first event.
        await eventually(lambda: resyncs == ["started"])
        await fake_events.drop()
        await fake_events.wait_sockets(2)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 2)
        await eventually(lambda: resyncs.count("started") == 2)
    # stop() cancels resyncs still running, so no task outlives the stream
    assert resyncs.count("cancelled") == 2


async def test_malformed_messages_never_kill_the_stream(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    recorder = Recorder()
    stream = make_stream(fake_events.base_url, recorder)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.send("{not json")
        await fake_events.send({"type": "StasisStart", "application": APP})
        await fake_events.send("[1, 2]")
        await fake_events.sockets[-1].send_bytes(b"\x00")
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
    assert isinstance(recorder.events[0], StasisStart)
    assert [type(m) for m, _ in recorder.bad] == [str, dict, str, str]
    assert isinstance(recorder.bad[0][1], json.JSONDecodeError)
    assert isinstance(recorder.bad[1][1], AriEventError)
    assert "missing required field 'timestamp'" in str(recorder.bad[1][1])
    assert isinstance(recorder.bad[2][1], AriEventError)
    warnings = [e for e in debug_logs if e["event"] == "ari_bad_event"]
    assert len(warnings) == 4 and all(e["log_level"] == "warning" for e in warnings)
    assert fake_events.sockets[0] is fake_events.sockets[-1]  # same connection throughout


async def test_bad_event_without_handler_and_failing_handlers_are_logged(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    seen: list[Event] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("handler bug")

    stream = EventStream(fake_events.base_url, USERNAME, PASSWORD, APP, on_event)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.send("oops")
        await fake_events.send(STASIS_START)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(seen) == 2)
    names = [e["event"] for e in debug_logs]
    assert "ari_bad_event" in names and "ari_event_handler_failed" in names
    assert len(fake_events.sockets) == 1


async def test_reconnects_after_asterisk_closes_the_socket(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    recorder = Recorder()
    stream = make_stream(fake_events.base_url, recorder)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.drop()
        await fake_events.wait_sockets(2)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
        assert stream.connections == 2
    retries = [e for e in debug_logs if e["event"] == "ari_events_retry"]
    assert [(e["attempt"], e["delay_s"]) for e in retries] == [(2, 0.1)]
    assert "connection closed" in retries[0]["error"]


async def test_backoff_doubles_to_five_seconds_while_asterisk_is_down(
    free_port: int, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    clock = RecordingClock()
    stream = make_stream(f"http://127.0.0.1:{free_port}/ari", Recorder(), clock=clock)
    async with running(stream):
        await eventually(lambda: len(clock.sleeps) >= len(BACKOFF))
        assert not stream.connected
    assert clock.sleeps[: len(BACKOFF)] == pytest.approx(BACKOFF)
    retries = [e for e in debug_logs if e["event"] == "ari_events_retry"]
    assert [e["attempt"] for e in retries[: len(BACKOFF)]] == list(range(2, len(BACKOFF) + 2))
    assert [e["delay_s"] for e in retries[: len(BACKOFF)]] == pytest.approx(BACKOFF)
    assert all(e["log_level"] == "warning" for e in retries)


async def test_retries_while_asterisk_boots_with_401_404_503(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    fake_events.reject = [503, 401, 404]
    clock = RecordingClock()
    stream = make_stream(fake_events.base_url, Recorder(), clock=clock)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await asyncio.wait_for(stream.wait_connected(), 5)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    errors = [e["error"] for e in debug_logs if e["event"] == "ari_events_retry"]
    assert [e.split(":")[0] for e in errors] == ["HTTP 503", "HTTP 401", "HTTP 404"]
    assert "Asterisk starting" in errors[0] and "password" in errors[1]
    connected = [e for e in debug_logs if e["event"] == "ari_events_connected"]
    assert [(e["attempt"], e["log_level"]) for e in connected] == [(4, "info")]


async def test_backoff_resets_only_after_a_healthy_connection(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    fake_events.reject = [503, 503]
    clock = RecordingClock()
    stream = make_stream(fake_events.base_url, Recorder(), clock=clock, healthy_after=5.0)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await stream.wait_connected()
        assert clock.sleeps == pytest.approx([0.1, 0.2])
        clock.elapsed += 60  # the connection stays up a minute: healthy
        await fake_events.drop()
        await fake_events.wait_sockets(2)
        assert clock.sleeps[2:] == pytest.approx([0.1])
        await stream.wait_connected()
        await fake_events.drop()  # dropped at once: flapping, so keep backing off
        await fake_events.wait_sockets(3)
        assert clock.sleeps[3:] == pytest.approx([0.2])
    retries = [(e["attempt"], e["delay_s"]) for e in debug_logs if e["event"] == "ari_events_retry"]
    assert retries == [(2, 0.1), (3, 0.2), (1, 0.1), (2, 0.2)]


async def test_reconnects_when_asterisk_comes_back_after_being_down(
    fake_events: FakeEventSocket,
) -> None:
    recorder = Recorder()
    stream = make_stream(fake_events.base_url, recorder)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.stop()  # Asterisk restarts: connection lost, connects refused
        await eventually(lambda: not stream.connected)
        await asyncio.sleep(0.4)  # several refused attempts with the real backoff
        await fake_events.start()  # same port
        await fake_events.wait_sockets(2)
        await asyncio.wait_for(stream.wait_connected(), 5)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
        assert stream.connections == 2


async def test_heartbeat_detects_a_dead_peer(fake_events: FakeEventSocket) -> None:
    fake_events.answer_pings = False  # the peer is there but never answers a ping
    stream = make_stream(fake_events.base_url, Recorder(), heartbeat=0.2)
    async with running(stream):
        await fake_events.wait_sockets(1)
        fake_events.answer_pings = True
        await asyncio.wait_for(fake_events.wait_sockets(2), 5)


async def test_stop_interrupts_a_long_backoff(free_port: int) -> None:
    clock_started = asyncio.get_running_loop().time()
    stream = make_stream(f"http://127.0.0.1:{free_port}/ari", Recorder(), backoff_initial=30.0)
    async with running(stream) as task:
        await asyncio.sleep(0.2)  # first attempt refused, now sleeping 30 s
        assert not task.done()
    assert asyncio.get_running_loop().time() - clock_started < 5


async def test_cancelling_run_closes_the_socket(fake_events: FakeEventSocket) -> None:
    stream = make_stream(fake_events.base_url, Recorder())
    task = asyncio.create_task(stream.run())
    server_side = await fake_events.wait_sockets(1)
    await stream.wait_connected()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: server_side.closed)
    assert not stream.connected


async def test_stop_closes_the_socket_and_stays_stopped(fake_events: FakeEventSocket) -> None:
    stream = make_stream(fake_events.base_url, Recorder())
    async with running(stream):
        server_side = await fake_events.wait_sockets(1)
        await stream.wait_connected()
        with pytest.raises(RuntimeError, match="already running"):
            await stream.run()
    await eventually(lambda: server_side.closed)
    assert not stream.connected
    await asyncio.wait_for(stream.run(), 1)  # a stopped stream's run() returns at once
    assert len(fake_events.sockets) == 1


async def test_stop_as_the_handshake_completes_leaves_nothing_running(
    fake_events: FakeEventSocket,
) -> None:
    for count in range(1, 6):  # the race window differs run to run: try it a few times
        stream = make_stream(fake_events.base_url, Recorder())
        async with running(stream):
            await fake_events.wait_sockets(count)
        assert not stream.connected


async def test_absurd_messages_are_bad_events_on_the_same_connection(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    recorder = Recorder()
    stream = make_stream(fake_events.base_url, recorder)
    wrong_caller = {**STASIS_START, "channel": {**STASIS_START["channel"], "caller": []}}
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.send("[" * 100_000 + "]" * 100_000)  # RecursionError in json.loads
        await fake_events.send({**STASIS_START, "timestamp": 1700000000})
        await fake_events.send(wrong_caller)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
    assert len(recorder.bad) == 3
    assert isinstance(recorder.bad[0][1], RecursionError)
    assert all(isinstance(error, AriEventError) for _, error in recorder.bad[1:])
    assert "ari_events_reader_failed" not in [e["event"] for e in debug_logs]
    assert len(fake_events.sockets) == 1  # no reconnection, nothing lost


async def test_unparsable_event_fields_never_escape_the_parser(
    fake_events: FakeEventSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_parser(data: object) -> Event:
        raise TypeError("a shape nobody foresaw")

    monkeypatch.setattr("pbxd.ari.stream.parse_event", broken_parser)
    recorder = Recorder()
    stream = make_stream(fake_events.base_url, recorder)
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.bad) == 1)
    assert isinstance(recorder.bad[0][1], AriEventError)
    assert "a shape nobody foresaw" in str(recorder.bad[0][1])
    assert len(fake_events.sockets) == 1


async def test_wrong_password_is_explained_and_retried_without_the_password(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    fake_events.reject = [401, 401, 401]
    clock = RecordingClock()
    stream = make_stream(fake_events.base_url, Recorder(), clock=clock)
    async with running(stream):
        await fake_events.wait_sockets(1)
    retries = [e for e in debug_logs if e["event"] == "ari_events_retry"]
    assert [e["error"] for e in retries] == [
        "HTTP 401: Asterisk refused the ARI username or password (ari.conf user, PBXD_ARI_PASSWORD)"
    ] * 3
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert PASSWORD not in repr(debug_logs)
    assert base64.b64encode(PASSWORD.encode()).decode() not in repr(debug_logs)


async def test_credentials_in_the_url_neither_kill_the_stream_nor_reach_the_logs(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    # aiohttp raises ValueError for URL credentials beside our Authorization header.
    url = fake_events.base_url.replace("://", "://pbxd:url-secret@")
    recorder = Recorder()
    stream = make_stream(url, recorder)
    async with running(stream):
        await asyncio.wait_for(stream.wait_connected(), 5)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
    expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert fake_events.handshakes[0]["authorization"] == expected
    assert "url-secret" not in repr(debug_logs) and "url-secret" not in stream.url


async def test_an_unforeseen_connect_error_is_retried(
    fake_events: FakeEventSocket,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: list[MutableMapping[str, Any]],
) -> None:
    real_connect = aiohttp.ClientSession.ws_connect
    failures = iter([ValueError("surprise")])

    def flaky(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> Any:
        for error in failures:
            raise error
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "ws_connect", flaky)
    stream = make_stream(fake_events.base_url, Recorder(), clock=RecordingClock())
    async with running(stream):
        await asyncio.wait_for(stream.wait_connected(), 5)
    retries = [e["error"] for e in debug_logs if e["event"] == "ari_events_retry"]
    assert retries == ["ValueError: surprise"]


async def test_a_handler_that_holds_the_reader_is_reported(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    seen: list[Event] = []

    def slow_handler(event: Event) -> None:
        seen.append(event)
        time.sleep(0.01)  # the wrong thing: blocking work in on_event instead of a queue

    stream = EventStream(
        fake_events.base_url, USERNAME, PASSWORD, APP, slow_handler, slow_handler=0.005
    )
    async with running(stream):
        await fake_events.wait_sockets(1)
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(seen) == 1)
    [slow] = [e for e in debug_logs if e["event"] == "ari_event_handler_slow"]
    assert slow["event_type"] == "StasisStart" and slow["log_level"] == "warning"
    assert slow["elapsed_ms"] >= 5
