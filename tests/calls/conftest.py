"""The call daemon against the ARI simulator, over real sockets, with a real CDR store.

`lab` gives a started simulator (trunks, alice, bob, dave, carol offline), a CDR store on the
`cdr_url` database (SQLite, then PostgreSQL), and a started `CallService` on a small
purpose-built configuration whose ring times make every scenario precise.

Time is a VirtualClock shared by the simulator and the daemon: it stands still until the test
waits (`wait_for`, `finish`, `settle`, `virtual_sleep`), then moves from timer to timer, each
once everything the previous one caused is done, and never while the daemon waits for the
database. So a loaded machine makes the suite slower, never different; CDR durations read as
the virtual seconds they lasted.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import shutil
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from classic_example import classic_example_config  # noqa: E402
from dbfixtures import BACKENDS, database_url  # noqa: E402

from pbxd.calls.runtime import AriEndpoint, CallService  # noqa: E402
from pbxd.cdr.memory import RingMemory  # noqa: E402
from pbxd.cdr.records import CallLogEntry  # noqa: E402
from pbxd.cdr.store import CdrStore  # noqa: E402
from pbxd.clock import VirtualClock  # noqa: E402
from pbxd.config.compile import compile_config  # noqa: E402
from pbxd.config.model import Config  # noqa: E402
from pbxd.sim import SHIPPED_STASIS_ARGS, AriSimulator  # noqa: E402
from tests.ari_conformance.swagger import Swagger, validate_run  # noqa: E402

USER, SECRET, APP = "pbxd", "pbxd-secret", "pbxd"
SWAGGER = Swagger.load()
REPO = Path(__file__).resolve().parents[2]
CALLER = "+33612000001"
SETTLE_SECONDS = 120.0  # virtual seconds a scenario may take to wind down
START_SECONDS = 30.0  # real seconds the daemon may take to connect (a guard against hangs)

# DIDs of the purpose-built configuration.
RINGALL = "+33170000001"  # alice, bob, dave at once; 8 s each; route 10 s
HUNT = "+33170000002"  # alice, bob, dave 4 s each in turn; route 20 s; no answer -> busy
OFFLINE_FIRST = "+33170000003"  # carol (offline) then bob, 5 s each; route 15 s
ALL_OFFLINE = "+33170000004"  # carol and an unreachable mobile
MOBILES = "+33170000005"  # three mobiles on carrier-fr (max 2 outbound legs); route 6 s
SHORT = "+33170000006"  # alice and bob 20 s each, but the route gives up after 5 s
TIGHT_HUNT = "+33170000007"  # alice, bob, dave 6 s each in turn; route 10 s
RESERVED = "+33170000009"
UNKNOWN = "+33199999999"

MOBILE = {1: "+33612345671", 2: "+33612345672", 3: "+33612345673", 4: "+33612345674"}

TRUNKS_YAML = """\
    trunks:
      carrier-fr:
        inbound_endpoint: trunk-in
        dial: "PJSIP/{number}@trunk-out"
        allowed_destinations: ["+33"]
        max_outbound_legs: 2
        country: FR
        numbers:
          - number: 01 70 00 00 01
          - number: 01 70 00 00 02
          - number: 01 70 00 00 03
          - number: 01 70 00 00 04
          - number: 01 70 00 00 05
          - number: 01 70 00 00 06
          - number: 01 70 00 00 07
          - number: 01 70 00 00 09
            status: reserved
      carrier-uk:
        inbound_endpoint: trunk-uk
        dial: "PJSIP/{number}@trunk-uk"
        allowed_destinations: ["+44"]
        max_outbound_legs: 5
        country: GB
        numbers:
          - number: 020 7946 0123
"""

ROUTING_YAML = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      dave: {softphone: PJSIP/dave}
      carol: {softphone: PJSIP/carol}
      m1: {external: 06 12 34 56 71, trunk: carrier-fr}
      m2: {external: 06 12 34 56 72, trunk: carrier-fr}
      m3: {external: 06 12 34 56 73, trunk: carrier-fr}
      m4: {external: 06 12 34 56 74, trunk: carrier-fr}
    routes:
      - name: ringall
        numbers: [01 70 00 00 01]
        strategy: ringall
        targets: [alice, bob, dave]
        ring_time: 8
        timeout: 10
      - name: hunt
        numbers: [01 70 00 00 02]
        strategy: hunt
        targets:
          - {target: alice, ring_time: 4}
          - {target: bob, ring_time: 4}
          - {target: dave, ring_time: 4}
        timeout: 20
        no_answer: {action: hangup, cause: busy}
      - name: offline-first
        numbers: [01 70 00 00 03]
        strategy: hunt
        targets:
          - {target: carol, ring_time: 5}
          - {target: bob, ring_time: 5}
        timeout: 15
      - name: all-offline
        numbers: [01 70 00 00 04]
        strategy: ringall
        targets: [carol, m4]
        timeout: 10
      - name: mobiles
        numbers: [01 70 00 00 05]
        strategy: ringall
        targets: [m1, m2, m3]
        timeout: 6
      - name: short
        numbers: [01 70 00 00 06]
        strategy: ringall
        targets: [alice, bob]
        ring_time: 20
        timeout: 5
      - name: tight-hunt
        numbers: [01 70 00 00 07]
        strategy: hunt
        targets:
          - {target: alice, ring_time: 6}
          - {target: bob, ring_time: 6}
          - {target: dave, ring_time: 6}
        timeout: 10
      - name: london
        numbers: ["+44 20 7946 0123"]
        targets: [{target: m1, ring_time: 5}]
        timeout: 8
        caller_id: number
"""


