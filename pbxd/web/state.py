"""What the web application shares with the daemon: typed application keys.

Handlers read the daemon's parts through these keys only; the lifecycle (`lifecycle.py`)
fills `RUNTIME` as each part starts, and tests build the same application around their own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from pbxd.calls.dnd import DoNotDisturb
from pbxd.calls.runtime import CallService
from pbxd.cdr.store import CdrStore
from pbxd.clock import Clock
from pbxd.config.reload import RunningConfig
from pbxd.ha.service import PairedService
from pbxd.systemd import Notifier
from pbxd.voicemail.store import MessageStore
from pbxd.web.throttle import LoginThrottle
from pbxd.web.users import Sessions, UserDirectory


@dataclass
class Runtime:
    """The daemon's running parts, filled in as they start; `stop` ends the daemon."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    notifier: Notifier = field(default_factory=lambda: Notifier(None))
    store: CdrStore | None = None
    service: CallService | PairedService | None = None  # PairedService: ha.mode active-standby
    exit_status: int = 0

    def fail(self, status: int = 1) -> None:
        """A part cannot go on: stop the daemon with `status` (systemd restarts it)."""
        self.exit_status = status
        self.stop.set()


# The configuration in force: read `.current` at each use, a reload swaps it.
CONFIG = web.AppKey("config", RunningConfig)
RUNTIME = web.AppKey("runtime", Runtime)
CLOCK = web.AppKey("clock", Clock)
USERS = web.AppKey("users", UserDirectory)
SESSIONS = web.AppKey("sessions", Sessions)
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
DND = web.AppKey("dnd", DoNotDisturb)
VOICEMAIL = web.AppKey("voicemail", MessageStore)
