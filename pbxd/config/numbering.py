"""Phone numbers: parsing to E.164 with phonenumbers, and number blocks."""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Generic, TypeVar

import phonenumbers
from phonenumbers import timezone as number_timezones

_RANGE_SEPARATOR = re.compile(r"\s+-\s+|\s*–\s*|\s*\.\.\s*")
MAX_BLOCK_SIZE = 100_000
_T = TypeVar("_T")


class NumberError(ValueError):
    """A number or block that cannot be used, with a message for the admin."""


def is_region(code: str) -> bool:
    """True for a two-letter region phonenumbers knows (FR, GB, …)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def foreign_digit(text: str) -> str | None:
    """Which character of `text` is a digit but not 0-9 (`²`, `٣`, `１`), said for an admin.

    Python's int() and float() read Arabic-Indic or fullwidth digits and choke on `²`:
    numbers in pbxd are ASCII digits only, so a look-alike is named instead of guessed at.
    """
    for char in text:
        if not char.isascii() and (char.isdigit() or char.isnumeric()):
            name = unicodedata.name(char, "")
            named = f" {name}" if name else ""
            return f"'{char}' (U+{ord(char):04X}{named}) is not a digit 0-9"
    return None


def to_e164(text: str, region: str | None) -> str:
    """Parse a number written in E.164 or national form and return it in E.164.

    Raises NumberError saying why when it is not a valid number for its country.
    """
    raw = text.strip()
    shown = raw if len(raw) <= 40 else raw[:40] + "…"  # a pasted blob must not flood the report
    foreign = None if raw.isascii() else foreign_digit(raw)
    if foreign is not None:
        raise NumberError(f"'{shown}': {foreign}")
    compact = canonical_e164(raw)
    if compact is not None and _fast_e164(compact):
        return compact
    if not raw.startswith("+") and region is not None:
        national = _fast_national(raw, region.upper())
        if national is not None:
            return national
    if not raw.startswith("+") and region is None:
        raise NumberError(
            f"'{shown}' is in national form but no country is set: "
            "write it in E.164 (+…) or set `country:`"
        )
    if not raw.startswith("+") and not is_region(region or ""):
        raise NumberError(f"'{shown}' is in national form but country '{region}' is unknown")
    try:
        parsed = phonenumbers.parse(raw, None if raw.startswith("+") else region.upper())  # type: ignore[union-attr]
    except phonenumbers.NumberParseException:
        raise NumberError(f"'{shown}' is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_number(parsed) or region or "its country"
        raise NumberError(f"'{shown}' is not a valid number for {where}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_valid_e164(text: str) -> bool:
    """Whether `text` is a valid number written exactly in E.164 (`to_e164` gives it back
    unchanged, whatever the region); False also means "not decided here"."""
    return (
        len(text) > 2
        and text[0] == "+"
        and text.isascii()
        and text[1:].isdigit()
        and (_fast_e164(text))
    )


_SEPARATORS = str.maketrans("", "", " .-()\u00a0")
_MAX_DIGITS = 17  # phonenumbers' longest national number; longer is the parser's TOO_LONG


def canonical_e164(text: str) -> str | None:
    """`+33 1 70-00.00 01` -> `+33170000001` without validating; None if not +digits.

    Used to find a number already validated in the inventory without parsing it again.
    """
    compact = text.translate(_SEPARATORS)
    if len(compact) > 2 and compact[0] == "+" and compact.isascii() and compact[1:].isdigit():
        return compact
    return None


# The number types phonenumbers' _number_type_helper tries; a number is valid when its
# country's general pattern and one of these match (the commonest first: order is no matter).
_NUMBER_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
_Desc = tuple[frozenset[int], re.Pattern[str]]


@cache
def _validity_rules(country_code: int) -> tuple[_Desc, tuple[_Desc, ...]] | None:
    """(general, types) patterns of a country code that has one region; None for the others
    (+1, +7, +44 …: the region comes from the leading digits, phonenumbers decides)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions or len(regions) != 1:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, regions[0]
    )
    if metadata is None:
        return None

    def rule(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
        if desc is None or not desc.national_number_pattern:
            return None
        return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)

    general = rule(metadata.general_desc)
    if general is None:
        return None
    names = [
        n for n in _NUMBER_TYPES if n != "mobile" or not metadata.same_mobile_and_fixed_line_pattern
    ]
    types = tuple(r for r in (rule(getattr(metadata, n)) for n in names) if r is not None)
    return general, types


