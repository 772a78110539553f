"""`pbxd run`: the daemon against a real Asterisk, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from pbxd.arenas import share_malloc_arenas
from pbxd.calls.runtime import AriEndpoint
from pbxd.cdr.db import MigrationFailed, at_head, head_revision, is_in_memory, make_engine
from pbxd.cdr.db import migrate_apart as migrate_in_child
from pbxd.cli.common import load_config_or_report, report
from pbxd.clock import Clock, RealClock
from pbxd.config.model import Config
from pbxd.config.reload import ReloadResult, RunningConfig
from pbxd.log import configure_logging
from pbxd.systemd import Notifier, keep_systemd_informed
from pbxd.web.app import daemon_app
from pbxd.web.lifecycle import log_cannot_open, serve_app
from pbxd.web.state import CONFIG, RUNTIME, Runtime

log = structlog.get_logger("pbxd.run")

MIGRATING = "migrating the CDR database"  # systemd's STATUS= while a child migrates


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
    share_malloc_arenas()  # before the SQLite threads start: see pbxd.arenas
    notifier = Notifier.from_environment()  # first: the migrating child must not inherit it
    # On a loop of its own, before the daemon's: serving never waits for a migration.
    status = asyncio.run(
        _unless_stopped(migrate_before_serving(config.settings.database_url, notifier), notifier)
    )
    if status is not None:
        return status
    daemon = serve(config, password, notifier=notifier)
    del config  # held by the daemon's RunningConfig only, so a reload can free it
    return asyncio.run(daemon)


async def migrate_before_serving(url: str, notifier: Notifier) -> int | None:
    """Bring the CDR database to the head revision from a child process (`pbxd.cdr.migrate`)
    when it is behind: None to go on serving, else the exit status (1, said in one log line).

    The daemon's own open then finds the database at head with one query: its loop never
    waits for a migration and the process never imports Alembic. An in-memory SQLite
    database, which no child can see, is left to the daemon's open (migrated in process).
    """
    if is_in_memory(url):
        return None
    engine: AsyncEngine | None = None
    try:
        engine = make_engine(url)
        current = await at_head(engine)
    except Exception as exc:
        log_cannot_open(url, exc)
        return 1
    finally:
        if engine is not None:
            await engine.dispose()
    if current:
        return None
    log.info("cdr_migrating", database=url, revision=head_revision())
    # systemd hears why start-up takes long, and the watchdog is pinged meanwhile.
    informing = asyncio.create_task(keep_systemd_informed(notifier, lambda: MIGRATING))
    try:
        await migrate_in_child(url)
    except (MigrationFailed, OSError) as exc:  # OSError: the child could not even start
        log.error("cdr_migration_failed", database=url, error=str(exc))
        return 1
    finally:
        informing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await informing
    log.info("cdr_migrated", database=url, revision=head_revision())
    return None


async def _unless_stopped(
    work: Coroutine[object, object, int | None], notifier: Notifier
) -> int | None:
    """`work`'s result; 0 when SIGTERM or SIGINT stopped it first (its child is killed)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        log.info("pbxd stopped before the CDR database was migrated")
        notifier.stopping()
        return 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


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

    The daemon is one aiohttp application (pbxd/web/): its `cleanup_ctx` starts the CDR
    store, FastAGI and the call service, and stops them in reverse when the HTTP server stops.
    """
    runtime = Runtime(stop=stop or asyncio.Event(), notifier=notifier or Notifier(None))
    settings = config.settings  # those a reload changes are not read here
    running = RunningConfig(config)
    del config  # read `running.current`: a reload frees what nothing else holds
    ari = AriEndpoint(settings.ari_url, settings.ari_username, password, settings.ari_app)
    app = daemon_app(running, ari, runtime, clock=clock or RealClock(), first=(_signals,))
    return await serve_app(app, settings.http_bind)


async def _signals(app: web.Application) -> AsyncIterator[None]:
    """SIGTERM/SIGINT stop pbxd, SIGHUP reloads, SIGUSR1 logs the calls; removed at the end."""
    runtime = app[RUNTIME]
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[ReloadResult]] = set()
    handlers: dict[int, tuple[Callable[..., object], tuple[object, ...]]] = {
        signal.SIGTERM: (runtime.stop.set, ()),
        signal.SIGINT: (runtime.stop.set, ()),
        # `systemctl reload` sends SIGHUP, whose default action would end pbxd.
        signal.SIGHUP: (_reload_in_background, (app[CONFIG], runtime.notifier, reloads)),
        # SIGUSR1's default action would kill pbxd.
        signal.SIGUSR1: (log_calls_in_progress, (runtime,)),
    }
    for signum, (callback, args) in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signum, callback, *args)
    try:
        yield
    finally:
        for signum in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        for task in list(reloads):
            task.cancel()  # kills its compiler process
        await asyncio.gather(*reloads, return_exceptions=True)


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


def log_calls_in_progress(runtime: Runtime) -> None:
    """One log line with the state of every call in progress (`kill -USR1`)."""
    daemon = runtime.service.daemon if runtime.service is not None else None
    if daemon is None:
        log.info("calls in progress", count=0, calls="not connected to ARI yet")
        return
    log.info("calls in progress", count=len(daemon.calls), calls=daemon.describe())
