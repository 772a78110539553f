"""The pair's lock: a PostgreSQL session-level advisory lock on a connection of its own.

Session-level (`pg_try_advisory_lock`), so PostgreSQL releases it the moment the session
ends: a pbxd killed with SIGKILL loses it as the kernel closes its socket. The connection is
dedicated (no pool) and in autocommit, so it is never "idle in transaction" (which a server's
idle_in_transaction_session_timeout would cut) and nothing else runs on it. The server is
asked to probe the peer often (tcp_keepalives_*): a pbxd cut off by the network loses its
session, and so the lock, within seconds instead of the kernel's default two hours.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from pbxd.cdr.db import PG_COMMAND_TIMEOUT, PG_CONNECT_TIMEOUT
from pbxd.cdr.url import connect_options

# What the server sets on the lock's session: a dead peer is noticed in about 2 + 1 * 2 s.
LOCK_SESSION_SETTINGS = {
    "application_name": "pbxd-pair-lock",
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "2",
    "idle_in_transaction_session_timeout": "0",
}

_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = :ns AND objid = :key AND objsubid = 2"
)


class AppLock(Protocol):
    """What a pair needs of its lock (PostgreSQL in production, a fake in tests)."""

    async def connect(self) -> None:
        """Open the lock's own connection (raises when the database cannot be reached)."""
        ...

    async def try_acquire(self) -> bool:
        """Take the lock if free; True when this session holds it now."""
        ...

    async def still_held(self) -> bool:
        """Whether this session holds the lock (raises when the connection is gone)."""
        ...

    async def close(self) -> None:
        """Release the lock by ending the session; never raises."""
        ...


def is_postgresql(url: str) -> bool:
    """True for a PostgreSQL URL: the only database an active/standby pair can share."""
    try:
        parsed, _ = connect_options(url)
    except ValueError:
        return False
    return parsed.get_backend_name() == "postgresql"


class PgAppLock:
    """`pg_try_advisory_lock(namespace, key)` held on a dedicated autocommit connection."""

    def __init__(self, url: str, key: tuple[int, int]) -> None:
        parsed, connect_args = connect_options(url)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError("an active/standby pair needs a PostgreSQL database")
        settings = dict(connect_args.get("server_settings") or {})
        settings.update(LOCK_SESSION_SETTINGS)
        connect_args["server_settings"] = settings
        connect_args.setdefault("timeout", PG_CONNECT_TIMEOUT)
        connect_args.setdefault("command_timeout", PG_COMMAND_TIMEOUT)
        self.key = key
        self._engine: AsyncEngine = create_async_engine(
            parsed, poolclass=NullPool, connect_args=connect_args
        )
        self._conn: AsyncConnection | None = None

    async def connect(self) -> None:
        """A fresh session (any previous one is closed first, releasing what it held)."""
        await self.close()
        conn = await self._engine.connect()
        self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")

    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise ConnectionError("the lock's connection is not open")
        return self._conn

    async def try_acquire(self) -> bool:
        """One non-blocking try: True if this session holds the lock now."""
        namespace, key = self.key
        result = await self._connection().execute(
            text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": namespace, "key": key}
        )
        return bool(result.scalar())

    async def still_held(self) -> bool:
        """Ask PostgreSQL (pg_locks) whether this very session holds the lock."""
        namespace, key = self.key
        result = await self._connection().execute(_HELD, {"ns": namespace, "key": key})
        return bool(result.scalar())

    async def close(self) -> None:
        """End the session (PostgreSQL releases the lock with it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # already broken: the server ends the session on its side
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    async def dispose(self) -> None:
        """Close and free the engine (the lock is no longer needed)."""
        await self.close()
        await self._engine.dispose()
