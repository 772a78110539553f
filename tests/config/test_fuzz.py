"""Seeded fuzzing of the shipped YAML: whatever the bytes, one FILE:LINE:COLUMN line each.

Each case mutates one shipped file (configuration or scenario) with the kinds of damage the
issue's 2,500-mutation run found tracebacks with: look-alike digits, control characters,
deep nesting, YAML tags and anchors, torn lines, invalid UTF-8. It fails on any exception
(a traceback), on a case running longer than a few seconds (a hang), and on any diagnostic
that is not exactly one `FILE:LINE:COLUMN: error|warning: MESSAGE` line.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from pbxd.config.compile import compile_config
from pbxd.config.diagnostics import Diagnostic
from pbxd.config.model import Config
from pbxd.sim.scenario import load_scenario

from .conftest import REPO

CONFIG_FILES = ("pbxd.yaml", "sip-trunks.yaml", "routing/acme.yaml", "routing/london.yaml")
SCENARIO = "scenarios/acme-morning.yaml"
CONFIG_CASES = 300
SCENARIO_CASES = 150
CASE_SECONDS = 5  # far above a case's ~20 ms: only a hang gets there
LINE = re.compile(r"^[^\s:][^:\r\n]*:[1-9]\d*:[1-9]\d*: (error|warning): [^\r\n]+$")

NASTY = [
    "²", "٣", "１", "\x00", "\r\n", "\n", "\t", "\u2028", "\u202e", "\ufeff", "\x85",
    "{", "}", "[", "]", ":", ": ", "- ", ", ", "? ", "|", ">", "#", "&a ", "*a", "*zz",
    "<<: *a\n", "!!python/object:os.system ", "!!binary ", "!custom ", "%YAML 1.1\n",
    "---\n", "...\n", "~", "null", "yes", "0x1F", "1e999", "-1", "99999999999999999999",
    ".nan", ".inf", "2026-02-30", "0001-01-01", "'", '"', "\\", "@", "%", "{number}",
    "PJSIP/", "+", "+33 1 70 00 00 01", "a" * 1000, "[" * 600, "{a: " * 500,
]  # fmt: skip
# Beside a digit, where numbers are parsed: the issue's `+33170000001²` and Arabic-Indic digits.
BESIDE_DIGITS = ["²", "٣", "１", "\u0660", "\r\n", "\x00", "x", " ", "-", "."]


def _mutate(text: str, rng: random.Random) -> bytes:
    """`text` with one to three random injuries; sometimes bytes that are not UTF-8."""
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(8)
        if kind == 7:  # right after a digit
            digits = [m.end() for m in re.finditer(r"\d", text)]
            if digits:
                at = rng.choice(digits)
                text = text[:at] + rng.choice(BESIDE_DIGITS) + text[at:]
        elif kind <= 2:  # insert a nasty token at a random place
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(NASTY) + text[at:]
        elif kind == 3:  # cut a span
            at = rng.randrange(len(text) + 1)
            text = text[:at] + text[at + rng.randint(1, 40) :]
        elif kind == 4:  # duplicate, drop or re-indent a line
            lines = text.splitlines(keepends=True) or [""]
            i = rng.randrange(len(lines))
            choice = rng.randrange(3)
            if choice == 0:
                lines.insert(i, lines[i])
            elif choice == 1:
                del lines[i]
            else:
                lines[i] = " " * rng.randint(0, 9) + lines[i].lstrip(" ")
            text = "".join(lines)
        elif kind == 5:  # replace a value after a colon
            spots = [m.end() for m in re.finditer(r": ", text)]
            if spots:
                at = rng.choice(spots)
                end = text.find("\n", at)
                text = text[:at] + rng.choice(NASTY) + text[end if end >= 0 else len(text) :]
        else:  # swap two lines
            lines = text.splitlines(keepends=True) or [""]
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:
        at = rng.randrange(len(data) + 1)
        data = data[:at] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xED])]) + data[at:]
    return data


class Hang(Exception):
    """A fuzz case ran past CASE_SECONDS."""


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _check_lines(diagnostics: list[Diagnostic], case: str) -> None:
    for diagnostic in diagnostics:
        line = str(diagnostic)
        assert LINE.match(line), f"{case}: not one FILE:LINE:COLUMN line: {line!r}"
        assert len(line) < 1200, f"{case}: {len(line)} characters: {line[:200]!r}…"


def _run_cases(
    tree: Path, names: tuple[str, ...], cases: int, seed: int, one: Callable[[], list[Diagnostic]]
) -> None:
    rng = random.Random(seed)
    originals = {name: (tree / name).read_text() for name in names}
    for case in range(cases):
        name = rng.choice(names)
        (tree / name).write_bytes(_mutate(originals[name], rng))
        label = f"seed {seed} case {case} ({name})"
        try:
            with deadline(CASE_SECONDS):
                diagnostics = one()
        except Hang:
            pytest.fail(f"{label}: hang")
        except Exception as exc:  # any traceback is the failure this test exists for
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
        _check_lines(diagnostics, label)
        (tree / name).write_text(originals[name])


@pytest.fixture
def tree(example: Path) -> Path:
    shutil.copytree(REPO / "scenarios", example / "scenarios")
    return example


def test_fuzzed_configuration_never_raises_hangs_or_forges_lines(tree: Path) -> None:
    def one() -> list[Diagnostic]:
        return compile_config(tree / "pbxd.yaml").diagnostics

    _run_cases(tree, CONFIG_FILES, CONFIG_CASES, seed=8, one=one)


def test_fuzzed_scenarios_never_raise_hang_or_forge_lines(tree: Path) -> None:
    result = compile_config(tree / "pbxd.yaml")
    assert result.config is not None
    config: Config = result.config

    def one() -> list[Diagnostic]:
        return load_scenario(tree / SCENARIO, config)[1]

    _run_cases(tree, (SCENARIO,), SCENARIO_CASES, seed=88, one=one)
