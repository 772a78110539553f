"""The plans of the numbers calls use: what each has used this month, and its calls now.

The CDRs say what every pbxd on the database used (`PlanLedger`, the CDR store); this
process's own calls are overlaid on them (their latest state may not be written yet), and so
are the calls it ended lately, so nothing counts twice and nothing is missed. The rules
(what is over a limit, when to look again) are pure: `pbxd.dialplan.limits`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from pbxd.cdr.records import CallRecord, Direction, LegRecord
from pbxd.dialplan.limits import Billable, UsageKind, in_window, merge, month_of

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession

# Calls ended here whose last state may not be in the database yet (written within seconds).
RECENT_CALLS = 4096


class PlanLedger(Protocol):
    """What the CDR store tells about a number's use (every process on the database)."""

    async def billables_of(self, did: str, since: datetime, until: datetime) -> list[Billable]:
        """Forwarded legs and calls going out of `did` answered in [since, until)."""
        ...

    async def calls_in_progress_of(self, did: str, now: datetime) -> set[str]:
        """Ids of `did`'s calls not ended."""
        ...


def billables_of_call(record: CallRecord, legs: Iterable[LegRecord]) -> list[Billable]:
    """What one call uses of its number's plan, as this process knows it."""
    if record.direction is Direction.OUTBOUND:
        if record.emergency or record.answered_at is None:
            return []
        return [Billable(record.call_id, UsageKind.OUTBOUND, record.answered_at, record.ended_at)]
    return [
        Billable(leg.leg_id, UsageKind.FORWARDED, leg.answered_at, leg.ended_at)
        for leg in legs
        if leg.answered_at is not None and "@" in leg.destination
    ]


@dataclass
class PlanGuard:
    """Reads a number's use for the calls of one daemon."""

    ledger: PlanLedger
    live: Callable[[], Iterable[CallSession]]  # this daemon's calls in progress
    _recent: OrderedDict[str, tuple[str, list[Billable]]] = field(default_factory=OrderedDict)

    def _own(self, did: str) -> tuple[set[str], list[Billable]]:
        """This process's calls of `did` in progress, and what they (and its recent ones) use."""
        ids: set[str] = set()
        items: list[Billable] = []
        for session in self.live():
            record = session.record
            if record.did != did:
                continue
            if record.ended_at is None:
                ids.add(record.call_id)
            items += billables_of_call(record, session.journal.legs.values())
        for number, ended in self._recent.values():
            if number == did:
                items += ended
        return ids, items

    async def used(self, did: str, tz: ZoneInfo, now: datetime) -> list[Billable]:
        """What `did` used this month (its zone's), calls in progress up to now."""
        since, until = month_of(now, tz)
        stored = await self.ledger.billables_of(did, since, until)
        _ids, own = self._own(did)
        return in_window(merge(stored, own), since, until)

    async def calls_in_progress(self, did: str, now: datetime, leaving_out: str) -> int:
        """How many calls `did` has now, on every pbxd, `leaving_out` one."""
        stored = await self.ledger.calls_in_progress_of(did, now)
        own, _items = self._own(did)
        ended_here = set(self._recent)
        return len(((stored - ended_here) | own) - {leaving_out})

    def ended(self, session: CallSession) -> None:
        """Remember what an ended call used until its last state is surely written."""
        record = session.record
        self._recent[record.call_id] = (
            record.did,
            billables_of_call(record, session.journal.legs.values()),
        )
        while len(self._recent) > RECENT_CALLS:
            self._recent.popitem(last=False)
