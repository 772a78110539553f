"""CDR database URLs as admins write them, read once for both `pbxd check` and the engine.

Admins write libpq's options (`?sslmode=require`, `?options=-csearch_path%3Dpbxd`) and
SQLAlchemy hands every query option to the driver as a keyword: asyncpg knows none of them
and fails with a TypeError at the first connection. `connect_options` maps each option to
what asyncpg takes and refuses the rest, so `pbxd check` says what is wrong before `run`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from pbxd.config.diagnostics import did_you_mean

ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TARGET_SESSION_ATTRS = ("any", "primary", "standby", "read-write", "read-only", "prefer-standby")

# libpq options asyncpg reads from a DSN (we hand it one holding only these): value check.
_PG_DSN_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "sslmode": SSL_MODES,
    "sslcert": None,
    "sslkey": None,
    "sslrootcert": None,
    "sslcrl": None,
    "sslpassword": None,
    "sslnegotiation": ("postgres", "direct"),
    "ssl_min_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "ssl_max_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "target_session_attrs": _TARGET_SESSION_ATTRS,
    "krbsrvname": None,
    "gsslib": ("gssapi", "sspi"),
    "passfile": None,
    "application_name": None,
}
# Taken by SQLAlchemy's asyncpg dialect itself (host/port: a Unix socket, several hosts).
_PG_PASSED = frozenset({"host", "port", "user", "password", "prepared_statement_cache_size"})
_PG_SPECIAL = frozenset({"options", "connect_timeout", "ssl"})
# Python's sqlite3 and SQLite's own URI parameters (the latter only with uri=true).
_SQLITE_PASSED = frozenset({"timeout", "uri", "check_same_thread", "cached_statements"})
_SQLITE_URI = frozenset({"mode", "cache", "immutable", "nolock", "vfs", "psow"})

SCHEMES_HINT = "use sqlite:///path/to/cdr.db or postgresql://user@host/db"


class DatabaseUrlError(ValueError):
    """A database URL pbxd cannot use, with a message for the admin (never the password)."""


def async_url(url: str | URL) -> URL:
    """Map `sqlite:///…` / `postgresql://…` to their async drivers; refuse anything else."""
    try:
        parsed = make_url(url)
    except ValueError:  # SQLAlchemy's int(port); its message never holds the password
        raise DatabaseUrlError("the port must be a number from 1 to 65535") from None
    except ArgumentError:
        raise DatabaseUrlError(f"not a database URL: {SCHEMES_HINT}") from None
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        raise DatabaseUrlError("the port must be a number from 1 to 65535")
    if parsed.host is not None and "@" in parsed.host:
        # SQLAlchemy ends the password at the first `@`: `u:p@ss@h` would dial host `ss@h`.
        raise DatabaseUrlError("an '@' in the user or password must be written %40")
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise DatabaseUrlError(
            f"unsupported CDR database URL scheme {parsed.drivername!r}: {SCHEMES_HINT}"
        )
    return parsed.set(drivername=driver)


def pg_server_settings(options: str) -> dict[str, str]:
    """Parse libpq's `options=-c name=value …` into asyncpg `server_settings`."""
    settings: dict[str, str] = {}
    try:
        tokens = shlex.split(options)
    except ValueError as exc:
        raise DatabaseUrlError(f"PostgreSQL options: {exc}") from None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "-c" and i + 1 < len(tokens):
            i += 1
            token = tokens[i]
        elif token.startswith(("-c", "--")):
            token = token[2:]
        else:
            raise DatabaseUrlError(
                f"unsupported PostgreSQL options token {token!r} (use -c name=value)"
            )
        name, sep, value = token.partition("=")
        if not sep:
            raise DatabaseUrlError(f"PostgreSQL option {token!r} lacks '=value'")
        settings[name.replace("-", "_")] = value
        i += 1
    return settings


def _single(name: str, value: str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        raise DatabaseUrlError(f"option '{name}' is given more than once")
    return value


def _one_of(name: str, value: str, allowed: Iterable[str]) -> str:
    choices = tuple(allowed)
    if value not in choices:
        raise DatabaseUrlError(f"option {name}={value[:40]!r} must be one of {', '.join(choices)}")
    return value


def _unknown(name: str, known: Iterable[str], driver: str) -> DatabaseUrlError:
    hint = did_you_mean(name, known)
    return DatabaseUrlError(
        f"option '{name[:40]}' is not understood by {driver}{hint}; "
        f"known: {', '.join(sorted(known))}"
    )


def _postgres(url: URL) -> tuple[URL, dict[str, Any]]:
    connect_args: dict[str, Any] = {}
    dsn: dict[str, str] = {}
    handled: list[str] = []
    for name, raw in url.query.items():
        if name in _PG_PASSED:
            continue
        handled.append(name)
        if name in _PG_DSN_OPTIONS:
            value = _single(name, raw)
            allowed = _PG_DSN_OPTIONS[name]
            dsn[name] = value if allowed is None else _one_of(name, value, allowed)
        elif name == "ssl":  # asyncpg's own spelling of sslmode
            value = _single(name, raw).lower()
            value = {"true": "require", "false": "disable"}.get(value, value)
            dsn["sslmode"] = _one_of(name, value, SSL_MODES)
        elif name == "options":
            connect_args["server_settings"] = pg_server_settings(
                raw if isinstance(raw, str) else " ".join(raw)
            )
        elif name == "connect_timeout":
            value = _single(name, raw)
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not 0 < seconds <= 3600:
                raise DatabaseUrlError("option connect_timeout must be seconds from 1 to 3600")
            connect_args["timeout"] = seconds
        else:
            known = {*_PG_PASSED, *_PG_DSN_OPTIONS, *_PG_SPECIAL}
            raise _unknown(name, known, "PostgreSQL (asyncpg)")
    if dsn:
        # asyncpg reads libpq's SSL options from a DSN only; host, user … stay keywords.
        connect_args["dsn"] = "postgresql://?" + urlencode(dsn)
    return url.difference_update_query(handled), connect_args


def _sqlite(url: URL) -> URL:
    uri = str(url.query.get("uri", "")).lower() == "true"
    for name, raw in url.query.items():
        _single(name, raw)
        if name in _SQLITE_URI and not uri:
            raise DatabaseUrlError(f"option '{name}' needs uri=true beside it")
        if name not in _SQLITE_PASSED | _SQLITE_URI:
            raise _unknown(name, _SQLITE_PASSED | _SQLITE_URI, "SQLite")
    return url


def connect_options(url: str | URL) -> tuple[URL, dict[str, Any]]:
    """The async URL to give SQLAlchemy and the driver's `connect_args`; DatabaseUrlError else."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite(parsed), {}
    return _postgres(parsed)


def check_database_url(url: str) -> str | None:
    """Why `url` cannot be used as the CDR database (None when it can); never echoes it."""
    try:
        connect_options(url)
    except DatabaseUrlError as exc:
        return str(exc)
    return None
