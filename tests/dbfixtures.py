"""Database targets for tests: a SQLite file, or a private schema in a real PostgreSQL.

Used by `tests/cdr/conftest.py` (and anyone else needing both backends):

    @pytest.fixture(params=BACKENDS)
    async def db_url(request, tmp_path):
        async with database_url(request.param, tmp_path) as url:
            yield url

PostgreSQL: `PBXD_TEST_POSTGRES_URL` (default `postgresql+asyncpg://postgres@127.0.0.1:5432/test`).
Each test gets a freshly created schema `pbxd_test_<random>`, reached through the libpq
`options=-csearch_path=<schema>` URL parameter, so its tables, rows and Alembic version table
are its own; the schema is dropped (CASCADE) afterwards. When PostgreSQL cannot be reached the
test is skipped, unless `CI` is set: then it fails, because CI must test both backends.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from pbxd.cdr.db import async_url

POSTGRES_URL_ENV = "PBXD_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
# An unreachable host must not eat the whole 60 s test timeout.
CONNECT_TIMEOUT = 5.0

# One failed connection attempt per session is enough to know PostgreSQL is away.
_unreachable: dict[str, str] = {}


def postgres_admin_url() -> str:
    """The PostgreSQL server tests use (async driver), from the environment or the default."""
    raw = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    return async_url(raw).render_as_string(hide_password=False)


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def postgres_unavailable(url: str, reason: str) -> NoReturn:
    """Skip the test, or fail it when `CI` is set (CI must exercise PostgreSQL)."""
    where = _redacted(url)
    if os.environ.get("CI"):
        pytest.fail(
            f"PostgreSQL required in CI at {where} ({POSTGRES_URL_ENV} to change): {reason}",
            pytrace=False,
        )
    pytest.skip(f"PostgreSQL not reachable at {where}: {reason}")


def _admin_engine(url: str) -> AsyncEngine:
    """A pool-less engine for creating/dropping schemas (no connection outlives its use)."""
    return create_async_engine(url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT})


@asynccontextmanager
async def postgres_schema_url(admin_url: str | None = None) -> AsyncIterator[str]:
    """Create a fresh schema, yield a URL whose connections use it, drop it afterwards."""
    url = admin_url or postgres_admin_url()
    if url in _unreachable:
        postgres_unavailable(url, _unreachable[url])
    schema = f"pbxd_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine(url)
    try:
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            _unreachable[url] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            postgres_unavailable(url, _unreachable[url])
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield scoped.render_as_string(hide_password=False)
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await engine.dispose()


def sqlite_url(directory: Path) -> str:
    """A SQLite URL in `directory` (in a subfolder, to exercise parent-directory creation)."""
    return f"sqlite:///{directory / 'var' / 'cdr.db'}"


@asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A private, empty database URL for `backend` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
    elif backend == "postgresql":
        async with postgres_schema_url() as url:
            yield url
    else:
        raise ValueError(f"unknown test database backend {backend!r}")


@asynccontextmanager
async def postgres_role_url() -> AsyncIterator[tuple[str, str, str]]:
    """A fresh schema and a LOGIN role of its own: (role, URL as that role, admin URL).

    Both URLs reach the schema (search_path). The role may use and create in the schema, so
    it owns the tables it migrates; a test that wants less grants less through the admin URL.
    Roles are cluster-wide: the name is random, and the role is dropped afterwards.
    """
    admin = postgres_admin_url()
    async with postgres_schema_url(admin) as scoped_admin:
        schema = make_url(scoped_admin).query["options"]
        schema_name = str(schema).removeprefix("-csearch_path=")
        role = f"pbxd_role_{uuid.uuid4().hex[:12]}"
        engine = _admin_engine(admin)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
                await conn.execute(
                    text(f'GRANT USAGE, CREATE ON SCHEMA "{schema_name}" TO "{role}"')
                )
            as_role = make_url(scoped_admin).set(username=role, password=None)
            yield role, as_role.render_as_string(hide_password=False), scoped_admin
        finally:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"
                    ),
                    {"r": role},
                )
                await conn.execute(text(f'DROP OWNED BY "{role}"'))
                await conn.execute(text(f'DROP ROLE "{role}"'))
            await engine.dispose()


@asynccontextmanager
async def sqlite_held_locked(path: Path) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Another process holds `path` with BEGIN EXCLUSIVE until the yielded release() runs."""
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.execute('COMMIT')\n"
    )
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    async with asyncio.timeout(10):
        assert await holder.stdout.readline() == b"locked\n"

    async def release() -> None:
        if holder.returncode is None:
            assert holder.stdin is not None
            holder.stdin.write(b"\n")
            await holder.stdin.drain()
            async with asyncio.timeout(10):
                await holder.wait()

    try:
        yield release
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
