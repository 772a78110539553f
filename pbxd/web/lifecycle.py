"""The daemon's start-up and shutdown, as the web application's `cleanup_ctx`.

Each part starts before its `yield` and stops after it; aiohttp stops only what started,
in reverse order. Start order: systemd status, CDR store (replays a spool first), FastAGI,
then the call service, whose connection to ARI goes on in the background so `/readyz` can
answer 503 meanwhile. `serve` runs the application and waits for the stop signal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from pbxd import heap
from pbxd import metrics as series
from pbxd.agi.server import start_agi
from pbxd.calls.runtime import AriEndpoint, CallService
from pbxd.calls.session import CallSession
from pbxd.cdr.db import why_not_writable
from pbxd.cdr.reports import leg_outcome
from pbxd.cdr.spool import CdrSpool, SpoolBusyError
from pbxd.cdr.store import CdrNotWritableError, CdrStore
from pbxd.clock import RealClock, held_on
from pbxd.config.files import HaMode
from pbxd.ha.service import PairedService
from pbxd.systemd import keep_systemd_informed
from pbxd.web.health import readiness
from pbxd.web.state import CLOCK, CONFIG, DND, RUNTIME

log = structlog.get_logger("pbxd.run")

# Under state_dir: the CDRs the database could not take yet (see pbxd/cdr/spool.py).
SPOOL_FILE = "cdr-spool.jsonl"
HTTP_SHUTDOWN_S = 2.0  # requests in flight at SIGTERM get this long; calls are not waiting


class CannotStart(RuntimeError):
    """A part of the daemon could not start; its log line says why. Exit 1."""


ARI_ENDPOINT = web.AppKey("ari_endpoint", AriEndpoint)


async def systemd_status(app: web.Application) -> AsyncIterator[None]:
    """Keep `systemctl status` and the watchdog current from the loop, then say `stopping`."""
    runtime = app[RUNTIME]
    notifier = runtime.notifier

    def status() -> str:
        return "stopping" if runtime.stop.is_set() else readiness(runtime.service).status

    informing = asyncio.create_task(keep_systemd_informed(notifier, status), name="systemd")
    try:
        yield
    finally:
        notifier.stopping()
        informing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await informing


async def cdr_store(app: web.Application) -> AsyncIterator[None]:
    """Open the CDR database (after replaying a spool a previous run left); close it last."""
    settings = app[CONFIG].current.settings
    runtime = app[RUNTIME]
    try:
        spool = CdrSpool(settings.state_dir / SPOOL_FILE)
    except (OSError, SpoolBusyError) as exc:
        log.error(
            "cdr_spool_unavailable", path=str(settings.state_dir / SPOOL_FILE), error=str(exc)
        )
        raise CannotStart("cdr spool") from exc
    try:
        store = await CdrStore.open(settings.database_url, spool=spool)
    except asyncio.CancelledError:
        # A slow or unreachable PostgreSQL must not make SIGTERM wait for its connect timeout.
        log.info("pbxd stopped before the CDR database was open")
        raise
    except CdrNotWritableError as exc:
        log.error("cdr_database_not_writable", database=settings.database_url, reason=str(exc))
        raise CannotStart("cdr database") from exc
    except Exception as exc:
        log_cannot_open(settings.database_url, exc)
        raise CannotStart("cdr database") from exc
    runtime.store = store
    try:
        yield
    finally:
        await store.close()


async def fast_agi(app: web.Application) -> AsyncIterator[None]:
    """The FastAGI server when `agi.bind` is set."""
    running = app[CONFIG]
    store = app[RUNTIME].store
    assert store is not None, "cdr_store starts first"
    try:
        agi = await start_agi(running.current, store, app[CLOCK])
    except OSError as exc:
        log.error(
            "agi_bind_failed",
            bind=running.current.settings.agi_bind,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise CannotStart("agi") from exc
    if agi is not None:
        running.on_swap(agi.use_config)
    try:
        yield
    finally:
        if agi is not None:
            await agi.stop()


async def call_service(app: web.Application) -> AsyncIterator[None]:
    """Connect to ARI and take calls; READY=1 once recovery is done; stop driving calls last.

    The connection is made in the background (Asterisk may be booting): the HTTP server
    answers meanwhile. A start that fails stops the daemon with exit 1, for systemd.
    """
    running = app[CONFIG]  # never kept in a local: a reload must free the old one
    runtime = app[RUNTIME]
    store = runtime.store
    assert store is not None, "cdr_store starts first"
    clock = app[CLOCK]
    # On a virtual clock, time stands still while the database answers (as in the call tests).
    cdr = held_on(clock, store)
    # A pair (pbxd.ha) starts its call service only while it holds the app's lock.
    paired = running.current.settings.ha_mode is HaMode.ACTIVE_STANDBY
    # The HTTP API's do-not-disturb flags are the ring steps': kept in the CDR database.
    service = (PairedService if paired else CallService)(
        running.current, app[ARI_ENDPOINT], cdr, clock, dnd=app[DND]
    )
    runtime.service = service
    running.on_swap(service.use_config)
    log.info(
        "pbxd starting",
        ari=running.current.settings.ari_url,
        app=running.current.settings.ari_app,
        numbers=len(running.current.numbers),
        routes=len(running.current.routes),
        ha=str(running.current.settings.ha_mode),
    )
    starting = asyncio.create_task(service.start(), name="ari-start")
    watching = asyncio.create_task(_ready_once_recovered(app, starting), name="ready")
    series.watch(lambda: figures(service, store))
    try:
        yield
    finally:
        series.watch(None)
        for task in (watching, starting):
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await service.stop()


async def _ready_once_recovered(app: web.Application, starting: asyncio.Task[None]) -> None:
    """READY=1 once ARI is connected and the calls a previous run left are recovered; then
    watch the heap (`pbxd.heap.watch_heap`) for the daemon's life."""
    runtime = app[RUNTIME]
    try:
        await starting
    except Exception as exc:
        # Never linger without events: exit 1 so systemd restarts pbxd.
        log.error("pbxd could not start", error=repr(exc))
        runtime.fail(1)
        return
    heap.settle()  # after a successful start: start-up objects out of the GC's way
    service = runtime.service
    if isinstance(service, PairedService):  # standing by, or active with its calls recovered
        service.on_call_finished = count_call
        if not runtime.stop.is_set():
            runtime.notifier.ready(readiness(service).status)
            log.info("pbxd ready", role=str(service.role))
    else:
        daemon = service.daemon if service is not None else None
        if daemon is None:
            return
        if daemon.on_call_finished is None:
            daemon.on_call_finished = count_call
        await daemon.recovered.wait()
        if not runtime.stop.is_set():
            runtime.notifier.ready(readiness(service).status)
            log.info("pbxd ready", calls=len(daemon.calls))
    # From here on, dead cycles frozen with the survivors are given back at quiet moments.
    # On the wall clock, as the systemd watchdog: a virtual clock (tests, dry runs) must not
    # see a timer of the process's own that would move its time on.
    await heap.watch_heap(lambda: _calls_in_progress(runtime.service), RealClock())


