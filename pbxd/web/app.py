"""The aiohttp application: routes, middlewares and what the handlers read.

`build_app` is the web side alone (tests give it their own CDR store); `daemon_app` adds
the daemon's parts to its lifecycle, for `pbxd run`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from pbxd.calls.dnd import DoNotDisturb
from pbxd.calls.runtime import AriEndpoint
from pbxd.clock import Clock, RealClock
from pbxd.config.model import Config
from pbxd.config.reload import RunningConfig
from pbxd.voicemail.store import MessageStore
from pbxd.web import api, health, metrics, pages
from pbxd.web.auth import auth_middleware
from pbxd.web.errors import errors_middleware
from pbxd.web.lifecycle import ARI_ENDPOINT, DAEMON_PARTS
from pbxd.web.state import (
    CLOCK,
    CONFIG,
    DND,
    LOGIN_THROTTLE,
    RUNTIME,
    SESSIONS,
    USERS,
    VOICEMAIL,
    Runtime,
)
from pbxd.web.throttle import LoginThrottle
from pbxd.web.users import Sessions, UserDirectory

STATIC = Path(__file__).parent / "static"
MAX_BODY = 64 * 1024  # forms and JSON bodies are small; a bigger one is refused (413)

Part = Callable[[web.Application], AsyncIterator[None]]


def build_app(
    config: Config | RunningConfig,
    runtime: Runtime,
    *,
    clock: Clock | None = None,
    users: UserDirectory | None = None,
    dnd: DoNotDisturb | None = None,
) -> web.Application:
    """The HTTP API and pages over `runtime`'s CDR store and call service."""
    running = config if isinstance(config, RunningConfig) else RunningConfig(config)
    settings = running.current.settings
    app = web.Application(
        middlewares=[metrics.http_middleware, errors_middleware, auth_middleware],
        client_max_size=MAX_BODY,
    )
    app[CONFIG] = running
    app[RUNTIME] = runtime
    app[CLOCK] = clock or RealClock()
    app[LOGIN_THROTTLE] = LoginThrottle(app[CLOCK].monotonic)
    app[USERS] = users or UserDirectory(settings.users_file)
    app[SESSIONS] = Sessions(lifetime=settings.http_session_hours * 3600.0)
    app[DND] = dnd or DoNotDisturb()
    app[VOICEMAIL] = MessageStore(settings.voicemail_folder)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", metrics.metrics)
    api.add_routes(app.router)
    pages.add_routes(app.router)
    app.router.add_static("/static/", STATIC, append_version=True, name="static")
    app.on_response_prepare.append(_security_headers)
    return app


# Pages load nothing from elsewhere; pygal's inline <style> is the one exception to 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'none'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No framing, no sniffing, no referrer to other sites, nothing loaded from elsewhere."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path != "/" and not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


def daemon_app(
    config: RunningConfig,
    ari: AriEndpoint,
    runtime: Runtime,
    *,
    clock: Clock,
    first: tuple[Part, ...] = (),
) -> web.Application:
    """The whole daemon as one application: `first` parts (signals), then the daemon's."""
    app = build_app(config, runtime, clock=clock)
    app[ARI_ENDPOINT] = ari
    app.cleanup_ctx.extend([*first, *DAEMON_PARTS])
    return app
