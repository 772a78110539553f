"""structlog set-up: a readable console on a terminal, JSON lines otherwise (journald).

`redact_url` is the one place that knows how a password hides in a URL; every command that
prints a URL and every log line (tracebacks and other libraries' lines included) goes
through it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"password", "ari_password", "token", "api_key", "secret"})

# `scheme://user:password@host`, the password running to the LAST `@` of the URL: SQLAlchemy
# takes `u:hun/ter2@h` and admins write `u:p@ss@h`; hiding a host too is the safe mistake.
# A URL ends at whitespace or a quote (it sits in free text, JSON or a repr).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s'\"<>]*:)[^\s'\"<>]*@")
# `?password=…` (and libpq's sslpassword, ARI's api_key=user:password) in a query string.
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:ssl)?(?:password|passwd|pass|pwd|api_key|token|secret)=)[^&;#\s'\"<>]*",
    re.IGNORECASE,
)
_MASK = "***"
_MAX_NESTING = 8  # how deep log fields are searched for URLs


def redact_url(text: str) -> str:
    """`text` with every password of every URL in it replaced by ***.

    Covers `scheme://user:password@host` (whatever `/` or `@` the password holds, any
    `driver+dialect://` scheme) and secrets passed as query parameters (`?password=…`).
    """
    if "://" not in text and "=" not in text:
        return text
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>{_MASK}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\g<head>{_MASK}", text)
    return text


def _redacted(value: Any, depth: int = 0) -> Any:
    """`value` with URL passwords masked in every string it holds (dicts, lists, tuples)."""
    if type(value) is str:
        return redact_url(value)
    if depth >= _MAX_NESTING:
        return value
    if isinstance(value, dict):
        return {k: _redacted(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redacted(v, depth + 1) for v in value)
    return value


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a password or token reach a log line, whoever passed it (URLs included)."""
    for key in _SECRET_KEYS & event.keys():
        event[key] = _MASK
    for key, value in event.items():
        event[key] = _redacted(value)
    return event


def _redact_line(_: Any, __: str, line: Any) -> Any:
    """Last pass over the rendered line: catches a URL inside any object's repr."""
    return redact_url(line) if isinstance(line, str) else line


class _RedactingFormatter(logging.Formatter):
    """Lines of other libraries (asyncio, aiohttp, SQLAlchemy) get the same masking."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _install_stdlib_handler() -> None:
    """Route the standard library's warnings and tracebacks through the URL masking."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


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
            _redact_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _install_stdlib_handler()


class LogBudget:
    """How often a repeated warning may reach the log: a flood of bad input must not.

    The first `burst` occurrences are logged; after that one line per `interval` seconds,
    carrying how many were held back since the previous line. A quiet `interval` refills
    the burst. Times come from the caller's clock (monotonic seconds).
    """

    def __init__(self, burst: int = 10, interval: float = 60.0) -> None:
        self.burst = burst
        self.interval = interval
        self._used = 0
        self._last_seen: float | None = None
        self._last_logged = 0.0
        self._held = 0

    def take(self, now: float) -> int | None:
        """None: do not log this one (it is counted). Otherwise log it, saying that the
        returned number of occurrences were held back before it."""
        if self._last_seen is not None and now - self._last_seen >= self.interval:
            self._used = 0
        self._last_seen = now
        if self._used < self.burst or now - self._last_logged >= self.interval:
            self._used = min(self._used + 1, self.burst)
            self._last_logged = now
            held, self._held = self._held, 0
            return held
        self._held += 1
        return None


def get_logger(name: str) -> Any:
    """A structlog logger bound with the module name."""
    return structlog.get_logger(logger_name=name)
