"""Blocks are checked against each other and against single numbers through an index; it must
answer exactly what a scan of every block (the old quadratic way) answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxd.config.numbering import NumberSpan, SpanIndex


def span(first: int, size: int, digits: int = 8) -> NumberSpan:
    return NumberSpan(f"+{first:0{digits}d}", f"+{first + size - 1:0{digits}d}")


def overlaps(a: NumberSpan, b: NumberSpan) -> bool:
    return a.first <= b.last and b.first <= a.last and len(a.first) == len(b.first)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(10_000_000, 10_000_400), st.integers(1, 40), st.sampled_from([8, 9])),
        max_size=40,
    ),
    st.lists(st.integers(10_000_000, 10_000_450), max_size=30),
)
def test_the_index_answers_as_a_scan_of_every_block(
    blocks: list[tuple[int, int, int]], singles: list[int]
) -> None:
    index: SpanIndex[str] = SpanIndex()
    kept: list[tuple[NumberSpan, str]] = []
    for n, (first, size, digits) in enumerate(blocks):
        candidate = span(first, size, digits)
        scanned = next(((s, v) for s, v in kept if overlaps(candidate, s)), None)
        assert index.overlapping(candidate) == scanned
        if scanned is None:
            index.add(candidate, f"b{n}")
            kept.append((candidate, f"b{n}"))
    for number in singles:
        for digits in (8, 9):
            e164 = f"+{number:0{digits}d}"
            scanned = next(((s, v) for s, v in kept if e164 in s), None)
            assert index.containing(e164) == scanned


def test_an_overlap_names_the_block_listed_first() -> None:
    index: SpanIndex[str] = SpanIndex()
    index.add(span(10_000_100, 10), "later-in-numbers")
    index.add(span(10_000_000, 10), "first-in-numbers")
    assert index.overlapping(span(10_000_005, 100)) == (span(10_000_100, 10), "later-in-numbers")
    assert index.containing("+10000005") == (span(10_000_000, 10), "first-in-numbers")
    assert index.containing("+10000010") is None
    assert index.containing("+100000005") is None  # another length
