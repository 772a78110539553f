"""The CDR spool: records the database could not take yet, on local disk, in order.

One JSON line per record snapshot (`{"seq": N, "kind": "call"|"leg", "row": {...}}`, the
record as its database row), appended and fsync'd before the records leave memory, so a
stop, a crash or a restart during a database outage loses none. The store reads it from the
front, oldest first, and empties the file once every line is in the database. Lines are not
removed one by one: after a crash mid-replay the next start writes some again, which the
store's upserts (keyed by call and leg id, latest snapshot last) make harmless.

The file is locked (`flock`) while a store uses it: two daemons never replay one spool.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

from sqlalchemy import Table

from pbxd.cdr.schema import (
    Base,
    CallEventRow,
    CallRow,
    LegRow,
    StoredRecord,
    UtcDateTime,
    record_kind,
    record_to_row,
    row_to_record,
)

SpoolRecord = StoredRecord

# A line longer than this is not one of ours (a corrupt file): skip it, never load it whole.
MAX_LINE_BYTES = 1 << 20


def _time_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, UtcDateTime))


_TABLES: Final[dict[str, Table]] = {
    "call": Base.metadata.tables[CallRow.__tablename__],
    "leg": Base.metadata.tables[LegRow.__tablename__],
    "event": Base.metadata.tables[CallEventRow.__tablename__],
}
_TIME_COLUMNS: Final[dict[str, frozenset[str]]] = {k: _time_columns(t) for k, t in _TABLES.items()}


class SpoolBusyError(RuntimeError):
    """Another process holds the spool (a second `pbxd run` on the same state_dir)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One line read back: its queue sequence number and record, or why it is unreadable."""

    seq: int
    record: SpoolRecord | None
    problem: str | None = None
    raw: str = ""


def record_fields(rec: SpoolRecord) -> dict[str, object]:
    """The record as its database row, in JSON values: what a spool line and a log carry.

    The schema's own conversion (`call_to_row`), so the spool follows every column added to
    it; raises like that conversion for a record that cannot become a row.
    """
    row = record_to_row(rec)
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def encode_line(seq: int, rec: SpoolRecord) -> bytes:
    """The spool line of `rec` (no newline inside: JSON escapes control characters)."""
    kind = record_kind(rec)
    line = json.dumps(
        {"seq": seq, "kind": kind, "row": record_fields(rec)},
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return line.encode("ascii") + b"\n"


def _parse_time(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.utcoffset() is None:
        raise ValueError(f"{name}: naive time {value!r}")
    return parsed


def decode_line(raw: bytes) -> SpoolEntry:
    """A spool line back into its record; a line that cannot be read says why."""
    text = raw.decode("utf-8", errors="replace").rstrip("\n")
    try:
        data = json.loads(text)
        seq = int(data["seq"])
        kind = str(data["kind"])
        table = _TABLES[kind]
        # Columns a newer pbxd wrote are left out; columns an older one did not know are NULL.
        row: dict[str, Any] = {c.name: None for c in table.columns}
        row.update((k, v) for k, v in dict(data["row"]).items() if k in row)
        for name in _TIME_COLUMNS[kind]:
            row[name] = _parse_time(name, row[name])
        record = row_to_record(kind, row)
        return SpoolEntry(seq=seq, record=record)
    except (ValueError, KeyError, TypeError) as exc:
        return SpoolEntry(seq=0, record=None, problem=f"{type(exc).__name__}: {exc}", raw=text)


class CdrSpool:
    """An append-only file of pending records, read from the front; see the module doc."""

    def __init__(self, path: Path) -> None:
        """Open (creating) and lock `path`; raises SpoolBusyError or OSError."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self._file: BinaryIO = open(path, "a+b")  # noqa: SIM115 (held for the store's life)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise SpoolBusyError(f"{path} is in use by another pbxd") from None
        except BaseException:
            self._file.close()
            raise
        if created:
            _fsync_dir(path.parent)
        self._read_offset = 0
        self._pending = 0
        self.first_seq = 0  # of the first line left by a previous run (0: none)
        self.last_seq = 0
        self._scan()

    def _scan(self) -> None:
        """Count the lines a previous run left, and drop a torn last line (crash mid-append)."""
        self._file.seek(0)
        good_end = 0
        for raw in self._file:
            if not raw.endswith(b"\n"):
                break  # never acknowledged: its records were still in memory when pbxd died
            good_end += len(raw)
            self._pending += 1
            entry = decode_line(raw[:MAX_LINE_BYTES])
            if entry.record is not None:
                self.first_seq = self.first_seq or entry.seq
                self.last_seq = max(self.last_seq, entry.seq)
        size = self._file.seek(0, os.SEEK_END)
        if size != good_end:
            self._file.truncate(good_end)
            os.fsync(self._file.fileno())

    @property
    def pending(self) -> int:
        """Lines not yet taken out by `advance`."""
        return self._pending

    def append(self, entries: Iterable[tuple[int, SpoolRecord]]) -> int:
        """Append records (see `append_lines`); a record that cannot become a row raises."""
        return self.append_lines([encode_line(seq, rec) for seq, rec in entries])

    def append_lines(self, lines: Iterable[bytes]) -> int:
        """Append and fsync; on failure (disk full) nothing is added and OSError is raised."""
        data = b"".join(lines)
        if not data:
            return 0
        size = self._file.seek(0, os.SEEK_END)
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            # Leave no half-written line behind: the records are still in the caller's hands.
            self._file.truncate(size)
            raise
        count = data.count(b"\n")
        self._pending += count
        return count

    def peek(self, limit: int) -> tuple[list[SpoolEntry], int]:
        """Up to `limit` lines from the front, and the offset just past them."""
        self._file.seek(self._read_offset)
        entries: list[SpoolEntry] = []
        offset = self._read_offset
        while len(entries) < min(limit, self._pending):
            raw = self._file.readline(MAX_LINE_BYTES)
            if not raw:
                # Fewer lines than counted (the file was cut behind our back): trust the file.
                self._pending = len(entries)
                break
            offset += len(raw)
            if not raw.endswith(b"\n"):
                # An overlong line: skip the rest of it.
                while raw and not raw.endswith(b"\n"):
                    raw = self._file.readline(MAX_LINE_BYTES)
                    offset += len(raw)
                entries.append(SpoolEntry(0, None, "line too long", ""))
                continue
            entries.append(decode_line(raw))
        return entries, offset

    def advance(self, offset: int, count: int) -> None:
        """Forget the lines before `offset` (all written); empty the file once none is left."""
        self._read_offset = offset
        self._pending = max(0, self._pending - count)
        if self._pending == 0:
            self._file.truncate(0)
            os.fsync(self._file.fileno())
            self._read_offset = 0

    def close(self) -> None:
        """Release the lock and the file (what is pending stays on disk)."""
        if not self._file.closed:
            self._file.close()


def _fsync_dir(directory: Path) -> None:
    """Make a new file's name durable (its directory entry), where the platform allows."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
