"""Benchmark: the longest event-loop stall while the daemon reloads 100,000 numbers under traffic.

The configuration is bench/config_load.py's (100,000 numbers: singles, 100-number blocks,
4,600 routes, on a trunk of its own) plus bench/calls.py's routes, which the traffic uses. As
in bench/calls.py the simulator runs in a child process and places `--rate` calls per second
(the `ringall` mix: answered after 1.0-1.9 s, 3 s of talk); the daemon (`CallService`, CDRs in
SQLite) runs in this process, unmodified. After `--before` seconds of traffic the daemon
reloads a changed copy of the configuration exactly as SIGHUP or the HTTP API does
(`RunningConfig.reload`: compiled in a child process, taken in a slice at a time).

Measured in the daemon's process, over the same length of traffic before the reload (the
baseline) and during it, in two parts: while the compiler process works, and while the loop
takes its answer in, swaps it and frees the replaced configuration:

- the lateness of a task that sleeps 1 ms in a loop: how late any timer or ARI event could
  have been handled (this includes the whole process being descheduled on a busy machine);
- the longest single callback the loop ran, in wall and in CPU time of the loop's thread:
  the loop's own stall, whatever else the machine runs;
- the transfer: bytes the compiler process sent back, and the loop's time unpickling them.

Run: .venv/bin/python bench/reload.py [--numbers 100000] [--rate 50] [--before 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import io
import os
import signal
import tempfile
import time
from asyncio import events
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import calls as traffic
import config_load
from simprocess import simulator_in_child

TARGET_MS = 20.0
TICK_S = 0.001


@dataclass
class Window:
    """What the loop did between two moments."""

    lateness_ms: list[float] = field(default_factory=list)
    # Of each lateness, what the loop thread spent in CPU meanwhile: the rest, the thread
    # did not run (other processes had the cores).
    late_cpu_ms: list[float] = field(default_factory=list)
    longest_wall_ms: float = 0.0  # the longest callback by the clock on the wall
    longest_wall_what: str = ""
    longest_cpu_ms: float = 0.0  # the longest by the loop thread's CPU (preemption left out)
    longest_cpu_what: str = ""
    callbacks: int = 0
    callbacks_cpu_ms: float = 0.0  # all callbacks' CPU: the loop's load over the window
    opened: float = field(default_factory=time.perf_counter)
    closed: float = 0.0
    reload_steps: int = 0  # steps of the reload's own task (its slices)
    reload_step_wall_ms: float = 0.0
    reload_step_cpu_ms: float = 0.0
    gc_ms: dict[int, float] = field(default_factory=dict)  # longest collection, by generation
    gc_cpu_ms: dict[int, float] = field(default_factory=dict)  # the same in the thread's CPU
    gc_walked: dict[int, list[int]] = field(default_factory=dict)  # objects each one walked
    longest_samples: list[tuple[str, ...]] = field(default_factory=list)  # --sample: its stacks
    worst_interval: list[tuple[str, float]] = field(default_factory=list)  # the worst tick's

    def busy(self) -> float:
        """The share of the window's wall time the loop spent running callbacks (CPU)."""
        wall = ((self.closed or time.perf_counter()) - self.opened) * 1000
        return self.callbacks_cpu_ms / wall if wall > 0 else 0.0

    def late_cpu_max(self) -> float:
        """The longest the loop thread itself kept a wake-up waiting (its CPU)."""
        return max(self.late_cpu_ms or [0.0])

    def lines(self, name: str) -> str:
        late = sorted(self.lateness_ms) or [0.0]
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        return (
            f"{name}: 1 ms ticker late by max {late[-1]:.1f} ms, p99 {p99:.1f} ms "
            f"({len(late)} ticks); {self.callbacks} callbacks\n"
            f"  of the lateness, the loop thread at work (CPU): max {self.late_cpu_max():.1f} ms; "
            f"the loop busy {self.busy():.0%} of the window ({self.callbacks_cpu_ms:.0f} ms CPU)\n"
            f"  longest callback, wall: {self.longest_wall_ms:.1f} ms ({self.longest_wall_what})\n"
            f"  longest callback, CPU:  {self.longest_cpu_ms:.1f} ms ({self.longest_cpu_what})\n"
            f"  longest garbage collection by generation: "
            + (
                ", ".join(
                    f"{g}: {ms:.1f} ms ({self.gc_cpu_ms.get(g, 0.0):.1f} ms CPU)"
                    for g, ms in sorted(self.gc_ms.items())
                )
                or "none"
            )
            + "".join(
                f"\n  objects walked by generation {g}: {len(n)} collections, max {max(n)}, "
                f"p90 {sorted(n)[int(len(n) * 0.9)]} (load-independent; ~1 us of CPU each)"
                for g, n in sorted(self.gc_walked.items())
            )
            + (
                f"\n  the reload's own task: {self.reload_steps} steps, longest "
                f"{self.reload_step_wall_ms:.1f} ms wall, {self.reload_step_cpu_ms:.1f} ms CPU"
                if self.reload_steps
                else ""
            )
            + _interval(self.worst_interval)
            + _profile(self.longest_samples)
        )


