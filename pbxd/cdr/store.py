"""The CDR store: a non-blocking write path for the call controller, and queries for reports.

Write path: `record_call` / `record_leg` snapshot the record and append it to an in-memory
queue (never awaiting). One writer task takes the queue in batches, keeps only the latest
snapshot of each call/leg within a batch, and upserts the batch in one transaction, calls
before legs (foreign key). Upserts are keyed by call and leg id, so a snapshot written twice
(a replay after a crash mid-write) never doubles a row; snapshots are written in the order
they were recorded, so the last one wins. The same transaction recounts the calls' traffic
slots (`traffic.py`), the rollup reports read.

A database that is away is an outage, never a reason to drop a record: refused connections,
logins refused, connection limits, a server starting up, shutting down or in recovery,
terminated sessions, locks, timeouts are all retried with backoff for as long as it takes.
Only a row the database rejects on its merits (a constraint, a bad value) is refused, and it
is logged whole (`cdr_row_rejected`) so it can be re-entered by hand.

With a spool (`spool.CdrSpool`, `pbxd run` keeps it under state_dir), records leave memory
for a local fsync'd file when the memory queue is full (`max_backlog`), when an outage has
lasted `spool_after` seconds, and when the store closes with records still unwritten. The
spool is written first when the database answers again, and `open` replays what a previous
run left before returning. Without a spool (reports, `pbxd simulate`), a full queue refuses
new records and a close that times out loses what is left; both are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Final

import structlog
from sqlalchemy import Insert, Table, and_, or_, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pbxd.cdr import traffic, usage
from pbxd.cdr.db import (
    at_head,
    is_in_memory,
    make_engine,
    migrate,
    upsert_insert,
    why_not_writable,
)
from pbxd.cdr.db import migrate_apart as migrate_in_child
from pbxd.cdr.records import CallEventRecord, CallLogEntry, CallRecord, Disposition, LegRecord
from pbxd.cdr.schema import (
    Base,
    CallEventRow,
    CallRow,
    LegRow,
    StoredRecord,
    call_to_row,
    leg_to_row,
    record_to_row,
    row_to_call,
    row_to_event,
    row_to_leg,
)
from pbxd.cdr.spool import CdrSpool, SpoolEntry, encode_line, record_fields
from pbxd.dialplan.limits import Billable

# Not pbxd.log.get_logger: its `logger=` initial value collides with structlog's wrap_logger.
_log = structlog.get_logger(logger_name=__name__)

_CALLS: Final[Table] = Base.metadata.tables[CallRow.__tablename__]
_LEGS: Final[Table] = Base.metadata.tables[LegRow.__tablename__]

# Backoff between retries of a failed write: short first (a lock), capped (a restart).
RETRY_INITIAL_DELAY = 0.05
RETRY_MAX_DELAY = 5.0
# A full memory queue spills this many of its oldest records at a time: encoding and fsync
# run on the event loop, so a spill must stay short (the calls wait meanwhile).
SPILL_CHUNK = 1000
# When refusing records for a full backlog, log the first refusal and then every Nth.
REFUSAL_LOG_EVERY = 1000
# SQLSTATE classes of a row refused on its merits: 22 data exception, 23 integrity constraint.
_ROW_SQLSTATE_CLASSES: Final = frozenset({"22", "23"})

_EVENTS: Final[Table] = Base.metadata.tables[CallEventRow.__tablename__]
_Queued = tuple[int, StoredRecord]


class CdrNotWritableError(RuntimeError):
    """The CDR database can be read but not written; the message says why."""


def rejected_on_merits(exc: BaseException) -> bool:
    """True when the database refused the row itself (retrying cannot help); else an outage."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _ROW_SQLSTATE_CLASSES:
            return True
        # asyncpg's own DataError (a value it cannot encode) is a ValueError.
        return isinstance(getattr(exc.orig, "__cause__", None), ValueError)
    # A bind parameter our column types refuse (a naive time), before any SQL ran.
    return isinstance(exc, StatementError | ValueError | TypeError)


def _describe(exc: BaseException) -> str:
    """One line for the log: the exception type and its first line."""
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"


def _loggable(rec: StoredRecord) -> dict[str, object]:
    """The record as JSON values for a log line, even when it cannot become a row."""
    try:
        return record_fields(rec)
    except (TypeError, ValueError):
        return {f.name: str(getattr(rec, f.name)) for f in dataclasses.fields(rec)}


