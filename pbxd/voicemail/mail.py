"""E-mail notification of voicemail messages, with the message attached, through SMTP.

`Outbox.enqueue()` (called by the collector once a message is kept) writes a small job file
under `<voicemail root>/.outbox/` and returns: a call never waits for SMTP. The outbox's own
task sends due jobs with aiosmtplib; a server that is away or answers a temporary error is
retried with backoff on the injected clock, across restarts (the jobs are on disk), until
`give_up_after`. A permanent refusal (5xx: no such recipient) is logged and the job dropped.
Either way the message itself stays in the box: only the e-mail can be lost, never the
voicemail. The SMTP password is read at each send and never logged.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosmtplib
import structlog

from pbxd.clock import Clock, off_loop
from pbxd.config.files import MailSecurity
from pbxd.config.model import MailSettings
from pbxd.voicemail.messages import MESSAGE_ID, Message
from pbxd.voicemail.retry import PassRunner, Retries, RetryingQueue, read_jobs
from pbxd.voicemail.store import MessageNotFound, MessageStore, write_atomically

_log = structlog.get_logger(logger_name=__name__)

OUTBOX_DIR = ".outbox"
RETRY_INITIAL_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
GIVE_UP_AFTER = timedelta(days=3)
MAX_QUEUED = 10_000


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _length(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}:{secs:02d}"


def compose(message: Message, wav: bytes, *, sender: str, to: str, timezone: str) -> EmailMessage:
    """The notification e-mail: who called, when (in the number's zone), the WAV attached."""
    local = message.recorded_at.astimezone(_zone(timezone))
    caller = message.caller_number or "a withheld number"
    if message.caller_name:
        caller = f"{message.caller_name} ({caller})"
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = f"Voicemail from {caller} on {message.did} ({_length(message.duration)})"
    mail["Date"] = format_datetime(message.recorded_at)
    # Stable: a server that sees the same message twice (a retry after a lost reply) can tell.
    mail["Message-ID"] = f"<{message.message_id}.{message.did.lstrip('+')}@pbxd.voicemail>"
    mail.set_content(
        f"{caller} left a message of {_length(message.duration)} on {message.did} "
        f"(box {message.mailbox})\n"
        f"on {local:%A %d %B %Y at %H:%M:%S} {local.tzname()}.\n\n"
        f"Message {message.message_id}, call {message.call_id}. The recording is attached.\n"
    )
    mail.add_attachment(wav, maintype="audio", subtype="wav", filename=f"{message.message_id}.wav")
    return mail


@dataclass(frozen=True, slots=True)
class MailJob:
    """One e-mail to send: which message, to whom, since when."""

    message_id: str
    did: str
    to: str
    timezone: str
    queued_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The job file's content."""
        return {
            "message_id": self.message_id,
            "did": self.did,
            "to": self.to,
            "timezone": self.timezone,
            "queued_at": self.queued_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any) -> MailJob:
        """Read a job file; ValueError says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a mail job must be a JSON object")
        try:
            job = cls(
                message_id=str(data["message_id"]),
                did=str(data["did"]),
                to=str(data["to"]),
                timezone=str(data["timezone"]),
                queued_at=datetime.fromisoformat(str(data["queued_at"])),
            )
        except KeyError as exc:
            raise ValueError(f"a mail job lacks {exc.args[0]!r}") from None
        if not MESSAGE_ID.match(job.message_id) or job.queued_at.utcoffset() is None:
            raise ValueError("a mail job needs a message id and an aware time")
        return job


class _Permanent(Exception):
    """The server refused the e-mail for good (5xx): retrying would not help."""


def _is_permanent(exc: Exception) -> bool:
    """5xx answers are final, except authentication (the admin can fix the password file)."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


class Outbox(RetryingQueue):
    """Voicemail e-mails waiting to be sent, on disk; start it to send them."""

    def __init__(
        self,
        store: MessageStore,
        settings: MailSettings,
        clock: Clock,
        *,
        retry_initial: float = RETRY_INITIAL_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
        give_up_after: timedelta = GIVE_UP_AFTER,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        """Jobs live in `<store root>/.outbox/`; those of a previous run are sent too."""
        self.store = store
        self.settings = settings
        self._clock = clock
        self._folder = store.root / OUTBOX_DIR
        self._give_up_after = give_up_after
        self._max_queued = max_queued
        self._retries = Retries(clock, retry_initial, retry_max)
        self._worker = PassRunner("pbxd-voicemail-outbox", self.send_due, self._retries, clock)
        self.sent = 0
        self.dropped = 0

    # ------------------------------------------------------------------ queueing

    def _path(self, message_id: str) -> Path:
        return self._folder / f"{message_id}.json"

    def queued(self) -> list[MailJob]:
        """The e-mails waiting, oldest first (unreadable job files are logged and set aside)."""
        jobs = read_jobs(self._folder, MailJob.from_json, "voicemail_mail_job_unreadable")
        jobs.sort(key=lambda j: (j.queued_at, j.message_id))
        return jobs

    def enqueue(self, message: Message, to: str, timezone: str) -> bool:
        """Queue the e-mail of `message` to `to` (once per message); False if refused."""
        path = self._path(message.message_id)
        if path.exists():
            return True
        waiting = sum(1 for _ in self._folder.glob("*.json")) if self._folder.is_dir() else 0
        if waiting >= self._max_queued:
            _log.error(
                "voicemail_mail_refused",
                reason="outbox full",
                message_id=message.message_id,
                queued=waiting,
            )
            return False
        job = MailJob(message.message_id, message.did, to, timezone, self._clock.now())
        write_atomically(path, json.dumps(job.to_json()).encode())
        _log.info("voicemail_mail_queued", message_id=message.message_id, to=to)
        self._worker.wake()
        return True

    # ------------------------------------------------------------------ sending

    async def send_due(self) -> int:
        """One pass: send every job whose retry time has come; how many were sent."""
        if not self._folder.is_dir():
            return 0  # nothing ever queued: no thread hop while the daemon starts
        sent = 0
        for job in await off_loop(self._clock, self.queued):
            if self._retries.waiting(job.message_id):
                continue
            try:
                await self._send(job)
            except asyncio.CancelledError:
                raise
            except _Permanent as exc:
                self._drop(job, "refused", str(exc))
                continue
            except MessageNotFound:  # before LookupError: an admin deleted it, not a failure
                self._drop(job, "message deleted", "the message left its box before mailing")
                continue
            except (aiosmtplib.SMTPException, OSError, LookupError) as exc:
                if self._clock.now() - job.queued_at >= self._give_up_after:
                    self._drop(job, "gave up", _describe(exc))
                    continue
                attempts, delay = self._retries.failed(job.message_id)
                _log.warning(
                    "voicemail_mail_retry",
                    message_id=job.message_id,
                    attempts=attempts,
                    retry_in=delay,
                    error=_describe(exc),
                )
                continue
            await off_loop(self._clock, self._path(job.message_id).unlink, True)
            self._retries.forget(job.message_id)
            self.sent += 1
            sent += 1
            _log.info("voicemail_mailed", message_id=job.message_id, to=job.to)
        return sent

    async def _send(self, job: MailJob) -> None:
        message = await off_loop(self._clock, self.store.get, job.did, job.message_id)
        wav = await off_loop(self._clock, self.store.audio, job.did, job.message_id)
        mail = compose(
            message, wav, sender=self.settings.from_address, to=job.to, timezone=job.timezone
        )
        settings = self.settings
        password = settings.password()  # read at each send: a fixed file needs no restart
        try:
            await aiosmtplib.send(
                mail,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=password,
                use_tls=settings.security is MailSecurity.TLS,
                start_tls=settings.security is MailSecurity.STARTTLS,
                timeout=settings.timeout,
                cert_bundle=None if settings.ca_file is None else str(settings.ca_file),
            )
        except aiosmtplib.SMTPException as exc:
            if _is_permanent(exc):
                raise _Permanent(_describe(exc)) from None
            raise

    def _drop(self, job: MailJob, reason: str, error: str) -> None:
        self.dropped += 1
        self._retries.forget(job.message_id)
        self._path(job.message_id).unlink(missing_ok=True)
        _log.error(
            "voicemail_mail_dropped",
            message_id=job.message_id,
            did=job.did,
            to=job.to,
            reason=reason,
            error=error,
        )


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"