def _interval(ran: list[tuple[str, float]]) -> str:
    """What the loop ran while the ticker's worst wake-up waited, by what, most CPU first."""
    if not ran:
        return ""
    by: dict[str, list[float]] = {}
    for what, cpu in ran:
        by.setdefault(what, []).append(cpu)
    top = sorted(by.items(), key=lambda kv: -sum(kv[1]))[:8]
    return (
        f"\n  while the worst wake-up waited: {len(ran)} callbacks, "
        f"{sum(c for _, c in ran):.1f} ms CPU; most:"
        + "".join(f"\n    {sum(c):6.1f} ms in {len(c):3d} x {what}" for what, c in top)
    )


def _label(handle: events.Handle) -> str:
    """A cheap name for a callback: the task's coroutine, else the function."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        return str(getattr(task.get_coro(), "__qualname__", "task"))
    return str(getattr(callback, "__qualname__", type(callback).__name__))


def _profile(samples: list[tuple[str, ...]]) -> str:
    """The frames seen most in the longest callback's stack samples (inclusive counts)."""
    if not samples:
        return ""
    counts: dict[str, int] = {}
    for stack in samples:
        for frame in set(stack):
            counts[frame] = counts.get(frame, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:30]
    # A long call into C shows as one sample: Python runs the handler between bytecodes.
    head = f"\n  the longest callback's {len(samples)} CPU samples (0.5 ms each), by frame:"
    return head + "".join(f"\n    {n:4d} {frame}" for frame, n in top)


