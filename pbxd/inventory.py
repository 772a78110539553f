"""The inventory of virtual numbers as people list it: in number order, filtered, a page at a
time, each number in its national form.

`pbxd numbers`, the numbers page and `/api/numbers` all select through `NumberQuery` and
`select`, so a filter means the same everywhere. At 20,000 numbers the cost of a listing is
formatting, not finding: phonenumbers takes ~40 µs to write one number nationally, so
`national_form` remembers what it wrote (the inventory bounds what it is asked), and the
sorted inventory is kept per configuration (a reload swaps the Config, hence the order).
"""

from __future__ import annotations

import bisect
import functools
import itertools
from dataclasses import dataclass, field

from pbxd.config.files import NumberStatus
from pbxd.config.model import Config, VirtualNumber
from pbxd.config.numbering import national_format

# National forms remembered: a whole 20,000-number inventory takes 2.7 MiB (tracemalloc).
NATIONAL_FORMS_KEPT = 1 << 15


@functools.lru_cache(maxsize=NATIONAL_FORMS_KEPT)
def national_form(e164: str) -> str:
    """`+33170000001` -> `01 70 00 00 01`: `national_format`, remembered."""
    return national_format(e164)


class _SortedInventory:
    """The numbers of the latest configuration asked about, sorted once."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._numbers: tuple[str, ...] = ()

    def of(self, config: Config) -> tuple[str, ...]:
        if config is not self._config or len(self._numbers) != len(config.numbers):
            self._numbers = tuple(sorted(config.numbers))
            self._config = config
        return self._numbers


_SORTED = _SortedInventory()


def sorted_numbers(config: Config) -> tuple[str, ...]:
    """Every E.164 number of the inventory in order (sorted once per configuration)."""
    return _SORTED.of(config)


@dataclass(frozen=True, slots=True)
class NumberQuery:
    """Which numbers a listing keeps: a status, a trunk, and a search in labels and digits.

    The search keeps a number whose label contains it (any case) or whose digits do: the
    national trunk prefix is dropped, so `01 70` finds +33170….
    """

    status: NumberStatus | None = None
    trunk: str | None = None
    search: str = ""
    _needle: str = field(init=False, repr=False, compare=False)
    _digits: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once, not once per number of a 20,000-number scan.
        object.__setattr__(self, "_needle", self.search.casefold())
        digits = "".join(ch for ch in self.search if ch.isdigit()).removeprefix("0")
        object.__setattr__(self, "_digits", digits)

    def keeps(self, number: VirtualNumber) -> bool:
        """Whether `number` passes every filter given."""
        if self.status is not None and number.status is not self.status:
            return False
        if self.trunk is not None and number.trunk != self.trunk:
            return False
        if not self.search:
            return True
        if self._needle in number.label.casefold():
            return True
        return bool(self._digits) and self._digits in number.e164

    @property
    def filters(self) -> bool:
        """Whether any filter is set (else every number is kept)."""
        return self.status is not None or self.trunk is not None or bool(self.search)


def select(
    config: Config, query: NumberQuery, *, after: str | None = None, limit: int | None = None
) -> list[str]:
    """The numbers `query` keeps, in order, from just after `after`, at most `limit` of them."""
    ordered = sorted_numbers(config)
    start = bisect.bisect_right(ordered, after) if after is not None else 0
    if not query.filters:
        return list(ordered[start : None if limit is None else start + limit])
    found: list[str] = []
    numbers = config.numbers
    for e164 in itertools.islice(ordered, start, None):
        if query.keeps(numbers[e164]):
            found.append(e164)
            if limit is not None and len(found) >= limit:
                break
    return found
