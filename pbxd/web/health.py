"""`/healthz` (the process answers) and `/readyz` (pbxd takes calls), for probes.

Ready means what systemd's READY=1 means: the ARI event stream is connected and the calls a
previous run left have been recovered. Until then `/readyz` answers 503 with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from pbxd.calls.runtime import CallService
from pbxd.web.state import RUNTIME


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether pbxd takes calls, and the one line that says where it stands."""

    ready: bool
    status: str


def readiness(service: CallService | None) -> Readiness:
    """Where start-up stands: `connecting to ARI`, `…recovering calls…`, or ready."""
    if service is None:
        return Readiness(False, "opening the CDR database")
    daemon, stream = service.daemon, service.stream
    if daemon is None or stream is None or stream.connections == 0:
        return Readiness(False, "connecting to ARI")
    if not daemon.recovered.is_set():
        return Readiness(False, "ARI connected; recovering calls left by the previous run")
    count = len(daemon.calls)
    calls = f"{count} call{'' if count == 1 else 's'} in progress"
    if not stream.connected:
        return Readiness(False, f"ARI reconnecting; {calls}")
    return Readiness(True, f"ARI connected; {calls}")


async def healthz(request: web.Request) -> web.Response:
    """200 while the process and its event loop answer."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """200 when pbxd takes calls; 503 `not_ready` with the reason otherwise."""
    state = readiness(request.app[RUNTIME].service)
    if state.ready:
        return web.json_response({"ready": True, "status": state.status})
    body = {"ready": False, "error": {"code": "not_ready", "message": state.status}}
    return web.json_response(body, status=503)
