"""YAML loading that keeps where every key and value came from.

Plain scalars stay strings (no implicit int/float): `+33170000001` must not become an
integer and `0170000001` must not be read as octal. pydantic converts "20" to 20 where a
field is numeric, so nothing is lost by this.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pbxd.config.diagnostics import Diagnostics, Mark, new_mark

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Our files nest six levels deep; 3 KB of `[[[[…` must not reach Python's recursion limit.
MAX_DEPTH = 64
# 100,000 numbers take 2.3 MB of YAML: far above is a mistake (or /dev/zero), not a config.
MAX_FILE_BYTES = 32 * 1024 * 1024
_KIND_OF_FILE = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class MarkedMap(dict[str, Any]):
    """A YAML mapping that remembers the mark of each key and of each value."""

    __slots__ = ("key_marks", "mark", "value_marks")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[str, Mark] = {}
        self.value_marks: dict[str, Mark] = {}

    def mark_of(self, key: str) -> Mark:
        """Where the value of `key` is written (the mapping itself when the key is absent)."""
        return self.value_marks.get(key, self.mark)


class LinePair(MarkedMap):
    """`- key: 'value'` alone on its line, as most of a large inventory is written.

    Its marks are made when first asked for: a million such lines would otherwise cost two
    dicts and two marks each, and a compile asks for them only to report a problem. The
    mapping's own mark (its key's) is kept, since its sequence lists it as the item's mark.
    """

    __slots__ = ("_key_marks", "_value_column", "_value_marks")

    def __init__(self, mark: Mark, key: str, value: str, value_column: int) -> None:
        dict.__init__(self)
        self[key] = value
        self.mark = mark
        self._value_column = value_column
        self._key_marks: dict[str, Mark] | None = None
        self._value_marks: dict[str, Mark] | None = None

    def _unfold(self) -> None:
        key = next(iter(self))
        mark = self.mark
        self._key_marks = {key: mark}
        self._value_marks = {key: new_mark((mark.file, mark.line, self._value_column))}

    @property
    def key_marks(self) -> dict[str, Mark]:  # type: ignore[override]
        """Where each key is written (see MarkedMap)."""
        if self._key_marks is None:
            self._unfold()
        assert self._key_marks is not None
        return self._key_marks

    @property
    def value_marks(self) -> dict[str, Mark]:  # type: ignore[override]
        """Where each value is written (see MarkedMap)."""
        if self._value_marks is None:
            self._unfold()
        assert self._value_marks is not None
        return self._value_marks

    def value_mark(self) -> Mark:
        """Where the value is written (without making the key and value mark dicts)."""
        if self._value_marks is not None:
            return self._value_marks[next(iter(self))]
        mark = self.mark
        return new_mark((mark.file, mark.line, self._value_column))


class MarkedSeq(list[Any]):
    """A YAML sequence that remembers the mark of each item."""

    __slots__ = ("item_marks", "mark")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []

    def mark_of(self, index: int) -> Mark:
        """Where item `index` is written."""
        if 0 <= index < len(self.item_marks):
            return self.item_marks[index]
        return self.mark


_BOOLEANS = {
    "true": True, "True": True, "TRUE": True, "yes": True, "Yes": True, "YES": True,
    "on": True, "On": True, "ON": True,
    "false": False, "False": False, "FALSE": False, "no": False, "No": False, "NO": False,
    "off": False, "Off": False, "OFF": False,
}  # fmt: skip
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
# How every null, boolean and date above starts: any other plain scalar is text as it is.
_RESOLVED_START = frozenset("~nNtTyYoOfF0123456789")
_DATE = re.compile(r"^\d{4}-\d\d?-\d\d?$")
_STR_TAG = "tag:yaml.org,2002:str"


def _plain_scalar(text: str) -> Any:
    """Resolve an untagged plain scalar: null, bool and dates; everything else stays text.

    Numbers deliberately stay strings (see the module docstring).
    """
    if text and text[0] not in _RESOLVED_START:
        return text
    if text in _NULLS:
        return None
    boolean = _BOOLEANS.get(text)
    if boolean is not None:
        return boolean
    if _DATE.match(text):
        try:
            return date.fromisoformat("-".join(p.zfill(2) for p in text.split("-")))
        except ValueError:
            return text
    return text


def _describe(value: Any) -> str:
    """A short name for a YAML value in a message (never the whole structure)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(str(value)[:40])