def _key(rec: StoredRecord) -> tuple[str, str]:
    """("call", call id), ("leg", leg id) or ("event", "call id#seq"): a row's key."""
    if isinstance(rec, CallEventRecord):
        return ("event", f"{rec.call_id}#{rec.seq}")
    return ("call", rec.call_id) if isinstance(rec, CallRecord) else ("leg", rec.leg_id)


@dataclass(slots=True)
class _Waiter:
    """A `flush()` caller waiting until every record up to `target` is written or rejected."""

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
        spool: CdrSpool | None = None,
        spool_after: float = 2.0,
    ) -> None:
        """Wrap an already migrated engine; prefer `CdrStore.open`, which also migrates."""
        if batch_size < 1 or max_backlog < 1 or flush_interval < 0 or spool_after < 0:
            raise ValueError(
                "batch_size and max_backlog must be >= 1, flush_interval and spool_after >= 0"
            )
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported CDR database dialect {dialect!r}")
        self._engine = engine
        self._batch_size = batch_size
        self._max_backlog = max_backlog
        self._flush_interval = flush_interval
        self._spool = spool
        self._spool_after = spool_after
        self._queue: deque[_Queued] = deque()
        # Sequence numbers order every record; a previous run's spooled lines come first.
        self._seq = spool.last_seq if spool is not None else 0
        self._done_seq = spool.first_seq - 1 if spool is not None and spool.pending else self._seq
        self._refused = 0
        self._rejected = 0
        self._spooled = 0
        self._outage_since: float | None = None
        self._outage_error = ""
        self._replay_started: float | None = None
        self._replayed = 0
        self._waiters: list[_Waiter] = []
        self._wakeup = asyncio.Event()  # something is queued (or we are closing)
        self._urgent = asyncio.Event()  # write now: flush(), close() or a full batch
        self._closing = False
        self._accepting = True
        self._closed = False
        self._closed_event = asyncio.Event()
        self._call_upsert = _upsert(_CALLS, dialect)
        self._leg_upsert = _upsert(_LEGS, dialect)
        self._event_insert = _insert_once(_EVENTS, dialect)
        self._loop = asyncio.get_running_loop()
        self._writer = self._loop.create_task(self._run_writer(), name="pbxd-cdr-writer")

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        batch_size: int = 200,
        max_backlog: int = 100_000,
        flush_interval: float = 0.2,
        spool: CdrSpool | None = None,
        spool_after: float = 2.0,
        migrate_apart: bool = False,
    ) -> CdrStore:
        """Connect to `url` (sqlite:///… or postgresql://…), migrate, start the writer.

        `migrate_apart`: a database behind the code is migrated by a child process
        (`pbxd.cdr.db.migrate_apart`), so Alembic never loads here; an in-memory SQLite
        database, which no other process can see, is migrated here as always. (`pbxd run`
        migrates apart before its loop starts, `pbxd.cli.run.migrate_before_serving`, so
        its own open finds the database at head.)

        With a `spool` (the daemon's store; the store owns it from here), a database pbxd
        cannot write is refused (CdrNotWritableError, see `check_writable`), and what a
        previous run left in the spool is written before this returns, so recovery reads a
        complete database.
        """
        engine = make_engine(url)
        try:
            if migrate_apart and not is_in_memory(url) and not await at_head(engine):
                await migrate_in_child(url)
            await migrate(engine)  # at head by now when migrated apart: one query
            store = cls(
                engine,
                batch_size=batch_size,
                max_backlog=max_backlog,
                flush_interval=flush_interval,
                spool=spool,
                spool_after=spool_after,
            )
        except BaseException:
            if spool is not None:
                spool.close()
            await engine.dispose()
            raise
        if spool is not None:
            try:
                await store.check_writable()
            except BaseException:
                await store.close(drain_timeout=0)
                raise
        if spool is not None and spool.pending:
            _log.info("cdr_spool_replaying", records=spool.pending, path=str(spool.path))
            try:
                await store.flush()
            except BaseException:
                # Stopped before the database took it all: the spool keeps the rest.
                await store.close(drain_timeout=0)
                raise
        return store

    async def check_writable(self) -> None:
        """Write a probe call and leg and roll them back; CdrNotWritableError says why not.

        The rows never commit, so CDR data is untouched; the upserts are the writer's own, so
        every privilege the writer needs (INSERT, UPDATE on both tables) is exercised.
        """
        now = datetime.now(UTC)
        call = CallRecord(call_id=f"pbxd-write-probe-{uuid.uuid4().hex}", did="+0", started_at=now)
        leg = LegRecord(
            leg_id=f"{call.call_id}-0",
            call_id=call.call_id,
            target="probe",
            destination="probe",
            started_at=now,
        )
        try:
            async with self._connect() as conn:
                transaction = await conn.begin()
                try:
                    await conn.execute(self._call_upsert, [call_to_row(call)])
                    await conn.execute(self._leg_upsert, [leg_to_row(leg)])
                    await _recount_traffic(conn, [call_to_row(call)], [leg_to_row(leg)])
                finally:
                    await transaction.rollback()
        except Exception as exc:
            if rejected_on_merits(exc):
                return  # the database took the write and refused the probe's values: writable
            raise CdrNotWritableError(why_not_writable(exc, self._engine.url)) from exc

    # ----------------------------------------------------------------- write path

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine (health checks, ad-hoc report queries)."""
        return self._engine

    @property
    def backlog(self) -> int:
        """Records queued in memory and not yet written."""
        return len(self._queue)

    @property
    def spooled(self) -> int:
        """Records waiting in the spool file."""
        return self._spool.pending if self._spool is not None else 0

    @property
    def in_outage(self) -> bool:
        """True from a failed write until the next successful one."""
        return self._outage_since is not None

    @property
    def refused(self) -> int:
        """Records refused because the backlog was full (no spool) or the store closed."""
        return self._refused

    @property
    def dropped(self) -> int:
        """Rows the database rejected on their merits (logged one by one)."""
        return self._rejected

    def record_call(self, rec: CallRecord) -> bool:
        """Queue a snapshot of `rec` for writing; False (and a logged error) if refused."""
        return self._enqueue(rec.snapshot())

    def record_leg(self, rec: LegRecord) -> bool:
        """Queue a snapshot of `rec` for writing; False (and a logged error) if refused."""
        return self._enqueue(rec.snapshot())

    def record_event(self, rec: CallEventRecord) -> bool:
        """Queue one journal event (immutable: no snapshot); False (logged) if refused."""
        return self._enqueue(rec)

    def _enqueue(self, rec: StoredRecord) -> bool:
        """Append to the queue (spilling it to the spool when full); never raises."""
        if not self._accepting:
            self._refuse(rec, "store closing")
            return False
        if len(self._queue) >= self._max_backlog and not self._spill(
            "memory backlog full", min(SPILL_CHUNK, self._max_backlog)
        ):
            self._refuse(rec, "backlog full")
            return False
        self._seq += 1
        self._queue.append((self._seq, rec))
        self._wakeup.set()
        if len(self._queue) >= self._batch_size:
            self._urgent.set()
        return True

    def _refuse(self, rec: StoredRecord, reason: str) -> None:
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

    def _spill(self, reason: str, limit: int | None = None) -> bool:
        """Move the oldest `limit` queued records (all by default) to the spool; False if it
        cannot. The spool only ever holds records older than those left in memory."""
        if self._spool is None:
            return False
        if not self._queue:
            return True
        moving = list(islice(self._queue, limit))
        lines: list[bytes] = []
        for seq, rec in moving:
            try:
                lines.append(encode_line(seq, rec))
            except (TypeError, ValueError) as exc:  # it could never become a row anyway
                lines.append(b"")
                self._reject(rec, exc)
        try:
            count = self._spool.append_lines(lines)
        except OSError as exc:
            _log.error(
                "cdr_spool_failed",
                path=str(self._spool.path),
                records=len(moving),
                error=_describe(exc),
            )
            return False
        for _ in moving:
            self._queue.popleft()
        self._spooled += count
        _log.warning(
            "cdr_spooled",
            records=count,
            reason=reason,
            pending=self._spool.pending,
            spooled_total=self._spooled,
            path=str(self._spool.path),
        )
        return True

    async def flush(self) -> None:
        """Wait until every record queued before this call is written (or rejected)."""
        target = self._seq
        if self._done_seq >= target:
            return
        if self._writer.done():
            raise RuntimeError("the CDR writer has stopped; queued records were not written")
        waiter = _Waiter(target, self._loop.create_future())
        self._waiters.append(waiter)
        self._urgent.set()
        self._wakeup.set()
        await waiter.future

    async def close(self, drain_timeout: float | None = 10.0) -> None:
        """Write everything queued, stop the writer, release connections.

        If the database stays away for `drain_timeout` seconds, what is left goes to the spool
        (lost, and logged as such, only without one) and the store closes anyway: a stopping
        daemon must stop.
        """
        if self._closing:
            # Already closed, or another task is closing: wait for that one to finish.
            await self._closed_event.wait()
            return
        self._closing = True
        if self._outage_since is not None and self._spill("stopping during a database outage"):
            # All on disk, and the next start writes the spool first: no reason to linger.
            drain_timeout = 0
        self._urgent.set()
        self._wakeup.set()
        timed_out = False
        try:
            if not self._writer.done():
                await asyncio.wait_for(asyncio.shield(self._writer), drain_timeout)
        except TimeoutError:
            timed_out = True
        finally:
            # Also reached when close() itself is cancelled: never leave the writer behind.
            self._accepting = False
            if not self._writer.done():
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
            self._spill("stopping")
            lost = len(self._queue)
            if lost or (timed_out and self.spooled):
                (_log.error if lost else _log.warning)(
                    "cdr_close_timeout",
                    lost=lost,
                    spooled=self.spooled,
                    drain_timeout=drain_timeout,
                )
            self._closed = True
            self._release_waiters(error=True)
            if self._spool is not None:
                self._spool.close()
            await self._engine.dispose()
            self._closed_event.set()

    async def __aenter__(self) -> CdrStore:
        """`async with await CdrStore.open(url) as store:` closes on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close (draining the queue)."""
        await self.close()

    # ------------------------------------------------------------------- writer

    def _has_pending(self) -> bool:
        return bool(self._queue) or (self._spool is not None and self._spool.pending > 0)

    async def _run_writer(self) -> None:
        """The single writer task: spool first, then memory, in batches, until closed."""
        delay = RETRY_INITIAL_DELAY
        draining = False  # writing a burst: no more lingering until the queue is empty
        while True:
            if not self._has_pending():
                if self._closing:
                    return
                draining = False
                self._urgent.clear()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            from_spool = self._spool is not None and self._spool.pending > 0
            if not (draining or from_spool or self._urgent.is_set()) and self._flush_interval > 0:
                # Let a burst of updates accumulate so they coalesce into one transaction.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._flush_interval)
                draining = True
                continue
            draining = True
            if from_spool and self._replay_started is None:
                self._replay_started = self._loop.time()
            entries, taken = self._next_batch()
            attempt_started = self._loop.time()
            try:
                error = await self._write_entries(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug here must not stop CDRs for good: keep the records and retry.
                _log.exception("cdr_writer_error", records=len(entries))
                error = exc
            if error is None:
                taken()
                self._written(entries, from_spool)
                delay = RETRY_INITIAL_DELAY
                continue
            self._replay_started = None
            self._note_outage(error, delay, attempt_started)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    def _next_batch(self) -> tuple[list[SpoolEntry], Callable[[], None]]:
        """The oldest records (spool first) and a callable forgetting them once written."""
        spool = self._spool
        if spool is not None and spool.pending:
            entries, offset = spool.peek(self._batch_size)
            count = len(entries)
            return entries, lambda: spool.advance(offset, count)
        batch = list(islice(self._queue, self._batch_size))
        last = batch[-1][0]

        def taken() -> None:
            # The queue may have been spilled meanwhile: pop only what is still ours.
            while self._queue and self._queue[0][0] <= last:
                self._queue.popleft()

        return [SpoolEntry(seq, rec) for seq, rec in batch], taken

    def _written(self, entries: Sequence[SpoolEntry], from_spool: bool) -> None:
        """Book a written batch: end the outage, report a finished replay, wake flush()."""
        if self._outage_since is not None:
            _log.warning(
                "cdr_outage_ended",
                seconds=round(self._loop.time() - self._outage_since, 3),
                backlog=len(self._queue),
                spooled=self.spooled,
                error=self._outage_error,
            )
            self._outage_since = None
        if from_spool:
            self._replayed += len(entries)
            if self.spooled == 0 and self._replay_started is not None:
                seconds = max(self._loop.time() - self._replay_started, 1e-6)
                _log.info(
                    "cdr_spool_replayed",
                    records=self._replayed,
                    seconds=round(seconds, 3),
                    per_second=round(self._replayed / seconds),
                )
                self._replayed = 0
                self._replay_started = None
        self._done_seq = max([self._done_seq, *(e.seq for e in entries)])
        self._release_waiters()

    def _note_outage(self, exc: BaseException, delay: float, since: float) -> None:
        """Log the failure (once as an outage start); spill to the spool when it lasts."""
        now = self._loop.time()
        self._outage_error = _describe(exc)
        if self._outage_since is None:
            # From the start of the failed attempt: a lock wait or a connect timeout counts.
            self._outage_since = since
            _log.error(
                "cdr_outage_started",
                error=self._outage_error,
                backlog=len(self._queue),
                spooled=self.spooled,
            )
        _log.warning("cdr_write_retry", transient=True, retry_in=delay, error=self._outage_error)
        if self._queue and (
            self._closing
            or len(self._queue) >= self._max_backlog
            or now - self._outage_since >= self._spool_after
        ):
            self._spill("database outage")

    def _release_waiters(self, *, error: bool = False) -> None:
        """Wake the flush() callers whose records are all done (or all, on close)."""
        pending: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if self._done_seq >= waiter.target:
                waiter.future.set_result(None)
            elif error:
                waiter.future.set_exception(RuntimeError("CDR store closed before flushing"))
            else:
                pending.append(waiter)
        self._waiters = pending

    async def _write_entries(self, entries: Sequence[SpoolEntry]) -> BaseException | None:
        """Write a batch; None when every row is written or rejected, else the outage error.

        Snapshots are coalesced (latest wins) and upserted in one transaction. When the
        database refuses the batch on its data, rows are retried one by one so only the
        culprits are rejected.
        """
        calls: dict[str, tuple[int, dict[str, Any]]] = {}
        legs: dict[str, tuple[int, dict[str, Any]]] = {}
        events: dict[str, tuple[int, dict[str, Any]]] = {}
        for entry in entries:
            rec = entry.record
            if rec is None:
                _log.error(
                    "cdr_row_rejected", kind="spool line", error=entry.problem, row=entry.raw
                )
                self._rejected += 1
                continue
            kind, key = _key(rec)
            try:  # e.g. naive and aware times mixed in one record
                row = record_to_row(rec)
            except Exception as exc:
                self._reject(rec, exc)
                continue
            {"call": calls, "leg": legs, "event": events}[kind][key] = (entry.seq, row)
        if not calls and not legs and not events:
            return None
        call_rows = [row for _, row in calls.values()]
        leg_rows = [row for _, row in legs.values()]
        event_rows = [row for _, row in events.values()]
        try:
            await self._commit(call_rows, leg_rows, event_rows)
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not rejected_on_merits(exc):
                return exc
        # The batch fails on its data: find the culprit(s) one row at a time.
        _log.warning("cdr_batch_isolating", calls=len(call_rows), legs=len(leg_rows))
        for stmt, rows in (
            (self._call_upsert, call_rows),
            (self._leg_upsert, leg_rows),
            (self._event_insert, event_rows),
        ):
            for row in rows:
                try:
                    async with self._engine.begin() as conn:
                        await conn.execute(stmt, [row])
                        if stmt is not self._event_insert:
                            is_call = stmt is self._call_upsert
                            one = ([row], []) if is_call else ([], [row])
                            await _recount_traffic(conn, *one)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not rejected_on_merits(exc):
                        return exc
                    self._reject_row(_kind_of(stmt, self._call_upsert, self._leg_upsert), row, exc)
        return None

    async def _commit(
        self,
        call_rows: list[dict[str, Any]],
        leg_rows: list[dict[str, Any]],
        event_rows: list[dict[str, Any]] | None = None,
    ) -> None:
        """One transaction: calls first, so legs find their call (foreign key); then events;
        then the traffic slots of those calls are recounted (`traffic.recount`)."""
        async with self._engine.begin() as conn:
            if call_rows:
                await conn.execute(self._call_upsert, call_rows)
            if leg_rows:
                await conn.execute(self._leg_upsert, leg_rows)
            if event_rows:
                await conn.execute(self._event_insert, event_rows)
            await _recount_traffic(conn, call_rows, leg_rows)

    def _reject(self, rec: StoredRecord, exc: BaseException) -> None:
        """Log (with the whole record) and count a record refused on its merits."""
        kind, key = _key(rec)
        self._rejected += 1
        _log.error(
            "cdr_row_rejected",
            kind=kind,
            id=key,
            call_id=rec.call_id,
            error=_describe(exc),
            row=_loggable(rec),
        )

    def _reject_row(self, kind: str, row: dict[str, Any], exc: BaseException) -> None:
        """Log (with the whole row) and count a row the database refused on its merits."""
        self._rejected += 1
        _log.error(
            "cdr_row_rejected",
            kind=kind,
            id=row.get("leg_id") or row["call_id"],
            call_id=row["call_id"],
            error=_describe(exc),
            row={k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()},
        )

    # ---------------------------------------------------------------- read side

    def _connect(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads; refuses once the store is closed."""
        if self._closed:
            raise RuntimeError("CdrStore is closed")
        return self._engine.connect()

    async def open_calls(self, server: str | None = None) -> list[CallRecord]:
        """Calls not yet ended (ended_at IS NULL), oldest first: what a restart must settle.

        With `server`, only that Asterisk's calls (and rows older than `calls.server`, which
        one server wrote): another server's calls are its own pbxd's to settle.
        """
        query = select(_CALLS).where(_CALLS.c.ended_at.is_(None))
        if server is not None:
            query = query.where(or_(_CALLS.c.server == server, _CALLS.c.server.is_(None)))
        query = query.order_by(_CALLS.c.started_at, _CALLS.c.call_id)
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
        dispositions: Sequence[Disposition] = (),
        caller: str | None = None,
        before: tuple[datetime, str] | None = None,
        server: str | None = None,
    ) -> list[CallLogEntry]:
        """Calls to `did` started in [since, until), newest first, each with its legs.

        `dispositions` keeps those only; `caller` keeps calling numbers containing it (taken
        literally: `%` and `_` are not wildcards); `before` is a page cursor, the
        (started_at, call_id) of the last call of the previous page; `server` keeps the calls
        that came through that Asterisk (several share one database). Only committed records
        are seen: `await flush()` first to read your own writes.
        """
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime")
        query = select(_CALLS).where(_CALLS.c.did == did)
        if since is not None:
            query = query.where(_CALLS.c.started_at >= since)
        if until is not None:
            query = query.where(_CALLS.c.started_at < until)
        if dispositions:
            query = query.where(_CALLS.c.disposition.in_([str(d) for d in dispositions]))
        if caller:
            query = query.where(_CALLS.c.caller_number.contains(caller, autoescape=True))
        if server is not None:
            query = query.where(_CALLS.c.server == server)
        if before is not None:
            moment, call_id = before
            # The plain bound lets every backend seek the (did, started_at, call_id) index.
            query = query.where(
                _CALLS.c.started_at <= moment,
                or_(
                    _CALLS.c.started_at < moment,
                    and_(_CALLS.c.started_at == moment, _CALLS.c.call_id < call_id),
                ),
            )
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

    async def billables_of(self, did: str, since: datetime, until: datetime) -> list[Billable]:
        """Forwarded legs and calls going out of `did` answered in [since, until) (plans)."""
        async with self._connect() as conn:
            return await usage.billables(conn, did, since, until)

    async def calls_in_progress_of(self, did: str, now: datetime) -> set[str]:
        """Ids of `did`'s calls not ended yet, whichever pbxd writes them here."""
        async with self._connect() as conn:
            return await usage.calls_in_progress(conn, did, now)


