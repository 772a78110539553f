"""Benchmark: pbxd holding thousands of calls at once (ringing and bridged, long talk times).

The simulator runs in a child process (real clock) and ramps up to `--calls` concurrent calls
at `--rate` calls per second; none ends by itself during the run: half are answered and stay
bridged (the callee answers after 1 s, nobody hangs up), half keep ringing: they hunt phones
that never answer, 300 s each (the most pbxd allows), for an hour. Once every call is set
up, the calls are held for `--hold` seconds, then the simulator hangs every caller up
(`--drain-rate` per second) and the run ends when pbxd has closed every call and written
every CDR.

pbxd (`CallService`, unmodified, CDRs in SQLite in a temporary directory) runs in this
process and talks to the simulator over 127.0.0.1. What it prints:

- **RSS** of the daemon process, before the first call, at full size, and its peak.
- **CPU per event** while ramping up (`getrusage` of this process, every thread, divided by
  the events pbxd received), and per slice of 10 % of the calls, so a cost growing with the
  number of calls in progress shows; the CPU of the hold (10,000 calls doing nothing).
- **Event-to-action latency**: from the moment an event's WebSocket message reaches pbxd
  (`EventStream._dispatch` entry) to the moment pbxd issues the request it causes
  (`AriClient._send` entry): inbound StasisStart -> `ring`, a leg's StasisStart -> its `dial`,
  the answering leg's ChannelStateChange Up -> the first request after it (the other leg's
  hangup). Reported for every call and for the calls placed with 90 % or more of the target
  already in progress ("at size").
- The simulator's own CPU (other process) and how far it fell behind its schedule: where it,
  not pbxd, is the limit, its schedule lag grows and the report says so.

Run: .venv/bin/python bench/concurrency.py [--calls 10000] [--rate 50] [--hold 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote

from simprocess import simulator_in_child

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calls import gc_pauses, memory_kb, pct, receive, summary, usage

ARI_USER, ARI_PASSWORD, ARI_APP = "pbxd", "pbxd-secret", "pbxd"
VARIANTS = 10
RING_TIME = 300  # pbxd's maximum ring time; a ringing call hunts 12 phones: one hour
HUNT_TURNS = 12
ANSWER_AFTER = 1.0
TARGET_BAR = 0.9  # "at size": calls placed with at least 90 % of the target in progress


def did_of(bridged: bool, variant: int) -> str:
    """The virtual number of a route, E.164."""
    return f"+3317002{0 if bridged else 1}00{variant}"


def write_config(root: Path) -> Path:
    """pbxd.yaml, sip-trunks.yaml and routing/: two routes per variant; pbxd.yaml's path."""
    numbers = [did_of(b, v) for b in (True, False) for v in range(VARIANTS)]
    inventory = "".join(f"      - number: '{n}'\n" for n in numbers)
    (root / "pbxd.yaml").write_text("state_dir: var\n")
    (root / "sip-trunks.yaml").write_text(
        "trunks:\n  bench:\n    inbound_endpoint: trunk-in\n"
        "    dial: 'PJSIP/{number}@trunk-out'\n    allowed_destinations: ['+33']\n"
        "    max_outbound_legs: 10\n    country: FR\n    timezone: Europe/Paris\n"
        "    numbers:\n" + inventory
    )
    targets, routes = [], []
    for v in range(VARIANTS):
        targets.append(
            f"  ans{v}:\n    softphone: PJSIP/ans{v}\n"
            f"  ring{v}:\n    softphone: PJSIP/ring{v}\n"
            f"  other{v}:\n    softphone: PJSIP/other{v}\n"
        )
        routes.append(
            f"  - name: bridged{v}\n    numbers: ['{did_of(True, v)}']\n"
            f"    strategy: ringall\n    targets: [ring{v}, ans{v}]\n    timeout: 60\n"
            f"  - name: ringing{v}\n    numbers: ['{did_of(False, v)}']\n"
            f"    strategy: hunt\n    targets: [{', '.join([f'ring{v}', f'other{v}'] * 6)}]\n"
            f"    ring_time: {RING_TIME}\n    timeout: {RING_TIME * HUNT_TURNS}\n"
        )
    (root / "routing").mkdir()
    (root / "routing" / "bench.yaml").write_text(
        "targets:\n" + "".join(targets) + "routes:\n" + "".join(routes)
    )
    return root / "pbxd.yaml"


# ------------------------------------------------------------------- simulator process


