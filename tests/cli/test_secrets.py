"""Secrets: no database password reaches a terminal or a log line, whatever URL form holds it."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest
import structlog

from pbxd.cdr.url import DatabaseUrlError, check_database_url, connect_options
from pbxd.cli.main import main
from pbxd.log import configure_logging, redact_url

# Every way SQLAlchemy accepts (or an admin writes) a password in a database URL.
LEAKY_URLS = [
    ("postgresql://pbxd:s3cr3t-a@127.0.0.1:1/pbx", "s3cr3t-a"),
    ("postgresql://pbxd:hun/ter2-b@127.0.0.1:1/pbx", "hun/ter2-b"),
    ("postgresql://pbxd:p%40ss-c@127.0.0.1:1/pbx", "ss-c"),
    ("postgresql://pbxd@127.0.0.1:1/pbx?password=s3cr3t-d", "s3cr3t-d"),
    ("postgresql+asyncpg://pbxd:s3cr3t-e@127.0.0.1:1/pbx", "s3cr3t-e"),
    ("postgres://pbxd:s3cr3t-f@127.0.0.1:1/pbx?sslmode=disable", "s3cr3t-f"),
    ("postgresql://pbxd@127.0.0.1:1/pbx?sslmode=disable&sslpassword=s3cr3t-g", "s3cr3t-g"),
]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:hun/ter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgresql+asyncpg://u:pw@h:5432/db", "postgresql+asyncpg://u:***@h:5432/db"),
        ("http://h:8088/ari?api_key=pbxd:pw", "http://h:8088/ari?api_key=***"),
        ("'postgresql://u:p@ss@h/db'", "'postgresql://u:***@h/db'"),
        ('{"db": "postgresql://u:a@b@h/db"}', '{"db": "postgresql://u:***@h/db"}'),
        ("sqlite:////var/lib/pbxd/a@b.db?timeout=5", "sqlite:////var/lib/pbxd/a@b.db?timeout=5"),
    ],
)
def test_every_url_form_is_masked(text: str, shown: str) -> None:
    assert redact_url(text) == shown


@pytest.mark.parametrize(("url", "secret"), LEAKY_URLS)
def test_calls_never_prints_the_password(
    example: Path, capsys: pytest.CaptureFixture[str], url: str, secret: str
) -> None:
    status = main(["calls", "01 70 00 00 01", "--database", url])
    out, err = capsys.readouterr()
    assert status == 2
    assert "cannot read the call log from postgres" in err
    assert secret not in out + err


@pytest.mark.parametrize(("url", "secret"), LEAKY_URLS)
def test_simulate_never_prints_the_password(
    example: Path, capsys: pytest.CaptureFixture[str], url: str, secret: str
) -> None:
    status = main(["simulate", "scenarios/acme-morning.yaml", "--database", url])
    out, err = capsys.readouterr()
    assert status == 1
    assert "cannot open the CDR database postgres" in err
    assert secret not in out + err


@pytest.mark.parametrize(("url", "secret"), LEAKY_URLS)
def test_run_and_check_never_print_the_password(
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    secret: str,
) -> None:
    monkeypatch.setenv("PBXD_DATABASE_URL", url)
    monkeypatch.setenv("PBXD_ARI_PASSWORD", "ari-pw")
    assert main(["check"]) == 0
    assert main(["run"]) == 1  # the database cannot be reached
    out, err = capsys.readouterr()
    assert "cannot open the CDR database" in err
    assert secret not in out + err


class _Dsn:
    """An object whose repr holds a URL, as a driver's connection object may."""

    def __repr__(self) -> str:
        return "Dsn(postgresql://u:hun/ter2-2@h/db)"


