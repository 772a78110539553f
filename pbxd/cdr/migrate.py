"""`python -m pbxd.cdr.migrate`: bring the CDR database to the head revision, then exit.

`pbxd run` (before its event loop starts) and a store opened with `migrate_apart` migrate
from this child process (`pbxd.cdr.db.migrate_apart`) so that Alembic, ~9 MB of modules it
needs only for this, never loads into the process that holds the calls. The database URL
comes on stdin, never on the command line (it may hold a password).
"""

from __future__ import annotations

import asyncio
import sys

from pbxd.cdr.db import make_engine, migrate


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def main() -> int:
    """Migrate the database named on stdin; 0 on success, 1 (the error on stderr) if not."""
    url = sys.stdin.read().strip()
    try:
        asyncio.run(_migrate(url))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]  # SQLAlchemy adds a link line
        print(f"{type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
