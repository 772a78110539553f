"""Alembic environment for pbxd's CDR tables.

pbxd calls `alembic upgrade head` itself (`pbxd.cdr.db.migrate`) and passes an open
connection in `config.attributes["connection"]`. An admin running `alembic` by hand gets
the URL from PBXD_DATABASE_URL or `sqlalchemy.url`.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from pbxd.cdr.db import async_url, make_engine, schema_change
from pbxd.cdr.schema import Base

config = context.config
target_metadata = Base.metadata

# Only when run by hand from alembic.ini: pbxd itself logs through structlog.
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    """The URL an admin asked for: environment first, then alembic.ini."""
    url = os.environ.get("PBXD_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set PBXD_DATABASE_URL (or sqlalchemy.url in alembic.ini)")
    return url


def _run(connection: Connection) -> None:
    """Run the migrations on a synchronous connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: future migrations get batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    """Open our own engine (hand-run `alembic`), migrate, dispose."""
    engine = make_engine(_database_url())
    try:
        async with schema_change(engine) as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    """Emit SQL instead of executing it (`alembic upgrade head --sql`)."""
    context.configure(
        url=async_url(_database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
elif context.is_offline_mode():
    _run_offline()
else:
    asyncio.run(_run_async())
