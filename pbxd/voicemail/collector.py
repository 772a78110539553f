"""Copies recorded messages off Asterisk into the message store, never losing one.

The call core, once a caller's recording is finished, calls `keep()` (or `discard()` for a
message too short to keep). The job is written to disk first (`<root>/.pending/`), so it
survives a crash or a restart; then the collector's own task, never the call's:

1. fetches the recording through ARI (`GET /recordings/stored/{name}/file`) and saves it in
   the store (temporary file + rename; an id already kept is not fetched again);
2. queues the e-mail to the box (once: the job notes it before going on);
3. deletes the recording on Asterisk (`DELETE /recordings/stored/{name}`; a 404 is fine);
4. removes the job.

A step that fails because Asterisk is away (or answers an error) is retried with backoff on
the injected clock; a recording Asterisk no longer has, and that the store does not hold, is
logged as lost (nothing more can be done for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import structlog

from pbxd.ari.client import AriClient
from pbxd.ari.errors import AriError, AriNotFound
from pbxd.clock import Clock, off_loop
from pbxd.voicemail.messages import Message, message_id_of
from pbxd.voicemail.retry import PassRunner, Retries, RetryingQueue, read_jobs
from pbxd.voicemail.store import MessageStore, write_atomically

_log = structlog.get_logger(logger_name=__name__)

RETRY_INITIAL_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0
PENDING_DIR = ".pending"


class StoredRecordings(Protocol):
    """What the collector needs of ARI's stored recordings.

    `fetch` raises `AriNotFound` when Asterisk has no such recording; any other failure
    (`AriUnavailable`, another `AriError`, `OSError`) is retried later.
    """

    async def fetch(self, name: str) -> bytes:
        """The recording's file (`GET /recordings/stored/{name}/file`)."""
        ...

    async def delete(self, name: str) -> None:
        """Remove the recording from Asterisk (`DELETE /recordings/stored/{name}`)."""
        ...


class AriRecordings:
    """`StoredRecordings` over pbxd's ARI client."""

    def __init__(self, client: AriClient) -> None:
        """Use `client` (shared with the call core; this adapter never closes it)."""
        self._client = client

    async def fetch(self, name: str) -> bytes:
        """`GET /recordings/stored/{name}/file` (size-capped by the client)."""
        return await self._client.stored_recording_file(name)

    async def delete(self, name: str) -> None:
        """`DELETE /recordings/stored/{name}`."""
        await self._client.delete_stored_recording(name)


class MailQueue(Protocol):
    """Where a kept message's e-mail goes (`pbxd.voicemail.mail.Outbox`)."""

    def enqueue(self, message: Message, to: str, timezone: str) -> bool:
        """Queue the notification of `message` to `to`; False if refused (logged)."""
        ...


