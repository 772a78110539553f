"""URL handling, per-backend connection settings, and the PostgreSQL test fixture policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from dbfixtures import database_url, postgres_unavailable
from sqlalchemy import text

from pbxd.cdr.db import MIGRATIONS_DIR, async_url, make_engine
from pbxd.cdr.store import CdrStore
from pbxd.cdr.url import pg_server_settings


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///var/lib/pbxd/cdr.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///cdr.db", "sqlite+aiosqlite"),
        ("postgresql://pbxd@db/pbx", "postgresql+asyncpg"),
        ("postgres://pbxd@db/pbx", "postgresql+asyncpg"),
        ("postgresql+asyncpg://pbxd@db/pbx", "postgresql+asyncpg"),
    ],
)
def test_plain_urls_get_the_async_driver(url: str, driver: str) -> None:
    assert async_url(url).drivername == driver


def test_other_drivers_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        async_url("mysql://pbxd@db/pbx")
    with pytest.raises(ValueError, match="unsupported"):
        async_url("postgresql+psycopg2://pbxd@db/pbx")


def test_libpq_options_become_server_settings() -> None:
    assert pg_server_settings("-csearch_path=pbxd -c statement_timeout=5000") == {
        "search_path": "pbxd",
        "statement_timeout": "5000",
    }
    assert pg_server_settings("--application-name=pbxd") == {"application_name": "pbxd"}
    with pytest.raises(ValueError):
        pg_server_settings("-c search_path")
    with pytest.raises(ValueError):
        pg_server_settings("search_path=x")


async def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "cdr.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await engine.dispose()
    assert db.parent.is_dir()  # parent directories created
    # synchronous: 1 is NORMAL.
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }


async def test_in_memory_sqlite_keeps_one_database() -> None:
    store = await CdrStore.open("sqlite://")
    try:
        assert await store.open_calls() == []  # the migrated tables are visible
    finally:
        await store.close()


def test_unreachable_postgres_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql+asyncpg://postgres:hunter2@127.0.0.1:1/test"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        postgres_unavailable(url, "refused")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(
        pytest.fail.Exception, match=r"PostgreSQL required in CI at .*127\.0\.0\.1:1"
    ) as failure:
        postgres_unavailable(url, "refused")
    assert "hunter2" not in str(failure.value)


def test_migrations_ship_with_the_package() -> None:
    # env.py is only installed because migrations/ is a package (setup.cfg's package_data
    # covers *.ini, *.mako and versions/*.py, not env.py).
    for name in ("__init__.py", "env.py", "script.py.mako", "alembic.ini"):
        assert (MIGRATIONS_DIR / name).is_file(), name
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


async def test_run_connects_with_sslmode_disable(tmp_path: Path) -> None:
    """The TypeError of the issue: asyncpg got `sslmode=` as a keyword and refused it."""
    async with database_url("postgresql", tmp_path) as url:
        engine = make_engine(f"{url}&sslmode=disable&connect_timeout=5")
        try:
            async with engine.connect() as conn:
                ssl_in_use = await conn.exec_driver_sql(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                )
                assert ssl_in_use.scalar() is False
        finally:
            await engine.dispose()