def _next(loader: yaml.SafeLoader) -> Any:
    """The next parser event (PyYAML's own method is untyped)."""
    return loader.get_event()  # type: ignore[no-untyped-call]


def _peek(loader: yaml.SafeLoader, kind: type[yaml.Event]) -> bool:
    """Whether the next parser event is of `kind`."""
    return bool(loader.check_event(kind))


class _TooDeep(Exception):
    """Nesting beyond MAX_DEPTH, at `mark`: the file is refused, not recursed into."""

    def __init__(self, mark: Mark) -> None:
        super().__init__(str(mark))
        self.mark = mark


class _TreeBuilder:
    """Builds MarkedMap/MarkedSeq straight from libyaml's parser events.

    PyYAML's composer resolves every scalar in Python and is five times slower than reading
    the events; this builder is what keeps 100,000 numbers under the load-time budget.
    """

    def __init__(self, loader: yaml.SafeLoader, name: str, diagnostics: Diagnostics) -> None:
        self.loader = loader
        self.name = name
        self.diagnostics = diagnostics
        self.anchors: dict[str, Any] = {}
        self.depth = 0

    def _mark(self, event: yaml.Event) -> Mark:
        start = event.start_mark
        if start is None:  # libyaml always sets it; be safe with the pure-Python parser
            return Mark(self.name, 1, 1)
        return Mark(self.name, start.line + 1, start.column + 1)

    def document(self) -> Any:
        loader = self.loader
        _next(loader)  # StreamStart
        if _peek(loader, yaml.StreamEndEvent):
            return None
        _next(loader)  # DocumentStart
        value = self.node(_next(loader))
        _next(loader)  # DocumentEnd
        if not _peek(loader, yaml.StreamEndEvent):
            event = _next(loader)
            self.diagnostics.error(self._mark(event), "only one YAML document is allowed per file")
        return value

    def node(self, event: yaml.Event) -> Any:
        if isinstance(event, yaml.ScalarEvent):
            value = self.scalar(event)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if self.depth >= MAX_DEPTH:
                raise _TooDeep(self._mark(event))
            self.depth += 1
            try:
                if isinstance(event, yaml.MappingStartEvent):
                    value = self.mapping(event)
                else:
                    value = self.sequence(event)
            finally:
                self.depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                self.diagnostics.error(self._mark(event), f"unknown alias '*{event.anchor}'")
                return None
            return self.anchors[event.anchor]
        else:  # pragma: no cover - libyaml only yields the events above here
            raise yaml.YAMLError(f"unexpected {event}")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchors[anchor] = value
        return value

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        if event.tag in (None, "!") and event.implicit[0]:
            return _plain_scalar(event.value)
        if event.tag is None or event.tag in ("!", _STR_TAG) or event.implicit[1]:
            return event.value
        self.diagnostics.error(self._mark(event), f"YAML tag '{event.tag}' is not supported here")
        return event.value

    def mapping(self, start: yaml.MappingStartEvent) -> MarkedMap:
        result = MarkedMap(self._mark(start))
        loader = self.loader
        while True:
            key_event = _next(loader)
            if type(key_event) is yaml.MappingEndEvent:
                break
            key_mark = self._mark(key_event)
            key = self.node(key_event)
            value_event = _next(loader)
            value = self.node(value_event)
            if key == "<<" and isinstance(value, MarkedMap):
                for k, v in value.items():  # YAML merge key: keys already set win
                    if k not in result:
                        result[k] = v
                        result.key_marks[k] = value.key_marks[k]
                        result.value_marks[k] = value.value_marks[k]
                continue
            if not isinstance(key, str):
                # Keys like `true:` or `~:` are typos in our files; say so instead of guessing.
                if isinstance(key_event, yaml.ScalarEvent):
                    self.diagnostics.error(
                        key_mark,
                        f"key '{key_event.value}' is read as {_describe(key)}, not text: "
                        f"quote it ('{key_event.value}') if it is a name",
                    )
                else:
                    self.diagnostics.error(key_mark, f"a key must be text, not {_describe(key)}")
                continue
            if key in result:
                first = result.key_marks[key]
                self.diagnostics.error(
                    key_mark, f"duplicate key '{key}' (first defined at line {first.line})"
                )
                continue
            result[key] = value
            result.key_marks[key] = key_mark
            result.value_marks[key] = self._mark(value_event)
        return result

    def sequence(self, start: yaml.SequenceStartEvent) -> MarkedSeq:
        result = MarkedSeq(self._mark(start))
        loader = self.loader
        while True:
            event = _next(loader)
            if type(event) is yaml.SequenceEndEvent:
                return result
            result.item_marks.append(self._mark(event))
            result.append(self.node(event))


