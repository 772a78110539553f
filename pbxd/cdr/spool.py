"""The CDR spool: records the database could not take yet, on local disk, in order.

One JSON line per record snapshot (`{"seq": N, "kind": "call"|"leg", "record": {...}}`),
appended and fsync'd before the records leave memory, so a stop, a crash or a restart during
a database outage loses none. The store reads it from the front, oldest first, and empties
the file once every line is in the database. Lines are not removed one by one: after a crash
mid-replay the next start writes some again, which the store's upserts (keyed by call and
leg id, latest snapshot last) make harmless.

The file is locked (`flock`) while a store uses it: two daemons never replay one spool.
"""

from __future__ import annotations

import dataclasses
import enum
import fcntl
import json
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

from pbxd.cdr.records import CallRecord, LegRecord

SpoolRecord = CallRecord | LegRecord

_KINDS: Final[dict[str, type[CallRecord] | type[LegRecord]]] = {
    "call": CallRecord,
    "leg": LegRecord,
}
# A line longer than this is not one of ours (a corrupt file): skip it, never load it whole.
MAX_LINE_BYTES = 1 << 20


class SpoolBusyError(RuntimeError):
    """Another process holds the spool (a second `pbxd run` on the same state_dir)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One line read back: its queue sequence number and record, or why it is unreadable."""

    seq: int
    record: SpoolRecord | None
    problem: str | None = None
    raw: str = ""


def _kind_of(rec: SpoolRecord) -> str:
    return "call" if isinstance(rec, CallRecord) else "leg"


def _encode_value(value: object) -> object:
    """JSON for one field: times as ISO 8601 with their offset, enums by value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def record_fields(rec: SpoolRecord) -> dict[str, object]:
    """Every field of `rec` as JSON values (what a spool line and a rejected-row log carry)."""
    return {f.name: _encode_value(getattr(rec, f.name)) for f in dataclasses.fields(rec)}


def encode_line(seq: int, rec: SpoolRecord) -> bytes:
    """The spool line of `rec` (no newline inside: JSON escapes control characters)."""
    line = json.dumps(
        {"seq": seq, "kind": _kind_of(rec), "record": record_fields(rec)},
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return line.encode("ascii") + b"\n"


def _field_types(cls: type[Any]) -> dict[str, tuple[type[Any], ...]]:
    """The concrete classes each dataclass field may hold (None left out)."""
    hints = typing.get_type_hints(cls)
    result: dict[str, tuple[type[Any], ...]] = {}
    for name, hint in hints.items():
        args = typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            result[name] = tuple(a for a in args if isinstance(a, type) and a is not type(None))
        elif isinstance(hint, type):
            result[name] = (hint,)
    return result


_TYPES: Final[dict[str, dict[str, tuple[type[Any], ...]]]] = {
    kind: _field_types(cls) for kind, cls in _KINDS.items()
}


def _decode_value(value: object, allowed: tuple[type[Any], ...]) -> object:
    """The field value from JSON, by the field's declared type (datetime, enum, plain)."""
    if value is None:
        return None
    for cls in allowed:
        if issubclass(cls, datetime) and isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.utcoffset() is None:
                raise ValueError(f"naive time {value!r}")
            return parsed
        if issubclass(cls, enum.Enum):
            return cls(value)
    return value


def decode_line(raw: bytes) -> SpoolEntry:
    """A spool line back into its record; a line that cannot be read says why."""
    text = raw.decode("utf-8", errors="replace").rstrip("\n")
    try:
        data = json.loads(text)
        seq = int(data["seq"])
        kind = str(data["kind"])
        cls = _KINDS[kind]
        types_of = _TYPES[kind]
        known = {f.name for f in dataclasses.fields(cls)}
        # Fields a newer or older pbxd wrote that this one does not know are left out.
        values: dict[str, Any] = {
            name: _decode_value(value, types_of.get(name, ()))
            for name, value in dict(data["record"]).items()
            if name in known
        }
        return SpoolEntry(seq=seq, record=cls(**values))
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
        """Append and fsync; on failure (disk full) nothing is added and OSError is raised."""
        data = b"".join(encode_line(seq, rec) for seq, rec in entries)
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
