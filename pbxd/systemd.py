"""Telling systemd how pbxd is doing: the sd_notify protocol, spoken through its socket.

systemd (`Type=notify`) passes a datagram socket in `$NOTIFY_SOCKET` (a path, or `@name` in
Linux's abstract namespace) and, with `WatchdogSec=`, the watchdog period in
`$WATCHDOG_USEC`. Each message is one datagram of `KEY=VALUE` lines (`READY=1`,
`STATUS=…`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`). Outside systemd there is no
socket and every call here does nothing, so `pbxd run` behaves the same in a terminal.

Written here rather than taken from a library: the protocol is one `sendto`, and the
libraries are either a C binding (systemd-python, needs libsystemd headers to build) or
unmaintained blocking code (sdnotify, last release 2017) — neither is asyncio-aware.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping

import structlog

log = structlog.get_logger("pbxd.systemd")

STATUS_EVERY_S = 1.0  # STATUS= is sent at most this often, and only when it changed


class Notifier:
    """Sends sd_notify messages to the service manager; a no-op when there is none.

    Sending never blocks the event loop and never raises: a full or vanished socket loses
    one message (logged once), it never stops pbxd.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        # Half the period, as sd_watchdog_enabled(3) advises: one late ping is not a restart.
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._failed = False
        self._ready = False  # READY=1 sent: a reload may say it again, start-up may not
        self.sent = 0  # datagrams delivered, for tests and the status line

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process (`$NOTIFY_SOCKET`, `$WATCHDOG_USEC`).

        The variables are removed, as sd_notify(unset_environment=1) does: a child process
        (a configuration compiler, a shell) must not speak for pbxd.
        """
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None) or None
        usec_text = env.pop("WATCHDOG_USEC", None)
        pid_text = env.pop("WATCHDOG_PID", None)
        watchdog_usec: int | None = None
        if usec_text:
            try:
                watchdog_usec = int(usec_text)
            except ValueError:
                log.warning("systemd_watchdog_ignored", reason="WATCHDOG_USEC is not a number")
            # The watchdog belongs to another process (we were forked or exec'd by it).
            if pid_text and pid_text.strip() != str(os.getpid()):
                watchdog_usec = None
        if watchdog_usec is not None and watchdog_usec <= 0:
            watchdog_usec = None
        return cls(address, watchdog_usec)

    @property
    def enabled(self) -> bool:
        """True when a service manager listens (pbxd runs under systemd `Type=notify`)."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send one message made of `KEY=VALUE` fields; True if it was delivered."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            # A socket per message, as libsystemd does: about one a second, nothing to keep open.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto("\n".join(fields).encode("utf-8", "replace"), target)
        except OSError as exc:
            if not self._failed:  # once: a missing socket would otherwise log every second
                log.warning(
                    "systemd_notify_failed",
                    socket=self.address,
                    error=f"{type(exc).__name__}: {exc}",
                )
            self._failed = True
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is over: pbxd takes calls."""
        self._ready = True
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """The one line `systemctl status pbxd` shows."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """The event loop is alive (sent from the loop itself)."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """pbxd is shutting down on purpose."""
        return self.notify("STOPPING=1", "STATUS=stopping")

    @contextlib.contextmanager
    def reloading(self) -> Iterator[None]:
        """Wrap a configuration reload: `RELOADING=1` before, `READY=1` after, even on error.

        MONOTONIC_USEC lets `Type=notify-reload` (systemd 253+) tell this reload from an
        older one; plain `Type=notify` ignores it. A reload during start-up sends nothing:
        READY=1 then would tell systemd pbxd takes calls before ARI is even connected.
        """
        if not self._ready:
            yield
            return
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")
        try:
            yield
        finally:
            self.ready()


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE field that systemd would read as a command.
    return " ".join(text.split())


async def keep_systemd_informed(
    notifier: Notifier,
    status_of: Callable[[], str],
    *,
    status_every: float = STATUS_EVERY_S,
) -> None:
    """Ping the watchdog and keep STATUS= current, from the event loop itself, until cancelled.

    The pings are timed by the loop: a loop wedged by a blocking call or a stuck callback
    stops pinging, and systemd restarts pbxd after `WatchdogSec`. STATUS= is recomputed at
    most every `status_every` seconds and sent when it changed, until systemd takes it.
    """
    if not notifier.enabled:
        return
    interval = notifier.watchdog_interval
    tick = min(status_every, interval) if interval else status_every
    last_status: str | None = None
    last_ping = float("-inf")
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        if interval is not None and now - last_ping >= interval - tick / 2:
            notifier.watchdog()
            last_ping = now
        try:
            text = _one_line(status_of())
        except Exception:  # a status line must never stop the watchdog
            log.exception("systemd_status_failed")
            text = last_status or ""
        # One systemd did not take (its queue full, not listening yet) is sent again next pass.
        if text != last_status and notifier.status(text):
            last_status = text
        await asyncio.sleep(tick)