class _NotPlain(Exception):
    """The text uses YAML beyond `_PlainReader`'s subset: libyaml reads it instead."""


# Anything libyaml treats specially (tabs, CR and other line breaks, BOM, characters it
# refuses): such a file always takes the careful path, which also reports them.
_NOT_PLAIN_CHARS = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
# libyaml refuses a key longer than 1024 characters ("could not find expected ':'").
_KEY = re.compile(r"(\w[\w.+/@-]{0,1000}):(?: +|$)")
_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_DOUBLE_QUOTED = re.compile(r'"([^"\\]*)"')
_PLAIN = re.compile(r"[\w+./~$(][\w+./~$()@%=:'\- ]*")
_PLAIN_IN_FLOW = re.compile(r"[\w+./~$(][\w+./~$()@%='\- ]*")
_FLOW_KEY = re.compile(r"(\w[\w.+/@-]{0,1000}): +")
_QUOTED_PAIR_ITEM = re.compile(r"- +([A-Za-z_][\w.+/@-]{0,1000}): +'([^']*)'(?: +#.*)?$")
_QUOTED_ITEM = re.compile(r"'([^']*)' *([,\]]) *")
# `['+33…', '+33…', …]`, one space after each comma: a route's numbers as written by tools.
_QUOTED_LIST = re.compile(r"\['[^']*'(?:, '[^']*')*\]")
_END_OF_LINE = re.compile(r"(?: +#.*)?$")
_SPACES = re.compile(r" *")
# Deeper than this the careful path decides (and refuses past MAX_DEPTH).
_PLAIN_DEPTH = 32


