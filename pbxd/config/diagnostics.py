"""Compiler-style diagnostics: `FILE:LINE:COLUMN: error: MESSAGE`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How bad a diagnostic is: errors make `pbxd check` exit 1, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Mark:
    """A place in a source file; line and column count from 1, as editors do."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the configuration, at a place a person can jump to."""

    mark: Mark
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.severity}: {self.message}"


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
