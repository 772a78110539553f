"""Every flow step and fallback through `pbxd run` itself (its `serve()`), not a CallService
built by the test: the daemon opens the CDR store (and its spool) from pbxd.yaml, connects to
the simulator, says READY once recovery is done, runs the calls, and on stop flushes and
closes the store. Time is a VirtualClock shared with the simulator, as in the other call tests.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

from pbxd.cdr.records import format_path
from pbxd.cdr.store import CdrStore
from pbxd.cli.run import serve
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.sim import AriSimulator, PeerScript
from pbxd.systemd import Notifier
from pbxd.voicemail.store import MessageStore

from .conftest import (
    APP,
    CALLER,
    SECRET,
    SWAGGER,
    TRUNKS_YAML,
    USER,
    add_lab_endpoints,
    assert_no_errors,
    validate_run,
)
from .test_flow_steps import (
    CLOSED,
    FLOW_ROUTING,
    GOTO,
    GREETED,
    GREETED_ANSWERED,
    NO_ANSWER_VOICEMAIL,
    OPEN,
)

CLOSED_BUSY = "+33170000007"
ROUTING = FLOW_ROUTING + textwrap.indent(
    textwrap.dedent("""\
        - name: closed-busy
          numbers: [01 70 00 00 07]
          hours: closed-for-works
          closed: {hangup: busy}
          targets: [alice]
        """),
    "      ",
)
ARROW = " \N{RIGHTWARDS ARROW} "
REAL_SECONDS = 60.0  # a guard against a hang, never a measure


class ReadyWatch(Notifier):
    """systemd's side of sd_notify, as far as READY=1 goes."""

    def __init__(self) -> None:
        super().__init__(None)
        self.is_ready = asyncio.Event()

    def ready(self, status: str | None = None) -> bool:
        self.is_ready.set()
        return True


def run_config(directory: Path, ari_url: str, database_url: str) -> Config:
    """The call-flow routing, with pbxd.yaml pointing at the simulator and the test database."""
    (directory / "routing").mkdir(parents=True)
    (directory / "pbxd.yaml").write_text(
        f"ari: {{url: '{ari_url}', username: {USER}, app: {APP}}}\n"
        f"database: {{url: '{database_url}'}}\n"
        "state_dir: var\n"
        "http: {bind: '127.0.0.1:0'}\n",  # any free port: suites run side by side
        encoding="utf-8",
    )
    (directory / "sip-trunks.yaml").write_text(textwrap.dedent(TRUNKS_YAML), encoding="utf-8")
    (directory / "routing" / "main.yaml").write_text(textwrap.dedent(ROUTING), encoding="utf-8")
    result = compile_config(directory / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


async def test_every_step_and_fallback_through_pbxd_run(
    cdr_url: str, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    # Start-up migrates the database outside the loop, with nothing on the virtual clock: on
    # a loaded machine that took over the default 2 s of real time and read as a stall.
    clock = VirtualClock(stall_seconds=60.0)
    sim = AriSimulator(clock, USER, SECRET)
    add_lab_endpoints(sim)
    config = run_config(tmp_path / "config", await sim.start(), cdr_url)
    notifier, stop = ReadyWatch(), asyncio.Event()
    daemon = asyncio.create_task(serve(config, SECRET, stop, notifier=notifier, clock=clock))
    placed: dict[str, str] = {}

    async def place(name: str, did: str, **kwargs: Any) -> None:
        placed[name] = await sim.inbound_call(did, CALLER, "Jean", **kwargs)
        await clock.drive(sim.wait_until_idle(), within=300)

    try:
        async with asyncio.timeout(REAL_SECONDS):
            await clock.drive(notifier.is_ready.wait())
        sim.script("PJSIP/alice", PeerScript(answer_after=1, hangup_after=2))
        await place("greeting, early media", GREETED)
        await place("greeting, answered first", GREETED_ANSWERED)
        await place("hung up in the greeting", GREETED, hangup_after=1)
        await place("open", OPEN)
        await place("closed, message", CLOSED, script=PeerScript(talk=4, keys=((9.0, "#"),)))
        await place("closed, too short", CLOSED, script=PeerScript(talk=1))
        await place(
            "no answer, voicemail",
            NO_ANSWER_VOICEMAIL,
            script=PeerScript(talk=3, hangup_after_talk=True),
        )
        await place("unavailable, goto", GOTO)
        await place("closed, hangup busy", CLOSED_BUSY)
        await clock.advance(30)  # the books closed and the message copied off Asterisk
    finally:
        stop.set()  # what SIGTERM does
        async with asyncio.timeout(REAL_SECONDS):
            status = await daemon
        await sim.stop()
    assert status == 0

    store = await CdrStore.open(cdr_url)
    try:
        seen = {}
        for name, call_id in placed.items():
            entry = await store.get_call(call_id)
            assert entry is not None, f"no CDR for {name}"
            call = entry.call
            seen[name] = (str(call.disposition), format_path(call.path), call.hangup_cause)
    finally:
        await store.close()
    assert seen == {
        "greeting, early media": ("answered", ARROW.join(["greeting", "ring", "answered"]), 16),
        "greeting, answered first": ("answered", ARROW.join(["greeting", "ring", "answered"]), 16),
        "hung up in the greeting": ("abandoned", ARROW.join(["greeting", "caller hung up"]), 127),
        "open": ("answered", ARROW.join(["ring", "answered"]), 16),  # open hours: no detour
        "closed, message": ("voicemail", ARROW.join(["closed", "voicemail"]), 16),
        "closed, too short": ("closed", ARROW.join(["closed", "voicemail (too short)"]), 16),
        "no answer, voicemail": (
            "voicemail",
            ARROW.join(["ring", "no answer", "voicemail"]),
            16,
        ),
        "unavailable, goto": (
            "answered",
            ARROW.join(["ring", "unavailable", "goto", "ring", "answered"]),
            16,
        ),
        "closed, hangup busy": ("closed", ARROW.join(["closed", "hangup"]), 17),
    }
    # The kept messages were copied off Asterisk into their boxes, linked to their calls.
    box = MessageStore(config.settings.voicemail_folder)
    kept = {m.call_id for m in box.messages(CLOSED)} | {
        m.call_id for m in box.messages(NO_ANSWER_VOICEMAIL)
    }
    assert kept == {placed["closed, message"], placed["no answer, voicemail"]}
    problems = validate_run(SWAGGER, sim.rest_log, sim.event_log)
    assert [p for p in problems if "is not declared by" not in p] == []
    assert_no_errors(logs)