class _PlainReader:
    """Reads the block-style YAML subset pbxd's own files are written in, without libyaml.

    A million numbers are 2.8 million parser events: building the tree from libyaml's events
    took 40 % of a compile. This reader takes a line at a time and gives the same MarkedMap /
    MarkedSeq tree with the same marks (tests compare it with the careful path on every file
    they load). Whatever it does not know for sure (anchors, tags, multi-line scalars, quoted
    keys, escapes, tabs, flow collections over several lines, empty values, duplicate keys,
    anything an error would be reported for) raises _NotPlain and libyaml reads the file.
    """

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        rows: list[tuple[int, int, str]] = []
        for number, line in enumerate(text.split("\n"), 1):
            content = line.lstrip(" ")
            if content and content[0] != "#":
                rows.append((number, len(line) - len(content), line.rstrip(" ")))
        self.rows = rows
        self.at = 0
        self.depth = 0

    def document(self) -> Any:
        if not self.rows:
            raise _NotPlain
        value = self.node(self.rows[0][1])
        if self.at != len(self.rows):
            raise _NotPlain
        return value

    def node(self, column: int) -> Any:
        self.depth += 1
        if self.depth > _PLAIN_DEPTH:
            raise _NotPlain
        _, _, line = self.rows[self.at]
        if line.startswith("- ", column):
            value: Any = self.sequence(column)
        elif _KEY.match(line, column):
            value = self.mapping(column)
        else:
            raise _NotPlain
        self.depth -= 1
        return value

    def mapping(self, column: int) -> MarkedMap:
        rows, name = self.rows, self.name
        number, _, line = rows[self.at]
        result = MarkedMap(new_mark((name, number, column + 1)))
        key_mark: Mark | None = result.mark
        while self.at < len(rows):
            number, at, line = rows[self.at]
            if at != column:
                if at < column:
                    break
                raise _NotPlain
            match = _KEY.match(line, column)
            if match is None:
                raise _NotPlain  # `- item` under keys, or a scalar: not ours to judge
            key = match[1]
            if key in result or _plain_scalar(key) is not key:
                raise _NotPlain  # duplicates and `yes:`/`~:` keys get the careful errors
            if key_mark is None:
                key_mark = new_mark((name, number, column + 1))
            start = match.end()
            if start == len(line) or line[start] == "#":
                value, value_mark = self.nested(column)
            else:
                value, value_mark = self.inline(line, start, number)
                self.at += 1
                if self.at < len(rows) and rows[self.at][1] > column:
                    raise _NotPlain  # a scalar continued on the next line
            result[key] = value
            result.key_marks[key] = key_mark
            result.value_marks[key] = value_mark
            key_mark = None
        return result

    def nested(self, column: int) -> tuple[Any, Mark]:
        """The block under `key:` (more indented, or a `- ` list at the key's own column)."""
        self.at += 1
        if self.at == len(self.rows):
            raise _NotPlain  # an empty value: null, with a mark libyaml decides
        _, at, line = self.rows[self.at]
        if at > column or (at == column and line.startswith("- ", at)):
            value = self.node(at)
            return value, value.mark
        raise _NotPlain

    def sequence(self, column: int) -> MarkedSeq:
        rows, name = self.rows, self.name
        number, _, _ = rows[self.at]
        result = MarkedSeq(new_mark((name, number, column + 1)))
        while self.at < len(rows):
            number, at, line = rows[self.at]
            if at != column:
                if at < column:
                    break
                raise _NotPlain
            if not line.startswith("- ", column):
                break  # a key after an indentless list: the mapping above goes on
            pair = _QUOTED_PAIR_ITEM.match(line, column)
            if pair is not None and (self.at + 1 == len(rows) or rows[self.at + 1][1] <= column):
                # `- number: '+33…'` and nothing under it: most of a large inventory.
                key, value = pair.groups()
                if key in _BOOLEANS or key in _NULLS:
                    raise _NotPlain
                key_mark = new_mark((name, number, pair.start(1) + 1))
                result.append(LinePair(key_mark, key, value, pair.start(2)))
                result.item_marks.append(key_mark)
                self.at += 1
                continue
            start = _SPACES.match(line, column + 2).end()  # type: ignore[union-attr]
            if line[start] in "#-":
                raise _NotPlain  # `- # …` (empty item) or `- - x` (nested list)
            if _KEY.match(line, start):
                rows[self.at] = (number, start, line)
                self.depth += 1
                if self.depth > _PLAIN_DEPTH:
                    raise _NotPlain
                item: Any = self.mapping(start)
                self.depth -= 1
                mark = item.mark
            else:
                item, mark = self.inline(line, start, number)
                self.at += 1
                if self.at < len(rows) and rows[self.at][1] > column:
                    raise _NotPlain
            result.append(item)
            result.item_marks.append(mark)
        return result

    def inline(self, line: str, start: int, number: int) -> tuple[Any, Mark]:
        """The value written on the line from `start` to its end (or its comment)."""
        value, end = self.flow_value(line, start, number, _PLAIN)
        if _END_OF_LINE.match(line, end) is None:
            raise _NotPlain
        return value, new_mark((self.name, number, start + 1))

    def flow_value(
        self, line: str, start: int, number: int, plain: re.Pattern[str]
    ) -> tuple[Any, int]:
        """(value, end) of the scalar, `[…]` or `{…}` at `start`."""
        first = line[start] if start < len(line) else ""
        if first == "'":
            match = _SINGLE_QUOTED.match(line, start)
            if match is None:
                raise _NotPlain
            return match[1].replace("''", "'"), match.end()
        if first == '"':
            match = _DOUBLE_QUOTED.match(line, start)
            if match is None:
                raise _NotPlain
            return match[1], match.end()
        if first == "[":
            return self.flow_sequence(line, start, number)
        if first == "{":
            return self.flow_mapping(line, start, number)
        match = plain.match(line, start)
        if match is None:
            raise _NotPlain
        text = match[0].rstrip(" ")
        if ": " in text or text.endswith(":"):
            raise _NotPlain  # `a: b: c`: an error libyaml words
        return _plain_scalar(text), start + len(text)

    def flow_sequence(self, line: str, start: int, number: int) -> tuple[MarkedSeq, int]:
        self.depth += 1
        if self.depth > _PLAIN_DEPTH:
            raise _NotPlain
        result = MarkedSeq(new_mark((self.name, number, start + 1)))
        whole = _QUOTED_LIST.match(line, start)
        if whole is not None:
            # Split at once; each item's quote is 4 characters after the previous item.
            items = line[start + 2 : whole.end() - 2].split("', '")
            name, marks, at = self.name, result.item_marks, start + 1
            for item in items:
                marks.append(new_mark((name, number, at + 1)))
                at += len(item) + 4
            result.extend(items)
            self.depth -= 1
            return result, whole.end()
        at = _SPACES.match(line, start + 1).end()  # type: ignore[union-attr]
        if line.startswith("]", at):
            self.depth -= 1
            return result, at + 1
        while True:
            quoted = _QUOTED_ITEM.match(line, at)
            if quoted is not None:  # `'+33…',`: most items of a long list, in one match
                result.append(quoted[1])
                result.item_marks.append(new_mark((self.name, number, at + 1)))
                if quoted[2] == "]":
                    self.depth -= 1
                    return result, quoted.end(2)
                at = quoted.end()
                continue
            item, end = self.flow_value(line, at, number, _PLAIN_IN_FLOW)
            result.append(item)
            result.item_marks.append(
                item.mark if type(item) is MarkedMap else new_mark((self.name, number, at + 1))
            )
            end = _SPACES.match(line, end).end()  # type: ignore[union-attr]
            if line.startswith("]", end):
                self.depth -= 1
                return result, end + 1
            if not line.startswith(",", end):
                raise _NotPlain
            at = _SPACES.match(line, end + 1).end()  # type: ignore[union-attr]

    def flow_mapping(self, line: str, start: int, number: int) -> tuple[MarkedMap, int]:
        result = MarkedMap(new_mark((self.name, number, start + 1)))
        at = _SPACES.match(line, start + 1).end()  # type: ignore[union-attr]
        while True:
            match = _FLOW_KEY.match(line, at)
            if match is None:
                raise _NotPlain  # `{}` and anything unusual
            key = match[1]
            if key in result or _plain_scalar(key) is not key:
                raise _NotPlain
            value_at = match.end()
            first = line[value_at] if value_at < len(line) else ""
            if first in ("[", "{"):
                raise _NotPlain
            value, end = self.flow_value(line, value_at, number, _PLAIN_IN_FLOW)
            result[key] = value
            result.key_marks[key] = new_mark((self.name, number, at + 1))
            result.value_marks[key] = new_mark((self.name, number, value_at + 1))
            end = _SPACES.match(line, end).end()  # type: ignore[union-attr]
            if line.startswith("}", end):
                return result, end + 1
            if not line.startswith(",", end):
                raise _NotPlain
            at = _SPACES.match(line, end + 1).end()  # type: ignore[union-attr]


