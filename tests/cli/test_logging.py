"""Log lines: JSON off a terminal, secrets masked, every line of a call bound to it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from pbxd.log import configure_logging, redact_url

# Lines about the process, not about one call.
PROCESS_EVENTS = {
    "ari_events_connected",
    "connected to ARI",
    "ari_events_stopped",
    "call service stopped",
    "asterisk_identified",
    "presence_loaded",  # the softphones' states, read at each connection
    "endpoint_state",  # a softphone registered or dropped, during no call in particular
    "ari_event_filter_set",
}
# Requests about the application and its softphones, outside any call.
PROCESS_PATHS = {
    "/applications/pbxd",
    "/applications/pbxd/eventFilter",
    "/applications/pbxd/subscription",
    "/endpoints",
    "/asterisk/info",  # who Asterisk is (the CDR's server), asked at the first connection
}


@pytest.fixture
def json_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """configure_logging(json=True) writing into a buffer; structlog restored afterwards."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("debug", json=True)
    try:
        yield buffer
    finally:
        structlog.configure(**saved)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://pbxd:s3cret@db/pbx", "postgresql://pbxd:***@db/pbx"),
        ("ws://pbxd:a:b@127.0.0.1:8088/ari/events", "ws://pbxd:***@127.0.0.1:8088/ari/events"),
        (
            "failed for http://u:p@h/x and http://v:q@k/y",
            "failed for http://u:***@h/x and http://v:***@k/y",
        ),
        ("http://127.0.0.1:8088/ari", "http://127.0.0.1:8088/ari"),
        ("postgresql://pbxd@db/pbx", "postgresql://pbxd@db/pbx"),
        ("sqlite:////var/lib/pbxd/a@b.db", "sqlite:////var/lib/pbxd/a@b.db"),
    ],
)
def test_redact_url(text: str, shown: str) -> None:
    assert redact_url(text) == shown


def idle_bridge_destroyed(request: dict[str, object]) -> bool:
    """At the stop the daemon destroys the bridges calls left idle: no call's request."""
    path = str(request.get("path", ""))
    return request.get("method") == "DELETE" and path.startswith("/bridges/pbxd-bridge-")


def test_secrets_never_reach_a_line_not_even_in_a_traceback(json_stderr: io.StringIO) -> None:
    log = structlog.get_logger("test")
    log.info("starting", ari="http://pbxd:ari-secret@127.0.0.1:8088/ari", password="pw-secret")
    try:
        raise ValueError("cannot parse postgresql://pbxd:db-secret@db:x/pbx")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in json_stderr.getvalue().splitlines())
    assert first["ari"] == "http://pbxd:***@127.0.0.1:8088/ari" and first["password"] == "***"
    assert "postgresql://pbxd:***@db:x/pbx" in second["exception"]
    for secret in ("ari-secret", "pw-secret", "db-secret"):
        assert secret not in json_stderr.getvalue()


def test_simulate_logs_json_lines_bound_to_their_call(tmp_path: Path, example: Path) -> None:
    env = {**os.environ, "PBXD_LOG_LEVEL": "debug", "PYTHONPATH": os.pathsep.join(sys.path)}
    db = f"sqlite:///{tmp_path / 'cdr.db'}"
    argv = ["simulate", "scenarios/acme-morning.yaml", "--verbose"]
    result = subprocess.run(
        [sys.executable, "-m", "pbxd", *argv, "--database", db],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # stderr is no TTY: JSON
    # The start-up sweep of stranded channels asks about the application, the event filter
    # is set and presence asks about the softphones, outside any call.
    in_calls = [
        e
        for e in lines
        if e["event"] not in PROCESS_EVENTS
        and not (e["event"] == "ari_request" and e.get("path") in PROCESS_PATHS)
        and not (e["event"] == "ari_request" and idle_bridge_destroyed(e))
    ]
    assert {e["event"] for e in in_calls} >= {"call routed", "call ended", "ari_request"}
    unbound = [e for e in in_calls if not (e.get("call_id") and e.get("did"))]
    assert unbound == []
    assert {e["did"] for e in in_calls} >= {"+33170000001", "+33972100001"}