@cache
def _validity_pattern(country_code: int, length: int) -> re.Pattern[str] | None:
    """One pattern for the national numbers of `length` digits of a single-region code: its
    general pattern and any of its types' at once (None: no number of that length is valid).
    """
    rules = _validity_rules(country_code)
    assert rules is not None
    general, types = rules
    if not _fits(length, general):
        return None
    either = "|".join(f"(?:{desc[1].pattern})" for desc in types if _fits(length, desc))
    if not either:
        return None
    return re.compile(f"(?=(?:{general[1].pattern})\\Z)(?:{either})")


def _fits(length: int, desc: _Desc) -> bool:
    return not desc[0] or length in desc[0]


def _is_valid(country_code: int, national: str) -> bool:
    """phonenumbers.is_valid_number for `+<code><national>` (no leading zero), without its
    per-call layers: the same patterns, compiled once per length into one. 1,000,000 numbers
    spent a third of their compile there."""
    if _validity_rules(country_code) is None:
        number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
        return bool(phonenumbers.is_valid_number(number))
    pattern = _validity_pattern(country_code, len(national))
    return pattern is not None and pattern.fullmatch(national) is not None


@cache
def _calling_code_size(lead: str) -> int:
    """How many of the first digits of a number (`lead`, up to 3) are a country calling code
    (0: none is)."""
    for size in (1, 2, 3):
        if int(lead[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return size
    return 0


def _fast_e164(compact: str) -> bool:
    """Validate `+digits` without phonenumbers.parse (its normalising is the slow part).

    False means "not decided here": the caller falls back to the full parser, which also
    produces the error message.
    """
    digits = compact[1:]
    if len(digits) > _MAX_DIGITS:
        return False
    size, pattern = _national_rule(digits[:3], len(digits))
    national = digits[size:]
    # Leading zeros (Italy …) need the parser's special handling.
    if size == 0 or national[:1] in ("", "0"):
        return False
    if pattern is None:
        return _is_valid(int(digits[:size]), national)
    return pattern.fullmatch(national) is not None


@cache
def _national_rule(lead: str, length: int) -> tuple[int, re.Pattern[str] | None]:
    """(digits of the calling code, the pattern of a valid national number) for the numbers
    of `length` digits starting with `lead`; no pattern where `_is_valid` decides: a
    million numbers share a handful of these, so each number costs one look-up and a match.
    """
    size = _calling_code_size(lead)
    if size == 0 or _validity_rules(int(lead[:size])) is None:
        return size, None
    return size, _validity_pattern(int(lead[:size]), length - size)


@cache
def _plain_national_prefix(region: str) -> tuple[int, str, re.Pattern[str] | None] | None:
    """(country code, national prefix, international prefix) for regions that strip their
    national prefix literally; None for the others (GB, AR, BR, JP …): the parser's job.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return None
    if metadata.national_prefix_transform_rule is not None:
        return None
    prefix = metadata.national_prefix or ""
    if metadata.national_prefix_for_parsing not in (None, prefix):
        return None
    idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
    return metadata.country_code, prefix, idd


def _fast_national(text: str, region: str) -> str | None:
    """`01 70 00 00 01` in FR -> `+33170000001` without phonenumbers.parse; None: not decided.

    Only for plain digits in a region with a literal national prefix; anything else (and
    every invalid number, for its message) goes to the full parser.
    """
    digits = text.translate(_SEPARATORS)
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_DIGITS:
        return None
    plain = _plain_national_prefix(region)
    if plain is None:
        return None
    code, prefix, idd = plain
    if idd is not None and idd.match(digits):
        return None  # may be dialled abroad (`00 44 …`, Israel's `019 1 …`): the parser decides
    national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
    if not national or national[0] == "0":
        return None  # leading zeros (Italy …) need the parser's special handling
    return f"+{code}{national}" if _is_valid(code, national) else None


def national_format(e164: str) -> str:
    """The number as people of its country write it (`01 70 00 00 01`)."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def zone_of(e164: str) -> str | None:
    """The single IANA time zone of a number, or None when it spans several."""
    zones = number_timezones.time_zones_for_number(phonenumbers.parse(e164, None))
    real = [z for z in zones if z != number_timezones.UNKNOWN_TIMEZONE]
    return real[0] if len(real) == 1 else None


@dataclass(frozen=True, slots=True)
class NumberSpan:
    """A contiguous run of E.164 numbers of the same length, first..last inclusive."""

    first: str
    last: str

    @property
    def size(self) -> int:
        """How many numbers the span holds."""
        return int(self.last[1:]) - int(self.first[1:]) + 1

    def numbers(self) -> list[str]:
        """Every number of the span, in order."""
        return ["+" + str(v) for v in range(int(self.first[1:]), int(self.last[1:]) + 1)]

    def __contains__(self, e164: object) -> bool:
        return (
            isinstance(e164, str)
            and len(e164) == len(self.first)
            and self.first <= e164 <= self.last
        )


class SpanIndex(Generic[_T]):
    """Blocks that never overlap, each with a value, found by number in log time.

    Checking every new block and every single number against every block listed before was
    quadratic: 6,000 blocks (a million numbers) took most of a compile.
    """

    def __init__(self) -> None:
        # Per number length: the blocks' first numbers, sorted; the same order for the rest.
        self._firsts: dict[int, list[str]] = {}
        self._entries: dict[int, list[tuple[NumberSpan, int, _T]]] = {}
        self._added = 0

    def add(self, span: NumberSpan, value: _T) -> None:
        """Index a block (the caller has checked it overlaps none: see `overlapping`)."""
        size = len(span.first)
        firsts = self._firsts.setdefault(size, [])
        at = bisect.bisect_left(firsts, span.first)
        firsts.insert(at, span.first)
        self._entries.setdefault(size, []).insert(at, (span, self._added, value))
        self._added += 1

    def overlapping(self, span: NumberSpan) -> tuple[NumberSpan, _T] | None:
        """The block indexed first among those sharing a number with `span`, if any."""
        size = len(span.first)
        firsts = self._firsts.get(size)
        if not firsts:
            return None
        entries = self._entries[size]
        # Indexed blocks are disjoint: those overlapping `span` end the run starting at or
        # before span.last, walking back while they reach span.first.
        at = bisect.bisect_right(firsts, span.last) - 1
        found: tuple[NumberSpan, int, _T] | None = None
        while at >= 0 and entries[at][0].last >= span.first:
            if found is None or entries[at][1] < found[1]:
                found = entries[at]
            at -= 1
        return None if found is None else (found[0], found[2])

    def containing(self, e164: str) -> tuple[NumberSpan, _T] | None:
        """The block that holds `e164`, if any."""
        firsts = self._firsts.get(len(e164))
        if not firsts:
            return None
        at = bisect.bisect_right(firsts, e164) - 1
        if at < 0:
            return None
        span, _, value = self._entries[len(e164)][at]
        return (span, value) if e164 <= span.last else None


def parse_range(text: str, region: str | None) -> NumberSpan:
    """A block written `first - last` (also `first – last` or `first..last`)."""
    parts = _RANGE_SEPARATOR.split(text.strip())
    if len(parts) != 2:
        raise NumberError(f"range '{text}' must be written 'FIRST - LAST'")
    first, last = (to_e164(p, region) for p in parts)
    return _span(first, last)


def parse_prefix(prefix: str, count: int, region: str | None) -> NumberSpan:
    """A block written as a prefix and a count that is a power of ten (10, 100, …)."""
    if count < 10 or str(count).rstrip("0") != "1":
        raise NumberError(f"count must be 10, 100, 1000 … (a whole prefix block), not {count}")
    digits = len(str(count)) - 1
    raw = prefix.strip()
    first = to_e164(raw + "0" * digits, region)
    last = to_e164(raw + "9" * digits, region)
    return _span(first, last)


def _span(first: str, last: str) -> NumberSpan:
    if len(first) != len(last):
        raise NumberError(f"block ends {first} and {last} do not have the same length")
    span = NumberSpan(first, last)
    if span.size <= 0:
        raise NumberError(f"block starts at {first} but ends before it, at {last}")
    if span.size > MAX_BLOCK_SIZE:
        raise NumberError(f"block of {span.size} numbers is larger than {MAX_BLOCK_SIZE}")
    return span


@cache
def _known_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def is_time_zone(name: str) -> bool:
    """True for an IANA time zone name this machine's tz database knows."""
    return name in _known_zones()


def known_time_zones() -> frozenset[str]:
    """Every IANA zone name, for "did you mean" suggestions."""
    return _known_zones()
