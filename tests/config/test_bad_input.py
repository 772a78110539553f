"""Nasty input for `pbxd check`: every user error is one clear diagnostic, never a traceback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config, load_settings
from pbxd.config.diagnostics import Diagnostics

Edit = Callable[[str, str, str], None]


def check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    status = main(["check"])
    captured = capsys.readouterr()
    return status, captured.err.splitlines(), captured.out


def diagnostics(err: list[str]) -> list[str]:
    """The diagnostic lines, without the closing count."""
    return [line for line in err if ": error: " in line or ": warning: " in line]


# ------------------------------------------------------------------ files that are not YAML


def test_trunks_file_without_trunks_key(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("sip-trunks.yaml", "\ntrunks:\n", "\ntrunk:\n")
    status, err, out = check(capsys)
    assert status == 1 and out == ""
    # One error; the routes that use the hidden inventory add no cascade.
    assert diagnostics(err) == [
        "sip-trunks.yaml:5:1: error: unknown key 'trunk' (did you mean 'trunks'?)"
    ]


def test_empty_trunks_file_says_so(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example / "sip-trunks.yaml").write_text("# nothing yet\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert "sip-trunks.yaml:1:1: warning: no trunk is defined" in err


def test_trunks_file_that_is_a_list(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example / "sip-trunks.yaml").write_text("- carrier-fr\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "sip-trunks.yaml:1:1: error: the trunks file must be a mapping (key: value), not a list"
    ]


def test_control_character_has_its_place(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = example / "routing" / "london.yaml"
    path.write_text(path.read_text() + "extra: a\0b\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert (
        "routing/london.yaml:10:9: error: YAML syntax error: control characters are not allowed "
        "(U+0000)"
    ) in err, "\n".join(err)


def test_file_that_is_not_utf8(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example / "routing" / "london.yaml").write_bytes(b"routes: []\nlabel: caf\xe9\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert (
        "routing/london.yaml:2:11: error: not a UTF-8 text file (byte 0xe9 cannot be decoded)"
        in err
    )


def test_file_that_is_a_directory(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example / "routing" / "more.yaml").mkdir()
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == ["routing/more.yaml:1:1: error: cannot read file: Is a directory"]


def test_symlink_loop_in_routing(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.symlink("loop.yaml", example / "routing" / "loop.yaml")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "routing/loop.yaml:1:1: error: cannot read file: Too many levels of symbolic links"
    ]


def test_dangling_symlink_is_named_as_written(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.symlink("gone.yaml", example / "routing" / "extra.yaml")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == ["routing/extra.yaml:1:1: error: file not found"]


def test_hidden_files_in_routing_are_ignored(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.symlink("alice@laptop.4242", example / "routing" / ".#acme.yaml")  # an Emacs lock
    (example / "routing" / ".git").mkdir()
    (example / "routing" / ".git" / "junk.yaml").write_text("- not a routing file\n")
    status, err, _ = check(capsys)
    assert (status, err) == (0, [])


def test_non_string_key_is_reported_once(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("routing/london.yaml", "routes:\n", "? [a, b]\n: 1\nroutes:\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == ["routing/london.yaml:3:3: error: a key must be text, not a list"]


# ------------------------------------------------------------------ values of the wrong kind


def test_route_ring_time_is_reported_once(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("routing/acme.yaml", "    timeout: 40\n", "    timeout: 40\n    ring_time: 0\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "routing/acme.yaml:50:16: error: ring_time must be between 1 and 300 seconds, not 0"
    ]


def test_boolean_count_is_not_one(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit(
        "sip-trunks.yaml",
        "range: 01 70 00 01 00 - 01 70 00 01 09",
        "prefix: 01 70 00 01 0\n        count: yes",
    )
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "sip-trunks.yaml:21:16: error: count: must be a whole number, not true"
    ]


def test_huge_prefix_count(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit(
        "sip-trunks.yaml",
        "range: 01 70 00 01 00 - 01 70 00 01 09",
        "prefix: 01 70 00 01 0\n        count: 1000000000000",
    )
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "sip-trunks.yaml:21:16: error: count must be a power of ten from 10 to 100,000 "
        "(a whole prefix block), not 1000000000000"
    ]


# ------------------------------------------------------------------ no cascades


def test_bad_inventory_entry_adds_no_cascade(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        "sip-trunks.yaml",
        "label: Acme support line",
        "label: Acme support line\n        timezone: Europe/Pariss",
    )
    edit("sip-trunks.yaml", "port_date: 2026-12-15", "port_date: soon")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "sip-trunks.yaml:19:19: error: unknown time zone 'Europe/Pariss' "
        "(did you mean 'Europe/Paris'?)",
        "sip-trunks.yaml:24:20: error: port_date: must be a date written YYYY-MM-DD, not 'soon'",
    ]


def test_bad_trunk_adds_no_cascade(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("sip-trunks.yaml", "max_outbound_legs: 20", "max_outbound_legs: many")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "sip-trunks.yaml:11:24: error: max_outbound_legs: must be a whole number, not 'many'"
    ]


def test_broken_trunks_file_adds_no_cascade(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("sip-trunks.yaml", 'allowed_destinations: ["+33"]', 'allowed_destinations: ["+33"')
    status, err, _ = check(capsys)
    assert status == 1
    assert len(diagnostics(err)) == 1, "\n".join(err)


def test_broken_route_adds_no_warnings(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("routing/acme.yaml", "timeout: 60", "timeout: 1m")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "routing/acme.yaml:42:14: error: timeout: must be a whole number, not '1m'"
    ]


# ------------------------------------------------------------------ pbxd.yaml and PBXD_*


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (
            "PBXD_HTTP_BIND",
            "garbage",
            "pbxd.yaml:1:1: error: http.bind (from $PBXD_HTTP_BIND): 'garbage' must be HOST:PORT "
            "with a port from 1 to 65535, such as 127.0.0.1:8080",
        ),
        (
            "PBXD_HTTP_BIND",
            "127.0.0.1:99999",
            "pbxd.yaml:1:1: error: http.bind (from $PBXD_HTTP_BIND): '127.0.0.1:99999' must be "
            "HOST:PORT with a port from 1 to 65535, such as 127.0.0.1:8080",
        ),
        (
            "PBXD_ARI_URL",
            "asterisk.local:8088",
            "pbxd.yaml:1:1: error: ari.url (from $PBXD_ARI_URL): must be an http:// or https:// "
            "URL such as http://127.0.0.1:8088/ari",
        ),
        (
            "PBXD_ARI_URL",
            "http://asterisk:0/ari",
            "pbxd.yaml:1:1: error: ari.url (from $PBXD_ARI_URL): the port must be a number "
            "from 1 to 65535",
        ),
        (
            "PBXD_ARI_URL",
            "http://pbxd:s3cret@asterisk:8088/ari",
            "pbxd.yaml:1:1: error: ari.url (from $PBXD_ARI_URL): must not carry credentials "
            "(user:password@): put the user in ari.username and the password in "
            "PBXD_ARI_PASSWORD or ari.password_file",
        ),
        (
            "PBXD_LOG_LEVEL",
            "verbos",
            "pbxd.yaml:1:1: error: log_level (from $PBXD_LOG_LEVEL): must be one of debug, info, "
            "warning, error, critical, not 'verbos'",
        ),
        (
            "PBXD_DATABASE_URL",
            "mysql://pbxd:s3cret@db/pbx",
            "pbxd.yaml:1:1: error: database.url (from $PBXD_DATABASE_URL): must be "
            "sqlite:///PATH or postgresql://USER@HOST/DB",
        ),
    ],
)
def test_bad_environment_override(
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    var: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    monkeypatch.setenv(var, value)
    status, err, out = check(capsys)
    assert status == 1 and out == ""
    assert diagnostics(err) == [expected.format(example=example.resolve())]
    assert "s3cret" not in "\n".join(err)  # a database URL may carry a password


@pytest.mark.parametrize(
    "url",
    [
        "http://pbxd:s3cret@127.0.0.1:8088/ari",
        "http://:s3cret@127.0.0.1:8088/ari",
        "https://pbxd@127.0.0.1:8089/ari",
        "http://pbxd:12/s3cret@127.0.0.1:8088/ari",  # urlsplit sees host `pbxd`, port 12
    ],
)
def test_credentials_in_the_ari_url_are_refused_unechoed(
    edit: Edit, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    edit("pbxd.yaml", "url: http://127.0.0.1:8088/ari", f"url: {url}")
    status, err, out = check(capsys)
    assert status == 1 and out == ""
    assert diagnostics(err) == [
        "pbxd.yaml:4:8: error: ari.url: must not carry credentials (user:password@): put the "
        "user in ari.username and the password in PBXD_ARI_PASSWORD or ari.password_file"
    ]
    assert "s3cret" not in "\n".join(err)


def test_bad_setting_in_the_file_points_at_it(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("pbxd.yaml", "bind: 127.0.0.1:8080", "bind: 8080")
    edit("pbxd.yaml", "log_level: info", "log_level: loud")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "pbxd.yaml:11:9: error: http.bind: '8080' must be HOST:PORT with a port from 1 to 65535, "
        "such as 127.0.0.1:8080",
        "pbxd.yaml:15:12: error: log_level: must be one of debug, info, warning, error, "
        "critical, not 'loud'",
    ]


def test_password_pasted_as_variable_name_is_not_echoed(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("pbxd.yaml", "password_env: PBXD_ARI_PASSWORD ", "password_env: 'c0rrect horse!' ")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "pbxd.yaml:6:17: error: ari.password_env: must be the name of an environment variable "
        "(capital letters, digits, _, such as PBXD_ARI_PASSWORD), not the password itself"
    ]


def test_password_variable_name_from_the_environment(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    monkeypatch.setenv("PBXD_ARI_PASSWORD_ENV", "ASTERISK_SECRET")
    monkeypatch.setenv("ASTERISK_SECRET", "from-elsewhere")
    settings = load_settings(example / "pbxd.yaml", Diagnostics())
    assert settings is not None
    assert settings.ari_password_env == "ASTERISK_SECRET"
    assert settings.ari_password() == "from-elsewhere"


def test_ari_password_is_never_printed(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = example / "ari-secret"
    secret_file.write_text("file-secret-42\n")
    monkeypatch.setenv("PBXD_ARI_PASSWORD_FILE", str(secret_file))
    monkeypatch.setenv("PBXD_ARI_PASSWORD", "env-secret-42")
    status, err, out = check(capsys)
    assert status == 0
    assert main(["numbers", "--format", "json"]) == 0
    printed = out + "\n".join(err) + capsys.readouterr().out
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None and config.settings.ari_password() == "env-secret-42"
    for shown in (printed, repr(config.settings), repr(config)):
        assert "secret-42" not in shown


def test_missing_password_file_is_a_warning(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only `pbxd run` needs the password: check, simulate and calls still work without it.
    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    monkeypatch.setenv("PBXD_ARI_PASSWORD_FILE", "no-such-file")
    status, err, _ = check(capsys)
    assert status == 0
    assert err == [
        f"pbxd.yaml:1:1: warning: ari.password_file (from $PBXD_ARI_PASSWORD_FILE): "
        f"{example}/no-such-file does not exist: pbxd run cannot log in to ARI without it"
    ]


def test_missing_password_file_is_fine_when_the_password_is_in_the_environment(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PBXD_ARI_PASSWORD_FILE", "/no/such/file")
    monkeypatch.setenv("PBXD_ARI_PASSWORD", "set")
    status, err, _ = check(capsys)
    assert (status, err) == (0, [])


def test_numbers_with_a_broken_configuration(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("sip-trunks.yaml", "\ntrunks:\n", "\ntrunk:\n")
    assert main(["numbers", "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "sip-trunks.yaml:5:1: error: unknown key 'trunk' (did you mean 'trunks'?)"
    ]


def test_numbers_empty_filter_is_an_empty_list(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["numbers", "--trunk", "carrier-uk", "--status", "porting", "--format", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == []


def test_unknown_country_on_an_inventory_entry(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        "sip-trunks.yaml",
        "label: Acme support line",
        "label: Acme support line\n        country: XX",
    )
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == ["sip-trunks.yaml:19:18: error: unknown country code 'XX'"]


def test_unknown_country_of_a_routing_file_is_named(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("routing/acme.yaml", "country: FR", "country: XX")
    status, err, _ = check(capsys)
    assert status == 1
    assert "routing/acme.yaml:2:10: error: unknown country code 'XX'" in err
    assert (
        "routing/acme.yaml:25:15: error: '01 70 00 00 01' is in national form but country 'XX' "
        "is unknown"
    ) in err


def test_yaml_word_used_as_a_name(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("routing/acme.yaml", "  carol:\n", "  no:\n    softphone: PJSIP/no\n  carol:\n")
    status, err, _ = check(capsys)
    assert status == 1
    assert diagnostics(err) == [
        "routing/acme.yaml:11:3: error: key 'no' is read as a boolean, not text: "
        "quote it ('no') if it is a name"
    ]


def test_settings_are_checked_after_a_typo(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("pbxd.yaml", "log_level: info", "log_levle: info\nhttp_bind: x")
    edit("pbxd.yaml", "bind: 127.0.0.1:8080", "bind: localhost")
    status, err, _ = check(capsys)
    assert status == 1
    assert [line.split(": error: ")[1] for line in diagnostics(err)] == [
        "http.bind: 'localhost' must be HOST:PORT with a port from 1 to 65535, "
        "such as 127.0.0.1:8080",
        "unknown key 'log_levle' (did you mean 'log_level'?)",
        "unknown key 'http_bind' (did you mean 'http'?)",
    ]


def test_absurdly_long_number(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("sip-trunks.yaml", "- number: 020 7946 0123", "- number: +44" + "1" * 5000)
    status, err, _ = check(capsys)
    assert status == 1
    assert f"sip-trunks.yaml:44:17: error: '+44{'1' * 37}…' is not a phone number" in err
