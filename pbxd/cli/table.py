"""Plain-text tables for terminals (no dependency needed for aligned columns)."""

from __future__ import annotations

from collections.abc import Sequence

from pbxd.config.diagnostics import printable


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header.

    Cells are made printable: a label holding CR/LF must not forge rows.
    """
    rows = [[printable(cell, limit=200) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
