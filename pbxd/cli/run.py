"""`pbxd run`: the daemon against a real Asterisk, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import cast

import structlog

from pbxd.agi.server import start_agi
from pbxd.calls.runtime import AriEndpoint, CallService, settle_heap
from pbxd.cdr.db import why_not_writable
from pbxd.cdr.spool import CdrSpool, SpoolBusyError
from pbxd.cdr.store import CdrNotWritableError, CdrStore
from pbxd.cli.common import load_config_or_report, report
from pbxd.clock import Clock, HeldDuringAwaits, RealClock, VirtualClock
from pbxd.config.model import Config
from pbxd.config.reload import ReloadResult, RunningConfig
from pbxd.log import configure_logging
from pbxd.systemd import Notifier, keep_systemd_informed

log = structlog.get_logger("pbxd.run")

# Under state_dir: the CDRs the database could not take yet (see pbxd/cdr/spool.py).
SPOOL_FILE = "cdr-spool.jsonl"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pbxd run`."""
    parser = sub.add_parser(
        "run",
        help="run the daemon against Asterisk (stops cleanly on SIGTERM)",
        description="Connect to Asterisk's ARI and handle calls until SIGTERM or SIGINT. "
        "Calls in progress stay up on Asterisk when pbxd stops; the next start adopts them. "
        "SIGUSR1 logs the state of every call in progress.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the configuration, then serve calls until told to stop."""
    config = load_config_or_report(args)
    if config is None:
        print("pbxd run: fix the configuration first (see `pbxd check`)", file=sys.stderr)
        return 1
    try:
        password = config.settings.ari_password()
    except (LookupError, OSError) as exc:
        report("run", str(exc))
        return 1
    configure_logging(config.settings.log_level)
    daemon = serve(config, password, notifier=Notifier.from_environment())
    del config  # held by the daemon's RunningConfig only, so a reload can free it
    return asyncio.run(daemon)


async def serve(
    config: Config,
    password: str,
    stop: asyncio.Event | None = None,
    *,
    notifier: Notifier | None = None,
    clock: Clock | None = None,
) -> int:
    """Run until `stop` is set (by SIGTERM/SIGINT when not given).

    `clock`: the real one unless given (a VirtualClock lets a test drive `pbxd run` itself).
    """
    stop = stop or asyncio.Event()
    services: list[CallService] = []  # filled once the CDR database is open
    notifier = notifier or Notifier(None)
    informing = asyncio.create_task(
        keep_systemd_informed(
            notifier, lambda: "stopping" if stop.is_set() else status_line(services)
        ),
        name="systemd",
    )
    loop = asyncio.get_running_loop()
    running = RunningConfig(config)
    del config  # read `running.current`: a reload frees what nothing else holds
    reloads: set[asyncio.Task[ReloadResult]] = set()
    # `systemctl reload` sends SIGHUP, whose default action would end pbxd.
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, _reload_in_background, running, notifier, reloads)
    try:
        return await _serve(running, password, stop, services, notifier, clock or RealClock())
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.remove_signal_handler(signal.SIGHUP)
        for task in list(reloads):
            task.cancel()  # kills its compiler process
        await asyncio.gather(*reloads, return_exceptions=True)
        notifier.stopping()
        informing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await informing