async def _recount_traffic(
    conn: AsyncConnection, call_rows: Sequence[dict[str, Any]], leg_rows: Sequence[dict[str, Any]]
) -> None:
    """Recount the traffic slots of these calls and of the calls these legs belong to."""
    slots = traffic.slots_of_calls(call_rows)
    written = {row["call_id"] for row in call_rows}
    others = {row["call_id"] for row in leg_rows} - written
    if others:
        slots |= await traffic.slots_of_legs(conn, others)
    await traffic.recount(conn, slots)


def _upsert(table: Table, dialect: str) -> Insert:
    """INSERT … ON CONFLICT (pk) DO UPDATE SET every other column = excluded, newest wins.

    A snapshot of a row still open never replaces the row once it has ended: a fenced
    active of a pair replaying its spool late, or a retried batch, cannot undo what the
    pbxd that adopted the call wrote since (the row's end is final).
    """
    stmt = upsert_insert(table, dialect)
    still_open = stmt.excluded.ended_at.is_(None) & table.c.ended_at.is_not(None)
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if not c.primary_key},
        where=~still_open,
    )


def _kind_of(stmt: Insert, call_upsert: Insert, leg_upsert: Insert) -> str:
    """Which kind of row a statement writes."""
    return "call" if stmt is call_upsert else "leg" if stmt is leg_upsert else "event"


def _insert_once(table: Table, dialect: str) -> Insert:
    """INSERT … ON CONFLICT (pk) DO NOTHING: a retried batch never writes an event twice."""
    return upsert_insert(table, dialect).on_conflict_do_nothing(
        index_elements=list(table.primary_key.columns)
    )