def read_plain_yaml(text: str, display_name: str) -> tuple[bool, Any]:
    """(True, tree) when `text` is in the plain subset `_PlainReader` reads; else (False, None).

    The tree is what the careful path (libyaml) gives, marks included, with no diagnostic.
    """
    if _NOT_PLAIN_CHARS.search(text):
        return False, None
    try:
        return True, _PlainReader(text, display_name).document()
    except (_NotPlain, IndexError):
        return False, None


def read_regular_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes.

    Raises OSError with a message for the admin: a FIFO would block `pbxd check` forever
    and /dev/zero would fill its memory, so neither is ever read.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except ValueError:  # a NUL byte in the name
        raise OSError(errno.EINVAL, "the file name contains a NUL byte") from None
    limit = MAX_FILE_BYTES if limit is None else limit
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            kind = _KIND_OF_FILE.get(stat.S_IFMT(mode), "not a regular file")
            raise OSError(errno.EINVAL, f"{kind}, not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes")
    return data


def load_yaml(path: Path, display_name: str, diagnostics: Diagnostics) -> Any:
    """Parse one YAML file; syntax errors become diagnostics and the result is None."""
    try:
        raw = read_regular_file(path)
    except FileNotFoundError:
        diagnostics.error(Mark(display_name, 1, 1), "file not found")
        return None
    except OSError as exc:
        # strerror only: the path is already at the start of the line.
        diagnostics.error(Mark(display_name, 1, 1), f"cannot read file: {exc.strerror or exc}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        diagnostics.error(
            Mark(display_name, line, column),
            f"not a UTF-8 text file (byte 0x{raw[exc.start]:02x} cannot be decoded)",
        )
        return None
    return load_yaml_text(text, display_name, diagnostics)


