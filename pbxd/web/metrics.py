"""`/metrics` (Prometheus text format) and the count of HTTP requests.

The series themselves are defined in `pbxd.metrics`; what is read from the running daemon
at scrape time (calls in progress, ARI state, CDR backlog) is collected there too.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from pbxd import metrics as series
from pbxd.web.errors import Handler


def route_label(request: web.Request) -> str:
    """The route's pattern (`/api/numbers/{number}/calls`), never the number itself."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def http_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route pattern, method and status; time it."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        labels = (route_label(request), request.method, str(status))
        series.HTTP_REQUESTS.labels(*labels).inc()
        series.HTTP_SECONDS.labels(labels[0]).observe(time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    """Every pbxd series in Prometheus' text format (needs a token, like the API)."""
    body = series.exposition()
    content_type, _, charset = CONTENT_TYPE_LATEST.partition("; charset=")
    return web.Response(body=body, content_type=content_type, charset=charset or "utf-8")
