"""What a rung target sees as caller ID: the route's (or the target's) policy, pure.

Policies: `caller` (the caller's number and name, the default), `number` (the virtual number
called, so the callee knows which line rings), a fixed number we own, and a prefix added to
the display name (`"[Acme] "`) with any of them. Whatever the policy, a caller who withheld
their number stays withheld: their number only ever goes to a carrier, which needs it
(billing, emergency, tracing), with the presentation that tells it to hide it; our own
phones never get it. The callee is only ever shown the caller's identity or one of ours,
never another target's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pbxd.dialplan.presentation import Presentation

# What a softphone leg shows for a withheld caller (RFC 3261 8.1.1.3's anonymous From).
ANONYMOUS_NUMBER = "anonymous"
ANONYMOUS_NAME = "Anonymous"
# Display names longer than this are cut (SIP phones show about 20-30 characters).
MAX_NAME = 80


class CallerIdShow(StrEnum):
    """Which number a rung target is shown."""

    CALLER = "caller"  # the caller's
    NUMBER = "number"  # the virtual number that was called
    FIXED = "fixed"  # one number of ours, the same for every call


@dataclass(frozen=True, slots=True)
class CallerIdRule:
    """A caller-ID policy: the number shown, and a prefix for the display name."""

    show: CallerIdShow = CallerIdShow.CALLER
    fixed: str | None = None  # E.164, with FIXED
    prefix: str = ""


CALLER_ID = CallerIdRule()


@dataclass(frozen=True, slots=True)
class Identity:
    """What a leg presents: number, display name and presentation (CALLERID/CONNECTEDLINE)."""

    number: str
    name: str
    presentation: Presentation = Presentation.ALLOWED_NOT_SCREENED


def presented_identity(
    rule: CallerIdRule,
    *,
    did: str,
    label: str | None,
    caller_number: str,
    caller_name: str,
    presentation: Presentation,
    softphone: bool,
) -> Identity:
    """The identity a leg presents to its target under `rule`.

    `label` is the virtual number's label (shown as the name with `number` and a fixed
    number); `softphone` says the leg rings one of our phones rather than a carrier.
    """
    withheld = presentation.withheld
    if rule.show is CallerIdShow.CALLER:
        if withheld and softphone:
            # Our own phone: no need for the number (the CDR has it), and a phone whose
            # endpoint trusts outbound identity or ignores Privacy cannot leak it.
            identity = Identity(ANONYMOUS_NUMBER, ANONYMOUS_NAME, presentation)
        else:
            # A carrier gets the real identity in PAI with `Privacy: id` when withheld.
            identity = Identity(caller_number, caller_name, presentation)
    else:
        # One of our numbers, allowed; a withheld caller's name is not ours to show.
        number = did if rule.show is CallerIdShow.NUMBER else (rule.fixed or did)
        identity = Identity(number, label or ("" if withheld else caller_name))
    if rule.prefix:
        name = f"{rule.prefix}{identity.name}"[:MAX_NAME]
        identity = Identity(identity.number, name, identity.presentation)
    return identity