class LoopWatch:
    """Times every callback the event loop runs, and a ticker's lateness, into `window`."""

    def __init__(self, *, count_walked: bool = False, sample: bool = False) -> None:
        self._window: Window | None = None
        self.since_tick: list[tuple[str, float]] = []  # (what, CPU ms) since the ticker woke
        self.sample = sample  # stack samples every 0.5 ms of CPU (SIGPROF), kept for the longest
        self.samples: list[tuple[str, ...]] = []
        self._run = events.Handle._run
        # Counting what a collection walks lists every young object first: a stall of its
        # own (outside the collection's timing), so only on request.
        self.count_walked = count_walked

    @property
    def window(self) -> Window | None:
        """Where the loop's callbacks and the ticker's wake-ups are counted now."""
        return self._window

    @window.setter
    def window(self, window: Window | None) -> None:
        if self._window is not None:
            self._window.closed = time.perf_counter()
        self._window = window

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        run, watch = self._run, self

        def timed(handle: events.Handle) -> None:
            window = watch.window
            if window is None:
                run(handle)
                return
            watch.samples = []
            cpu, wall = time.thread_time(), time.perf_counter()
            run(handle)
            wall = (time.perf_counter() - wall) * 1000
            cpu = (time.thread_time() - cpu) * 1000
            window.callbacks += 1
            window.callbacks_cpu_ms += cpu
            watch.since_tick.append((_label(handle), cpu))
            if wall > window.longest_wall_ms:
                window.longest_wall_ms, window.longest_wall_what = wall, _what(handle)
            if cpu > window.longest_cpu_ms:
                window.longest_cpu_ms, window.longest_cpu_what = cpu, _what(handle)
                window.longest_samples = watch.samples
            task = getattr(getattr(handle, "_callback", None), "__self__", None)
            if isinstance(task, asyncio.Task) and task.get_name() == "reload":
                window.reload_steps += 1
                window.reload_step_wall_ms = max(window.reload_step_wall_ms, wall)
                window.reload_step_cpu_ms = max(window.reload_step_cpu_ms, cpu)

        collection_began = [0.0, 0.0]
        walking = [0]

        def collected(phase: str, info: dict[str, int]) -> None:
            window = watch.window
            if phase == "start":
                walking[0] = -1  # not counted: this collection began outside a window
                if watch.count_walked and window is not None:
                    walking[0] = sum(len(gc.get_objects(g)) for g in range(info["generation"] + 1))
                collection_began[:] = time.perf_counter(), time.thread_time()
            elif window is not None:
                ms = (time.perf_counter() - collection_began[0]) * 1000
                cpu_ms = (time.thread_time() - collection_began[1]) * 1000
                generation = info["generation"]
                window.gc_ms[generation] = max(window.gc_ms.get(generation, 0.0), ms)
                window.gc_cpu_ms[generation] = max(window.gc_cpu_ms.get(generation, 0.0), cpu_ms)
                watch.since_tick.append((f"(collection of generation {generation})", cpu_ms))
                if walking[0] >= 0:
                    window.gc_walked.setdefault(generation, []).append(walking[0])

        def sampled(_signal: int, frame: Any) -> None:
            stack = []
            while frame is not None and len(stack) < 40:
                code = frame.f_code
                stack.append(f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})")
                frame = frame.f_back
            watch.samples.append(tuple(stack))

        events.Handle._run = timed  # type: ignore[method-assign]
        gc.callbacks.append(collected)
        if self.sample:
            signal.signal(signal.SIGPROF, sampled)
            signal.setitimer(signal.ITIMER_PROF, 0.0005, 0.0005)
        try:
            yield
        finally:
            if self.sample:
                signal.setitimer(signal.ITIMER_PROF, 0, 0)
            events.Handle._run = run  # type: ignore[method-assign]
            gc.callbacks.remove(collected)

    async def tick(self) -> None:
        """Sleep 1 ms in a loop; note how late each wake-up was."""
        while True:
            asked, cpu = time.perf_counter(), time.thread_time()
            self.since_tick = []
            await asyncio.sleep(TICK_S)
            if self.window is not None:
                late = max(0.0, (time.perf_counter() - asked - TICK_S) * 1000)
                if late > max(self.window.lateness_ms, default=0.0):
                    self.window.worst_interval = self.since_tick
                self.window.lateness_ms.append(late)
                self.window.late_cpu_ms.append(min(late, (time.thread_time() - cpu) * 1000))


