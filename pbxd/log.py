"""structlog set-up: a readable console on a terminal, JSON lines otherwise (journald)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"password", "ari_password", "token", "api_key", "secret"})

# `scheme://user:password@host`: the password part of a URL's userinfo.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)[^/@\s]*@")


def redact_url(text: str) -> str:
    """`text` with the password of any `scheme://user:password@host` URL replaced by ***."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text) if "@" in text else text


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a password or token reach a log line, whoever passed it (URLs included)."""
    for key in _SECRET_KEYS & event.keys():
        event[key] = "***"
    for key, value in event.items():
        if type(value) is str and "://" in value:
            event[key] = redact_url(value)
    return event


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog once for the process; `json=None` picks by whether stderr is a TTY."""
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_secrets,  # after format_exc_info: tracebacks get redacted too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound with the module name."""
    return structlog.get_logger(logger_name=name)
