"""Benchmark: call set-up latency and the daemon's CPU time per call, under paced traffic.

Two processes talk over loopback sockets, as pbxd and Asterisk do:

- the simulator (`AriSimulator`, real clock) runs in a child process, so its CPU time and
  event-loop delays stay out of the daemon's figures. Once told to start (over a pipe) it
  places `--calls` inbound calls at `--rate` calls per second on a fixed schedule (paced,
  not burst). Callees answer after 1.0-1.9 s and hang up 3 s later, so many calls overlap.
- the daemon (`CallService`: ARI client, event WebSocket, call daemon, CDR store in SQLite or
  PostgreSQL) runs in this process, unmodified.

Call mix (`--mix`, by call index modulo 10):
- `standard`: 7 ringall [a phone ringing forever, a phone answering], 2 hunt [a busy phone,
  then a mobile via the trunk, answering], 1 ringall where the caller hangs up after 2 s.
  Expected CDR dispositions: answered, answered, abandoned.
- `ringall`: 10 ringall (answered).
- `flows`: 5 ringall, 3 greeted (a 1 s greeting as early media, then the ringall, answered),
  2 voicemail (a phone that rings out after 3 s, then a 1 s mailbox greeting and a 4 s
  message). Expected: answered, answered, voicemail.
- `menus`: 5 ringall, 3 through a voice menu (a 1 s menu prompt, the caller presses 1 during
  it, then the ringall, answered), 2 screened (a softphone ringing forever and a confirm-calls
  mobile that hears a 1 s whisper and confirm prompt and presses 1). Expected: answered.
- `menu-only`, `screened-only`: every call of that kind (what one such call costs).
- `compare`: `ringall`, then `flows`, then `menus`, each with its own simulator process, and
  the ratios of the daemon's net CPU per call (the issues' target: at most 1.3); with
  `--rounds N`, N times in rotating order, and the median ratios.

Load-independent figures: `--cprofile PREFIX` counts the event loop thread's function calls
and returns (cProfile with a counting clock: its "seconds" are events) and prints the work
per call; under `valgrind --tool=callgrind --instr-atstart=no`, `--callgrind` counts the
instructions of the traffic window only (use a low rate, e.g. `--calls 100 --rate 1`).

Latency "StasisStart received -> first dial sent", per call, with `time.perf_counter()` in
the daemon process and no change to pbxd: `EventStream._dispatch` is wrapped to time the
moment a WebSocket message reaches pbxd (before JSON parsing), `CallDaemon.on_event` to
tell which StasisStart it was, and the service's `AriClient._send` to time each request
as it is issued (before awaiting the response). Since a leg is dialled only once its own
StasisStart arrives, the latency is broken down into the daemon's own work and the round
trips it waits for (ring, create, the leg entering Stasis).

CPU per call: `getrusage(RUSAGE_SELF)` (every thread of this process, aiosqlite's included;
not the simulator) over the traffic window - from the first call placed until every call has
ended and the CDR store has flushed - divided by the number of calls; then the same over a
quiet period of equal length (connected, no call), subtracted.

Run: .venv/bin/python bench/calls.py [--calls 1000] [--rate 50] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import itertools
import math
import os
import pstats
import resource
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote

from simprocess import simulator_in_child

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ARI_USER, ARI_PASSWORD, ARI_APP = "pbxd", "pbxd-secret", "pbxd"
VARIANTS = 10  # phones/numbers per kind of call: answer delays 1.0, 1.1, ... 1.9 s
TALK_SECONDS = 3.0  # the callee hangs up this long after answering
BUSY_AFTER = 0.5
ABANDON_AFTER = 2.0
VOICEMAIL_RING = 3  # seconds a voicemail call's phone rings before the mailbox takes it
MESSAGE_SECONDS = 4.0  # what a voicemail caller says
PROMPT_SECONDS = 1.0  # the greeting and the mailbox greeting
# Call kinds by `index % 10`, per mix: what the CDR must say in the end.
MIXES = {
    "standard": ["ringall"] * 7 + ["hunt"] * 2 + ["abandon"],
    "ringall": ["ringall"] * 10,
    "flows": ["ringall"] * 5 + ["greeted"] * 3 + ["voicemail"] * 2,
    "menus": ["ringall"] * 5 + ["menu"] * 3 + ["screened"] * 2,
    # One kind each, to tell what a call of that kind costs.
    "menu-only": ["menu"] * 10,
    "screened-only": ["screened"] * 10,
}
KIND_OF_SLOT = MIXES["standard"]
EXPECTED = {
    "ringall": "answered",
    "hunt": "answered",
    "abandon": "abandoned",
    "greeted": "answered",
    "voicemail": "voicemail",
    "menu": "answered",
    "screened": "answered",
}
KIND_DIGIT = {
    "ringall": 0,
    "hunt": 1,
    "abandon": 2,
    "greeted": 3,
    "voicemail": 4,
    "menu": 5,
    "screened": 6,
}
MENU_KEY_AFTER = 0.5  # the caller presses 1 this long into the menu prompt (barge-in)
CONFIRM_KEY_AFTER = 0.3  # a screened mobile presses 1 this long into its prompt


def use_mix(mix: str) -> None:
    """Make `call_plan` follow `mix` (in this process)."""
    KIND_OF_SLOT[:] = MIXES[mix]


def answer_after(variant: int) -> float:
    """When the answering phone (or mobile) of a variant picks up, in seconds."""
    return 1.0 + 0.1 * variant


def did_of(kind: str, variant: int) -> str:
    """The virtual number of a (kind, variant) route, E.164."""
    return f"+331700010{KIND_DIGIT[kind]}{variant}"


def mobile_of(variant: int) -> str:
    """The external number the hunt routes end on."""
    return f"+3361234000{variant}"


def screened_mobile_of(variant: int) -> str:
    """The confirm-calls mobile of the screened routes."""
    return f"+3361235000{variant}"


def call_plan(index: int) -> tuple[str, str]:
    """(kind, DID) of the `index`th call."""
    kind = KIND_OF_SLOT[index % 10]
    return kind, did_of(kind, (index // 10) % VARIANTS)


# ------------------------------------------------------------------------ configuration


def write_config(root: Path, max_legs: int) -> Path:
    """pbxd.yaml, sip-trunks.yaml and routing/ for the bench; returns pbxd.yaml's path."""
    numbers = [did_of(k, v) for k in KIND_DIGIT for v in range(VARIANTS)]
    inventory = "".join(f"      - number: '{n}'\n" for n in numbers)
    (root / "pbxd.yaml").write_text("state_dir: var\n")
    mailbox = (
        "mailboxes:\n  bench:\n    greeting: [bench-vm]\n    min_seconds: 1\n"
        "    max_seconds: 30\n    silence_seconds: 0\n"
    )
    (root / "sip-trunks.yaml").write_text(
        "trunks:\n  bench:\n    inbound_endpoint: trunk-in\n"
        "    dial: 'PJSIP/{number}@trunk-out'\n    allowed_destinations: ['+33']\n"
        f"    max_outbound_legs: {max_legs}\n    country: FR\n    timezone: Europe/Paris\n"
        "    numbers:\n" + inventory
    )
    targets, routes = [], []
    for v in range(VARIANTS):
        targets.append(
            f"  ans{v}:\n    softphone: PJSIP/ans{v}\n"
            f"  ring{v}:\n    softphone: PJSIP/ring{v}\n"
            f"  busy{v}:\n    softphone: PJSIP/busy{v}\n"
            f"  mobile{v}:\n    external: '{mobile_of(v)}'\n    trunk: bench\n"
            f"  confirm{v}:\n    external: '{screened_mobile_of(v)}'\n    trunk: bench\n"
            "    confirm: true\n"
        )
        routes.append(
            f"  - name: ringall{v}\n    numbers: ['{did_of('ringall', v)}']\n"
            f"    strategy: ringall\n    targets: [ring{v}, ans{v}]\n    timeout: 30\n"
            f"  - name: hunt{v}\n    numbers: ['{did_of('hunt', v)}']\n"
            "    strategy: hunt\n"
            f"    targets: [{{target: busy{v}, ring_time: 10}}, "
            f"{{target: mobile{v}, ring_time: 20}}]\n    timeout: 40\n"
            f"  - name: abandon{v}\n    numbers: ['{did_of('abandon', v)}']\n"
            f"    strategy: ringall\n    targets: [ring{v}]\n    timeout: 30\n"
            f"  - name: greeted{v}\n    numbers: ['{did_of('greeted', v)}']\n"
            "    greeting: {play: [bench-greeting]}\n"
            f"    strategy: ringall\n    targets: [ring{v}, ans{v}]\n    timeout: 30\n"
            f"  - name: voicemail{v}\n    numbers: ['{did_of('voicemail', v)}']\n"
            f"    strategy: ringall\n    targets: [ring{v}]\n    timeout: {VOICEMAIL_RING}\n"
            "    no_answer: {voicemail: bench}\n"
            f"  - name: menu{v}\n    numbers: ['{did_of('menu', v)}']\n"
            "    menu:\n      prompt: bench-menu\n"
            f"      options: {{1: ringall{v}, 2: hunt{v}}}\n"
            f"  - name: screened{v}\n    numbers: ['{did_of('screened', v)}']\n"
            f"    strategy: ringall\n    targets: [ring{v}, confirm{v}]\n    timeout: 30\n"
            "    whisper: bench-whisper\n    confirm_prompt: bench-confirm\n"
        )
    (root / "routing").mkdir()
    (root / "routing" / "bench.yaml").write_text(
        "targets:\n" + "".join(targets) + "routes:\n" + "".join(routes) + mailbox
    )
    return root / "pbxd.yaml"


