"""Errors of the HTTP API: a stable code a script can test, a message a person can act on.

Every error leaves as JSON `{"error": {"code": …, "message": …, "field": …}}` (pages get the
same words in HTML); an unexpected exception is logged and answered `internal_error`, the
daemon goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

log = structlog.get_logger("pbxd.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than success, with its HTTP status and stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds, sent as Retry-After (429)

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON body: `{"error": {"code", "message"[, "field"]}}`."""
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def bad_filter(field: str, message: str) -> ApiError:
    """400 `bad_filter` naming the query parameter that is wrong."""
    return ApiError(400, "bad_filter", f"{field}: {message}", field=field)


def not_found(code: str, message: str) -> ApiError:
    """404 with a stable code (`unknown_number`, `unknown_call`, `unknown_message`, …)."""
    return ApiError(404, code, message)


# aiohttp's own refusals (no route, wrong method), mapped to our codes.
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


def wants_html(request: web.Request) -> bool:
    """A browser asking for a page (not the API, not a script asking for JSON)."""
    if request.path.startswith("/api/") or request.path == "/metrics":
        return False
    return "text/html" in request.headers.get("Accept", "")


def error_response(request: web.Request, error: ApiError) -> web.Response:
    """The error as JSON, or as a small HTML page for a browser."""
    if wants_html(request):
        # Imported here: the page module needs templates, this one must not.
        from pbxd.web.pages import error_page

        response = error_page(request, error)
    else:
        headers = {"WWW-Authenticate": 'Bearer realm="pbxd"'} if error.status == 401 else None
        response = web.json_response(error.body(), status=error.status, headers=headers)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ApiError, aiohttp's HTTP errors and bugs into stable JSON errors."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects pass through
        code = _HTTP_CODES.get(exc.status, f"http_{exc.status}")
        return error_response(request, ApiError(exc.status, code, exc.reason))
    except Exception:
        # A bug in one handler must not stop the daemon; the log has the traceback.
        log.exception("http_handler_failed", method=request.method, path=request.path)
        return error_response(
            request, ApiError(500, "internal_error", "pbxd failed to answer; see its log")
        )