def _mark_at(text: str, position: int, display_name: str) -> Mark:
    """The mark of character `position` of `text`."""
    line = text.count("\n", 0, position) + 1
    return Mark(display_name, line, position - (text.rfind("\n", 0, position) + 1) + 1)


def load_yaml_text(text: str, display_name: str, diagnostics: Diagnostics) -> Any:
    """Parse YAML text under `display_name`; see `load_yaml`."""
    plain, tree = read_plain_yaml(text, display_name)
    if plain:
        return tree
    return load_yaml_carefully(text, display_name, diagnostics)


def load_yaml_carefully(text: str, display_name: str, diagnostics: Diagnostics) -> Any:
    """Parse any YAML text with libyaml's parser (every error reported); see `load_yaml`."""
    loader = _Loader(text)
    try:
        return _TreeBuilder(loader, display_name, diagnostics).document()
    except _TooDeep as exc:
        diagnostics.error(exc.mark, f"nested more than {MAX_DEPTH} levels deep")
        return None
    except yaml.MarkedYAMLError as exc:
        where = exc.problem_mark or exc.context_mark
        mark = (
            Mark(display_name, where.line + 1, where.column + 1)
            if where is not None
            else Mark(display_name, 1, 1)
        )
        problem = exc.problem or exc.context or "invalid YAML"
        diagnostics.error(mark, f"YAML syntax error: {problem}")
        return None
    except yaml.reader.ReaderError as exc:
        # Not a MarkedYAMLError: it carries a character position, not a line and column.
        diagnostics.error(
            _mark_at(text, exc.position, display_name),
            f"YAML syntax error: {exc.reason} (U+{exc.character:04X})"
            if isinstance(exc.character, int)
            else f"YAML syntax error: {exc.reason}",
        )
        return None
    except yaml.YAMLError as exc:
        diagnostics.error(Mark(display_name, 1, 1), f"YAML error: {exc}")
        return None
    finally:
        loader.dispose()


def locate(data: Any, loc: Iterable[int | str], fallback: Mark) -> tuple[Mark, Mark | None]:
    """(mark of the value at `loc`, mark of its key) in marked YAML, as deep as the data goes."""
    mark, key_mark, node = fallback, None, data
    for part in loc:
        if isinstance(node, MarkedMap) and isinstance(part, str) and part in node:
            # A section an environment variable created has no key written anywhere.
            mark, key_mark, node = node.mark_of(part), node.key_marks.get(part), node[part]
        elif isinstance(node, MarkedSeq) and isinstance(part, int) and 0 <= part < len(node):
            mark, key_mark, node = node.mark_of(part), None, node[part]
        else:
            break
    return mark, key_mark