def test_an_at_sign_in_the_password_is_a_check_error_that_does_not_echo_it(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PBXD_DATABASE_URL", "postgresql://pbxd:p@ss-h@127.0.0.1/pbx")
    assert main(["check"]) == 1
    monkeypatch.delenv("PBXD_DATABASE_URL")
    assert main(["calls", "01 70 00 00 01", "--database", "postgresql://u:p@ss-i@h/db"]) == 2
    out, err = capsys.readouterr()
    assert "database.url (from $PBXD_DATABASE_URL): an '@' in the user or password" in err
    assert "postgresql://u:***@h/db: DatabaseUrlError: an '@'" in err
    assert "ss-h" not in out + err and "ss-i" not in out + err


def test_log_lines_of_other_libraries_and_nested_fields_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("debug", json=True)
    structlog.get_logger("t").info("nested", where={"urls": ["postgresql://u:p@ss-1@h/db"]})
    structlog.get_logger("t").info("repr", url=_Dsn())
    logging.getLogger("asyncio").error("Task failed for postgresql://u@h/db?password=pw-3")
    text = buffer.getvalue()
    for secret in ("ss-1", "ter2-2", "pw-3"):
        assert secret not in text
    assert json.loads(text.splitlines()[0])["where"] == {"urls": ["postgresql://u:***@h/db"]}


def test_an_unexpected_error_prints_a_masked_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    def broken(_args: object) -> int:
        raise RuntimeError("bug while reading postgresql://u:p@ss-4@h/db")

    monkeypatch.setattr("pbxd.cli.check.run", broken)
    assert main(["check"]) == 70
    err = capsys.readouterr().err
    assert "postgresql://u:***@h/db" in err and "ss-4" not in err
    assert err.splitlines()[-1].startswith("pbxd check: internal error: RuntimeError")


@pytest.mark.parametrize("name", ["Tr0ub4dor_Horse", "pbxd_ari_password", "9LIVES", "A-B"])
def test_password_env_must_look_like_a_variable_name(
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    monkeypatch.setenv("PBXD_ARI_PASSWORD_ENV", name)
    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    assert main(["check"]) == 1
    assert main(["run"]) == 1
    out, err = capsys.readouterr()
    assert "ari.password_env (from $PBXD_ARI_PASSWORD_ENV): must be the name of" in err
    assert name not in out + err


# ---------------------------------------------------------------- driver options


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://pbxd@db/pbx?sslmode=disable",
        "postgresql://pbxd@db/pbx?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
        "postgresql://pbxd@db/pbx?connect_timeout=5&application_name=pbxd",
        "postgresql://pbxd@/pbx?host=/var/run/postgresql",
        "sqlite:////var/lib/pbxd/cdr.db?timeout=10",
        "sqlite:////var/lib/pbxd/cdr.db?mode=rwc&uri=true",
    ],
)
def test_libpq_style_options_pass_check(url: str) -> None:
    assert check_database_url(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://pbxd@db/pbx?sslmode=off", "option sslmode='off' must be one of disable"),
        ("postgresql://pbxd@db/pbx?sslmod=disable", "(did you mean 'sslmode'?)"),
        ("postgresql://pbxd@db/pbx?connect_timeout=soon", "connect_timeout must be seconds"),
        ("postgresql://pbxd@db/pbx?sslmode=a&sslmode=b", "'sslmode' is given more than once"),
        ("sqlite:////var/lib/pbxd/cdr.db?mode=ro", "'mode' needs uri=true"),
        ("sqlite:////var/lib/pbxd/cdr.db?journal=wal", "not understood by SQLite"),
    ],
)
def test_unknown_or_bad_options_are_a_check_error(
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    problem: str,
) -> None:
    monkeypatch.setenv("PBXD_DATABASE_URL", url)
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "database.url (from $PBXD_DATABASE_URL): " in err and problem in err
    with pytest.raises(DatabaseUrlError):
        connect_options(url)


def test_sslmode_becomes_asyncpg_ssl() -> None:
    url, connect_args = connect_options("postgresql://pbxd@db/pbx?sslmode=require&options=-cx=1")
    assert dict(url.query) == {}
    assert connect_args == {"dsn": "postgresql://?sslmode=require", "server_settings": {"x": "1"}}
