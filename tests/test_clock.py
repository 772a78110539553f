"""The clocks: VirtualClock (what the call and simulator tests drive) and ScaledClock
(`pbxd simulate --speed`)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from pbxd.clock import HeldDuringAwaits, ScaledClock, Stalled, VirtualClock, off_loop

ORIGIN = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


async def test_time_stands_still_until_the_test_moves_it() -> None:
    clock = VirtualClock(ORIGIN)
    fired: list[float] = []
    clock.call_later(2, lambda: fired.append(clock.monotonic()))
    await asyncio.sleep(0.01)  # real time passes, virtual time does not
    await clock.settle()
    assert fired == [] and clock.monotonic() == 0.0 and clock.now() == ORIGIN
    await clock.advance(1.5)
    assert fired == [] and clock.now() == ORIGIN + timedelta(seconds=1.5)
    await clock.advance(0.5)
    assert fired == [2.0]


async def test_timers_fire_in_order_at_their_own_time() -> None:
    clock = VirtualClock(ORIGIN)
    fired: list[tuple[str, float]] = []
    for name, delay in [("c", 3.0), ("a", 1.0), ("b", 1.0), ("d", 0.0)]:
        clock.call_later(delay, lambda name=name: fired.append((name, clock.monotonic())))
    clock.call_later(2, lambda: fired.append(("never", 0))).cancel()
    await clock.settle()
    assert fired == [("d", 0.0)]  # due now: runs without the clock moving
    await clock.advance(10)
    assert fired == [("d", 0.0), ("a", 1.0), ("b", 1.0), ("c", 3.0)]
    assert clock.monotonic() == 10.0


async def test_each_instant_sees_the_effects_of_the_previous_one() -> None:
    # An instant's consequences (tasks, socket round trips) finish before time moves on.
    clock = VirtualClock(ORIGIN)
    seen: list[str] = []
    server = await _echo_server()
    host, port = server.sockets[0].getsockname()[:2]
    reader, writer = await asyncio.open_connection(host, port)

    async def ask() -> None:
        writer.write(b"ping\n")
        seen.append((await reader.readline()).decode().strip())

    clock.call_later(1, lambda: asyncio.ensure_future(ask()))
    clock.call_later(1.001, lambda: seen.append(f"next instant after {len(seen)} answer(s)"))
    await clock.advance(2)
    assert seen == ["ping", "next instant after 1 answer(s)"]
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def test_a_hold_stops_time_while_outside_work_runs() -> None:
    # A database answer that takes real time must not let a timer overtake it.
    clock = VirtualClock(ORIGIN)
    order: list[str] = []
    clock.call_later(0.5, lambda: order.append("timer"))

    async def slow_read() -> None:
        with clock.hold():
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.05)
            order.append("read")

    task = asyncio.ensure_future(slow_read())
    await clock.advance(1)
    await task
    assert order == ["read", "timer"]


async def test_run_until_stops_at_the_first_quiet_moment_the_condition_holds() -> None:
    clock = VirtualClock(ORIGIN)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.monotonic())
        clock.call_later(1, tick)

    clock.call_later(1, tick)
    await clock.run_until(lambda: len(ticks) == 3)
    assert ticks == [1.0, 2.0, 3.0] and clock.monotonic() == 3.0
    with pytest.raises(TimeoutError, match=r"not within 2\.5 virtual s: never"):
        await clock.run_until(lambda: False, within=2.5, what="never")
    assert ticks[3:] == [4.0, 5.0]  # the timers within the limit ran...
    assert clock.monotonic() == 5.5  # ...and the time allowed passed


async def test_drive_returns_the_result_and_sleep_is_virtual() -> None:
    clock = VirtualClock(ORIGIN)

    async def nap() -> float:
        await clock.sleep(30)
        return clock.monotonic()

    started = time.monotonic()
    assert await clock.drive(nap()) == 30.0
    assert time.monotonic() - started < 5


async def test_waiting_for_what_can_never_happen_fails_fast() -> None:
    clock = VirtualClock(ORIGIN, stall_seconds=0.05)
    with pytest.raises(Stalled):
        await clock.drive(asyncio.Event().wait())


async def test_one_driver_at_a_time() -> None:
    clock = VirtualClock(ORIGIN)
    clock.call_later(5, lambda: None)
    first = asyncio.ensure_future(clock.advance(10))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already driven"):
        await clock.advance(1)
    await first


async def test_scaled_clock_runs_virtual_seconds_faster() -> None:
    # Bounds from the real time measured, so a loaded machine cannot make it fail.
    speed = 50.0
    clock = ScaledClock(speed=speed)
    before_real = time.monotonic()
    before = clock.now()
    await clock.sleep(2.0)
    elapsed = (clock.now() - before).total_seconds()
    real = time.monotonic() - before_real
    assert 2.0 - 1e-3 <= elapsed <= real * speed + 1e-3
    assert real < 2.0  # not slept in real seconds


async def test_work_in_a_thread_holds_virtual_time() -> None:
    # A timer is due 0.5 virtual s on; the thread takes real time. Without the hold, the
    # quiet loop would let the timer fire before the thread's answer.
    clock = VirtualClock()
    fired: list[float] = []
    clock.call_later(0.5, lambda: fired.append(clock.monotonic()))

    def slow_file_work() -> float:
        time.sleep(0.1)
        return clock.monotonic()

    assert await clock.drive(off_loop(clock, slow_file_work), within=10) == 0.0
    assert fired == []
    await clock.advance(1)
    assert fired == [0.5]


async def test_held_during_awaits_holds_each_coroutine_method() -> None:
    clock = VirtualClock()
    fired: list[float] = []
    clock.call_later(0.5, lambda: fired.append(clock.monotonic()))

    class Store:
        label = "cdr"

        async def open_calls(self) -> list[str]:
            await asyncio.to_thread(time.sleep, 0.1)  # the database answering
            return ["1796149800.102"]

    held = HeldDuringAwaits(Store(), clock)
    assert held.label == "cdr"
    assert await clock.drive(held.open_calls(), within=10) == ["1796149800.102"]
    assert fired == []
