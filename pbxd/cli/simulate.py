"""`pbxd simulate SCENARIO`: play calls against the ARI simulator through the real daemon."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import secrets
import sys
from datetime import datetime, timedelta
from pathlib import Path

from pbxd.calls.runtime import AriEndpoint, CallService
from pbxd.calls.session import CallSession
from pbxd.cdr.memory import RingMemory
from pbxd.cdr.store import CdrStore
from pbxd.cli.common import ascii_number, load_config_or_report, report
from pbxd.clock import ScaledClock, VirtualClock, held_on
from pbxd.config.diagnostics import Severity
from pbxd.config.model import Config
from pbxd.config.numbering import national_format
from pbxd.log import configure_logging, redact_url
from pbxd.sim import SHIPPED_STASIS_ARGS
from pbxd.sim.scenario import (
    MAX_SCENARIO_SECONDS,
    MAX_SPEED,
    Scenario,
    ScenarioCall,
    apply_presence,
    load_scenario,
    prepare_simulator,
)
from pbxd.sim.scenario_clock import ScenarioClock
from pbxd.sim.server import AriSimulator

# Wall seconds a dated scenario's clock starts before its first call (the daemon's start-up).
STARTUP_SLACK = 60.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd simulate`."""
    parser = sub.add_parser(
        "simulate",
        help="play a scenario of calls against the ARI simulator",
        description="Run the ARI simulator and the daemon together, place the scenario's "
        "calls, print a timeline per call and write the CDRs (to the configured database, "
        "or --database).",
    )
    parser.add_argument("scenario", type=Path, help="scenario file (see scenarios/)")
    parser.add_argument(
        "--live",
        action="store_true",
        help="play on the real clock, the scenario's `speed` times faster (to watch along); "
        "by default the scenario runs in virtual time: at once, the same way every time",
    )
    parser.add_argument(
        "--speed",
        type=ascii_number(float),
        help="with --live (which it implies): override the scenario's speed factor",
    )
    parser.add_argument("--database", help="CDR database URL (default: pbxd.yaml's)")
    parser.add_argument("--verbose", action="store_true", help="show the daemon's log lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load configuration and scenario, then play it."""
    config = load_config_or_report(args)
    if config is None:
        return 1
    scenario, diagnostics = load_scenario(args.scenario, config)
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr)
    if scenario is None or any(d.severity is Severity.ERROR for d in diagnostics):
        return 1
    if args.speed is not None:
        if not (math.isfinite(args.speed) and 0 < args.speed <= MAX_SPEED):
            print(
                f"pbxd simulate: --speed must be above 0 and at most {MAX_SPEED:g}", file=sys.stderr
            )
            return 1
        scenario = dataclasses.replace(scenario, speed=args.speed)
    configure_logging(config.settings.log_level if args.verbose else "error")
    database = args.database or config.settings.database_url
    live = args.live or args.speed is not None
    return asyncio.run(play(config, scenario, database, live=live))


async def play(config: Config, scenario: Scenario, database_url: str, *, live: bool = False) -> int:
    """Run simulator + daemon, place the calls, wait for them to end, print timelines.

    In virtual time (the default) the run's outcome depends on the scenario alone, never on
    how busy the machine is; `live` plays it on the real clock, `scenario.speed` times faster.
    """
    try:
        opened = await CdrStore.open(database_url)
    except Exception as exc:
        report(
            "simulate",
            f"cannot open the CDR database {database_url}: {type(exc).__name__}: {exc}",
        )
        return 1
    # A scenario with calls at given dates reads those dates; its wall time jumps between them.
    # It starts a little before the first dated call, then jumps to it once the daemon is up.
    origin = None if scenario.start is None else scenario.start - timedelta(seconds=STARTUP_SLACK)
    virtual = None if live else VirtualClock(origin=origin)
    clock = ScenarioClock(virtual or ScaledClock(speed=scenario.speed, origin=origin))
    # Time stands still while the database answers, as it would for a test driving the clock.
    store = held_on(virtual, opened)
    password = secrets.token_urlsafe(12)
    sim = AriSimulator(clock, username="pbxd", password=password)
    prepare_simulator(sim, config, scenario)
    url = await sim.start()
    memory = RingMemory(opened.engine)  # the strategies' memory, held like the CDR store
    service = CallService(
        config,
        AriEndpoint(url, "pbxd", password, config.settings.ari_app),
        store,
        clock,
        memory=held_on(virtual, memory),
    )
    finished: dict[str, CallSession] = {}
    placed: dict[str, ScenarioCall] = {}
    settled = True
    try:
        await service.start()
        assert service.daemon is not None
        service.daemon.on_call_finished = lambda c: finished.__setitem__(c.call_id, c)
        title = scenario.title or "scenario"
        pace = "in virtual time" if virtual else f"{scenario.speed:g}x faster than real time"
        print(f"{title}: {len(scenario.calls)} call(s), played {pace}")
        calls = _place_calls(sim, service, config, scenario, clock, placed)
        try:
            if virtual is None:
                async with asyncio.timeout(MAX_SCENARIO_SECONDS / scenario.speed):
                    await calls
            else:
                await virtual.drive(calls, within=MAX_SCENARIO_SECONDS)
        except TimeoutError:
            settled = False
        await opened.flush()
    finally:
        await service.stop()
        await opened.close()
        await sim.stop()
    for channel_id, call in placed.items():
        print()
        print(render_timeline(call, finished.get(channel_id), config))
    missing = [c for c in placed if c not in finished]
    print(f"\n{len(finished)} call(s) recorded in {redact_url(database_url)}")
    if not settled:
        print(
            f"pbxd simulate: calls still up after {MAX_SCENARIO_SECONDS} s of scenario time; "
            "stopped",
            file=sys.stderr,
        )
    return 1 if missing or not settled else 0


