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
from pbxd.cli.common import load_config_or_report
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
        "Calls in progress stay up on Asterisk when pbxd stops; the next start adopts them.",
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
        print(f"pbxd run: {exc}", file=sys.stderr)
        return 1
    configure_logging(config.settings.log_level)
    return asyncio.run(serve(config, password))


async def serve(config: Config, password: str, stop: asyncio.Event | None = None) -> int:
    """Run until `stop` is set (by SIGTERM/SIGINT when not given)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    settings = config.settings
    try:
        store = await CdrStore.open(settings.database_url)
    except Exception as exc:
        log.error("cannot open the CDR database", error=str(exc))
        return 1
    service = CallService(
        config,
        AriEndpoint(settings.ari_url, settings.ari_username, password, settings.ari_app),
        store,
        RealClock(),
    )
    log.info(
        "pbxd starting",
        ari=settings.ari_url,
        app=settings.ari_app,
        numbers=len(config.numbers),
        routes=len(config.routes),
    )
    starting = asyncio.create_task(service.start())
    starting.add_done_callback(_settle_once_started)
    try:
        await stop.wait()
    finally:
        log.info("pbxd stopping")
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await service.stop()
        await store.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    log.info("pbxd stopped")
    return 0


def _settle_once_started(task: asyncio.Task[None]) -> None:
    """After a successful start, move start-up objects out of the GC's way."""
    if not task.cancelled() and task.exception() is None:
        settle_heap()