async def _serve(
    running: RunningConfig,
    password: str,
    stop: asyncio.Event,
    services: list[CallService],
    notifier: Notifier,
    clock: Clock,
) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    # Installed first: SIGUSR1's default action would kill pbxd.
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGUSR1, log_calls_in_progress, services)
    settings = running.current.settings  # those a reload changes are not read here
    try:
        spool = CdrSpool(settings.state_dir / SPOOL_FILE)
    except (OSError, SpoolBusyError) as exc:
        log.error(
            "cdr_spool_unavailable", path=str(settings.state_dir / SPOOL_FILE), error=str(exc)
        )
        _remove_signal_handlers(loop)
        return 1
    # Replays the spool a previous run left before anything else, after a write probe.
    opening = asyncio.create_task(CdrStore.open(settings.database_url, spool=spool))
    # A slow or unreachable PostgreSQL must not make SIGTERM wait for its connect timeout.
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({opening, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not opening.done():
        opening.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await opening
        log.info("pbxd stopped before the CDR database was open")
        _remove_signal_handlers(loop)
        return 0
    try:
        store = opening.result()
    except CdrNotWritableError as exc:
        log.error("cdr_database_not_writable", database=settings.database_url, reason=str(exc))
        _remove_signal_handlers(loop)
        return 1
    except Exception as exc:
        # The URL's password, if any, is masked by the log configuration.
        log.error(
            "cannot open the CDR database",
            database=settings.database_url,
            error=f"{type(exc).__name__}: {exc}",
            reason=_why(exc, settings.database_url),
        )
        _remove_signal_handlers(loop)
        return 1
    # On a virtual clock, time stands still while the database answers (as in the call tests).
    cdr = (
        store
        if not isinstance(clock, VirtualClock)
        else cast(CdrStore, HeldDuringAwaits(store, clock))
    )
    # The configuration as it is now: a SIGHUP may have swapped one in meanwhile.
    service = CallService(
        running.current,
        AriEndpoint(settings.ari_url, settings.ari_username, password, settings.ari_app),
        cdr,
        clock,
    )
    services.append(service)
    running.on_swap(service.use_config)
    try:
        agi = await start_agi(running.current, store, clock)
    except OSError as exc:
        log.error("agi_bind_failed", bind=settings.agi_bind, error=f"{type(exc).__name__}: {exc}")
        await store.close()
        _remove_signal_handlers(loop)
        return 1
    if agi is not None:
        running.on_swap(agi.use_config)
    log.info(
        "pbxd starting",
        ari=settings.ari_url,
        app=settings.ari_app,
        numbers=len(running.current.numbers),
        routes=len(running.current.routes),
    )
    starting = asyncio.create_task(service.start())
    starting.add_done_callback(_settle_once_started)
    status = 0
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if _failed(starting):
            # Never linger without events: exit 1 so systemd restarts pbxd.
            log.error("pbxd could not start", error=repr(starting.exception()))
            status = 1
        else:
            await _ready_once_recovered(service, notifier, stopped)
            await stopped
    finally:
        log.info("pbxd stopping")
        notifier.stopping()
        stopped.cancel()
        starting.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await starting
        if agi is not None:
            await agi.stop()
        await service.stop()
        await store.close()
        _remove_signal_handlers(loop)
    log.info("pbxd stopped")
    return status


def _why(exc: Exception, url: str) -> str:
    """What to fix, in a sentence; the error itself when the URL cannot even be read."""
    try:
        return why_not_writable(exc, url)
    except ValueError:
        return f"{type(exc).__name__}: {exc}"


async def _ready_once_recovered(
    service: CallService, notifier: Notifier, stopped: asyncio.Task[bool]
) -> None:
    """READY=1 once ARI is connected and the calls a previous run left are recovered."""
    daemon = service.daemon
    if daemon is None:
        return
    recovering = asyncio.create_task(daemon.recovered.wait())
    await asyncio.wait({recovering, stopped}, return_when=asyncio.FIRST_COMPLETED)
    recovering.cancel()
    if daemon.recovered.is_set() and not stopped.done():
        notifier.ready(status_line([service]))
        log.info("pbxd ready", calls=len(daemon.calls))


def status_line(services: list[CallService]) -> str:
    """What `systemctl status pbxd` shows: ARI's state and the calls in progress."""
    service = services[0] if services else None
    if service is None:
        return "opening the CDR database"
    daemon, stream = service.daemon, service.stream
    if daemon is None or stream is None or stream.connections == 0:
        return "connecting to ARI"
    if not daemon.recovered.is_set():
        return "ARI connected; recovering calls left by the previous run"
    count = len(daemon.calls)
    calls = f"{count} call{'' if count == 1 else 's'} in progress"
    return f"ARI connected; {calls}" if stream.connected else f"ARI reconnecting; {calls}"


async def reload_configuration(running: RunningConfig, notifier: Notifier) -> ReloadResult:
    """Re-read the configuration; systemd hears RELOADING=1 before and READY=1 after."""
    with notifier.reloading():
        return await running.reload()


def _reload_in_background(
    running: RunningConfig, notifier: Notifier, reloads: set[asyncio.Task[ReloadResult]]
) -> None:
    """SIGHUP (`systemctl reload pbxd`): a reload, while calls go on."""
    task = asyncio.create_task(reload_configuration(running, notifier), name="reload")
    reloads.add(task)
    task.add_done_callback(reloads.discard)


def log_calls_in_progress(services: list[CallService]) -> None:
    """One log line with the state of every call in progress (`kill -USR1`)."""
    daemon = services[0].daemon if services else None
    if daemon is None:
        log.info("calls in progress", count=0, calls="not connected to ARI yet")
        return
    log.info("calls in progress", count=len(daemon.calls), calls=daemon.describe())


def _failed(task: asyncio.Task[None]) -> bool:
    """True when `task` ended with an exception (not cancelled, not still running)."""
    return task.done() and not task.cancelled() and task.exception() is not None


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None)):
        if signum is None:
            continue
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signum)


def _settle_once_started(task: asyncio.Task[None]) -> None:
    """After a successful start, move start-up objects out of the GC's way."""
    if not task.cancelled() and task.exception() is None:
        settle_heap()
