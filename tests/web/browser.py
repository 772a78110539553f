"""A real browser against the real pages: the app served from a thread, Debian's chromium
driven through chromedriver (selenium). Used by test_browser.py and `make screenshots`.

The server runs its own event loop in a thread because selenium's calls block: the page
must keep answering while the test waits on the browser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from argon2 import PasswordHasher

from pbxd.cdr.records import CallRecord, Disposition, LegRecord, PathStep, StepKind, StepOutcome
from pbxd.cdr.store import CdrStore
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.web.app import build_app
from pbxd.web.state import Runtime
from pbxd.web.users import Role, add_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
USER, PASSWORD = "vera", "correct horse battery"
ADMIN = "adam"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def browser_missing() -> str | None:
    """Why the browser test cannot run here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


def skip_or_fail_without_browser() -> None:
    """Skip on a developer's machine without chromium; fail in CI, which must have it."""
    why = browser_missing()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run in CI: {why}", pytrace=False)
    pytest.skip(why)


def month_of_calls(did: str, *, seed: int = 7) -> list[tuple[CallRecord, list[LegRecord]]]:
    """A plausible month at a reception (deterministic): busy mornings, quiet weekends."""
    rng = random.Random(seed)
    calls: list[tuple[CallRecord, list[LegRecord]]] = []
    day = datetime(2026, 11, 3, tzinfo=UTC)
    while day < NOW - timedelta(hours=1):
        weekend = day.weekday() >= 5
        for n in range(rng.randint(0, 3) if weekend else rng.randint(6, 16)):
            hour = rng.choice([7, 8, 8, 9, 9, 9, 10, 10, 12, 13, 13, 14, 15, 16])
            start = day.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))
            if start >= NOW:
                continue
            call_id = f"sim-{start:%m%d%H%M%S}-{n}"
            caller = f"+336120{rng.randint(10000, 99999)}"
            answered = rng.random() < 0.72
            wait = rng.randint(3, 25)
            if answered:
                ended = start + timedelta(seconds=wait + rng.randint(30, 600))
                who = rng.choice(["alice", "bob"])
                call = CallRecord(
                    call_id, did, start, caller, route="paris-reception", strategy="ringall",
                    answered_at=start + timedelta(seconds=wait), ended_at=ended,
                    disposition=Disposition.ANSWERED, answered_by=who, hangup_cause=16,
                    path=(PathStep(StepKind.RING, StepOutcome.ANSWERED),),
                )  # fmt: skip
                legs = [
                    LegRecord(
                        f"{call_id}-1", call_id, who, f"PJSIP/{who}", start,
                        answered_at=start + timedelta(seconds=wait), ended_at=ended,
                        hangup_cause=16,
                    ),
                    LegRecord(
                        f"{call_id}-2", call_id, "bob" if who == "alice" else "alice",
                        "PJSIP/other", start, ended_at=start + timedelta(seconds=wait),
                        hangup_cause=26,
                    ),
                ]  # fmt: skip
            else:
                disposition = rng.choice(
                    [Disposition.NO_ANSWER, Disposition.ABANDONED, Disposition.BUSY]
                )
                ended = start + timedelta(seconds=wait)
                call = CallRecord(
                    call_id, did, start, caller, route="paris-reception", strategy="ringall",
                    ended_at=ended, disposition=disposition, hangup_cause=19,
                    path=(PathStep(StepKind.RING, StepOutcome.NO_ANSWER),),
                )  # fmt: skip
                legs = [
                    LegRecord(
                        f"{call_id}-1", call_id, "ceo-mobile", "PJSIP/+33612345678@trunk-out",
                        start, ended_at=ended, hangup_cause=rng.choice([19, 21, 17]),
                    )
                ]  # fmt: skip
            calls.append((call, legs))
        day += timedelta(days=1)
    return calls


@dataclass
class ServedApp:
    """Where the pages are, and the folder downloads land in."""

    url: str
    downloads: Path


@contextmanager
def served_app(tree: Path) -> Iterator[ServedApp]:
    """The shipped configuration in `tree`, a month of calls, two users; served on loopback."""
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tree / name)
    for name in ("routing", "sounds"):
        shutil.copytree(REPO / name, tree / name, dirs_exist_ok=True)
    result = compile_config(tree / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    config = result.config
    # Plain HTTP on loopback: what `http.secure_cookies: false` is for.
    config.settings = dataclasses.replace(config.settings, http_secure_cookies=False)
    users = config.settings.users_file
    add_user(users, USER, Role.VIEWER, password=PASSWORD, hasher=FAST_HASHER)
    add_user(users, ADMIN, Role.ADMIN, password=PASSWORD, hasher=FAST_HASHER)
    downloads = tree / "downloads"
    downloads.mkdir()
    ready: list[str] = []
    started = threading.Event()
    stop: list[asyncio.AbstractEventLoop | asyncio.Event] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        store = await CdrStore.open(f"sqlite:///{tree / 'cdr.db'}", flush_interval=0.05)
        runner: web.AppRunner | None = None
        try:
            for call, legs in month_of_calls("+33170000001"):
                store.record_call(call)
                for leg in legs:
                    store.record_leg(leg)
            await store.flush()
            app = build_app(config, Runtime(store=store), clock=VirtualClock(origin=NOW))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            ready.append(f"http://{host}:{port}")
            done = asyncio.Event()
            stop.extend([asyncio.get_running_loop(), done])
            started.set()
            await done.wait()
        finally:
            if runner is not None:
                await runner.cleanup()
            await store.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="pbxd-web", daemon=True)
    thread.start()
    assert started.wait(30), "the web app did not start"
    if failure:
        raise failure[0]
    try:
        yield ServedApp(url=ready[0], downloads=downloads)
    finally:
        loop, done = stop
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(done, asyncio.Event)
        loop.call_soon_threadsafe(done.set)
        thread.join(30)


def chromium(downloads: Path, *, width: int = 1280, height: int = 900) -> object:
    """A headless chromium through Debian's chromedriver (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
        },
    )
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
