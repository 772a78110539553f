"""pbxd.yaml's `mail:` and `voicemail:` sections, as `pbxd check` sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.config.files import MailSecurity

GOOD_MAIL = """
mail:
  host: smtp.acme.example
  username: pbxd@acme.example
  password_env: PBXD_SMTP_PASSWORD
  from_address: "Acme PBX <pbxd@acme.example>"
"""


def write(example: Path, extra: str) -> None:
    path = example / "pbxd.yaml"
    path.write_text(path.read_text() + extra)


def check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check"])
    err = capsys.readouterr().err.splitlines()
    return status, [line for line in err if ": error: " in line or ": warning: " in line]


def test_a_good_mail_section_is_read_with_its_defaults(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(example, GOOD_MAIL + "voicemail:\n  dir: /srv/voicemail\n")
    monkeypatch.setenv("PBXD_SMTP_PASSWORD", "smtp-secret-42")
    assert check(capsys) == (0, [])
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    mail = config.settings.mail
    assert mail is not None
    assert (mail.host, mail.port, mail.security) == (
        "smtp.acme.example",
        587,
        MailSecurity.STARTTLS,
    )
    assert mail.password() == "smtp-secret-42"
    assert "smtp-secret-42" not in repr(config.settings)
    assert config.settings.voicemail_folder == Path("/srv/voicemail")


def test_without_sections_there_is_no_mail_and_messages_go_to_the_state_dir(
    example: Path,
) -> None:
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None and config.settings.mail is None
    assert config.settings.voicemail_folder == example / "var" / "voicemail"


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            ("password_env: PBXD_SMTP_PASSWORD", "password: hunter2"),
            "error: the SMTP password must not be written in pbxd.yaml",
        ),
        (
            ("password_env: PBXD_SMTP_PASSWORD", "password_env: 'hunter2 !'"),
            "error: mail.password_env: must be the name of an environment variable",
        ),
        (
            ("  password_env: PBXD_SMTP_PASSWORD\n", ""),
            "error: mail.username: needs a password",
        ),
        (
            ('"Acme PBX <pbxd@acme.example>"', "pbxd"),
            "error: mail.from_address: 'pbxd' is not an e-mail address",
        ),
        (("host: smtp.acme.example", "host: smtp.acme.example\n  port: 0"), "mail.port: must be"),
        (
            ("host: smtp.acme.example", "host: smtp.acme.example\n  security: ssl"),
            "error: security: must be one of 'starttls', 'tls' or 'none', not 'ssl'",
        ),
        (
            ("password_env: PBXD_SMTP_PASSWORD", "password_file: no-such-file"),
            "warning: mail.password_file: ",
        ),
        (
            ("host: smtp.acme.example", "host: smtp.acme.example\n  ca_file: no-such-ca.pem"),
            "error: mail.ca_file: ",
        ),
        (
            ("host: smtp.acme.example", "host: smtp.acme.example\n  security: none"),
            "warning: mail.security: none sends the SMTP password unencrypted",
        ),
    ],
)
def test_bad_mail_settings_are_pinned_to_their_line(
    example: Path,
    capsys: pytest.CaptureFixture[str],
    replace: tuple[str, str],
    expected: str,
) -> None:
    write(example, GOOD_MAIL.replace(*replace))
    status, diagnostics = check(capsys)
    [line] = [d for d in diagnostics if expected in d]
    assert line.startswith("pbxd.yaml:")
    assert status == (1 if ": error: " in line else 0)
    assert "hunter2" not in "\n".join(diagnostics)


def test_a_missing_password_is_a_clear_lookup_error(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(example, GOOD_MAIL)
    monkeypatch.delenv("PBXD_SMTP_PASSWORD", raising=False)
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None and config.settings.mail is not None
    with pytest.raises(LookupError, match="no SMTP password: set PBXD_SMTP_PASSWORD"):
        config.settings.mail.password()


def test_a_box_that_mails_without_a_mail_section_is_a_warning(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / "routing" / "boxes.yaml").write_text(
        "mailboxes:\n  front-desk:\n    email: reception@acme.example\n"
    )
    status, diagnostics = check(capsys)
    assert status == 0
    assert (
        "routing/boxes.yaml:2:3: warning: mailbox 'front-desk' e-mails reception@acme.example, "
        "but pbxd.yaml has no `mail:` section: its messages will be kept, not mailed"
    ) in diagnostics
    write(example, GOOD_MAIL)
    assert not any("no `mail:` section" in d for d in check(capsys)[1])
