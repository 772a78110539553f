"""The CDR store: a non-blocking write path for the call controller, and queries for reports.

Write path: `record_call` / `record_leg` snapshot the record and append it to an in-memory
queue (never awaiting, never touching the database). One writer task takes the queue in
batches, keeps only the latest snapshot of each call/leg within a batch, and upserts the
batch in one transaction, calls before legs (foreign key). Failures are retried with
backoff; a batch that keeps failing for a non-transient reason is retried row by row, so one
bad record is logged and dropped instead of blocking the others or killing the writer.

The queue is bounded (`max_backlog`): when the database is away for long, new records are
refused with a logged error rather than growing memory without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import structlog
from sqlalchemy import Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pbxd.cdr.db import make_engine, migrate
from pbxd.cdr.records import CallEventRecord, CallLogEntry, CallRecord, LegRecord
from pbxd.cdr.schema import (
    Base,
    CallEventRow,
    CallRow,
    LegRow,
    call_to_row,
    event_to_row,
    leg_to_row,
    row_to_call,
    row_to_event,
    row_to_leg,
)

# Not pbxd.log.get_logger: its `logger=` initial value collides with structlog's wrap_logger.
_log = structlog.get_logger(logger_name=__name__)

_CALLS: Final[Table] = Base.metadata.tables[CallRow.__tablename__]
_LEGS: Final[Table] = Base.metadata.tables[LegRow.__tablename__]
_EVENTS: Final[Table] = Base.metadata.tables[CallEventRow.__tablename__]

Record = CallRecord | LegRecord | CallEventRecord

# Backoff between retries of a failed write: short first (a lock), capped (a restart).
RETRY_INITIAL_DELAY = 0.05
RETRY_MAX_DELAY = 5.0
# Non-transient failures (constraint, bad value) are tried this often before isolating/dropping.
BAD_RECORD_ATTEMPTS = 2
# When refusing records for a full backlog, log the first refusal and then every Nth.
REFUSAL_LOG_EVERY = 1000


def _is_transient(exc: BaseException) -> bool:
    """True for failures of the database connection (retry forever), not of the data."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(
            exc, OperationalError | InterfaceError
        )
    return isinstance(exc, OSError | TimeoutError)


def _describe(exc: BaseException) -> str:
    """One line for the log: the exception type and its first line."""
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"


@dataclass(slots=True)
class _Waiter:
    """A `flush()` caller waiting until `target` queued records have been processed."""

    target: int
    future: asyncio.Future[None]