@dataclass(frozen=True, slots=True)
class CollectJob:
    """One recording to copy off Asterisk (`message`) or only to delete (`message` None)."""

    recording: str
    message: Message | None
    email: str | None = None
    timezone: str = "UTC"
    mailed: bool = False
    call: dict[str, str] = field(default_factory=dict)  # call_id and did, for the log lines

    @property
    def log_context(self) -> dict[str, str]:
        """The call a job belongs to, bound to every line logged while it runs."""
        if self.message is not None:
            return {"call_id": self.message.call_id, "did": self.message.did}
        return self.call

    @property
    def job_id(self) -> str:
        """The job's file name stem: the message id, or one derived from the recording."""
        if self.message is not None:
            return self.message.message_id
        return "discard-" + message_id_of("", self.recording)

    def to_json(self) -> dict[str, Any]:
        """The job file's content."""
        return {
            "recording": self.recording,
            "message": None if self.message is None else self.message.to_json(),
            "email": self.email,
            "timezone": self.timezone,
            "mailed": self.mailed,
            "call": self.call,
        }

    @classmethod
    def from_json(cls, data: Any) -> CollectJob:
        """Read a job file; ValueError says what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("recording"), str):
            raise ValueError("a voicemail job needs a recording name")
        raw = data.get("message")
        email = data.get("email")
        return cls(
            recording=data["recording"],
            message=None if raw is None else Message.from_json(raw),
            email=email if isinstance(email, str) else None,
            timezone=str(data.get("timezone") or "UTC"),
            mailed=bool(data.get("mailed")),
            call={k: str(v) for k, v in (data.get("call") or {}).items() if k in ("call_id", "did")}
            if isinstance(data.get("call"), dict)
            else {},
        )


class RecordingCollector(RetryingQueue):
    """Moves recordings from Asterisk into a `MessageStore`; start it, stop it, feed it."""

    def __init__(
        self,
        store: MessageStore,
        recordings: StoredRecordings,
        clock: Clock,
        *,
        mail: MailQueue | None = None,
        retry_initial: float = RETRY_INITIAL_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
    ) -> None:
        """Jobs live in `<store root>/.pending/`; those of a previous run are picked up."""
        self.store = store
        self._recordings = recordings
        self._clock = clock
        self._mail = mail
        self._pending = store.root / PENDING_DIR
        self._retries = Retries(clock, retry_initial, retry_max)
        self._worker = PassRunner(
            "pbxd-voicemail-collector", self.collect_due, self._retries, clock
        )
        self.lost = 0  # recordings gone from Asterisk before they could be copied

    # ------------------------------------------------------------------ feeding

    async def keep(
        self, recording: str, message: Message, *, email: str | None, timezone: str
    ) -> None:
        """Copy `recording` into the store as `message` (and mail it to `email`): durable
        once this returns."""
        await self._submit(CollectJob(recording, message, email, timezone))

    async def discard(self, recording: str, *, call_id: str = "", did: str = "") -> None:
        """Delete `recording` on Asterisk (a message too short to keep)."""
        call = {"call_id": call_id, "did": did} if call_id else {}
        await self._submit(CollectJob(recording, None, call=call))

    async def _submit(self, job: CollectJob) -> None:
        await off_loop(self._clock, self._write_job, job)
        _log.info(
            "voicemail_job_queued",
            recording=job.recording,
            message_id=None if job.message is None else job.message.message_id,
        )
        self._worker.wake()

    def _job_path(self, job_id: str) -> Path:
        return self._pending / f"{job_id}.json"

    def _write_job(self, job: CollectJob) -> None:
        data = json.dumps(job.to_json(), ensure_ascii=False).encode()
        write_atomically(self._job_path(job.job_id), data)

    def pending(self) -> list[CollectJob]:
        """The jobs waiting on disk (unreadable ones are logged and set aside)."""
        return read_jobs(self._pending, CollectJob.from_json, "voicemail_job_unreadable")

    # ------------------------------------------------------------------ working

    async def collect_due(self) -> int:
        """One pass: try every job whose retry time has come; how many were settled (kept,
        discarded, or found lost)."""
        if not self._pending.is_dir():
            return 0  # nothing ever queued: no thread hop while the daemon starts
        done = 0
        for job in await off_loop(self._clock, self.pending):
            if self._retries.waiting(job.job_id):
                continue
            try:
                # Its log lines, ARI requests included, belong to the call that left it.
                with structlog.contextvars.bound_contextvars(**job.log_context):
                    await self._collect(job)
            except asyncio.CancelledError:
                raise
            except (AriError, OSError) as exc:
                attempts, delay = self._retries.failed(job.job_id)
                _log.warning(
                    "voicemail_collect_retry",
                    recording=job.recording,
                    attempts=attempts,
                    retry_in=delay,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            self._retries.forget(job.job_id)
            done += 1
        return done

    async def _collect(self, job: CollectJob) -> None:
        message = job.message
        if message is not None:
            if not await off_loop(self._clock, self.store.has, message.did, message.message_id):
                try:
                    wav = await self._recordings.fetch(job.recording)
                except AriNotFound:
                    self.lost += 1
                    _log.error(
                        "voicemail_recording_lost",
                        recording=job.recording,
                        message_id=message.message_id,
                        call_id=message.call_id,
                    )
                    await off_loop(self._clock, self._job_path(job.job_id).unlink, True)
                    return
                await off_loop(self._clock, self.store.save, message, wav)
                _log.info(
                    "voicemail_kept",
                    message_id=message.message_id,
                    did=message.did,
                    call_id=message.call_id,
                    duration=message.duration,
                )
            if job.email and self._mail is not None and not job.mailed:
                self._mail.enqueue(message, job.email, job.timezone)
                # Noted before going on: a retry of the delete must not mail twice.
                await off_loop(self._clock, self._write_job, replace(job, mailed=True))
        with contextlib.suppress(AriNotFound):
            await self._recordings.delete(job.recording)
        await off_loop(self._clock, self._job_path(job.job_id).unlink, True)