# ----------------------------------------------------------------------------- the pipe


async def receive(conn: Connection) -> Any:
    """The next message on `conn`, waiting without blocking the loop."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        if not conn.poll():
            await ready
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


# ------------------------------------------------------------------- simulator process


def simulator_process(
    conn: Connection,
    calls: int,
    rate: float,
    stasis_delay: float,
    mix: str,
    plain_dialplan: bool = False,
) -> None:
    """Child process entry point: run the simulator until told to stop."""
    use_mix(mix)
    asyncio.run(_simulator(conn, calls, rate, stasis_delay, plain_dialplan))


async def _simulator(
    conn: Connection, calls: int, rate: float, stasis_delay: float, plain_dialplan: bool
) -> None:
    from pbxd.clock import RealClock
    from pbxd.sim import SHIPPED_STASIS_ARGS, AriSimulator, PeerScript

    sim = AriSimulator(
        RealClock(),
        ARI_USER,
        ARI_PASSWORD,
        stasis_delay=stasis_delay,
        stasis_min_real_delay=stasis_delay,
    )
    sim.hub.on_delivered = None  # no capture log: it only grows for 1,000s of calls
    sim.add_sound("bench-greeting", PROMPT_SECONDS)
    sim.add_sound("bench-vm", PROMPT_SECONDS)
    sim.add_sound("bench-menu", PROMPT_SECONDS)
    sim.add_sound("bench-whisper", PROMPT_SECONDS / 2)
    sim.add_sound("bench-confirm", PROMPT_SECONDS / 2)
    for endpoint in ("trunk-in", "trunk-out"):
        sim.add_endpoint("PJSIP", endpoint)
    for v in range(VARIANTS):
        answering = PeerScript(answer_after=answer_after(v), hangup_after=TALK_SECONDS)
        for name, script in (
            ("ans", answering),
            ("ring", PeerScript()),
            ("busy", PeerScript(busy_after=BUSY_AFTER)),
        ):
            sim.add_endpoint("PJSIP", f"{name}{v}")
            sim.script(f"PJSIP/{name}{v}", script)
        sim.script(mobile_of(v), answering)
        sim.script(
            screened_mobile_of(v),
            PeerScript(
                answer_after=answer_after(v),
                dtmf="1",
                dtmf_after=CONFIRM_KEY_AFTER,
                hangup_after=TALK_SECONDS + PROMPT_SECONDS,
            ),
        )
    url = await sim.start()
    conn.send(("ready", url))
    try:
        async with asyncio.timeout(600):
            message = await receive(conn)
        if message[0] != "start":
            return
        await sim.wait_connected(ARI_APP)
        cpu0, t0 = time.process_time(), time.perf_counter()
        lag: list[float] = []
        peak_channels = 0
        for i in range(calls):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lag.append(time.perf_counter() - due)
            kind, did = call_plan(i)
            await sim.inbound_call(
                did,
                f"+336{10_000_000 + i}",
                f"Bench {i}",
                hangup_after=ABANDON_AFTER if kind == "abandon" else None,
                # asterisk-conf's Ringing() and Stasis() arguments, or a plain Stasis(pbxd)
                stasis_args=() if plain_dialplan else SHIPPED_STASIS_ARGS,
                ringing=not plain_dialplan,
                script=(
                    PeerScript(talk=MESSAGE_SECONDS, hangup_after_talk=True)
                    if kind == "voicemail"
                    else PeerScript(keys=((MENU_KEY_AFTER, "1"),))
                    if kind == "menu"
                    else None
                ),
            )
            peak_channels = max(peak_channels, len(sim.pbx.channels))
        placing = time.perf_counter() - t0
        conn.send(("placed", {"seconds": placing, "lag": lag, "peak_channels": peak_channels}))
        idle = True
        try:
            async with asyncio.timeout(60):
                await sim.wait_until_idle()
        except TimeoutError:
            idle = False
        conn.send(
            (
                "idle",
                {
                    "idle": idle,
                    "left": len(sim.pbx.channels),
                    "cpu": time.process_time() - cpu0,
                    "wall": time.perf_counter() - t0,
                },
            )
        )
        async with asyncio.timeout(600):
            await receive(conn)  # "stop"
    finally:
        await sim.stop()


# ------------------------------------------------------------------------ measurement


@dataclass
class Probe:
    """Timestamps (perf_counter seconds) taken around pbxd's own functions."""

    received: dict[str, float] = field(default_factory=dict)  # inbound StasisStart
    leg_started: dict[str, float] = field(default_factory=dict)  # a leg's StasisStart
    routed: dict[str, float] = field(default_factory=dict)  # on_event returned (inbound)
    ring_sent: dict[str, float] = field(default_factory=dict)
    ring_done: dict[str, float] = field(default_factory=dict)
    create_sent: dict[str, float] = field(default_factory=dict)  # by leg
    create_done: dict[str, float] = field(default_factory=dict)  # by leg
    dialled: dict[str, tuple[float, str]] = field(default_factory=dict)  # call -> (t, leg)
    transit_ms: list[float] = field(default_factory=list)  # sim timestamp -> received
    requests: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    dispatch_seconds: float = 0.0  # wall time inside EventStream._dispatch (parse + route)
    finished: int = 0
    peak_calls: int = 0
    all_finished: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0
    message_at: float = 0.0  # when the message being dispatched reached pbxd
    gc_pauses: dict[int, list[float]] = field(default_factory=dict)  # traffic window