def simulator_process(conn: Connection, calls: int, rate: float, drain_rate: float) -> None:
    """Child process entry point: run the simulator until told to stop."""
    asyncio.run(_simulator(conn, calls, rate, drain_rate))


async def _simulator(conn: Connection, calls: int, rate: float, drain_rate: float) -> None:
    from pbxd.clock import RealClock
    from pbxd.sim import AriSimulator, PeerScript

    sim = AriSimulator(RealClock(), ARI_USER, ARI_PASSWORD)
    sim.hub.on_delivered = None  # no capture log: it would hold every event of the run
    sim.add_endpoint("PJSIP", "trunk-in")
    for v in range(VARIANTS):
        for name in ("ans", "ring", "other"):
            sim.add_endpoint("PJSIP", f"{name}{v}")
        sim.script(f"PJSIP/ans{v}", PeerScript(answer_after=ANSWER_AFTER))
    url = await sim.start()
    conn.send(("ready", url))
    callers: list[str] = []
    try:
        message = await receive(conn)
        if message[0] != "start":
            return
        await sim.wait_connected(ARI_APP)
        cpu0, t0 = time.process_time(), time.perf_counter()
        lag_max = 0.0
        for i in range(calls):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lag_max = max(lag_max, time.perf_counter() - due)
            bridged = i % 2 == 0
            did = did_of(bridged, (i // 2) % VARIANTS)
            callers.append(await sim.inbound_call(did, f"+336{20_000_000 + i}", f"Caller {i}"))
            if i % 1000 == 999:
                conn.send(("progress", {"placed": i + 1, "lag": lag_max}))
        conn.send(
            (
                "placed",
                {
                    "seconds": time.perf_counter() - t0,
                    "lag_max": lag_max,
                    "cpu": time.process_time() - cpu0,
                    "channels": len(sim.pbx.channels),
                },
            )
        )
        message = await receive(conn)  # "hangup"
        cpu1, t1 = time.process_time(), time.perf_counter()
        for i, caller in enumerate(callers):
            due = t1 + i / drain_rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sim.hangup(caller)
        idle = True
        try:
            async with asyncio.timeout(300):
                await sim.wait_until_idle()
        except TimeoutError:
            idle = False
        conn.send(
            (
                "drained",
                {
                    "idle": idle,
                    "left": len(sim.pbx.channels),
                    "cpu": time.process_time() - cpu1,
                    "wall": time.perf_counter() - t1,
                },
            )
        )
        await receive(conn)  # "stop"
    finally:
        await sim.stop()


# ------------------------------------------------------------------------ measurement


class Samples:
    """(calls in progress then, seconds) pairs, 16 bytes each: the bench's own memory stays
    out of the daemon's RSS it reports (a list of tuples held ~300 bytes per call)."""

    def __init__(self) -> None:
        self.calls = array("q")
        self.seconds = array("d")

    def append(self, pair: tuple[int, float]) -> None:
        self.calls.append(pair[0])
        self.seconds.append(pair[1])

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.calls, self.seconds, strict=True)


@dataclass
class Probe:
    """What the daemon side records (perf_counter seconds)."""

    message_at: float = 0.0
    events: int = 0
    event_types: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    # call id -> when its inbound StasisStart / its winner's Up arrived, waiting for an action
    inbound: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    leg_start: dict[str, float] = field(default_factory=dict)  # leg id -> its StasisStart
    in_progress_at_start: dict[str, int] = field(default_factory=dict)  # call -> calls then
    to_ring: Samples = field(default_factory=lambda: Samples())  # (calls then, seconds)
    to_dial: Samples = field(default_factory=lambda: Samples())
    to_hangup: Samples = field(default_factory=lambda: Samples())
    gc_pauses: dict[int, list[float]] = field(default_factory=dict)


def call_of(channel_id: str) -> str:
    """pbxd names legs `<call id>-<n>`; a caller's channel id is the call id."""
    head, _, tail = channel_id.rpartition("-")
    return head if head and tail.isdigit() else channel_id


@contextmanager
def instrumented(probe: Probe, calls_now: Callable[[], int]) -> Iterator[None]:
    """Time events as they reach pbxd and note the ones that call for an action."""
    from pbxd.ari import ChannelStateChange, StasisStart
    from pbxd.ari.stream import EventStream
    from pbxd.calls.daemon import CallDaemon

    dispatch, on_event = EventStream._dispatch, CallDaemon.on_event
    clock = time.perf_counter

    def timed_dispatch(self: EventStream, text: str) -> None:
        probe.message_at = clock()
        dispatch(self, text)

    def timed_on_event(self: CallDaemon, event: Any) -> None:
        at = probe.message_at
        probe.events += 1
        probe.event_types[event.type] += 1
        if isinstance(event, StasisStart):
            channel = event.channel.id
            if event.args and event.args[0] == "pbxd-leg":
                probe.leg_start[channel] = at
            else:
                probe.inbound[channel] = at
                probe.in_progress_at_start[channel] = calls_now()
        elif isinstance(event, ChannelStateChange) and event.channel.state == "Up":
            call = call_of(event.channel.id)
            if call != event.channel.id:  # a leg answered
                probe.answered[call] = at
        on_event(self, event)

    EventStream._dispatch = timed_dispatch  # type: ignore[method-assign]
    CallDaemon.on_event = timed_on_event  # type: ignore[method-assign]
    try:
        yield
    finally:
        EventStream._dispatch = dispatch  # type: ignore[method-assign]
        CallDaemon.on_event = on_event  # type: ignore[method-assign]


def instrument_client(client: Any, probe: Probe) -> None:
    """Match each request as it is issued to the event that called for it."""
    send: Callable[..., Awaitable[Any]] = client._send
    clock = time.perf_counter

    async def timed_send(
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        now = clock()
        probe.requests += 1
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "channels" and parts[2] != "create":
            channel = unquote(parts[2])
            call = call_of(channel)
            size = probe.in_progress_at_start.get(call, 0)
            if method == "POST" and parts[-1] == "ring" and call in probe.inbound:
                probe.to_ring.append((size, now - probe.inbound.pop(call)))
            elif method == "POST" and parts[-1] == "dial" and channel in probe.leg_start:
                probe.to_dial.append((size, now - probe.leg_start.pop(channel)))
            elif method == "DELETE" and call in probe.answered:
                probe.to_hangup.append((size, now - probe.answered.pop(call)))
        return await send(method, path, params=params, body=body)

    client._send = timed_send


@dataclass
class Checkpoint:
    """The daemon's counters when the simulator had placed `placed` calls."""

    placed: int
    at: float
    cpu: float
    events: int
    calls: int


def print_heap_growth(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, calls: int
) -> None:
    """What the calls in progress allocated, per call: by line, then by type of GC object."""
    ignored = [tracemalloc.Filter(False, tracemalloc.__file__)]
    growth = after.filter_traces(ignored).compare_to(before.filter_traces(ignored), "traceback")
    total = sum(d.size_diff for d in growth)
    print(f"heap growth at size (tracemalloc): {total / 1e6:.1f} MB, {total / calls:.0f} B/call")
    for diff in growth[:25]:
        frames = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(diff.traceback)[:4])
        print(
            f"  {diff.size_diff / calls:8.0f} B/call {diff.count_diff / calls:6.1f} obj  {frames}"
        )
    kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
    print(
        f"GC-tracked objects outside the frozen heap: {sum(kinds.values())} "
        f"({sum(kinds.values()) / calls:.0f}/call): "
        + ", ".join(f"{k} {n / calls:.1f}" for k, n in kinds.most_common(30))
    )


CONTAINERS = (str, dict, list, tuple, datetime, set, int, float, bytes)


def census() -> dict[str, tuple[int, int]]:
    """Every live object by type: (count, shallow bytes), the frozen heap included.

    GC-tracked objects first, then what they hold that the collector does not track (str,
    int, float, datetime...), each counted once.
    """
    frozen = gc.get_freeze_count()
    gc.unfreeze()  # gc.get_objects() skips the frozen heap
    try:
        tracked = gc.get_objects()
    finally:
        if frozen:
            gc.freeze()
    found: dict[str, list[int]] = {}
    labels: dict[int, str] = {}  # id of a container -> "dict in Leg": whose it is

    def label(obj: object) -> str:
        return labels.get(id(obj)) or type(obj).__qualname__

    def count(obj: object, owner: object | None) -> None:
        kind = type(obj).__qualname__
        if owner is not None and type(obj) in CONTAINERS:  # say whose it is
            kind = f"{kind} in {label(owner)}"[:60]
        labels[id(obj)] = kind
        entry = found.setdefault(kind, [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(obj)

    # Non-containers first: their containers get their names, and what those hold after.
    order = sorted(tracked, key=lambda o: type(o) in CONTAINERS)
    for obj in order:
        if id(obj) not in labels:
            count(obj, None)
        for ref in gc.get_referents(obj):
            if id(ref) not in labels and (type(ref) in CONTAINERS or not gc.is_tracked(ref)):
                count(ref, obj)
    del tracked
    return {kind: (n, size) for kind, (n, size) in found.items()}


def print_census_growth(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], calls: int
) -> None:
    """Objects the calls in progress hold, per call, by type (largest first)."""
    growth = {
        kind: (n - before.get(kind, (0, 0))[0], size - before.get(kind, (0, 0))[1])
        for kind, (n, size) in after.items()
    }
    total_n = sum(n for n, _ in growth.values())
    total_size = sum(size for _, size in growth.values())
    print(
        f"object census at size: {total_n / calls:.0f} objects, {total_size / calls:.0f} B "
        "per call (shallow sizes)"
    )
    for kind, (n, size) in sorted(growth.items(), key=lambda kv: -kv[1][1])[:45]:
        print(f"  {size / calls:8.0f} B/call {n / calls:6.1f} obj  {kind}")


def print_pymalloc(when: str) -> None:
    """pymalloc's summary (sys._debugmallocstats): arenas RSS holds vs blocks in use."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+") as out:
        os.dup2(out.fileno(), 2)  # it writes to the C stderr
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        lines = out.read().splitlines()
    wanted = ("# arenas allocated current", "# arenas highwater", "# bytes in allocated blocks")
    wanted += ("# bytes in available blocks", "# unused pools", "Total")
    picked = [" ".join(line.split()) for line in lines if line.startswith(wanted)]
    status = Path("/proc/self/status").read_text().splitlines()
    picked += [
        " ".join(line.split())
        for line in status
        if line.startswith(("RssAnon", "RssFile", "Threads"))
    ]
    print(f"pymalloc {when}: " + "; ".join(picked), flush=True)


def cpu_seconds() -> float:
    user, system = usage()
    return user + system


# ------------------------------------------------------------------------------ the run


async def run(args: argparse.Namespace, url: str, conn: Connection, tmp: Path) -> None:
    """Start pbxd against the simulator, ramp up, hold, drain; print the figures."""
    import structlog

    from pbxd import heap
    from pbxd.arenas import share_malloc_arenas
    from pbxd.calls.runtime import AriEndpoint, CallService
    from pbxd.calls.states import CallState
    from pbxd.cdr.store import CdrStore
    from pbxd.clock import RealClock
    from pbxd.config.compile import compile_config
    from pbxd.log import configure_logging

    share_malloc_arenas()  # as `pbxd run` does, before the SQLite threads start
    log_file: TextIO = (tmp / "pbxd.log").open("w")
    configure_logging(args.log_level, json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=log_file))
    root = tmp / "config"
    root.mkdir()
    compiled = compile_config(write_config(root))
    assert compiled.config is not None, [str(d) for d in compiled.diagnostics[:5]]
    # As `pbxd run` opens it: a new database is migrated by a child process.
    store = await CdrStore.open(f"sqlite:///{tmp / 'var' / 'cdr.db'}", migrate_apart=True)
    service = CallService(
        compiled.config, AriEndpoint(url, ARI_USER, ARI_PASSWORD, ARI_APP), store, RealClock()
    )
    probe = Probe()
    daemon_calls: Callable[[], int] = lambda: 0  # noqa: E731
    with instrumented(probe, lambda: daemon_calls()):
        try:
            await service.start()
            heap.settle()
            assert service.client is not None and service.daemon is not None
            daemon = service.daemon
            daemon_calls = lambda: len(daemon.calls)  # noqa: E731
            instrument_client(service.client, probe)
            async with asyncio.timeout(30):
                await daemon.recovered.wait()
            await asyncio.sleep(0.5)
            rss_before = memory_kb()
            frozen_before = gc.get_freeze_count()
            if args.census:
                census_before = census()
            if args.malloc_stats:
                print_pymalloc("before")
            if args.profile_memory:
                tracemalloc.start(args.profile_memory)
                heap_before = tracemalloc.take_snapshot()
            print(
                f"target {args.calls} calls at {args.rate:g}/s (half bridged, half ringing); "
                f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
                flush=True,
            )

            def up() -> tuple[int, int]:
                states = Counter(s.state for s in daemon.calls.values())
                return states[CallState.BRIDGED], states[CallState.RINGING]

            # ---- ramp
            checkpoints = [Checkpoint(0, time.perf_counter(), cpu_seconds(), probe.events, 0)]
            conn.send(("start",))
            placed: dict[str, Any] = {}
            with gc_pauses(probe.gc_pauses):
                while not placed:
                    kind, data = await receive(conn)
                    now = time.perf_counter()
                    if kind == "progress":
                        checkpoints.append(
                            Checkpoint(
                                data["placed"], now, cpu_seconds(), probe.events, len(daemon.calls)
                            )
                        )
                        print(
                            f"  {data['placed']:>6} placed: pbxd holds {len(daemon.calls)} "
                            f"calls, RSS {memory_kb().get('VmRSS', 0) / 1024:.0f} MB, sim lag "
                            f"{data['lag'] * 1000:.0f} ms",
                            flush=True,
                        )
                    else:
                        placed = data
                deadline = time.perf_counter() + 120
                while up() != (args.calls // 2 + args.calls % 2, args.calls // 2):
                    if time.perf_counter() > deadline:
                        print(f"  not every call set up after 120 s: {up()}")
                        break
                    await asyncio.sleep(0.2)
            ramp_end = Checkpoint(
                args.calls, time.perf_counter(), cpu_seconds(), probe.events, len(daemon.calls)
            )
            # ---- hold
            rss_full = memory_kb()
            if args.census:
                print_census_growth(census_before, census(), len(daemon.calls))
            if args.malloc_stats:
                print_pymalloc("at size")
            if args.profile_memory:
                print_heap_growth(heap_before, tracemalloc.take_snapshot(), len(daemon.calls))
                tracemalloc.stop()
            hold_cpu0, hold_t0, hold_events0 = cpu_seconds(), time.perf_counter(), probe.events
            await asyncio.sleep(args.hold)
            hold_cpu = cpu_seconds() - hold_cpu0
            hold_wall = time.perf_counter() - hold_t0
            hold_events = probe.events - hold_events0
            bridged, ringing = up()
            rss_hold = memory_kb()
            # ---- drain
            drain_cpu0, drain_t0 = cpu_seconds(), time.perf_counter()
            conn.send(("hangup",))
            async with asyncio.timeout(600):
                drained = (await receive(conn))[1]
                await daemon.wait_idle()
                await store.flush()
            drain_cpu = cpu_seconds() - drain_cpu0
            frozen_after = gc.get_freeze_count()
            rss_after = memory_kb()
            if args.malloc_stats:
                print_pymalloc("after the drain")
            drain_wall = time.perf_counter() - drain_t0
        finally:
            await service.stop()
            await store.close()
    conn.send(("stop",))
    log_file.close()
    problems: Counter[str] = Counter()
    for line in (tmp / "pbxd.log").read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            problems[f"{entry['level']} {entry.get('event')}"] += 1

    # ---- report
    ramp = ramp_end.at - checkpoints[0].at
    ramp_cpu = ramp_end.cpu - checkpoints[0].cpu
    ramp_events = ramp_end.events - checkpoints[0].events
    sim_rate = (args.calls - 1) / placed["seconds"] if placed.get("seconds") else 0.0
    print(
        f"ramp: {args.calls} calls placed in {placed['seconds']:.1f} s ({sim_rate:.1f}/s, "
        f"simulator schedule lag max {placed['lag_max'] * 1000:.0f} ms, simulator CPU "
        f"{placed['cpu']:.1f} s = {placed['cpu'] / placed['seconds'] * 100:.0f} % of a core); "
        f"every call set up {ramp:.1f} s after the first"
    )
    print(
        f"at size: pbxd holds {bridged} bridged + {ringing} ringing calls "
        f"({placed['channels']} simulator channels)"
    )
    print(
        f"daemon RSS: {rss_before.get('VmRSS', 0) / 1024:.0f} MB before, "
        f"{rss_full.get('VmRSS', 0) / 1024:.0f} MB at size, "
        f"{rss_hold.get('VmRSS', 0) / 1024:.0f} MB after the hold, peak "
        f"{rss_hold.get('VmHWM', 0) / 1024:.0f} MB (target <= 200 MB)"
    )
    print(
        f"after the drain: RSS {rss_after.get('VmRSS', 0) / 1024:.0f} MB; frozen heap "
        f"{frozen_after - frozen_before:+d} objects since before the first call (what "
        "survived a full collection is frozen: a lasting growth would be leaked cycles)"
    )
    per_call_kb = (rss_full.get("VmRSS", 0) - rss_before.get("VmRSS", 0)) / max(1, args.calls)
    print(
        f"RSS per call in progress: {per_call_kb:.1f} kB -> "
        f"{(rss_before.get('VmRSS', 0) + per_call_kb * 10_000) / 1024:.0f} MB at 10,000 calls "
        "(target <= 200 MB)"
    )
    per_event = ramp_cpu * 1e6 / max(1, ramp_events)
    print(
        f"ramp CPU: {ramp_cpu:.1f} s for {ramp_events} events = {per_event:.0f} us/event, "
        f"{ramp_cpu * 1000 / args.calls:.2f} ms/call; "
        + ", ".join(f"{k} {v}" for k, v in probe.event_types.most_common())
    )
    slices = []
    for before, after in zip(checkpoints, [*checkpoints[1:], ramp_end], strict=False):
        events = after.events - before.events
        if events:
            slices.append(f"{after.placed // 1000}k {(after.cpu - before.cpu) * 1e6 / events:.0f}")
    print("  us/event by calls placed: " + ", ".join(slices))
    print(
        f"hold ({hold_wall:.0f} s at size): CPU {hold_cpu * 1000:.0f} ms "
        f"({hold_cpu / hold_wall * 100:.1f} % of a core), {hold_events} events"
    )
    left = "idle" if drained["idle"] else f"{drained['left']} channels left"
    print(f"drain: {drain_wall:.1f} s, CPU {drain_cpu:.1f} s; simulator {left}")
    bar = int(args.calls * TARGET_BAR)
    for name, samples in (
        ("StasisStart -> ring", probe.to_ring),
        ("leg StasisStart -> dial", probe.to_dial),
        ("leg Up -> hangup of the other", probe.to_hangup),
    ):
        every = [s * 1000 for _, s in samples]
        at_size = [s * 1000 for n, s in samples if n >= bar]
        print(f"{name:30} all    {summary(every)}")
        print(f"{'':30} >= {bar} {summary(at_size)}")
    samples = [*probe.to_ring, *probe.to_dial, *probe.to_hangup]
    every = [s * 1000 for _, s in samples]
    at_size = [s * 1000 for n, s in samples if n >= bar]
    if at_size:
        print(
            f"event-to-action p99 at size: {pct(at_size, 99):.2f} ms (target <= 20 ms); "
            f"all calls: {pct(every, 99):.2f} ms"
        )
    if probe.gc_pauses:
        print(
            "garbage collections during the ramp: "
            + ", ".join(
                f"gen{g} {len(p)} (max {max(p) * 1000:.1f} ms)"
                for g, p in sorted(probe.gc_pauses.items())
            )
        )
    print(
        "pbxd warnings and errors: "
        + (", ".join(f"{k} {n}" for k, n in problems.most_common(8)) or "none")
    )
    share = ramp_cpu / ramp * 100 if ramp else 0.0
    sim_share = placed["cpu"] / placed["seconds"] * 100 if placed.get("seconds") else 0.0
    if bridged + ringing < args.calls:
        print(
            f"NOTE: pbxd fell behind and lost calls (it ran {share:.0f} % of a core over the "
            f"ramp, the simulator {sim_share:.0f} %): the limit was pbxd or, on a loaded "
            "machine, the CPU it got; see the warnings above and lower --rate."
        )
    elif placed["lag_max"] > 1.0:
        print(
            "NOTE: the simulator fell behind its schedule (lag above 1 s) while pbxd kept up: "
            "the simulator, not pbxd, is the limit at this rate."
        )


def main() -> None:
    """Parse the flags, start the simulator process, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=25.0, help="calls placed per second")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds held at size")
    parser.add_argument("--drain-rate", type=float, default=200.0, help="hangups per second")
    parser.add_argument(
        "--profile-memory",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace allocations (that many frames deep) over the ramp; print what grew per call",
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="count every live object by type before the first call and at size (cheap)",
    )
    parser.add_argument(
        "--malloc-stats",
        action="store_true",
        help="print pymalloc's arena statistics at size and after the drain (to stderr)",
    )
    parser.add_argument("--log-level", default="warning", help="pbxd's log level (to a file)")
    args = parser.parse_args()
    if args.calls < 2 or args.rate <= 0 or args.drain_rate <= 0:
        parser.error("--calls must be >= 2, --rate and --drain-rate > 0")
    if args.calls / args.rate > RING_TIME * HUNT_TURNS - 600:
        parser.error("the ramp must be shorter than 50 minutes (ringing calls ring out)")
    simulator = simulator_in_child(simulator_process, args.calls, args.rate, args.drain_rate)
    with simulator as (url, parent), tempfile.TemporaryDirectory(prefix="pbxd-bench-") as tmp:
        asyncio.run(run(args, url, parent, Path(tmp)))


if __name__ == "__main__":
    main()