def write_config(directory: Path, trunks: str = TRUNKS_YAML, routing: str = ROUTING_YAML) -> Config:
    """Compile a configuration written to `directory` (fails the test on any diagnostic)."""
    (directory / "routing").mkdir(parents=True, exist_ok=True)
    (directory / "pbxd.yaml").write_text("state_dir: var\n", encoding="utf-8")
    (directory / "sip-trunks.yaml").write_text(textwrap.dedent(trunks), encoding="utf-8")
    (directory / "routing" / "main.yaml").write_text(textwrap.dedent(routing), encoding="utf-8")
    result = compile_config(directory / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


def example_config() -> Config:
    """The shipped trunks with the example routing of before call flows (ring-only routes)."""
    tree = Path(tempfile.mkdtemp(prefix="pbxd-classic-"))
    try:
        return classic_example_config(tree)
    finally:
        shutil.rmtree(tree)


def add_lab_endpoints(sim: AriSimulator) -> None:
    """The endpoints of the Asterisk lab: carrier trunks and four softphones (carol offline)."""
    for trunk in ("trunk-in", "trunk-out", "trunk-uk"):
        sim.add_endpoint("PJSIP", trunk)
    sim.add_endpoint("PJSIP", "alice", caller_name="Alice", caller_number="alice")
    sim.add_endpoint("PJSIP", "bob", caller_name="Bob", caller_number="bob")
    sim.add_endpoint("PJSIP", "dave", caller_name="Dave", caller_number="dave")
    sim.add_endpoint("PJSIP", "carol", caller_name="Carol", caller_number="carol", online=False)


class HeldReads:
    """The CDR store as the daemon sees it: virtual time stands still while it reads.

    A database answers from outside the event loop, in real time; holding the clock meanwhile
    keeps a slow answer (a loaded machine, PostgreSQL) from letting a timer overtake it. The
    store is looked up at each call, so `reopen_store` and patches of `lab.store` apply. A test
    that wants time to pass during a read (a slow recovery) patches this object instead.
    """

    def __init__(self, lab: CallLab, of: Callable[[], Any] | None = None) -> None:
        self._lab = lab
        self._of = of or (lambda: lab.store)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._of(), name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def held(*args: Any, **kwargs: Any) -> Any:
            with self._lab.clock.hold():
                return await attr(*args, **kwargs)

        return held


@dataclass
class CallLab:
    """A simulator, a CDR store and the daemon; helpers to place calls and read the result."""

    config: Config
    clock: VirtualClock
    sim: AriSimulator
    cdr_url: str
    store: CdrStore
    service: CallService | None = None
    stores: list[CdrStore] = field(default_factory=list)
    services: list[CallService] = field(default_factory=list)
    finished: dict[str, Any] = field(default_factory=dict)  # call id -> its ended controller
    # channel id -> the `variables` the daemon sent with channels/create (the simulator
    # only models CALLERID, so the rest is read off the client).
    created_variables: dict[str, dict[str, str]] = field(default_factory=dict)
    cdr_view: HeldReads = field(init=False)  # what the daemon is given as its CDR store
    # What strategies remember and do-not-disturb, in the CDR database (held like the CDR).
    memory_view: HeldReads = field(init=False)
    seed: int = 1  # of the random source of random and weighted ringing

    def __post_init__(self) -> None:
        self.cdr_view = HeldReads(self)
        self.memory_view = HeldReads(self, lambda: RingMemory(self.store.engine))

    @property
    def url(self) -> str:
        return self.sim.base_url

    @property
    def daemon(self) -> Any:
        assert self.service is not None and self.service.daemon is not None
        return self.service.daemon

    async def start_service(self, *, wait_recovery: bool = True) -> CallService:
        service = CallService(
            self.config,
            AriEndpoint(self.url, USER, SECRET, APP),
            self.cdr_view,
            self.clock,
            memory=self.memory_view,  # type: ignore[arg-type]
            rng=random.Random(self.seed),
        )
        self.services.append(service)
        async with asyncio.timeout(START_SECONDS):
            await service.start()
        if wait_recovery:
            # The first connection's recovery runs as a task; calls placed meanwhile are
            # covered by their own tests (test_startup_race_*).
            assert service.daemon is not None
            await self.clock.drive(service.daemon.recovered.wait(), within=SETTLE_SECONDS)
        assert service.daemon is not None and service.client is not None
        service.daemon.on_call_finished = lambda done: self.finished.__setitem__(done.call_id, done)
        self._spy_on_creates(service.client)
        self.service = service
        return service

    def _spy_on_creates(self, client: Any) -> None:
        create = client.create_channel

        async def spy(endpoint: str, **kwargs: Any) -> Any:
            channel_id = kwargs.get("channel_id") or ""
            self.created_variables[channel_id] = dict(kwargs.get("variables") or {})
            return await create(endpoint, **kwargs)

        client.create_channel = spy

    async def kill_service(self) -> None:
        """Stop the daemon as a crash would: calls stay up on the simulator."""
        assert self.service is not None
        await self.service.stop()
        self.service = None

    async def restart(self, call_id: str, down: float = 1.0) -> None:
        """pbxd dies and comes back `down` virtual seconds later: it adopts `call_id`."""
        await self.kill_service()
        await self.reopen_store()
        await self.virtual_sleep(down)
        await self.start_service()
        await self.wait_for(lambda: call_id in self.daemon.calls, what="call adopted")
        assert self.daemon.calls[call_id].adopted

    async def reopen_store(self) -> CdrStore:
        """Close the store (its records are committed) and open a new one on the same DB."""
        await self.store.close()
        self.store = await CdrStore.open(self.cdr_url, flush_interval=0.02)
        self.stores.append(self.store)
        return self.store

    async def call(
        self,
        did: str,
        caller: str = CALLER,
        name: str = "Jean",
        *,
        trunk: str = "trunk-in",
        hangup_after: float | None = None,
        shipped_dialplan: bool = False,
    ) -> str:
        """A call from the carrier; `shipped_dialplan`: through asterisk-conf's Ringing() and
        Stasis(pbxd,${CALLERID(pres)},ringing) instead of a plain Stasis(pbxd)."""
        return await self.sim.inbound_call(
            did,
            caller,
            name,
            trunk=trunk,
            hangup_after=hangup_after,
            stasis_args=SHIPPED_STASIS_ARGS if shipped_dialplan else (),
            ringing=shipped_dialplan,
        )

    async def settle(self, within: float = SETTLE_SECONDS) -> None:
        """Let time run until no channel is left and every call task ended (at most `within`
        virtual seconds), then write every CDR."""

        async def idle() -> None:
            await self.sim.wait_until_idle()
            if self.service is not None and self.service.daemon is not None:
                await self.service.daemon.wait_idle()

        await self.clock.drive(idle(), within=within)
        await self.store.flush()

    async def finish(
        self, call_id: str, within: float = SETTLE_SECONDS, *, check_leaks: bool = True
    ) -> CallLogEntry:
        """Settle, check nothing leaked on the simulator, and read the call's CDR."""
        await self.settle(within)
        if check_leaks:
            self.assert_nothing_leaked()
        entry = await self.store.get_call(call_id)
        assert entry is not None, f"no CDR for {call_id}"
        return entry

    def assert_nothing_leaked(self) -> None:
        assert self.sim.channels == [], "leaked channels"
        # Empty bridges the daemon keeps for the next calls are not leaks; any other is.
        service = self.service
        daemon = service.daemon if service is not None else None
        idle = set(daemon.bridges.idle) if daemon is not None else set()
        left = [b.id for b in self.sim.bridges if b.channels or b.id not in idle]
        assert left == [], "leaked bridges"

    def timeline(self, call_id: str) -> str:
        """The daemon's own history of a finished call, for assertion messages."""
        controller = self.finished.get(call_id)
        if controller is None:
            return f"(call {call_id} not finished by this daemon)"
        lines = [f"{e.at.isoformat()} {e.text}" for e in controller.timeline]
        return "\n".join(lines)

    def events(self, event_type: str, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Events the simulator delivered to the daemon, optionally about one channel."""
        out = []
        for item in self.sim.event_log:
            data = item["data"]
            if data["type"] != event_type:
                continue
            if channel_id is not None and (data.get("channel") or {}).get("id") != channel_id:
                continue
            out.append(data)
        return out

    def final_cause(self, channel_id: str) -> int | None:
        """The Q.850 cause the channel ended with on Asterisk (what its far end was sent).

        Read off the simulator, not off events: Asterisk 22 sends no ChannelDestroyed for an
        inbound channel that originated no leg. When one was delivered, it must agree.
        """
        ended = self.sim.pbx.ended.get(channel_id)
        cause = ended.hangup_cause if ended is not None else None
        delivered = self.delivered_cause(channel_id)
        assert delivered in (None, cause)
        return cause

    def delivered_cause(self, channel_id: str) -> int | None:
        """The cause of the channel's ChannelDestroyed as the daemon received it, if it did."""
        destroyed = self.events("ChannelDestroyed", channel_id)
        assert len(destroyed) <= 1
        return int(destroyed[0]["cause"]) if destroyed else None

    def requests(self, method: str, path_start: str) -> list[dict[str, Any]]:
        """REST exchanges the daemon made, by method and path prefix."""
        return [
            r
            for r in self.sim.rest_log
            if r["method"] == method and str(r["path"]).startswith(path_start)
        ]

    async def wait_for(
        self, condition: Callable[[], bool], within: float = 60.0, what: str = ""
    ) -> None:
        """Let time run until `condition` holds at a quiet moment (at most `within` virtual s)."""
        try:
            await self.clock.run_until(condition, within=within, what=what)
        except TimeoutError as exc:
            raise AssertionError(f"timed out waiting for {what or condition}: {exc}") from None

    def hangup_as_requested(
        self, channel_id: str, method: str, path: str, *, lose_events: bool, skip: int = 0
    ) -> None:
        """The far end of `channel_id` hangs up just as the daemon's `method path` (after
        `skip` such requests) reaches the simulator, so it meets a channel already gone.

        Its events trail the answer by 10 ms (Asterisk's WebSocket lags its REST answers), or
        never come (`lose_events`).
        """
        holds = []

        def hang_up() -> None:
            holds.append(self.sim.faults.hold_events(channel_id))
            self.sim.hangup(channel_id)

        def answered() -> None:
            if lose_events:
                holds[0].discard()
            else:
                holds[0].release(after=0.01)

        self.sim.faults.on_request(method, path, before=hang_up, after=answered, skip=skip)

    async def virtual_sleep(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass, everything due meanwhile happening."""
        await self.clock.advance(seconds)


def lose_every_cdr_write(lab: CallLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run dies before its first CDR batch commits: no row survives it."""
    monkeypatch.setattr(lab.store, "record_call", lambda record: True)
    monkeypatch.setattr(lab.store, "record_leg", lambda record: True)
    monkeypatch.setattr(lab.store, "record_event", lambda record: True)


def seconds(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None
    return (end - start).total_seconds()


LabFactory = Callable[..., Awaitable[CallLab]]


@pytest.fixture(params=BACKENDS)
async def cdr_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A private, empty CDR database: a SQLite file, then a fresh PostgreSQL schema."""
    async with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def lab_config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "config")


@pytest.fixture
async def make_lab(cdr_url: str, lab_config: Config) -> AsyncIterator[LabFactory]:
    """Build a lab (optionally with another config); everything stops at the end."""
    labs: list[CallLab] = []

    async def make(
        config: Config | None = None,
        *,
        start: bool = True,
        event_filter: bool = True,
        origin: datetime | None = None,
        **sim_options: Any,
    ) -> CallLab:
        clock = VirtualClock(origin)
        sim = AriSimulator(clock, USER, SECRET, event_filter=event_filter, **sim_options)
        add_lab_endpoints(sim)
        await sim.start()
        store = await CdrStore.open(cdr_url, flush_interval=0.02)
        lab = CallLab(config or lab_config, clock, sim, cdr_url, store, stores=[store])
        labs.append(lab)
        if start:
            await lab.start_service()
        return lab

    yield make
    for lab in labs:
        for service in lab.services:
            await service.stop()
        for store in lab.stores:
            await store.close()
        await lab.sim.stop()
    # Whatever pbxd did, every request it sent and all the simulator answered must be valid
    # ARI (4xx answers Asterisk's API description does not declare aside).
    for lab in labs:
        problems = validate_run(SWAGGER, lab.sim.rest_log, lab.sim.event_log)
        assert [p for p in problems if "is not declared by" not in p] == []


@pytest.fixture
async def lab(make_lab: LabFactory) -> CallLab:
    return await make_lab()


@pytest.fixture
def logs() -> Any:
    """Every structlog line of the test; see `assert_no_errors`."""
    # An earlier in-process `pbxd` command may have left a level filter that drops lines
    # before capture_logs sees them.
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as captured:
        yield captured


def assert_no_errors(captured: list[dict[str, Any]]) -> None:
    bad = [
        line
        for line in captured
        if line.get("log_level") in ("error", "critical", "exception") or "exc_info" in line
    ]
    assert bad == [], bad
