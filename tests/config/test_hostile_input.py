"""Hostile input (found by fuzzing and by an unlucky admin): one clear line, never a traceback."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config import compile as compile_module
from pbxd.config import yamlsource

from .conftest import REPO, Edit

DIAGNOSTIC = re.compile(r"^[^:\n]+:\d+:\d+: (error|warning): .+$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    status = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.err.splitlines()


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("x: " + "{a: " * 500 + "1" + "}" * 500 + "\n", "routing/deep.yaml:1:"),
        ("x: " + "[" * 600 + "]" * 600 + "\n", "routing/deep.yaml:1:"),
        ("x:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(1500)), "routing/deep.yaml:"),
    ],
    ids=["flow-mappings", "flow-sequences", "block-mappings"],
)
def test_deep_nesting_is_one_error_not_a_recursion_error(
    example: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    (example / "routing" / "deep.yaml").write_text(text)
    status, err = run(capsys, "check")
    assert status == 1
    [line] = [e for e in err if "deep.yaml" in e]
    assert line.startswith(where) and line.endswith(
        f"error: nested more than {yamlsource.MAX_DEPTH} levels deep"
    )


def test_deep_nesting_in_a_scenario(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = example / "deep-scenario.yaml"
    scenario.write_text("calls: " + "[" * 600 + "]" * 600 + "\n")
    status, err = run(capsys, "simulate", str(scenario))
    assert status == 1
    assert [e for e in err if "deep-scenario.yaml" in e] == [
        f"deep-scenario.yaml:1:71: error: nested more than {yamlsource.MAX_DEPTH} levels deep"
    ]


# ------------------------------------------------------------------ digits that are not 0-9


@pytest.mark.parametrize(
    ("name", "old", "new", "problem"),
    [
        (
            "sip-trunks.yaml",
            "number: 01 70 00 00 01",
            "number: 01 70 00 00 01²",
            "'²' (U+00B2 SUPERSCRIPT TWO) is not a digit 0-9",
        ),
        (
            "sip-trunks.yaml",
            "number: 01 70 00 00 01",
            'number: "+٣٣١٧٠٠٠٠٠٠١"',
            "'٣' (U+0663 ARABIC-INDIC DIGIT THREE) is not a digit 0-9",
        ),
        (
            "sip-trunks.yaml",
            "max_outbound_legs: 20",
            "max_outbound_legs: ٢٠",
            "'٢' (U+0662 ARABIC-INDIC DIGIT TWO) is not a digit 0-9",
        ),
        (
            "routing/acme.yaml",
            "external: 06 12 34 56 78",
            "external: 06 12 34 56 7８",
            "'８' (U+FF18 FULLWIDTH DIGIT EIGHT) is not a digit 0-9",
        ),
        (
            "routing/acme.yaml",
            "numbers: [01 70 00 00 01]",
            "numbers: [01 70 00 00 0¹]",
            "'¹' (U+00B9 SUPERSCRIPT ONE) is not a digit 0-9",
        ),
        (
            "routing/acme.yaml",
            "timeout: 30",
            "timeout: ³⁰",
            "'³' (U+00B3 SUPERSCRIPT THREE) is not a digit 0-9",
        ),
    ],
    ids=["inventory-superscript", "inventory-arabic", "trunk", "target", "route", "timeout"],
)
def test_non_ascii_digits_are_named_in_the_error(
    edit: Edit,
    capsys: pytest.CaptureFixture[str],
    name: str,
    old: str,
    new: str,
    problem: str,
) -> None:
    edit(name, old, new)
    status, err = run(capsys, "check")
    assert status == 1
    errors = [e for e in err if ": error: " in e and e.startswith(f"{name}:")]
    assert len(errors) == 1 and problem in errors[0]
    assert all(DIAGNOSTIC.match(e) for e in err[:-1])


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("to: 01 70 00 00 01", "to: 01 70 00 00 0١", "'١' (U+0661 ARABIC-INDIC DIGIT ONE)"),
        ("from: 06 12 00 00 01", "from: 06 12 00 00 0²", "'²' (U+00B2 SUPERSCRIPT TWO)"),
        ("at: 5 ", "at: ٥ ", "'٥' (U+0665 ARABIC-INDIC DIGIT FIVE)"),
    ],
)
def test_non_ascii_digits_in_a_scenario(
    example: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, problem: str
) -> None:
    shutil.copytree(REPO / "scenarios", example / "scenarios")
    path = example / "scenarios" / "acme-morning.yaml"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    status, err = run(capsys, "simulate", "scenarios/acme-morning.yaml")
    assert status == 1
    [line] = [e for e in err if ": error: " in e]
    assert line.startswith("scenarios/acme-morning.yaml:") and problem in line


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("+33170000001²", "'²' (U+00B2 SUPERSCRIPT TWO) is not a digit 0-9"),
        ("01 7٠ 00 00 01", "'٠' (U+0660 ARABIC-INDIC DIGIT ZERO) is not a digit 0-9"),
    ],
)
def test_calls_names_the_digit_that_is_not_0_9(
    example: Path, capsys: pytest.CaptureFixture[str], number: str, problem: str
) -> None:
    status, err = run(capsys, "calls", number)
    assert status == 1
    assert err == [f"pbxd calls: '{number}': {problem}"]


# ------------------------------------------------------------------ paths


@pytest.mark.parametrize("key", ["state_dir", "trunks_file", "routing_dir"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"a\\0b"', "a path must not contain control characters (found '\\x00')"),
        ("a" * 300, "a file name in this path is 300 bytes long; at most 255 are allowed"),
    ],
    ids=["nul", "300-chars"],
)
def test_unusable_paths_are_one_clear_error(
    edit: Edit, capsys: pytest.CaptureFixture[str], key: str, value: str, problem: str
) -> None:
    default = {"state_dir": "var", "trunks_file": "sip-trunks.yaml", "routing_dir": "routing"}
    edit("pbxd.yaml", f"{key}: {default[key]}", f"{key}: {value}")
    for command in ("check", "calls", "numbers"):
        argv = [command, "01 70 00 00 01"] if command == "calls" else [command]
        status, err = run(capsys, *argv)
        assert status == 1
        assert [e for e in err if ": error: " in e] == [
            f"pbxd.yaml:{err[0].split(':')[1]}:{err[0].split(':')[2]}: error: {key}: {problem}"
        ]


# ------------------------------------------------------------------ dates at the ends of time


@pytest.mark.parametrize(
    "bounds",
    [
        ["--until", "9999-12-31"],
        ["--since", "0001-01-01"],
        ["--since", "0001-01-01T00:00+14:00", "--until", "9999-12-31T23:59:59-12:00"],
    ],
)
def test_calls_with_bounds_at_the_ends_of_time(
    example: Path, capsys: pytest.CaptureFixture[str], bounds: list[str]
) -> None:
    db = f"sqlite:///{example / 'cdr.db'}"
    run(capsys, "calls", "01 70 00 00 01", "--database", db, "--limit", "1")  # creates nothing
    (example / "cdr.db").touch()
    status, err = run(capsys, "calls", "01 70 00 00 01", "--database", db, *bounds)
    assert status == 0, err


# ------------------------------------------------------------------ forged lines, huge values


def test_cr_lf_in_a_value_cannot_forge_a_diagnostic(
    edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        "sip-trunks.yaml",
        "range: 01 70 00 01 00 - 01 70 00 01 09",
        'range: "x\\r\\nsip-trunks.yaml:1:1: error: forged"',
    )
    status, err = run(capsys, "check")
    assert status == 1
    assert not any(line.startswith("sip-trunks.yaml:1:1") for line in err)
    assert any("'x\\r\\nsip-trunks.yaml:1:1: error: forged'" in line for line in err)
    assert all(DIAGNOSTIC.match(e) for e in err[:-1])


def test_a_100_kb_value_is_cut(edit: Edit, capsys: pytest.CaptureFixture[str]) -> None:
    edit("routing/acme.yaml", "targets: [alice, bob, ceo-mobile]", f"targets: [{'b' * 100_000}]")
    status, err = run(capsys, "check")
    assert status == 1
    [line] = [e for e in err if "unknown target" in e]
    assert len(line) < 600 and "characters cut]" in line


# ------------------------------------------------------------------ files that are not files


def test_unreadable_routing_directory_is_an_error(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests may run as root, who reads anything: the refusal comes from the walk itself.
    def refused(top: Path, onerror: object = None, **_: object) -> list[object]:
        assert callable(onerror)
        onerror(PermissionError(13, "Permission denied", str(top)))
        return []

    monkeypatch.setattr(compile_module.os, "walk", refused)
    status, err = run(capsys, "check")
    assert status == 1
    assert "routing:1:1: error: cannot read routing directory: Permission denied" in err


def test_a_fifo_where_a_yaml_file_is_expected_does_not_hang(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(example / "routing" / "pipe.yaml")
    status, err = run(capsys, "check")  # the suite's timeout catches a hang
    assert status == 1
    assert (
        "routing/pipe.yaml:1:1: error: cannot read file: a FIFO (named pipe), "
        "not a regular file" in err
    )


def test_a_device_or_a_huge_file_is_refused(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / "routing" / "zero.yaml").symlink_to("/dev/zero")
    monkeypatch.setattr(yamlsource, "MAX_FILE_BYTES", 4096)
    (example / "routing" / "big.yaml").write_text("# " + "x" * 5000 + "\n")
    status, err = run(capsys, "check")
    assert status == 1
    assert (
        "routing/zero.yaml:1:1: error: cannot read file: a character device, "
        "not a regular file" in err
    )
    assert "routing/big.yaml:1:1: error: cannot read file: larger than 4,096 bytes" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["calls", "01 70 00 00 01", "--limit", "٣"],
        ["simulate", "scenarios/acme-morning.yaml", "--speed", "²"],
    ],
)
def test_numeric_options_take_digits_0_9_only(
    example: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status, err = run(capsys, *argv)
    assert status == 1
    assert re.search(r"error: argument --(limit|speed): '.' \(U\+[0-9A-F]{4} .+\) is not", err[-1])


def test_a_fifo_as_password_file_does_not_hang_run(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(example / "ari-secret")
    monkeypatch.delenv("PBXD_ARI_PASSWORD", raising=False)
    monkeypatch.setenv("PBXD_ARI_PASSWORD_FILE", str(example / "ari-secret"))
    status, err = run(capsys, "run")  # the suite's timeout catches a hang
    assert status == 1
    assert err[-1] == (
        f"pbxd run: cannot read the ARI password file {example / 'ari-secret'}: "
        "a FIFO (named pipe), not a regular file"
    )