def _calls_in_progress(service: CallService | PairedService | None) -> int:
    daemon = service.daemon if service is not None else None
    return len(daemon.calls) if daemon is not None else 0


def figures(service: CallService | PairedService, store: CdrStore) -> series.DaemonFigures:
    """The live figures `/metrics` reads at each scrape."""
    stream = service.stream
    return series.DaemonFigures(
        calls_in_progress=_calls_in_progress(service),
        ari_connected=stream is not None and stream.connected,
        ari_connections=stream.connections if stream is not None else 0,
        cdr_backlog=store.backlog,
        cdr_spooled=store.spooled,
        cdr_refused=store.refused,
        cdr_rejected=store.dropped,
    )


def count_call(session: CallSession) -> None:
    """An ended call in the metrics: by route and disposition, its legs, its delays."""
    record = session.record
    disposition = str(record.disposition) if record.disposition else "unknown"
    series.CALLS.labels(record.route or "none", disposition).inc()
    legs = list(session.journal.legs.values())
    for leg in legs:
        # "failed (99)" keeps its words, not its number: the label set stays small.
        series.LEGS.labels(leg_outcome(leg).partition(" (")[0]).inc()
    if record.answered_at is not None:
        series.ANSWER_DELAY.observe((record.answered_at - record.started_at).total_seconds())
    first_leg = min((leg.started_at for leg in legs), default=None)
    if first_leg is not None:
        delay = (first_leg - record.started_at).total_seconds()
        series.EVENT_TO_ACTION.observe(max(0.0, delay))


DAEMON_PARTS = (systemd_status, cdr_store, fast_agi, call_service)


def log_cannot_open(url: str, exc: Exception) -> None:
    """The one error line of a start-up that could not reach or read the CDR database."""
    # The URL's password, if any, is masked by the log configuration.
    log.error(
        "cannot open the CDR database",
        database=url,
        error=f"{type(exc).__name__}: {exc}",
        reason=_why(exc, url),
    )


def _why(exc: Exception, url: str) -> str:
    """What to fix, in a sentence; the error itself when the URL cannot even be read."""
    try:
        return why_not_writable(exc, url)
    except ValueError:
        return f"{type(exc).__name__}: {exc}"


def split_bind(bind: str) -> tuple[str, int]:
    """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `[::1]:8080` -> ("::1", 8080)."""
    host, _, port = bind.strip().rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def serve_app(app: web.Application, bind: str) -> int:
    """Start `app` (the daemon's parts, then HTTP at `bind`), wait for the stop, stop it all.

    SIGTERM during start-up stops at once, with whatever had started. Returns the exit
    status: 0 after a requested stop, 1 when a part could not start or failed.
    """
    runtime = app[RUNTIME]
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S
    )
    stopped = asyncio.create_task(runtime.stop.wait())
    setup = asyncio.create_task(runner.setup())
    try:
        await asyncio.wait({setup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not setup.done():
            setup.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await setup
            return runtime.exit_status
        if setup.exception() is not None:
            if isinstance(setup.exception(), CannotStart):
                return 1
            setup.result()  # a bug: let its traceback out
        host, port = split_bind(bind)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            log.error("http_bind_failed", bind=bind, error=f"{type(exc).__name__}: {exc}")
            return 1
        log.info("http_listening", url=_url_of(runner, host))
        await stopped
        log.info("pbxd stopping")
        runtime.notifier.stopping()
        return runtime.exit_status
    finally:
        stopped.cancel()
        await runner.cleanup()
        if setup.done() and not setup.cancelled() and setup.exception() is None:
            log.info("pbxd stopped")


def _url_of(runner: web.AppRunner, host: str) -> str:
    """`http://127.0.0.1:PORT/`: where the pages are (the real port when bind said 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            shown = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
            return f"http://{shown}:{address[1]}/"
    return f"http://{host}/"
