"""`pbxd run`: the daemon against a real Asterisk, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import structlog

from pbxd.calls.runtime import AriEndpoint, CallService, settle_heap
from pbxd.cdr.store import CdrStore
from pbxd.cli.common import load_config_or_report, report
from pbxd.clock import RealClock
from pbxd.config.model import Config
from pbxd.log import configure_logging

log = structlog.get_logger("pbxd.run")


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
    return asyncio.run(serve(config, password))


async def serve(config: Config, password: str, stop: asyncio.Event | None = None) -> int:
    """Run until `stop` is set (by SIGTERM/SIGINT when not given)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    services: list[CallService] = []  # filled once the CDR database is open
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    # Installed first: SIGUSR1's default action would kill pbxd.
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGUSR1, log_calls_in_progress, services)
    settings = config.settings
    opening = asyncio.create_task(CdrStore.open(settings.database_url))
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
    except Exception as exc:
        # The URL's password, if any, is masked by the log configuration.
        log.error(
            "cannot open the CDR database",
            database=settings.database_url,
            error=f"{type(exc).__name__}: {exc}",
        )
        _remove_signal_handlers(loop)
        return 1
    service = CallService(
        config,
        AriEndpoint(settings.ari_url, settings.ari_username, password, settings.ari_app),
        store,
        RealClock(),
    )
    services.append(service)
    log.info(
        "pbxd starting",
        ari=settings.ari_url,
        app=settings.ari_app,
        numbers=len(config.numbers),
        routes=len(config.routes),
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
            await stopped
    finally:
        log.info("pbxd stopping")
        stopped.cancel()
        starting.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await starting
        await service.stop()
        await store.close()
        _remove_signal_handlers(loop)
    log.info("pbxd stopped")
    return status


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
