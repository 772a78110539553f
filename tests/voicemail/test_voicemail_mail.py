"""Voicemail e-mails through a real SMTP server (aiosmtpd, in the test's loop), never a mock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pbxd.config.files import MailSecurity
from pbxd.config.model import MailSettings
from pbxd.sim.media import wav_bytes as make_wav
from pbxd.voicemail.mail import Outbox, compose
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageStore
from tests.voicemail.smtp import Mailroom, SmtpServer, self_signed

from .conftest import T0, ManualClock

DID = "+33170000001"
PARIS = "Europe/Paris"


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer(Mailroom())
    try:
        yield server
    finally:
        await server.stop()


def settings_for(port: int, **changes: Any) -> MailSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": MailSecurity.NONE,
        "from_address": "Acme PBX <pbxd@acme.example>",
        "timeout": 5,
    }
    return MailSettings(**(base | changes))


def kept(store: MessageStore, n: int = 1) -> Message:
    message = Message(
        f"vm-{n}",
        DID,
        f"call-{n}",
        recorded_at=T0,
        duration=42,
        mailbox="reception",
        caller_number="+33612345678",
        caller_name="Alice",
    )
    store.save(message, make_wav(2))
    return message


def outbox_on(root: Path, settings: MailSettings, clock: ManualClock) -> Outbox:
    return Outbox(
        MessageStore(root),
        settings,
        clock,
        retry_initial=30,
        retry_max=600,
        give_up_after=timedelta(hours=1),
    )


def test_compose_attaches_the_wav_and_says_when_in_the_numbers_zone() -> None:
    message = Message("vm-1", DID, "c1", T0, 42, "reception", "+33612345678", "Alice")
    mail = compose(
        message, make_wav(2), sender="pbxd@acme.example", to="desk@acme.example", timezone=PARIS
    )
    assert mail["Subject"] == f"Voicemail from Alice (+33612345678) on {DID} (0:42)"
    body = mail.get_body(("plain",))
    assert body is not None and "Thursday 24 December 2026 at 20:00:00 CET" in body.get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "vm-1.wav"
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == make_wav(2)


async def test_a_message_is_delivered_with_its_attachment(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    await smtp.start()
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    message = kept(outbox.store)
    assert outbox.enqueue(message, "desk@acme.example", PARIS)
    assert await outbox.send_due() == 1
    [mail] = smtp.room.received
    assert mail["To"] == "desk@acme.example"
    assert "Alice" in mail["Subject"]
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content() == make_wav(2)
    assert outbox.queued() == []


async def test_server_down_then_up_delivers_once(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    message = kept(outbox.store)
    outbox.enqueue(message, "desk@acme.example", PARIS)
    with capture_logs() as logs:
        assert await outbox.send_due() == 0  # nobody listens on the port
    [retry] = [e for e in logs if e["event"] == "voicemail_mail_retry"]
    assert retry["retry_in"] == 30 and "Connect" in retry["error"]
    assert [j.message_id for j in outbox.queued()] == ["vm-1"]  # on disk

    # A restart meanwhile: the job is still there; the server comes back.
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    await smtp.start()
    assert await outbox.send_due() == 1
    assert await outbox.send_due() == 0
    await clock.advance(3600)
    assert await outbox.send_due() == 0
    assert len(smtp.room.received) == 1  # once


async def test_retries_back_off_on_the_clock(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    outbox.enqueue(kept(outbox.store), "desk@acme.example", PARIS)
    assert await outbox.send_due() == 0
    await smtp.start()
    await clock.advance(29)
    assert await outbox.send_due() == 0  # not before its time, although the server is up
    assert smtp.room.received == []
    await clock.advance(1)
    assert await outbox.send_due() == 1


async def test_an_outage_longer_than_give_up_after_drops_the_mail_not_the_message(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    outbox.enqueue(kept(outbox.store), "desk@acme.example", PARIS)
    for _ in range(8):
        await outbox.send_due()
        await clock.advance(600)
    assert outbox.queued() == [] and outbox.dropped == 1
    assert outbox.store.has(DID, "vm-1")


async def test_a_refused_recipient_is_dropped_at_once(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    smtp.room.refuse = True
    await smtp.start()
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    outbox.enqueue(kept(outbox.store), "nobody@acme.example", PARIS)
    with capture_logs() as logs:
        assert await outbox.send_due() == 0
    [dropped] = [e for e in logs if e["event"] == "voicemail_mail_dropped"]
    assert dropped["reason"] == "refused" and "550" in dropped["error"]
    assert outbox.queued() == [] and outbox.store.has(DID, "vm-1")


async def test_login_with_the_password_from_its_variable_never_logged(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await smtp.start()
    monkeypatch.setenv("PBXD_SMTP_PASSWORD", "wrong-secret")
    settings = settings_for(
        smtp.port, username="pbxd@acme.example", password_env="PBXD_SMTP_PASSWORD"
    )
    outbox = outbox_on(tmp_path, settings, clock)
    outbox.enqueue(kept(outbox.store), "desk@acme.example", PARIS)
    with capture_logs() as logs:
        assert await outbox.send_due() == 0  # 535: retried, the admin may fix the password
    assert "secret" not in repr(logs)
    monkeypatch.setenv("PBXD_SMTP_PASSWORD", "smtp-secret")
    await clock.advance(30)
    assert await outbox.send_due() == 1
    assert smtp.room.logins[-1] == ("pbxd@acme.example", "smtp-secret")


async def test_the_outbox_task_sends_on_its_own(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    outbox = outbox_on(tmp_path, settings_for(smtp.port), clock)
    outbox.start()
    try:
        outbox.enqueue(kept(outbox.store), "desk@acme.example", PARIS)
        await _until(lambda: clock.sleepers == 1, "the backoff after a failed first try")
        await smtp.start()
        await clock.advance(30)
        await _until(lambda: len(smtp.room.received) == 1, "the delivery")
        await _until(lambda: not outbox.queued(), "the job settled")
    finally:
        await outbox.stop()


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for socket and file I/O (bounded: a hang fails, time never decides)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_outbox_is_bounded_and_a_deleted_message_is_not_mailed(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    outbox = Outbox(MessageStore(tmp_path), settings_for(smtp.port), clock, max_queued=1)
    first, second = kept(outbox.store, 1), kept(outbox.store, 2)
    assert outbox.enqueue(first, "desk@acme.example", PARIS)
    assert outbox.enqueue(first, "desk@acme.example", PARIS)  # already queued: once
    with capture_logs() as logs:
        assert not outbox.enqueue(second, "desk@acme.example", PARIS)
    assert [e["reason"] for e in logs if e["event"] == "voicemail_mail_refused"] == ["outbox full"]
    assert outbox.store.has(DID, "vm-2")  # the message itself is kept all the same
    outbox.store.delete(DID, "vm-1")  # an admin deleted it before the server came back
    await smtp.start()
    assert await outbox.send_due() == 0
    assert smtp.room.received == [] and outbox.queued() == [] and outbox.dropped == 1


@pytest.mark.parametrize("security", [MailSecurity.STARTTLS, MailSecurity.TLS])
async def test_starttls_and_tls_with_the_servers_ca_and_a_login(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, security: MailSecurity
) -> None:
    made = self_signed(tmp_path)
    if made is None:
        pytest.skip("no openssl command to make a test certificate")
    context, cert = made
    server = SmtpServer(Mailroom(), tls=context, starttls=security is MailSecurity.STARTTLS)
    await server.start()
    monkeypatch.setenv("PBXD_SMTP_PASSWORD", "smtp-secret")
    try:
        settings = settings_for(
            server.port,
            security=security,
            username="pbxd@acme.example",
            password_env="PBXD_SMTP_PASSWORD",
            ca_file=cert,
        )
        outbox = outbox_on(tmp_path / "vm", settings, clock)
        outbox.enqueue(kept(outbox.store), "desk@acme.example", PARIS)
        assert await outbox.send_due() == 1
        assert len(server.room.received) == 1
        assert server.room.logins == [("pbxd@acme.example", "smtp-secret")]

        # Without the server's CA the certificate is refused: retried, never sent in clear.
        untrusting = outbox_on(tmp_path / "vm2", replace(settings, ca_file=None), clock)
        untrusting.enqueue(kept(untrusting.store), "desk@acme.example", PARIS)
        with capture_logs() as logs:
            assert await untrusting.send_due() == 0
        [retry] = [e for e in logs if e["event"] == "voicemail_mail_retry"]
        assert "CERTIFICATE_VERIFY_FAILED" in retry["error"] or "certificate" in retry["error"]
        assert len(server.room.received) == 1
    finally:
        await server.stop()
