"""Exceptions raised by the ARI client, one class per failure a call controller reacts to."""

from __future__ import annotations

import json


class AriError(Exception):
    """An ARI request failed; `status` is the HTTP status, or None when no answer came back."""

    def __init__(self, status: int | None, message: str, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        super().__init__(status, message, method, path)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = "no response" if self.status is None else f"HTTP {self.status}"
        prefix = f"ARI {where}" if where else "ARI"
        return f"{prefix}: {status}: {self.message}"


class AriBadRequest(AriError):
    """400: invalid parameters (e.g. originate without app or extension)."""


class AriNotFound(AriError):
    """404: the channel, bridge, endpoint or application does not exist (any more)."""


class AriConflict(AriError):
    """409: the resource is in the wrong place, e.g. a channel not (yet) in Stasis."""


class AriPreconditionFailed(AriError):
    """412: the channel is in a state that forbids the operation."""


class AriUnprocessable(AriError):
    """422: the request is well-formed but refers to something unusable."""


class AriServerError(AriError):
    """5xx: Asterisk failed, e.g. "Allocation failed" for an unknown endpoint."""


class AriUnavailable(AriError):
    """Asterisk could not be reached: connection refused, timeout or WebSocket failure."""

    def __init__(self, message: str, method: str = "", path: str = "") -> None:
        super().__init__(None, message, method, path)
        self.args = (message, method, path)  # so the exception pickles with its own signature


class AriParseError(ValueError):
    """ARI JSON did not have the shape Asterisk documents (missing field, wrong type)."""


class AriEventError(AriParseError):
    """An event from the WebSocket could not be parsed."""


_STATUS_CLASSES: dict[int, type[AriError]] = {
    400: AriBadRequest,
    404: AriNotFound,
    409: AriConflict,
    412: AriPreconditionFailed,
    422: AriUnprocessable,
}


def error_message(body: str) -> str:
    """Asterisk's `message` (or `error`) field of an error body, else the body text itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(data, dict):
        for key in ("message", "error"):
            value = data.get(key)
            if isinstance(value, str):
                return value
    return body.strip()


def error_for_status(status: int, message: str, method: str, path: str) -> AriError:
    """The exception matching an HTTP error status (plain AriError for unlisted 4xx)."""
    if status >= 500:
        return AriServerError(status, message, method, path)
    return _STATUS_CLASSES.get(status, AriError)(status, message, method, path)