async def _place_calls(
    sim: AriSimulator,
    service: CallService,
    config: Config,
    scenario: Scenario,
    clock: ScenarioClock,
    placed: dict[str, ScenarioCall],
) -> None:
    """Place the scenario's calls at their times, then wait until every call has ended."""
    assert service.daemon is not None
    start = scenario.start or clock.now()  # the wall time of scenario second 0
    changes = list(scenario.presence)
    for call in scenario.calls:
        while changes and changes[0].at <= call.at:
            change = changes.pop(0)
            await _until(start + timedelta(seconds=change.at), clock, sim, service)
            apply_presence(sim, change)
        await _until(start + timedelta(seconds=call.at), clock, sim, service)
        if call.softphone is not None:
            # [from-softphones] of asterisk-conf/extensions.conf: Stasis(pbxd,outbound,...).
            placed[
                await sim.softphone_call(
                    call.softphone,
                    call.did,
                    hangup_after=call.hangup_after,
                    app=config.settings.ari_app,
                )
            ] = call
            continue
        channel_id = await sim.inbound_call(
            call.did,
            call.caller_number,
            call.caller_name,
            trunk=call.trunk_endpoint,
            hangup_after=call.hangup_after,
            app=config.settings.ari_app,
            presentation=call.presentation,
            stasis_args=SHIPPED_STASIS_ARGS,  # as asterisk-conf/extensions.conf passes them
            ringing=True,  # ... after its Ringing()
            script=call.script,
        )
        placed[channel_id] = call
    for change in changes:
        await _until(start + timedelta(seconds=change.at), clock, sim, service)
        apply_presence(sim, change)
    await sim.wait_until_idle()
    await service.daemon.wait_idle()


async def _until(
    moment: datetime, clock: ScenarioClock, sim: AriSimulator, service: CallService
) -> None:
    """Wait until the wall time `moment`; once no call is up, jump the clock there."""
    assert service.daemon is not None
    delay = (moment - clock.now()).total_seconds()
    if delay <= 0:
        return

    async def idle() -> None:
        assert service.daemon is not None
        await sim.wait_until_idle()
        await service.daemon.wait_idle()

    sleeping = asyncio.ensure_future(clock.sleep(delay))
    quiet = asyncio.ensure_future(idle())
    try:
        await asyncio.wait({sleeping, quiet}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeping, quiet):
            task.cancel()
        await asyncio.gather(sleeping, quiet, return_exceptions=True)
    left = (moment - clock.now()).total_seconds()
    if left > 0:
        clock.jump(left)


def render_timeline(call: ScenarioCall, controller: CallSession | None, config: Config) -> str:
    """One call's story: what pbxd did and when, in scenario seconds from the call's arrival."""
    number = config.number(call.did)
    shown = national_format(call.did) if number else call.did
    label = f" ({number.label})" if number and number.label else ""
    caller = call.caller_number + (f' "{call.caller_name}"' if call.caller_name else "")
    lines = [f"#{call.index} at {call.shown_at}: {caller} -> {shown}{label}"]
    if controller is None:
        lines.append("    (pbxd never saw this call: was the Stasis application connected?)")
        return "\n".join(lines)
    origin = controller.record.started_at
    for entry in controller.timeline:
        offset = (entry.at - origin).total_seconds()
        lines.append(f"  {offset:7.1f}s  {entry.text}")
    record = controller.record
    outcome = f"    => {record.disposition}"
    if record.answered_by:
        outcome += f" by {record.answered_by}"
    outcome += f", {record.duration} s"
    if record.answered_at:
        outcome += f" (billable {record.billsec} s)"
    outcome += f", hangup cause {record.hangup_cause}"
    lines.append(outcome)
    return "\n".join(lines)