def _what(handle: events.Handle) -> str:
    """Where a task stood when its step ended (the code that ran long), else the callback."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    names = []
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        names.append(coro.cr_frame.f_code.co_name)
        coro = coro.cr_await
    return " > ".join(names[-3:]) if names else repr(callback)[:60]


def write_config(root: Path, numbers: int, ring_time: int) -> Path:
    """The bulk configuration (`numbers`) beside bench/calls.py's routes; pbxd.yaml's path."""
    bulk, bench = root / "bulk", root / "bench"
    bulk.mkdir(parents=True, exist_ok=True)
    bench.mkdir(parents=True, exist_ok=True)
    # Singles from +33 1 71 00 00 00: clear of bench/calls.py's +33 1 70 00 10 xx.
    config_load.generate(bulk, numbers, endpoint="trunk-bulk", offset=1_000_000)
    traffic.write_config(bench, max_legs=10_000)
    (root / "routing").mkdir(exist_ok=True)
    (root / "pbxd.yaml").write_text("state_dir: var\n")
    trunks = (bench / "sip-trunks.yaml").read_text()
    bulk_trunk = (bulk / "sip-trunks.yaml").read_text().removeprefix("trunks:\n")
    (root / "sip-trunks.yaml").write_text(trunks + bulk_trunk)
    (root / "routing" / "bench.yaml").write_text((bench / "routing" / "bench.yaml").read_text())
    routes = (bulk / "routing" / "all.yaml").read_text()
    (root / "routing" / "bulk.yaml").write_text(
        routes.replace("ring_time: 15}", f"ring_time: {ring_time}}}")
    )
    return root / "pbxd.yaml"


@dataclass
class Heap:
    """The daemon's memory after a reload, and the worst stall of that reload."""

    reload: int
    rss_mb: float
    frozen: int  # objects in the frozen heap (`gc.get_freeze_count`)
    worst_ms: float  # the 1 ms ticker's worst lateness, compiling or taking in
    worst_cpu_ms: float  # the most of a lateness the loop thread spent at work
    gc_ms: float  # the longest collection (wall) during the reload

    @staticmethod
    def now(reload: int, compiling: Window | None, taking_in: Window | None) -> Heap:
        windows = [w for w in (compiling, taking_in) if w is not None]
        return Heap(
            reload,
            traffic.memory_kb().get("VmRSS", 0) / 1024,
            gc.get_freeze_count(),
            max((max(w.lateness_ms or [0.0]) for w in windows), default=0.0),
            max((w.late_cpu_max() for w in windows), default=0.0),
            max((max(w.gc_ms.values() or [0.0]) for w in windows), default=0.0),
        )

    def line(self, start: Heap) -> str:
        return (
            f"after reload {self.reload + 1}: RSS {self.rss_mb:.0f} MB "
            f"({self.rss_mb - start.rss_mb:+.0f} MB since before the first), frozen heap "
            f"{self.frozen} objects ({self.frozen - start.frozen:+d}); worst stall "
            f"{self.worst_ms:.1f} ms ({self.worst_cpu_ms:.1f} ms the loop at work), "
            f"longest collection {self.gc_ms:.1f} ms"
        )


@dataclass
class Transfer:
    """The compiler process's answer as the loop took it in."""

    bytes: int = 0
    decode_wall_s: float = 0.0
    decode_cpu_s: float = 0.0
    taking_in: Window | None = None  # from the child's answer to the end of the reload


class _Counted:
    """A stream that counts the bytes read from it into `transfer.bytes`."""

    def __init__(self, stream: Any, transfer: Transfer) -> None:
        self._stream, self._transfer = stream, transfer
        transfer.bytes = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._stream.read(n)
        self._transfer.bytes += len(data)
        return data

    def readline(self) -> bytes:
        data: bytes = self._stream.readline()
        self._transfer.bytes += len(data)
        return data


def watch_transfer(transfer: Transfer, watch: LoopWatch) -> Callable[[], None]:
    """Wrap `pbxd.config.reload.decode` to measure it, in a window of its own; the undo."""
    from pbxd.config import reload

    decode = reload.decode

    async def timed(stream: Any) -> Any:
        if watch.window is not None:  # the compiler process is done: the loop takes over
            transfer.taking_in = watch.window = Window()
        wall, cpu = time.perf_counter(), time.thread_time()
        result = await decode(_Counted(stream, transfer))
        transfer.decode_wall_s = time.perf_counter() - wall
        # The loop thread's CPU over the whole decode: other callbacks' share included.
        transfer.decode_cpu_s = time.thread_time() - cpu
        return result

    reload.decode = timed

    def undo() -> None:
        reload.decode = decode

    return undo


async def outside_windows(watch: LoopWatch) -> None:
    """Close the window: the bench's own steps after this (counting the frozen heap walks
    it, 26 ms at 285,000 objects) are charged to none."""
    watch.window = None
    await asyncio.sleep(0)  # the step that closed it was opened in the window


