"""A real SMTP server (aiosmtpd) in the test's own event loop, that a test starts and stops."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class Mailroom:
    """What the SMTP server received; `refuse` makes it answer 550 to every recipient."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []
        self.refuse = False

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == ("pbxd@acme.example", "smtp-secret"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpServer:
    """An aiosmtpd server on a fixed port that the test starts and stops."""

    def __init__(
        self, room: Mailroom, *, tls: ssl.SSLContext | None = None, starttls: bool = False
    ) -> None:
        """`tls` with `starttls`: STARTTLS required; `tls` alone: TLS from the first byte."""
        self.room = room
        self.port = free_port()
        self._tls = tls
        self._starttls = starttls
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        starttls = self._tls if self._starttls else None
        self._server = await loop.create_server(
            lambda: SMTP(
                self.room,
                hostname="mail.acme.example",
                authenticator=self.room.authenticate,
                auth_require_tls=False,
                tls_context=starttls,
                require_starttls=starttls is not None,
            ),
            "127.0.0.1",
            self.port,
            ssl=None if self._starttls else self._tls,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path] | None:
    """A server context and its certificate (also the client's CA file) for 127.0.0.1, made
    by the openssl command; None where there is none."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert
