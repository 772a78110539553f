"""Web fixtures: the shipped example, a CDR store on each backend with a morning of calls,
users of each role, and the application under aiohttp's test client."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from pbxd.cdr.records import (
    CallRecord,
    Disposition,
    LegRecord,
    PathStep,
    StepKind,
    StepOutcome,
    VoicemailLeft,
)
from pbxd.cdr.store import CdrStore
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.web.app import build_app
from pbxd.web.state import Runtime
from pbxd.web.users import Role, add_user

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from dbfixtures import BACKENDS, database_url  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Tests hash with cheap argon2 parameters; verification reads them from each hash.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # 16:00 in Paris, a Thursday
RECEPTION = "+33170000001"
PASSWORD = "correct horse battery"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped configuration in tmp_path (the working directory)."""
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("routing", "sounds", "scenarios"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_DATABASE_URL", "PBXD_STATE_DIR", "PBXD_HTTP_USERS_FILE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def config(example: Path) -> Config:
    result = compile_config(example / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


@dataclass(frozen=True)
class Tokens:
    viewer: str
    admin: str


@pytest.fixture
def tokens(config: Config) -> Tokens:
    """A viewer and an admin (both with PASSWORD for the login form), with API tokens."""
    path = config.settings.users_file
    viewer = add_user(path, "vera", Role.VIEWER, password=PASSWORD, hasher=FAST_HASHER)
    admin = add_user(path, "adam", Role.ADMIN, password=PASSWORD, hasher=FAST_HASHER)
    return Tokens(viewer=viewer, admin=admin)


@pytest.fixture(params=BACKENDS)
async def cdr_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url(request.param, tmp_path) as url:
        yield url


def _at(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def morning_calls() -> list[tuple[CallRecord, list[LegRecord]]]:
    """Four calls to the Paris reception: answered, missed, voicemail, abandoned."""
    answered = CallRecord(
        call_id="call-answered",
        did=RECEPTION,
        started_at=_at(300),
        caller_number="+33612000001",
        caller_name="Jean",
        route="paris-reception",
        strategy="ringall",
        answered_at=_at(300) + timedelta(seconds=6),
        ended_at=_at(290),
        disposition=Disposition.ANSWERED,
        answered_by="alice",
        hangup_cause=16,
        path=(PathStep(StepKind.RING, StepOutcome.ANSWERED),),
    )
    answered_legs = [
        LegRecord(
            "call-answered-1",
            "call-answered",
            "alice",
            "PJSIP/alice",
            _at(300) + timedelta(seconds=1),
            answered_at=_at(300) + timedelta(seconds=6),
            ended_at=_at(290),
            hangup_cause=16,
        ),
        LegRecord(
            "call-answered-2",
            "call-answered",
            "bob",
            "PJSIP/bob",
            _at(300) + timedelta(seconds=1),
            ended_at=_at(300) + timedelta(seconds=6),
            hangup_cause=26,
        ),
    ]
    missed = CallRecord(
        call_id="call-missed",
        did=RECEPTION,
        started_at=_at(200),
        caller_number="+33612000002",
        route="paris-reception",
        strategy="ringall",
        ended_at=_at(199.5),
        disposition=Disposition.NO_ANSWER,
        hangup_cause=19,
        path=(PathStep(StepKind.RING, StepOutcome.NO_ANSWER),),
    )
    missed_legs = [
        LegRecord(
            "call-missed-1",
            "call-missed",
            "ceo-mobile",
            "PJSIP/+33612345678@trunk-out",
            _at(200),
            ended_at=_at(199.5),
            hangup_cause=21,
        )
    ]
    voicemail = CallRecord(
        call_id="call-voicemail",
        did=RECEPTION,
        started_at=_at(100),
        caller_number="+33612000003",
        route="paris-reception",
        ended_at=_at(99),
        disposition=Disposition.VOICEMAIL,
        hangup_cause=16,
        path=(
            PathStep(StepKind.SCHEDULE, StepOutcome.CLOSED),
            PathStep(StepKind.VOICEMAIL, StepOutcome.LEFT),
        ),
        voicemail=VoicemailLeft("msg-1", 12),
    )
    abandoned = CallRecord(
        call_id="call-abandoned",
        did=RECEPTION,
        started_at=_at(10),
        caller_number="+33612000004",
        route="paris-reception",
        ended_at=_at(9.8),
        disposition=Disposition.ABANDONED,
        hangup_cause=16,
    )
    return [(answered, answered_legs), (missed, missed_legs), (voicemail, []), (abandoned, [])]


@pytest.fixture
async def store(cdr_url: str) -> AsyncIterator[CdrStore]:
    """An open store with `morning_calls` written."""
    cdr = await CdrStore.open(cdr_url, flush_interval=0.05)
    try:
        for call, legs in morning_calls():
            cdr.record_call(call)
            for leg in legs:
                cdr.record_leg(leg)
        await cdr.flush()
        yield cdr
    finally:
        await cdr.close()


@pytest.fixture
async def client(
    config: Config, store: CdrStore, tokens: Tokens
) -> AsyncIterator[TestClient[object, object]]:
    """The web application (no call service: not ready) under the test client."""
    runtime = Runtime(store=store)
    app = build_app(config, runtime, clock=VirtualClock(origin=NOW))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