async def edit_outside_windows(watch: LoopWatch, bulk: Path, ring_time: int) -> None:
    """The admin's edit (ring_time + 1 in every bulk route), measured in no window.

    Rewriting the 10 MB file is the bench's work, not the daemon's: in a thread, and the
    ticker's next wake-ups (late by the bench's own steps) go to no window either.
    """
    await outside_windows(watch)

    def edit() -> None:
        text = bulk.read_text()
        bulk.write_text(text.replace(f"ring_time: {ring_time}}}", f"ring_time: {ring_time + 1}}}"))

    await asyncio.to_thread(edit)
    await asyncio.sleep(0.1)


async def run(args: argparse.Namespace, url: str, conn: Any, tmp: Path) -> None:
    """Start pbxd against the simulator, drive traffic, reload mid-way, print the figures."""
    import structlog

    from pbxd import heap
    from pbxd.calls.runtime import AriEndpoint, CallService
    from pbxd.cdr.store import CdrStore
    from pbxd.clock import RealClock
    from pbxd.config.compile import compile_config
    from pbxd.config.reload import RunningConfig
    from pbxd.log import configure_logging

    log_file = (tmp / "pbxd.log").open("w")
    configure_logging("info", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=log_file))
    path = write_config(tmp / "config", args.numbers, ring_time=15)
    started = time.perf_counter()
    compiled = compile_config(path)
    assert compiled.config is not None, [str(d) for d in compiled.diagnostics[:5]]
    print(f"config: {compiled.config.summary()}, compiled in {time.perf_counter() - started:.1f} s")
    running = RunningConfig(compiled.config)
    del compiled
    store = await CdrStore.open(f"sqlite:///{tmp / 'cdr.db'}")
    service = CallService(
        running.current,
        AriEndpoint(url, traffic.ARI_USER, traffic.ARI_PASSWORD, "pbxd"),
        store,
        RealClock(),
    )
    running.on_swap(service.use_config)
    finished = 0
    watch = LoopWatch(count_walked=args.count_walked, sample=args.sample)
    transfer = Transfer()
    undo = watch_transfer(transfer, watch)
    ticker: asyncio.Task[None] | None = None
    try:
        await service.start()
        heap.settle()  # as `pbxd run` does once connected
        assert service.daemon is not None

        def on_finished(_: object) -> None:
            nonlocal finished
            finished += 1

        service.daemon.on_call_finished = on_finished
        await service.daemon.recovered.wait()
        before_reloads = Heap.now(-1, None, None)
        with watch.installed():
            ticker = asyncio.create_task(watch.tick())
            conn.send(("start",))
            await asyncio.sleep(1.0)  # the traffic ramps up
            baseline = watch.window = Window()
            await asyncio.sleep(args.before)
            await edit_outside_windows(watch, path.parent / "routing" / "bulk.yaml", 15)
            during = watch.window = Window()
            reload_started = time.perf_counter()
            result = await asyncio.create_task(running.reload(), name="reload")
            reload_s = time.perf_counter() - reload_started
            await outside_windows(watch)
            calls_during = finished
            assert result.accepted, result.as_dict()
            after = [Heap.now(0, during, transfer.taking_in)]
            first = dataclasses.replace(transfer)  # the figures below are the first reload's
            # More reloads: the frozen heap and RSS must not grow with each one.
            for n in range(1, args.reloads):
                await edit_outside_windows(watch, path.parent / "routing" / "bulk.yaml", 15 + n)
                compiling = watch.window = Window()
                transfer.taking_in = None
                again = await asyncio.create_task(running.reload(), name="reload")
                await outside_windows(watch)
                assert again.accepted, again.as_dict()
                after.append(Heap.now(n, compiling, transfer.taking_in))
        assert running.current.routes["r1000000"].targets[1].ring_time == 15 + args.reloads
        async with asyncio.timeout(120):
            placed = (await traffic.receive(conn))[1]
            end = (await traffic.receive(conn))[1]
        await asyncio.sleep(0.5)
    finally:
        if ticker is not None:
            ticker.cancel()
        undo()
        await service.stop()
        await store.close()
        log_file.close()
        conn.send(("stop",))
    load = os.getloadavg()
    print(
        f"traffic: {args.rate:g} calls/s, {placed['seconds']:.1f} s of placing; "
        f"{finished} calls handled by the daemon, {end['left']} channels left on the simulator"
    )
    print(
        f"reload: accepted in {reload_s:.2f} s wall (compile in a child process, transfer, "
        f"swap); {calls_during} calls had ended by its end"
    )
    print(
        f"transfer: {first.bytes / 1e6:.1f} MB from the compiler process, taken in over "
        f"{first.decode_wall_s * 1000:.0f} ms wall, {first.decode_cpu_s * 1000:.0f} ms of "
        "the loop thread's CPU (in slices)"
    )
    print(baseline.lines("before the reload"))
    print(during.lines("during the reload, the compiler process at work"))
    taking_in = first.taking_in or Window()
    print(taking_in.lines("during the reload, the loop taking the result in and swapping"))
    for heap_after in after:
        print(heap_after.line(before_reloads))
    print(
        f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
        f"{os.cpu_count()} CPUs"
    )
    worst = max(h.worst_ms for h in after)
    worst_cpu = max(h.worst_cpu_ms for h in after)
    verdict = "met" if worst < TARGET_MS else "NOT met"
    longest_cpu = max(during.longest_cpu_ms, taking_in.longest_cpu_ms)
    print(
        f"longest loop stall during {len(after)} reload(s): {worst:.1f} ms (1 ms ticker, wall; "
        f"{worst_cpu:.1f} ms at most of a lateness was the loop thread at work, the rest it "
        f"did not run; the first reload's longest callback took {longest_cpu:.1f} ms of CPU); "
        f"target < {TARGET_MS:g} ms: {verdict}"
    )


