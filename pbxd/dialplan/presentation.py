"""The caller's number presentation (CLIP/CLIR) as the dialplan hands it to pbxd.

ARI's Channel model has no presentation, so the shipped dialplan passes it as the first
Stasis argument: `Stasis(pbxd,${CALLERID(pres)})`. CALLERID(pres) reads the combined
name/number presentation under Asterisk's names (callerid.c `pres_types`), the most
restrictive of the two winning; CONNECTEDLINE(pres) accepts the same names.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import structlog

log = structlog.get_logger("pbxd.dialplan")

# Bits of a presentation code (callerid.h AST_PRES_RESTRICTION).
_RESTRICTION_MASK = 0x60
_RESTRICTED = 0x20
_UNAVAILABLE = 0x40
# Odd values reported once each; a bound so junk arguments cannot grow the set forever.
_MAX_REPORTED = 64
_reported: set[str] = set()


class Presentation(StrEnum):
    """A party's presentation, spelt as CALLERID(pres) reads and CONNECTEDLINE(pres) takes it."""

    ALLOWED_NOT_SCREENED = "allowed_not_screened"
    ALLOWED_PASSED_SCREEN = "allowed_passed_screen"
    ALLOWED_FAILED_SCREEN = "allowed_failed_screen"
    ALLOWED = "allowed"  # allowed, network number
    PROHIB_NOT_SCREENED = "prohib_not_screened"
    PROHIB_PASSED_SCREEN = "prohib_passed_screen"
    PROHIB_FAILED_SCREEN = "prohib_failed_screen"
    PROHIB = "prohib"  # prohibited, network number
    UNAVAILABLE = "unavailable"

    @property
    def code(self) -> int:
        """Asterisk's numeric value (AST_PRES_*)."""
        return _CODES[self]

    @property
    def withheld(self) -> bool:
        """The caller asked for their identity not to be shown (CLIR)."""
        return self.code & _RESTRICTION_MASK == _RESTRICTED

    @property
    def allowed(self) -> bool:
        """May be shown to the called party (chan_pjsip puts it in From and PAI)."""
        return self.code & _RESTRICTION_MASK == 0


_CODES: dict[Presentation, int] = {
    Presentation.ALLOWED_NOT_SCREENED: 0x00,
    Presentation.ALLOWED_PASSED_SCREEN: 0x01,
    Presentation.ALLOWED_FAILED_SCREEN: 0x02,
    Presentation.ALLOWED: 0x03,
    Presentation.PROHIB_NOT_SCREENED: 0x20,
    Presentation.PROHIB_PASSED_SCREEN: 0x21,
    Presentation.PROHIB_FAILED_SCREEN: 0x22,
    Presentation.PROHIB: 0x23,
    Presentation.UNAVAILABLE: 0x43,
}
_BY_CODE = {code: pres for pres, code in _CODES.items()}
_BY_NAME = {str(pres): pres for pres in Presentation}


def parse_presentation(text: str) -> Presentation | None:
    """An Asterisk presentation name (any case) or numeric code; None if it is neither."""
    value = text.strip().lower()
    if value in _BY_NAME:
        return _BY_NAME[value]
    # isascii: `²` is a digit to str.isdigit() but not to int().
    if value.isascii() and value.isdigit() and len(value) <= 3:
        code = int(value)
        if code in _BY_CODE:
            return _BY_CODE[code]
        if code & _RESTRICTION_MASK == _RESTRICTED:
            return Presentation.PROHIB_NOT_SCREENED
        if code & _RESTRICTION_MASK == _UNAVAILABLE:
            return Presentation.UNAVAILABLE
    return None


def read_presentation(text: str) -> tuple[Presentation, bool]:
    """The presentation a Stasis argument stands for, and whether it was a known value.

    Unknown text is read as allowed (an argument a custom dialplan uses for something else
    must not hide every caller) unless it starts with `prohib`: a withheld number stays
    withheld even when spelt in a way this version does not know.
    """
    known = parse_presentation(text)
    if known is not None:
        return known, True
    if text.strip().lower().startswith("prohib"):
        return Presentation.PROHIB_NOT_SCREENED, False
    return Presentation.ALLOWED_NOT_SCREENED, False


def presentation_of_stasis_args(args: Sequence[str]) -> Presentation:
    """The caller's presentation from an inbound call's StasisStart `args`.

    No argument (a plain `Stasis(pbxd)` dialplan) reads as allowed. An unknown value is
    logged once (info) and read as `read_presentation` says; no call is refused for it.
    """
    if not args or not args[0].strip():
        return Presentation.ALLOWED_NOT_SCREENED
    presentation, known = read_presentation(args[0])
    if not known and args[0] not in _reported and len(_reported) < _MAX_REPORTED:
        _reported.add(args[0])
        log.info(
            "unknown caller presentation in the Stasis arguments",
            value=args[0][:40],
            read_as=str(presentation),
            expected="Stasis(pbxd,${CALLERID(pres)})",
        )
    return presentation