class CdrStore:
    """Call-detail records in SQLite or PostgreSQL; open with `await CdrStore.open(url)`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 200,
        max_backlog: int = 100_000,
        flush_interval: float = 0.2,
    ) -> None:
        """Wrap an already migrated engine; prefer `CdrStore.open`, which also migrates."""
        if batch_size < 1 or max_backlog < 1 or flush_interval < 0:
            raise ValueError("batch_size and max_backlog must be >= 1, flush_interval >= 0")
        self._engine = engine
        self._batch_size = batch_size
        self._max_backlog = max_backlog
        self._flush_interval = flush_interval
        self._queue: deque[Record] = deque()
        self._enqueued = 0  # records accepted so far
        self._processed = 0  # records committed or dropped so far
        self._refused = 0
        self._dropped = 0
        self._waiters: list[_Waiter] = []
        self._wakeup = asyncio.Event()  # something is queued (or we are closing)
        self._urgent = asyncio.Event()  # write now: flush(), close() or a full batch
        self._closing = False
        self._closed = False
        self._closed_event = asyncio.Event()
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported CDR database dialect {dialect!r}")
        self._call_upsert = _upsert(_CALLS, dialect)
        self._leg_upsert = _upsert(_LEGS, dialect)
        self._event_insert = _insert_once(_EVENTS, dialect)
        self._writer = asyncio.get_running_loop().create_task(
            self._run_writer(), name="pbxd-cdr-writer"
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        batch_size: int = 200,
        max_backlog: int = 100_000,
        flush_interval: float = 0.2,
    ) -> CdrStore:
        """Connect to `url` (sqlite:///… or postgresql://…), migrate, start the writer."""
        engine = make_engine(url)
        try:
            await migrate(engine)
            return cls(
                engine,
                batch_size=batch_size,
                max_backlog=max_backlog,
                flush_interval=flush_interval,
            )
        except BaseException:
            await engine.dispose()
            raise

    # ----------------------------------------------------------------- write path

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine (health checks, ad-hoc report queries)."""
        return self._engine

    @property
    def backlog(self) -> int:
        """Records queued and not yet taken by the writer."""
        return len(self._queue)

    @property
    def refused(self) -> int:
        """Records refused because the backlog was full or the store closed."""
        return self._refused

    @property
    def dropped(self) -> int:
        """Records the database rejected for good (logged one by one)."""
        return self._dropped

    def record_call(self, rec: CallRecord) -> bool:
        """Queue a snapshot of `rec` for writing; False (and a logged error) if refused."""
        return self._enqueue(rec.snapshot())

    def record_leg(self, rec: LegRecord) -> bool:
        """Queue a snapshot of `rec` for writing; False (and a logged error) if refused."""
        return self._enqueue(rec.snapshot())

    def record_event(self, rec: CallEventRecord) -> bool:
        """Queue one journal event (immutable: no snapshot); False (logged) if refused."""
        return self._enqueue(rec)

    def _enqueue(self, rec: Record) -> bool:
        """Append to the queue unless full or closing; never blocks, never raises."""
        if self._closing:
            self._refuse(rec, "store closing")
            return False
        if len(self._queue) >= self._max_backlog:
            self._refuse(rec, "backlog full")
            return False
        self._queue.append(rec)
        self._enqueued += 1
        self._wakeup.set()
        if len(self._queue) >= self._batch_size:
            self._urgent.set()
        return True

    def _refuse(self, rec: Record, reason: str) -> None:
        """Count a refusal; log the first one and every Nth so the log stays readable."""
        self._refused += 1
        if self._refused % REFUSAL_LOG_EVERY == 1 or REFUSAL_LOG_EVERY == 1:
            _log.error(
                "cdr_record_refused",
                reason=reason,
                call_id=rec.call_id,
                backlog=len(self._queue),
                max_backlog=self._max_backlog,
                refused_total=self._refused,
            )

    async def flush(self) -> None:
        """Wait until every record queued before this call is committed (or dropped)."""
        target = self._enqueued
        if self._processed >= target:
            return
        if self._writer.done():
            raise RuntimeError("the CDR writer has stopped; queued records were not written")
        waiter = _Waiter(target, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._urgent.set()
        self._wakeup.set()
        await waiter.future

    async def close(self, drain_timeout: float | None = 10.0) -> None:
        """Write everything queued, stop the writer, release connections.

        If the database stays unreachable for `drain_timeout` seconds, what is left is logged as
        lost and the store closes anyway (a stopping daemon must stop).
        """
        if self._closing:
            # Already closed, or another task is closing: wait for that one to finish.
            await self._closed_event.wait()
            return
        self._closing = True
        self._urgent.set()
        self._wakeup.set()
        try:
            if not self._writer.done():
                await asyncio.wait_for(asyncio.shield(self._writer), drain_timeout)
        except TimeoutError:
            _log.error(
                "cdr_close_timeout",
                lost=self._enqueued - self._processed,
                drain_timeout=drain_timeout,
            )
        finally:
            # Also reached when close() itself is cancelled: never leave the writer behind.
            if not self._writer.done():
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
            self._closed = True
            self._release_waiters(error=True)
            await self._engine.dispose()
            self._closed_event.set()

    async def __aenter__(self) -> CdrStore:
        """`async with await CdrStore.open(url) as store:` closes on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close (draining the queue)."""
        await self.close()

    # ------------------------------------------------------------------- writer

    async def _run_writer(self) -> None:
        """The single writer task: wait for records, linger briefly, write batches."""
        while True:
            await self._wakeup.wait()
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                continue
            if not self._urgent.is_set() and self._flush_interval > 0:
                # Let a burst of updates accumulate so they coalesce into one transaction.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._flush_interval)
            while self._queue:
                count = min(self._batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                try:
                    await self._write_batch(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A bug here must not stop CDRs for the rest of the daemon's life.
                    self._dropped += len(batch)
                    _log.exception("cdr_writer_error", dropped=len(batch))
                self._processed += count
                self._release_waiters()
            self._urgent.clear()

    def _release_waiters(self, *, error: bool = False) -> None:
        """Wake the flush() callers whose records are all processed (or all, on close)."""
        pending: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if self._processed >= waiter.target:
                waiter.future.set_result(None)
            elif error:
                waiter.future.set_exception(RuntimeError("CDR store closed before flushing"))
            else:
                pending.append(waiter)
        self._waiters = pending

    async def _write_batch(self, batch: Sequence[Record]) -> None:
        """Coalesce (latest snapshot wins), then upsert calls and legs in one transaction."""
        calls: dict[str, dict[str, Any]] = {}
        legs: dict[str, dict[str, Any]] = {}
        events: list[dict[str, Any]] = []
        for rec in batch:
            if isinstance(rec, CallEventRecord):
                events.append(event_to_row(rec))
                continue
            try:
                if isinstance(rec, CallRecord):
                    calls[rec.call_id] = call_to_row(rec)
                else:
                    legs[rec.leg_id] = leg_to_row(rec)
            except Exception as exc:  # e.g. naive and aware times mixed in one record
                key = rec.call_id if isinstance(rec, CallRecord) else rec.leg_id
                kind = "call" if isinstance(rec, CallRecord) else "leg"
                self._drop(kind, key, rec.call_id, exc)
        call_rows, leg_rows = list(calls.values()), list(legs.values())
        if not call_rows and not leg_rows and not events:
            return
        if await self._retrying("batch", lambda: self._commit(call_rows, leg_rows, events)) is None:
            return
        # The batch keeps failing on its data: find the culprit(s) one row at a time.
        _log.warning("cdr_batch_isolating", calls=len(call_rows), legs=len(leg_rows))
        for row in call_rows:
            error = await self._retrying(row["call_id"], self._commit_one(self._call_upsert, row))
            if error is not None:
                self._drop("call", row["call_id"], row["call_id"], error)
        for row in leg_rows:
            error = await self._retrying(row["leg_id"], self._commit_one(self._leg_upsert, row))
            if error is not None:
                self._drop("leg", row["leg_id"], row["call_id"], error)
        for row in events:
            error = await self._retrying(row["call_id"], self._commit_one(self._event_insert, row))
            if error is not None:
                self._drop("event", str(row["seq"]), row["call_id"], error)

    def _commit_one(self, stmt: Insert, row: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        """A retryable unit writing one row in its own transaction."""

        async def run() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(stmt, [row])

        return run

    async def _commit(
        self,
        call_rows: list[dict[str, Any]],
        leg_rows: list[dict[str, Any]],
        event_rows: list[dict[str, Any]] | None = None,
    ) -> None:
        """One transaction: calls first, so legs find their call (foreign key); then events."""
        async with self._engine.begin() as conn:
            if call_rows:
                await conn.execute(self._call_upsert, call_rows)
            if leg_rows:
                await conn.execute(self._leg_upsert, leg_rows)
            if event_rows:
                await conn.execute(self._event_insert, event_rows)

    async def _retrying(
        self, what: str, attempt: Callable[[], Awaitable[None]]
    ) -> Exception | None:
        """Run `attempt()` until it succeeds (None) or fails for a non-transient reason.

        Connection failures are retried for as long as it takes (close() bounds that);
        data failures get BAD_RECORD_ATTEMPTS tries, then False.
        """
        delay = RETRY_INITIAL_DELAY
        tries = 0
        while True:
            tries += 1
            try:
                await attempt()
                return None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                transient = _is_transient(exc)
                if not transient and tries >= BAD_RECORD_ATTEMPTS:
                    _log.warning("cdr_write_failed", unit=what, tries=tries, error=_describe(exc))
                    return exc
                _log.warning(
                    "cdr_write_retry",
                    unit=what,
                    tries=tries,
                    transient=transient,
                    retry_in=delay,
                    error=_describe(exc),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    def _drop(self, kind: str, key: str, call_id: str, exc: BaseException) -> None:
        """Log and count a record that cannot be written at all."""
        self._dropped += 1
        _log.error("cdr_record_dropped", kind=kind, id=key, call_id=call_id, error=_describe(exc))

    # ---------------------------------------------------------------- read side

    def _connect(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads; refuses once the store is closed."""
        if self._closed:
            raise RuntimeError("CdrStore is closed")
        return self._engine.connect()

    async def open_calls(self) -> list[CallRecord]:
        """Calls not yet ended (ended_at IS NULL), oldest first: what a restart must settle."""
        query = (
            select(_CALLS)
            .where(_CALLS.c.ended_at.is_(None))
            .order_by(_CALLS.c.started_at, _CALLS.c.call_id)
        )
        async with self._connect() as conn:
            result = await conn.execute(query)
            return [row_to_call(row) for row in result.mappings()]

    async def get_call(self, call_id: str) -> CallLogEntry | None:
        """One call with its legs, or None if it was never (or not yet) written."""
        async with self._connect() as conn:
            result = await conn.execute(select(_CALLS).where(_CALLS.c.call_id == call_id))
            row = result.mappings().first()
            if row is None:
                return None
            legs = await self._legs(conn, [call_id])
        return CallLogEntry(call=row_to_call(row), legs=legs.get(call_id, []))

    async def events_of(self, call_id: str) -> list[CallEventRecord]:
        """The journal of one call, in order (empty for a call written before journals)."""
        query = select(_EVENTS).where(_EVENTS.c.call_id == call_id).order_by(_EVENTS.c.seq)
        async with self._connect() as conn:
            result = await conn.execute(query)
            return [row_to_event(row) for row in result.mappings()]

    async def legs_of(self, call_id: str) -> list[LegRecord]:
        """The legs of one call, ordered by start."""
        async with self._connect() as conn:
            return (await self._legs(conn, [call_id])).get(call_id, [])

    async def call_log(
        self,
        did: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[CallLogEntry]:
        """Calls to `did` started in [since, until), newest first, each with its legs.

        Only committed records are seen: `await flush()` first to read your own writes.
        """
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime")
        query = select(_CALLS).where(_CALLS.c.did == did)
        if since is not None:
            query = query.where(_CALLS.c.started_at >= since)
        if until is not None:
            query = query.where(_CALLS.c.started_at < until)
        query = query.order_by(_CALLS.c.started_at.desc(), _CALLS.c.call_id.desc())
        if limit is not None:
            query = query.limit(limit)
        async with self._connect() as conn:
            result = await conn.execute(query)
            calls = [row_to_call(row) for row in result.mappings()]
            legs = await self._legs(conn, [c.call_id for c in calls])
        return [CallLogEntry(call=c, legs=legs.get(c.call_id, [])) for c in calls]

    async def _legs(
        self, conn: AsyncConnection, call_ids: Sequence[str]
    ) -> dict[str, list[LegRecord]]:
        """Legs of the given calls, grouped by call, each group ordered by start."""
        grouped: dict[str, list[LegRecord]] = {}
        # Chunked: SQLite caps bound parameters per statement.
        for i in range(0, len(call_ids), 500):
            chunk = call_ids[i : i + 500]
            query = (
                select(_LEGS)
                .where(_LEGS.c.call_id.in_(chunk))
                .order_by(_LEGS.c.started_at, _LEGS.c.leg_id)
            )
            result = await conn.execute(query)
            for row in result.mappings():
                leg = row_to_leg(row)
                grouped.setdefault(leg.call_id, []).append(leg)
        return grouped


def _upsert(table: Table, dialect: str) -> Insert:
    """INSERT … ON CONFLICT (pk) DO UPDATE SET every other column = excluded."""
    if dialect == "sqlite":
        sqlite_stmt = sqlite.insert(table)
        return sqlite_stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c.name: sqlite_stmt.excluded[c.name] for c in table.columns if not c.primary_key},
        )
    pg_stmt = postgresql.insert(table)
    return pg_stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c.name: pg_stmt.excluded[c.name] for c in table.columns if not c.primary_key},
    )


def _insert_once(table: Table, dialect: str) -> Insert:
    """INSERT … ON CONFLICT (pk) DO NOTHING: a retried batch never writes an event twice."""
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(
            index_elements=list(table.primary_key.columns)
        )
    return postgresql.insert(table).on_conflict_do_nothing(
        index_elements=list(table.primary_key.columns)
    )