async def transfer_alone(numbers: int, tmp: Path) -> None:
    """The transfer without traffic: encoding in the child, taking in on a quiet loop."""
    from pbxd import heap
    from pbxd.config.compile import compile_config
    from pbxd.config.reload import decode, encode

    result = compile_config(write_config(tmp / "alone", numbers, ring_time=15))
    assert result.config is not None
    started = time.perf_counter()
    data = encode(result)
    encoding = time.perf_counter() - started
    heap.settle()
    watch = LoopWatch()
    with watch.installed():
        ticker = asyncio.create_task(watch.tick())
        await asyncio.sleep(0.1)
        window = watch.window = Window()
        started = time.perf_counter()
        crossed = await asyncio.create_task(decode(io.BytesIO(data)), name="reload")
        taking_in = time.perf_counter() - started
        watch.window = None
        ticker.cancel()
    assert crossed.config == result.config
    print(
        f"transfer alone: {len(data) / 1e6:.1f} MB encoded in {encoding * 1000:.0f} ms (the "
        f"compiler process's share), taken in over {taking_in * 1000:.0f} ms by a quiet loop"
    )
    print(window.lines("taking it in, no traffic"))


def main() -> None:
    """Parse the flags, start the simulator process, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second")
    parser.add_argument(
        "--before", type=float, default=6.0, help="seconds of traffic measured before the reload"
    )
    parser.add_argument(
        "--reloads", type=int, default=3, help="reloads one after the other (RSS must not grow)"
    )
    parser.add_argument(
        "--calls", type=int, default=0, help="calls placed (default: 45 s of traffic)"
    )
    parser.add_argument(
        "--count-walked",
        action="store_true",
        help="count the objects each collection walks (a figure the load cannot change; "
        "the counting stalls the loop itself, so the stall figures do not count then)",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help="sample the stack every 0.5 ms of CPU and print the longest callback's frames",
    )
    args = parser.parse_args()
    calls = args.calls or int(args.rate * 45)
    traffic.use_mix("ringall")
    simulator = simulator_in_child(traffic.simulator_process, calls, args.rate, 0.01, "ringall")
    with (
        simulator as (url, parent),
        tempfile.TemporaryDirectory(prefix="pbxd-reload-bench-") as tmp,
    ):
        asyncio.run(transfer_alone(args.numbers, Path(tmp)))
        asyncio.run(run(args, url, parent, Path(tmp)))


if __name__ == "__main__":
    main()
