"""Compiler-style diagnostics: `FILE:LINE:COLUMN: error: MESSAGE`."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

# C0/C1 controls (CR and LF forge lines), line/paragraph separators, bidi overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
MAX_MESSAGE = 500  # characters; a 100 KB value pasted in a file is cut in the middle


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    return _ESCAPES.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def printable(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` safe for one line of a terminal or log: control characters escaped (`\\r`,
    `\\x00`), and cut in the middle past `limit` characters, so a value read from a file
    can neither forge another line nor flood the report."""
    text = _UNPRINTABLE.sub(_escape, text)
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}…[{len(text) - 2 * keep} characters cut]…{text[-keep:]}"


class Severity(StrEnum):
    """How bad a diagnostic is: errors make `pbxd check` exit 1, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


class Mark(NamedTuple):
    """A place in a source file; line and column count from 1, as editors do.

    A named tuple rather than a frozen dataclass: a large configuration makes millions of
    them, and a tuple is built three times faster.
    """

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.line}:{self.column}"


# Mark((file, line, column)) without the named tuple's Python-level __new__: twice as fast,
# for the readers that make a mark per line of a large file.
new_mark: Callable[[tuple[str, int, int]], Mark] = functools.partial(tuple.__new__, Mark)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the configuration, at a place a person can jump to."""

    mark: Mark
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.severity}: {printable(self.message)}"


class Diagnostics:
    """Collects every problem at once, so an admin fixes them in one pass."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, mark: Mark, message: str) -> None:
        """Record an error at `mark`."""
        self.items.append(Diagnostic(mark, Severity.ERROR, message))

    def warning(self, mark: Mark, message: str) -> None:
        """Record a warning at `mark`."""
        self.items.append(Diagnostic(mark, Severity.WARNING, message))

    @property
    def has_errors(self) -> bool:
        """True when at least one error (not just warnings) was recorded."""
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        """Diagnostics in file order, as a compiler prints them."""
        return sorted(
            self.items, key=lambda d: (d.mark.file, d.mark.line, d.mark.column, d.message)
        )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'X'?)` for the closest of `choices`, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