def call_of_leg(leg_id: str) -> str:
    """pbxd names legs `<call id>-<n>`."""
    return leg_id.rsplit("-", 1)[0]


@contextmanager
def gc_pauses(pauses: dict[int, list[float]]) -> Iterator[None]:
    """Record the duration (s) of each garbage collection, by generation."""
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.setdefault(info["generation"], []).append(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


@contextmanager
def instrumented(probe: Probe) -> Iterator[None]:
    """Wrap EventStream._dispatch and CallDaemon.on_event (class level) for the run."""
    from pbxd.ari import StasisStart
    from pbxd.ari.stream import EventStream
    from pbxd.calls.daemon import CallDaemon

    dispatch, on_event = EventStream._dispatch, CallDaemon.on_event
    clock = time.perf_counter

    def timed_dispatch(self: EventStream, text: str) -> None:
        probe.message_at = at = clock()
        dispatch(self, text)
        probe.dispatch_seconds += clock() - at

    def timed_on_event(self: CallDaemon, event: Any) -> None:
        at = probe.message_at
        probe.events[event.type] += 1
        on_event(self, event)
        if isinstance(event, StasisStart):
            channel = event.channel.id
            if event.args and event.args[0] == "pbxd-leg":
                probe.leg_started.setdefault(channel, at)
            else:
                probe.received[channel] = at
                probe.routed[channel] = clock()
                probe.transit_ms.append((time.time() - event.timestamp.timestamp()) * 1000)
                probe.peak_calls = max(probe.peak_calls, len(self.calls))

    EventStream._dispatch = timed_dispatch  # type: ignore[method-assign]
    CallDaemon.on_event = timed_on_event  # type: ignore[method-assign]
    try:
        yield
    finally:
        EventStream._dispatch = dispatch  # type: ignore[method-assign]
        CallDaemon.on_event = on_event  # type: ignore[method-assign]


def instrument_client(client: Any, probe: Probe) -> None:
    """Time each ARI request of the service's client as it is issued and as it returns.

    Wraps `AriClient._send`, the one place every request (`request` and the typed calls that
    parse models) goes through.
    """
    request: Callable[..., Awaitable[Any]] = client._send
    clock = time.perf_counter

    async def timed_request(
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        sent = clock()
        parts = path.split("/")
        probe.requests[request_kind(method, parts)] += 1
        done: dict[str, float] | None = None
        key = ""
        if method == "POST" and path == "/channels/create" and params:
            key = str(params.get("channelId"))
            probe.create_sent[key] = sent
            done = probe.create_done
        elif method == "POST" and len(parts) == 4 and parts[3] == "dial":
            leg = unquote(parts[2])
            probe.dialled.setdefault(call_of_leg(leg), (sent, leg))
        elif method == "POST" and len(parts) == 4 and parts[3] == "ring":
            key = unquote(parts[2])
            probe.ring_sent[key] = sent
            done = probe.ring_done
        try:
            return await request(method, path, params=params, body=body)
        finally:
            if done is not None:
                done[key] = clock()

    client._send = timed_request


def request_kind(method: str, parts: list[str]) -> str:
    """`POST channels/{id}/dial` for ['', 'channels', '<id>', 'dial']."""
    if len(parts) < 3 or parts[2] == "create":
        return f"{method} {'/'.join(parts[1:])}"
    if parts[1] == "recordings":  # recordings/stored/<name>[/file]
        return f"{method} {'/'.join([*parts[1:3], '{name}', *parts[4:]])}"
    tail = parts[3:]
    if tail[:1] == ["play"] and len(tail) > 1:  # play/<our playback id>
        tail = ["play", "{playbackId}"]
    return f"{method} {'/'.join([parts[1], '{id}', *tail])}"


def usage() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, all threads, children excluded."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def memory_kb() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, in kB."""
    found: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    except OSError:
        found["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return found


def thread_cpu(since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds per thread ("main" = the event loop; others by thread id), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    pid = os.getpid()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = (task / "stat").read_text().rpartition(")")[2].split()
            name = "main" if int(task.name) == pid else f"thread {task.name}"
            found[name] = (int(fields[11]) + int(fields[12])) / ticks
    except OSError:
        return {}
    if since is not None:
        found = {k: v - since.get(k, 0.0) for k, v in found.items()}
    return found


class Sampler:
    """A statistical profiler: SIGPROF every `interval` s of process CPU, main thread's stack.

    Samples taken while the main thread waits in the selector stand for CPU burnt by other
    threads (aiosqlite's) or the kernel.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.stacks: Counter[tuple[str, ...]] = Counter()

    def _sample(self, _signum: int, frame: Any) -> None:
        names: list[str] = []
        while frame is not None:
            code = frame.f_code
            path = code.co_filename
            short = path.rpartition("site-packages/")[2].rpartition("/work/main/")[2]
            short = short.rpartition("lib/python3.11/")[2]
            names.append(f"{short}:{code.co_name}")
            frame = frame.f_back
        self.stacks[tuple(names)] += 1

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def text(self, top: int = 60) -> str:
        """Self and inclusive sample counts of the hottest functions."""
        total = sum(self.stacks.values()) or 1
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        for stack, n in self.stacks.items():
            own[stack[0]] += n
            for name in set(stack):
                inclusive[name] += n
        lines = [f"{total} samples of {self.interval * 1000:g} ms of process CPU", "", "self:"]
        lines += [f"{n / total:6.1%}  {name}" for name, n in own.most_common(top)]
        lines += ["", "inclusive:"]
        lines += [f"{n / total:6.1%}  {name}" for name, n in inclusive.most_common(top * 2)]
        return "\n".join(lines) + "\n"


def callgrind_instrumentation(state: str) -> None:
    """Turn callgrind's instrumentation of this process on or off (run under
    `valgrind --tool=callgrind --instr-atstart=no`): instructions counted over the traffic
    window only, whatever the load."""
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(values_ms: list[float]) -> str:
    """median / p90 / p99 / max, in ms."""
    if not values_ms:
        return "no sample"
    return (
        f"median {statistics.median(values_ms):7.2f}  p90 {pct(values_ms, 90):7.2f}  "
        f"p99 {pct(values_ms, 99):7.2f}  max {max(values_ms):7.2f} ms"
    )


# ------------------------------------------------------------------------- databases


@asynccontextmanager
async def database(kind: str, postgres_url: str, tmp: Path) -> AsyncIterator[str]:
    """A fresh, empty CDR database URL: a SQLite file, or a private PostgreSQL schema."""
    if kind in ("sqlite", "memory"):
        yield f"sqlite:///{tmp / 'var' / 'cdr.db'}"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from pbxd.cdr.db import async_url

    admin = async_url(postgres_url)
    schema = f"pbxd_bench_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(admin, poolclass=NullPool, connect_args={"timeout": 5.0})
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            scoped = make_url(postgres_url).update_query_dict(
                {"options": f"-csearch_path={schema}"}
            )
            yield scoped.render_as_string(hide_password=False)
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await engine.dispose()


class MemoryStore:
    """A CDR sink with no database: the latest snapshot of each record, in dicts."""

    def __init__(self) -> None:
        self.calls: dict[str, Any] = {}
        self.legs: dict[str, Any] = {}

    def record_call(self, rec: Any) -> bool:
        self.calls[rec.call_id] = rec.snapshot()
        return True

    def record_leg(self, rec: Any) -> bool:
        self.legs[rec.leg_id] = rec.snapshot()
        return True

    async def open_calls(self, server: str | None = None) -> list[Any]:
        return [c for c in self.calls.values() if c.ended_at is None]

    async def legs_of(self, call_id: str) -> list[Any]:
        return [leg for leg in self.legs.values() if leg.call_id == call_id]

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def call_log(self, did: str) -> list[Any]:
        from pbxd.cdr.records import CallLogEntry

        by_call: dict[str, list[Any]] = {}
        for leg in self.legs.values():
            by_call.setdefault(leg.call_id, []).append(leg)
        return [
            CallLogEntry(call=c, legs=by_call.get(c.call_id, []))
            for c in self.calls.values()
            if c.did == did
        ]


# ------------------------------------------------------------------------------ the run


@dataclass
class Outcome:
    """What one run measured, for printing."""

    calls: int
    placed: dict[str, Any] = field(default_factory=dict)
    sim_end: dict[str, Any] = field(default_factory=dict)
    window: float = 0.0
    cpu: tuple[float, float] = (0.0, 0.0)
    idle_cpu: tuple[float, float] = (0.0, 0.0)
    idle_window: float = 0.0
    memory_before: dict[str, int] = field(default_factory=dict)
    memory_after: dict[str, int] = field(default_factory=dict)
    dispositions: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    failed: list[str] = field(default_factory=list)
    legs: int = 0
    open_legs: int = 0
    timed_out: bool = False
    log_lines: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)  # warning and error events
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    threads: dict[str, float] = field(default_factory=dict)
    profile: str = ""
    trace: cProfile.Profile | None = None  # --cprofile


async def run(
    args: argparse.Namespace, url: str, conn: Connection, tmp: Path
) -> tuple[Outcome, Probe]:
    """Start pbxd against the simulator at `url`, drive the traffic, measure, verify."""
    import structlog

    from pbxd import heap
    from pbxd.calls.runtime import AriEndpoint, CallService
    from pbxd.cdr.store import CdrStore
    from pbxd.clock import RealClock
    from pbxd.config.compile import compile_config
    from pbxd.log import configure_logging

    log_file: TextIO = (tmp / "pbxd.log").open("w")
    configure_logging(args.log_level, json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=log_file))
    root = tmp / "config"
    root.mkdir()
    compiled = compile_config(write_config(root, max_legs=10_000))
    assert compiled.config is not None, [str(d) for d in compiled.diagnostics[:5]]
    outcome = Outcome(calls=args.calls)
    probe = Probe(expected=args.calls)
    async with database(args.database, args.postgres_url, tmp) as db_url:
        store: Any = MemoryStore() if args.database == "memory" else await CdrStore.open(db_url)
        service = CallService(
            compiled.config,
            AriEndpoint(url, ARI_USER, ARI_PASSWORD, ARI_APP),
            store,
            RealClock(),
        )
        with instrumented(probe):
            try:
                await service.start()
                heap.settle()  # as `pbxd run` does once connected
                assert service.client is not None and service.daemon is not None
                instrument_client(service.client, probe)

                def finished(_: object) -> None:
                    probe.finished += 1
                    if probe.finished >= probe.expected:
                        probe.all_finished.set()

                service.daemon.on_call_finished = finished
                recovered = getattr(service.daemon, "recovered", None)
                if isinstance(recovered, asyncio.Event):  # recovery of open calls done
                    async with asyncio.timeout(10):
                        await recovered.wait()
                await asyncio.sleep(0.5)  # let the connection settle
                outcome.memory_before = memory_kb()
                deadline = args.calls / args.rate + 60
                # ---- traffic window
                sampler = Sampler() if args.profile else None
                # Its clock counts the profiler's own events (calls and returns): "time" is
                # work done, the same whatever else runs on the machine.
                events = itertools.count()
                tracer = cProfile.Profile(events.__next__, 1.0) if args.cprofile else None
                threads0 = thread_cpu()
                cpu0, t0 = usage(), time.perf_counter()
                if sampler is not None:
                    sampler.start()
                if tracer is not None:
                    tracer.enable()
                if args.callgrind:
                    callgrind_instrumentation("on")
                conn.send(("start",))
                try:
                    with gc_pauses(probe.gc_pauses):
                        async with asyncio.timeout(deadline):
                            await probe.all_finished.wait()
                            await store.flush()
                except TimeoutError:
                    outcome.timed_out = True
                if sampler is not None:
                    sampler.stop()
                if tracer is not None:
                    tracer.disable()
                    outcome.trace = tracer
                if args.callgrind:
                    callgrind_instrumentation("off")
                cpu1, t1 = usage(), time.perf_counter()
                outcome.threads = thread_cpu(threads0)
                if sampler is not None:
                    outcome.profile = sampler.text()
                outcome.cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
                outcome.window = t1 - t0
                outcome.memory_after = memory_kb()
                outcome.load = os.getloadavg()
                async with asyncio.timeout(30):
                    outcome.placed = (await receive(conn))[1]
                async with asyncio.timeout(90):
                    outcome.sim_end = (await receive(conn))[1]
                # ---- quiet window of the same length
                if not args.no_idle:
                    cpu0, t0 = usage(), time.perf_counter()
                    await asyncio.sleep(outcome.window)
                    cpu1, t1 = usage(), time.perf_counter()
                    outcome.idle_cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
                    outcome.idle_window = t1 - t0
            finally:
                await service.stop()
        await verify(store, outcome)
        await store.close()
    conn.send(("stop",))
    log_file.close()
    return outcome, probe


async def verify(store: Any, outcome: Outcome) -> None:
    """Every call placed has a closed CDR whose disposition its kind expects."""
    expected_by_did = {did_of(k, v): EXPECTED[k] for k in KIND_DIGIT for v in range(VARIANTS)}
    seen = 0
    for did, expected in expected_by_did.items():
        for entry in await store.call_log(did):
            seen += 1
            disposition = str(entry.call.disposition)
            outcome.dispositions[disposition] += 1
            outcome.legs += len(entry.legs)
            outcome.open_legs += sum(1 for leg in entry.legs if leg.ended_at is None)
            if disposition == expected and entry.call.ended_at is not None:
                outcome.completed += 1
            else:
                outcome.failed.append(f"{entry.call.call_id} {did}: {disposition}")
    if seen < outcome.calls:
        outcome.failed.append(f"{outcome.calls - seen} calls have no CDR")


def report(args: argparse.Namespace, out: Outcome, probe: Probe) -> None:
    """Print the figures."""
    n = max(1, args.calls)
    placed = out.placed.get("seconds", 0.0)
    lag = [x * 1000 for x in out.placed.get("lag", [])]
    print(
        f"traffic: {args.calls} calls at {args.rate:g}/s, CDRs in {args.database}, "
        f"{'plain Stasis(pbxd)' if args.plain_dialplan else 'shipped dialplan'}, "
        f"log level {args.log_level}; load average {out.load[0]:.2f} {out.load[1]:.2f} "
        f"{out.load[2]:.2f} on {os.cpu_count()} CPUs"
    )
    rate = (args.calls - 1) / placed if placed > 0 else 0.0
    print(
        f"placed in {placed:.2f} s: achieved {rate:.2f} calls/s (schedule lag max "
        f"{max(lag, default=0):.1f} ms); all ended and CDRs flushed {out.window:.2f} s "
        f"after the first{' (TIMED OUT)' if out.timed_out else ''}"
    )
    print(
        f"calls: {out.completed} completed, {args.calls - out.completed} failed; dispositions "
        + ", ".join(f"{k} {n}" for k, n in sorted(out.dispositions.items()))
        + f"; {out.legs} legs ({out.open_legs} open)"
    )
    for line in out.failed[:5]:
        print(f"  failed: {line}")
    print(
        f"peak concurrent calls {probe.peak_calls} (simulator channels "
        f"{out.placed.get('peak_channels', '?')})"
    )
    events = sum(probe.events.values())
    print(
        f"events: {events} ({events / n:.1f}/call), "
        + ", ".join(f"{k} {v}" for k, v in probe.events.most_common())
    )
    print(
        f"  time in EventStream._dispatch (parse + route): {probe.dispatch_seconds * 1000:.0f} ms"
        f" = {probe.dispatch_seconds * 1e6 / max(1, events):.1f} us/event, "
        f"{probe.dispatch_seconds * 1000 / n:.2f} ms/call"
    )
    requests = sum(probe.requests.values())
    print(
        f"requests: {requests} ({requests / n:.1f}/call), "
        + ", ".join(f"{k} {v}" for k, v in probe.requests.most_common())
    )
    total, to_create, create_rtt, to_leg, leg_to_dial, routed = [], [], [], [], [], []
    ring_wait, own = [], []
    for call, received in probe.received.items():
        if call not in probe.dialled:
            continue
        dial_at, leg = probe.dialled[call]
        total.append((dial_at - received) * 1000)
        routed.append((probe.routed[call] - received) * 1000)
        c_sent, c_done = probe.create_sent.get(leg), probe.create_done.get(leg)
        leg_ss = probe.leg_started.get(leg)
        if c_sent is None or c_done is None or leg_ss is None:
            continue
        if call in probe.ring_sent:  # none when the dialplan's Ringing() did it
            ring_wait.append((probe.ring_done[call] - probe.ring_sent[call]) * 1000)
        to_create.append((c_sent - received) * 1000)
        create_rtt.append((c_done - c_sent) * 1000)
        to_leg.append((leg_ss - c_done) * 1000)
        leg_to_dial.append((dial_at - leg_ss) * 1000)
        # ring is sent concurrently with the creates, so it is no part of the path to dial.
        own.append((c_sent - received + dial_at - leg_ss) * 1000)
    print(f"StasisStart received -> first dial sent, {len(total)} calls:")
    print(f"  total                          {summary(total)}")
    print(f"  StasisStart -> create sent     {summary(to_create)}")
    print(f"  ring round trip (concurrent)   {summary(ring_wait)}")
    print(f"  create round trip              {summary(create_rtt)}")
    print(f"  create answer -> leg in Stasis {summary(to_leg)}  (sim delay {args.stasis_ms} ms)")
    print(f"  leg StasisStart -> dial sent   {summary(leg_to_dial)}")
    print(f"  daemon's own share (no waits)  {summary(own)}")
    print(f"  parse + on_event (inbound)     {summary(routed)}")
    print(f"  event transit sim->daemon      {summary(probe.transit_ms)}  (ms clock)")
    busy = sum(out.cpu) * 1000
    idle = sum(out.idle_cpu) * 1000
    print(
        f"daemon CPU: {busy:.0f} ms over {out.window:.1f} s "
        f"(user {out.cpu[0] * 1000:.0f}, sys {out.cpu[1] * 1000:.0f}) = {busy / n:.2f} ms/call, "
        f"{busy / out.window / 10 if out.window else 0:.1f} % of one core"
    )
    if out.idle_window:
        print(
            f"  idle baseline {idle:.0f} ms over {out.idle_window:.1f} s; "
            f"net {(busy - idle) / n:.2f} ms/call"
        )
    if out.threads:
        print(
            "  by thread: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(out.threads.items()) if v)
        )
    if probe.gc_pauses:
        print(
            "  garbage collections: "
            + ", ".join(
                f"gen{g} {len(p)} (max {max(p) * 1000:.1f} ms, total {sum(p) * 1000:.0f} ms)"
                for g, p in sorted(probe.gc_pauses.items())
            )
        )
    sim = out.sim_end
    if sim:
        print(
            f"simulator (other process): CPU {sim['cpu'] * 1000:.0f} ms over {sim['wall']:.1f} s"
            f" ({sim['cpu'] / sim['wall'] * 100:.0f} % of one core)"
            + ("" if sim["idle"] else f", {sim['left']} channels left!")
        )
    print(
        f"daemon memory: RSS {out.memory_before.get('VmRSS', 0) / 1024:.0f} MB before, "
        f"{out.memory_after.get('VmRSS', 0) / 1024:.0f} MB after, peak "
        f"{out.memory_after.get('VmHWM', 0) / 1024:.0f} MB"
    )
    print("pbxd log lines: " + ", ".join(f"{k} {n}" for k, n in sorted(out.log_lines.items())))
    if out.warnings:
        named = ", ".join(f"{k} {n}" for k, n in out.warnings.most_common())
        print(f"  warnings and errors: {named}")


def main() -> None:
    """Parse the flags, start the simulator process, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "memory"),
        default="sqlite",
        help="where CDRs go (memory: snapshots kept in dicts, to see the database's share)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PBXD_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        help="server for --database postgresql (a fresh schema is made and dropped)",
    )
    parser.add_argument("--log-level", default="info", help="pbxd's log level (to a file)")
    parser.add_argument(
        "--stasis-ms",
        type=float,
        default=10.0,
        help="simulated delay before a created leg enters Stasis",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the daemon's main thread every ms of CPU over the traffic window; "
        "write the hottest functions to FILE",
    )
    parser.add_argument(
        "--cprofile",
        metavar="PREFIX",
        help="trace the event loop thread with cProfile over the traffic window, timed in "
        "function calls and returns (load-independent; a 'second' is one); writes "
        "PREFIX.<mix> (pstats)",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="under `valgrind --tool=callgrind --instr-atstart=no`: instrument the traffic "
        "window only (use a low --rate: the daemon runs some 50x slower)",
    )
    parser.add_argument("--no-idle", action="store_true", help="skip the idle baseline")
    parser.add_argument(
        "--plain-dialplan",
        action="store_true",
        help="callers come through a plain Stasis(pbxd), not asterisk-conf's Ringing() first",
    )
    parser.add_argument(
        "--mix",
        choices=(*MIXES, "compare"),
        default="standard",
        help="the calls placed (see the module's docstring); compare: ringall, flows, menus",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="compare: run the three mixes this many times, each round in another order, "
        "and give the median ratios (CPU time on a shared machine varies by 20 %% or more)",
    )
    args = parser.parse_args()
    if args.calls < 1 or args.rate <= 0 or args.rounds < 1:
        parser.error("--calls and --rounds must be >= 1 and --rate > 0")
    if args.mix != "compare":
        bench_once(args, args.mix)
        return
    compare(args)


COMPARED = ("ringall", "flows", "menus")
WHAT_IS_COMPARED = {
    "flows": "30 % greeted, 20 % voicemail",
    "menus": "30 % through a menu, 20 % screened by confirm calls",
}


def compare(args: argparse.Namespace) -> None:
    """The mixes against ringall, `--rounds` times, each round in another order (the load of
    a shared machine drifts over minutes): each round's ratios, then their medians."""
    rounds: list[dict[str, Figures]] = []
    for n in range(args.rounds):
        order = COMPARED[n % 3 :] + COMPARED[: n % 3]
        rounds.append({mix: bench_once(args, mix) for mix in order})
    print(f"\ndaemon net CPU per call, {args.rounds} round(s), load {os.getloadavg()[0]:.1f} now:")
    for n, figures in enumerate(rounds, 1):
        line = ", ".join(f"{mix} {figures[mix].cpu_ms:.2f} ms" for mix in COMPARED)
        print(f"  round {n}: {line}")
    for mix in COMPARED[1:]:
        ratios = sorted(r[mix].cpu_ms / r["ringall"].cpu_ms for r in rounds)
        spread = f" (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
        print(
            f"  {mix} mix ({WHAT_IS_COMPARED[mix]}): {statistics.median(ratios):.2f}x of ringall"
            f"{spread} (target <= 1.3x)"
        )
    if args.cprofile:
        print("work per call (profiler events; the same whatever the load):")
        for mix in COMPARED[1:]:
            ratios = sorted(r[mix].work / r["ringall"].work for r in rounds)
            print(f"  {mix} mix: {statistics.median(ratios):.3f}x of ringall")


@dataclass(frozen=True)
class Figures:
    """What a run of a mix costs the daemon, per call."""

    cpu_ms: float  # net CPU (ms)
    work: float  # --cprofile: function calls and returns on the event loop thread (else 0)


def bench_once(args: argparse.Namespace, mix: str) -> Figures:
    """One run of `mix` with its own simulator process: what the daemon spent per call."""
    use_mix(mix)
    print(f"\n=== mix: {mix}")
    simulator = simulator_in_child(
        simulator_process, args.calls, args.rate, args.stasis_ms / 1000, mix, args.plain_dialplan
    )
    with simulator as (url, parent):
        with tempfile.TemporaryDirectory(prefix="pbxd-bench-") as tmp:
            outcome, probe = asyncio.run(run(args, url, parent, Path(tmp)))
            for line in (Path(tmp) / "pbxd.log").read_text().splitlines():
                level = line.partition('"level": "')[2].partition('"')[0]
                outcome.log_lines[level or "?"] += 1
                if level in ("warning", "error", "critical"):
                    outcome.warnings[line.partition('"event": "')[2].partition('"')[0]] += 1
        report(args, outcome, probe)
        if args.profile:
            Path(args.profile).write_text(outcome.profile)
        work = 0.0
        if outcome.trace is not None:
            outcome.trace.dump_stats(f"{args.cprofile}.{mix}")
            stats = pstats.Stats(outcome.trace).stats  # type: ignore[attr-defined]
            work = sum(entry[2] for entry in stats.values()) / max(1, args.calls)
            print(f"work: {work:.0f} profiler events per call on the event loop thread")
    cpu_ms = (sum(outcome.cpu) - sum(outcome.idle_cpu)) * 1000 / max(1, args.calls)
    return Figures(cpu_ms, work)


if __name__ == "__main__":
    main()
