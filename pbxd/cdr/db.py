"""Engines and migrations for the CDR database (SQLite or PostgreSQL, always async).

`make_engine(url)` accepts what an admin would naturally write (`sqlite:///var/lib/pbxd/cdr.db`,
`postgresql://pbxd@db/pbx`) and picks the async driver. `migrate(engine)` runs Alembic's
`upgrade head` with a configuration built in code: no alembic.ini is needed at runtime.
A database already at the head revision is told by one query (`head_revision` reads the
migration files' own lines): Alembic, ~9 MB of modules, is imported only to migrate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

from pbxd.cdr.url import async_url as async_url  # re-exported: env.py and tests use it here
from pbxd.cdr.url import connect_options

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Waiting a little for a lock beats failing a write while `pbxd report` reads the file.
SQLITE_BUSY_TIMEOUT_MS = 5000

# An unreachable PostgreSQL must fail a write within seconds (asyncpg waits 60 s), so the
# writer can retry, spool, or let a stopping daemon stop; a hung statement likewise.
PG_CONNECT_TIMEOUT = 10.0
PG_COMMAND_TIMEOUT = 30.0

# Any constant shared by every pbxd process: serialises concurrent migrations on one database.
PG_MIGRATION_LOCK = 0x70627864  # "pbxd"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings: WAL for concurrent readers, FKs for cascades."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; only power loss can
        # lose the last transactions, an acceptable trade for CDRs.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # SQLite ignores foreign keys (and ON DELETE CASCADE) unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(url: str | URL) -> AsyncEngine:
    """An async engine for the CDR database, with pbxd's per-backend connection settings.

    SQLite: parent directories are created, WAL + synchronous=NORMAL + busy_timeout set on
    each connection; `sqlite://` (memory) shares one connection. PostgreSQL: libpq's
    options (`?sslmode=require`, `?options=-csearch_path%3Dpbxd`) are mapped to asyncpg's
    (`pbxd.cdr.url.connect_options`); an unknown one raises DatabaseUrlError.
    """
    parsed, connect_args = connect_options(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # Each in-memory connection is its own database: keep exactly one.
            engine = create_async_engine(parsed, poolclass=StaticPool)
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    connect_args.setdefault("timeout", PG_CONNECT_TIMEOUT)
    connect_args.setdefault("command_timeout", PG_COMMAND_TIMEOUT)
    # pool_pre_ping: a PostgreSQL restart must cost a reconnect, not a failed batch.
    return create_async_engine(parsed, connect_args=connect_args, pool_pre_ping=True)


def is_in_memory(url: str | URL) -> bool:
    """True for a SQLite database that lives in memory (`sqlite://`, `sqlite:///:memory:`)."""
    try:
        parsed = make_url(url)
    except (ValueError, ArgumentError):
        return False  # not a URL at all: opening it says why
    return parsed.get_backend_name() == "sqlite" and (parsed.database or "") in ("", ":memory:")


def why_not_writable(exc: BaseException, url: str | URL) -> str:
    """What an admin must fix when a write to the CDR database at `url` failed with `exc`."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    message = lines[0] if lines else type(orig).__name__
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not is_in_memory(parsed):
        path = Path(parsed.database or "").expanduser()
        if path.exists() and not os.access(path, os.W_OK):
            return f"{path} is read-only ({message})"
        if not os.access(path.parent, os.W_OK):
            return (
                f"the directory {path.parent} is read-only: SQLite writes its "
                f"{path.name}-wal and {path.name}-shm files beside the database ({message})"
            )
        return f"{message} ({path})"
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "42501":
        return (
            f"the database role lacks a privilege: {message} "
            "(pbxd needs SELECT, INSERT and UPDATE on calls, legs and number_traffic)"
        )
    if sqlstate == "25006":
        return f"the server accepts no writes (a standby?): {message}"
    return message


# `revision: str = "0007_number_traffic"` and `down_revision: ... = "0006_call_server"`
_REVISION_LINE = re.compile(
    r"^(?P<key>revision|down_revision)\b[^=]*=\s*(?:\"(?P<value>[^\"]*)\"|None)", re.MULTILINE
)


@cache
def head_revision() -> str:
    """The newest revision of the shipped migrations: the one no other revises.

    Read off the files (as Alembic reads them, but without importing it); a test checks
    it is Alembic's own head.
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")):
            if match["value"] is None:
                continue
            (revisions if match["key"] == "revision" else revised).add(match["value"])
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"the CDR migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    from alembic.config import Config  # only to migrate: see the module's docstring

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Explicit separator: silences Alembic's legacy-splitting deprecation warning.
    cfg.set_main_option("path_separator", "os")
    return cfg


def _upgrade(connection: Connection, revision: str = "head") -> None:
    """Run `alembic upgrade REVISION` on an open synchronous connection."""
    if connection.dialect.name == "postgresql":
        # Two daemons starting together must not both create the tables.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


@asynccontextmanager
async def schema_change(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction for migrations, committed on success.

    On SQLite, foreign keys are off for its duration (a migration that copies `calls` into a
    new table must not cascade its DROP to the legs) and checked before the commit.
    """
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Only outside a transaction does SQLite honour this pragma.
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
        try:
            async with conn.begin():
                yield conn
                if sqlite:
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).first()
                    if broken is not None:
                        raise RuntimeError(f"migration left a dangling foreign key: {broken}")
        finally:
            if sqlite:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the CDR schema to `revision` (the latest by default); a no-op when it is there."""
    if revision == "head" and await at_head(engine):
        return  # the usual start: nothing to migrate, Alembic never imported
    async with schema_change(engine) as conn:
        await conn.run_sync(_upgrade, revision)


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database is at the head revision (one query; Alembic not imported)."""
    async with engine.connect() as conn:
        return await conn.run_sync(stamped_revision) == head_revision()


async def migrate_apart(url: str | URL) -> None:
    """Bring a database to the head revision from a child process (`pbxd.cdr.migrate`), so
    this one never imports Alembic; raises MigrationFailed with the child's error."""
    text_url = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pbxd.cdr.migrate",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await child.communicate(text_url.encode())
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        lines = errors.decode("utf-8", "replace").strip().splitlines()
        raise MigrationFailed(lines[-1] if lines else f"exit status {child.returncode}")


class MigrationFailed(RuntimeError):
    """The child process could not migrate the database (its last error line)."""


def stamped_revision(connection: Connection) -> str | None:
    """The revision in Alembic's `alembic_version` table, read without Alembic (None before
    the first migration, or when several are stamped)."""
    if not sa_inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def current_revision(connection: Connection) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upsert_insert(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in `dialect`'s own form, the one with `ON CONFLICT` clauses."""
    return sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
