"""pbxd's compiled validity check says exactly what phonenumbers.is_valid_number says."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxd.config.numbering import NumberError, _is_valid, _validity_rules, to_e164

# Single-region codes (France, Germany, Spain, Switzerland, Belgium, Netherlands, Morocco,
# Japan, a non-geographic +800) and shared ones the library keeps deciding (+1, +7, +44).
CODES = [33, 49, 34, 41, 32, 31, 212, 81, 800, 1, 7, 44]


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(CODES),
    st.integers(1, 9),
    st.text(alphabet="0123456789", min_size=2, max_size=13),
)
def test_validity_is_phonenumbers_own(code: int, lead: int, rest: str) -> None:
    national = f"{lead}{rest}"
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    assert _is_valid(code, national) == phonenumbers.is_valid_number(number)


def test_real_numbers_of_the_single_region_codes() -> None:
    assert _validity_rules(33) is not None and _validity_rules(1) is None
    assert _is_valid(33, "170000001")  # Paris
    assert _is_valid(33, "612345678")  # a mobile
    assert not _is_valid(33, "1700000")  # too short
    assert _is_valid(49, "30123456")  # Berlin


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(CODES),
    st.integers(0, 9),
    st.text(alphabet="0123456789", min_size=2, max_size=13),
)
def test_e164_numbers_are_accepted_as_phonenumbers_accepts_them(
    code: int, lead: int, rest: str
) -> None:
    text = f"+{code}{lead}{rest}"
    try:
        parsed = phonenumbers.parse(text, None)
        valid = phonenumbers.is_valid_number(parsed)
        expected = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        valid = False
    try:
        assert to_e164(text, None) == expected and valid
    except NumberError:
        assert not valid
