"""`pbxd numbers`, the YAML loader's pitfalls, blocks, and daemon settings."""

from __future__ import annotations

import json
from pathlib import Path

import phonenumbers
import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config, load_settings
from pbxd.config.diagnostics import Diagnostics
from pbxd.config.numbering import NumberError, parse_prefix, parse_range, to_e164
from pbxd.config.yamlsource import load_yaml_text


def test_numbers_table_lists_the_example(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["numbers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "number",
        "E.164",
        "trunk",
        "status",
        "port",
        "date",
        "block",
        "route",
        "time",
        "zone",
        "whisper",
    ]
    uk = next(line for line in lines if "+442079460123" in line)
    assert uk.split() == [
        "020",
        "7946",
        "0123",
        "+442079460123",
        "carrier-uk",
        "active",
        "london-forward",
        "Europe/London",
        "-",
    ]
    sales = next(line for line in lines if "+33170000012" in line)
    assert sales.split()[-2:] == ["Europe/Paris", "sound:acme-whisper-sales"]
    ported = next(line for line in lines if "+33170000105" in line)
    assert ported.split()[7:11] == ["porting", "2026-12-15", "acme-direct", "direct-lines"]
    assert lines[-1] == "20 numbers"


def test_numbers_json_filters_by_status_and_trunk(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["numbers", "--status", "porting", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["e164"] for r in rows] == [f"+3317000010{i}" for i in range(10)]
    assert {r["port_date"] for r in rows} == {"2026-12-15"}
    assert main(["numbers", "--trunk", "carrier-uk", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "national": "020 7946 0123",
            "e164": "+442079460123",
            "trunk": "carrier-uk",
            "status": "active",
            "port_date": "",
            "block": "",
            "route": "london-forward",
            "timezone": "Europe/London",
            "label": "London number for UK customers",
            "whisper": [],
        }
    ]


def test_numbers_refuses_an_unknown_trunk(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["numbers", "--trunk", "nope"]) == 1
    assert "unknown trunk 'nope' (known: carrier-fr, carrier-uk)" in capsys.readouterr().err


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("check", "numbers"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: pbxd {command}" in capsys.readouterr().out


def test_yaml_keeps_numbers_as_text() -> None:
    diags = Diagnostics()
    data = load_yaml_text("a: +33170000001\nb: 0170000001\nc: 0o17\nd: 1_000\n", "f.yaml", diags)
    assert data == {"a": "+33170000001", "b": "0170000001", "c": "0o17", "d": "1_000"}
    assert diags.items == []


def test_yaml_marks_and_duplicate_keys() -> None:
    diags = Diagnostics()
    data = load_yaml_text("top:\n  - x: 1\n  - y: 2\ntop: 3\n", "f.yaml", diags)
    assert str(data["top"].mark_of(1)) == "f.yaml:3:5"
    assert [str(d) for d in diags.items] == [
        "f.yaml:4:1: error: duplicate key 'top' (first defined at line 1)"
    ]


def test_ranges_and_prefix_blocks() -> None:
    assert parse_range("01 70 00 01 00 – 01 70 00 01 09", "FR").size == 10
    assert parse_prefix("+3317000020", 10, None).numbers()[-1] == "+33170000209"
    with pytest.raises(NumberError, match="ends before it"):
        parse_range("+33170000109 - +33170000100", None)
    with pytest.raises(NumberError, match="count must be 10, 100, 1000"):
        parse_prefix("+3317000020", 12, None)
    with pytest.raises(NumberError, match="national form but no country"):
        to_e164("01 70 00 00 01", None)


def test_settings_defaults_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pbxd.yaml").write_text("ari:\n  username: ops\n")
    monkeypatch.delenv("PBXD_DATABASE_URL", raising=False)
    monkeypatch.setenv("PBXD_ARI_URL", "http://10.0.0.5:8088/ari/")
    settings = load_settings(tmp_path / "pbxd.yaml", Diagnostics())
    assert settings is not None
    assert settings.ari_url == "http://10.0.0.5:8088/ari"
    assert settings.ari_username == "ops"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'pbxd.db'}"
    assert settings.routing_dir == tmp_path / "routing"
    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    with pytest.raises(LookupError, match="no ARI password"):
        settings.ari_password()
    secret = tmp_path / "ari-password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("PBXD_ARI_PASSWORD_FILE", str(secret))
    settings = load_settings(tmp_path / "pbxd.yaml", Diagnostics())
    assert settings is not None and settings.ari_password() == "s3cret"


def test_route_lookup_is_by_e164(example: Path) -> None:
    config = compile_config(Path("pbxd.yaml")).config
    assert config is not None
    route = config.route_for("+33170000107")
    assert route is not None and route.name == "direct-lines"
    assert [t.target.name for t in route.targets] == ["alice", "bob"]
    assert config.route_for("+33170000002") is None  # reserved, no route
    ceo = config.targets["ceo-mobile"]
    assert config.dial_string(ceo) == "PJSIP/+33612345678@trunk-out"
    trunk = config.trunk_for_endpoint("trunk-uk")
    assert trunk is not None and trunk.name == "carrier-uk"


def _parsed_by_phonenumbers(text: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _ours(text: str, region: str) -> str | None:
    try:
        return to_e164(text, region)
    except NumberError:
        return None


def test_national_numbers_parse_as_phonenumbers_does() -> None:
    """The fast path for national numbers agrees with phonenumbers.parse in every region."""
    seen_valid = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefix = (metadata.national_prefix or "") if metadata is not None else ""
        for kind in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            significant = phonenumbers.national_significant_number(example)
            national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
            # As written, without the prefix, with the prefix, and one digit off (often invalid).
            off = significant[:-1] + str((int(significant[-1]) + 1) % 10)
            texts = [national, significant, prefix + significant, off, prefix + off, "0" + off]
            texts.append("019" + significant)  # Israel's carrier-select international prefix
            for text in texts:
                expected = _parsed_by_phonenumbers(text, region)
                seen_valid += expected is not None
                assert _ours(text, region) == expected, (region, text)
    assert seen_valid > 500
    # Dialled-abroad forms and carrier-select prefixes that look like a national prefix.
    tricky = [
        ("01919193456", "IL"),
        ("0044 20 7946 0123", "FR"),
        ("011 44 20 7946 0123", "US"),
        ("8 800 100 00 00", "RU"),
        ("06 1234 5678", "IT"),
    ]
    for text, region in tricky:
        assert _ours(text, region) == _parsed_by_phonenumbers(text, region), (region, text)


@pytest.mark.parametrize(
    ("pbxd_yaml", "content", "expected"),
    [
        ("", None, "no ARI password: set PBXD_ARI_PASSWORD, or ari.password_file in pbxd.yaml"),
        (
            "ari:\n  password_env: ARI_SECRET\n",
            None,
            "no ARI password: set PBXD_ARI_PASSWORD or ARI_SECRET, or ari.password_file in "
            "pbxd.yaml",
        ),
        (
            "ari:\n  password_file: secret\n",
            None,
            "cannot read the ARI password file {dir}/secret: No such file or directory",
        ),
        ("ari:\n  password_file: secret\n", " \n", "the ARI password file {dir}/secret is empty"),
    ],
)
def test_missing_ari_password_says_where_to_put_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pbxd_yaml: str,
    content: str | None,
    expected: str,
) -> None:
    for var in ("PBXD_ARI_PASSWORD", "PBXD_ARI_PASSWORD_FILE", "ARI_SECRET"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "pbxd.yaml").write_text(pbxd_yaml)
    if content is not None:
        (tmp_path / "secret").write_text(content)
    settings = load_settings(tmp_path / "pbxd.yaml", Diagnostics())
    assert settings is not None
    with pytest.raises(LookupError) as raised:
        settings.ari_password()
    assert str(raised.value) == expected.format(dir=tmp_path)
