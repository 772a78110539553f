"""Call records as Asterisk's `cdr_csv` writes them to `Master.csv`: one row per leg.

Billing tools that read Asterisk CDRs take this file as is, so the columns, their order, the
quoting and the time format are Asterisk's (cdr/cdr_csv.c): text in double quotes with inner
quotes doubled, numbers bare, an absent time as an empty bare field, times as
`%Y-%m-%d %H:%M:%S` in the server's local zone (or UTC, as `usegmtime=yes`), no header.
The optional columns follow cdr.conf's `[csv]` switches, in cdr_csv's order: `loguniqueid`,
`loguserfield`, then `newcdrcolumns` (peeraccount, linkedid, sequence).

What pbxd puts in each column, and why, is in docs/master-csv.md. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from pbxd.cdr.records import (
    CallLogEntry,
    CallRecord,
    Direction,
    Disposition,
    LegRecord,
    billable_seconds,
)

COLUMNS: tuple[str, ...] = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
UNIQUEID_COLUMNS = ("uniqueid",)
USERFIELD_COLUMNS = ("userfield",)
NEW_CDR_COLUMNS = ("peeraccount", "linkedid", "sequence")

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# The contexts of the shipped extensions.conf where calls enter Asterisk.
INBOUND_CONTEXT = "from-trunk"
OUTBOUND_CONTEXT = "from-softphones"
AMA_FLAGS = "DOCUMENTATION"  # Asterisk's default for a channel without `amaflags`

# The applications a record names: Dial() for a leg, VoiceMail() or Hangup() for a call that
# rang nobody.
DIAL = "Dial"
VOICEMAIL_APP = "VoiceMail"
HANGUP_APP = "Hangup"

# Asterisk's CDR dispositions (ast_cdr_disp2str).
ANSWERED = "ANSWERED"
NO_ANSWER = "NO ANSWER"
BUSY = "BUSY"
FAILED = "FAILED"
CONGESTION = "CONGESTION"

# Q.850 causes of an unanswered leg, as Asterisk's Dial turns them into a disposition.
_LEG_DISPOSITION = {
    16: NO_ANSWER,  # pbxd cancelled it: another leg answered, or the step timed out
    17: BUSY,
    18: NO_ANSWER,
    19: NO_ANSWER,
    26: NO_ANSWER,  # answered elsewhere
    34: CONGESTION,
    38: CONGESTION,
    42: CONGESTION,
}


@dataclass(frozen=True, slots=True)
class Options:
    """cdr.conf `[csv]` switches: `usegmtime`, `loguniqueid`, `loguserfield`, `newcdrcolumns`."""

    zone: tzinfo | None = None  # None: the host's local zone, as Asterisk's default
    uniqueid: bool = False
    userfield: bool = False
    new_columns: bool = False
    # Trunk name -> its inbound endpoint (`carrier-fr` -> `trunk-in`): the caller's channel.
    trunk_endpoints: Mapping[str, str] = field(default_factory=dict)

    def columns(self) -> tuple[str, ...]:
        """The columns written, in cdr_csv's order."""
        return (
            COLUMNS
            + (UNIQUEID_COLUMNS if self.uniqueid else ())
            + (USERFIELD_COLUMNS if self.userfield else ())
            + (NEW_CDR_COLUMNS if self.new_columns else ())
        )


def quoted(text: str) -> str:
    """`"text"` with inner quotes doubled; CR/LF become spaces (a row is one line)."""
    clean = text.replace('"', '""')
    if "\n" in clean or "\r" in clean:
        clean = clean.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return f'"{clean}"'


def asterisk_time(value: datetime | None, zone: tzinfo | None) -> str:
    """A quoted `2026-11-02 09:30:05` in `zone` (None: the host's), or an empty bare field."""
    if value is None:
        return ""
    local = value.astimezone(zone) if zone is not None else value.astimezone()
    return quoted(local.strftime(DATE_FORMAT))


def callerid(number: str | None, name: str | None) -> str:
    """`"Alice" <+33612345678>` as Asterisk merges a caller ID; the part known; or empty."""
    if number and name:
        return f'"{name}" <{number}>'
    return name or number or ""


def dialled_channel(destination: str) -> str:
    """The channel prefix a dial string makes: `PJSIP/alice`; `PJSIP/+336…@trunk-out` goes
    out on the trunk's endpoint, `PJSIP/trunk-out` (the `-0000001c` suffix is not kept)."""
    technology, _, resource = destination.partition("/")
    _, at, endpoint = resource.rpartition("@")
    return f"{technology}/{endpoint}" if at else destination


def leg_disposition(leg: LegRecord) -> str:
    """ANSWERED, NO ANSWER, BUSY, CONGESTION or FAILED for one leg."""
    if leg.answered_at is not None:
        return ANSWERED
    if leg.hangup_cause is None:
        return FAILED  # no channel could be made (offline endpoint, trunk full)
    return _LEG_DISPOSITION.get(leg.hangup_cause, FAILED)


def call_disposition(call: CallRecord) -> str:
    """The disposition of a call that rang nobody (answered by pbxd: greeting, voicemail)."""
    if call.answered_at is not None:
        return ANSWERED
    if call.disposition is Disposition.BUSY:
        return BUSY
    if call.disposition in (Disposition.FAILED, Disposition.REJECTED):
        return FAILED
    return NO_ANSWER


def _channel(trunk: str | None, options: Options) -> str:
    """`PJSIP/trunk-in`: the inbound channel's endpoint (its `-0000001c` suffix is not kept)."""
    return f"PJSIP/{options.trunk_endpoints.get(trunk, trunk)}" if trunk else ""


def _seconds(start: datetime, end: datetime | None) -> int:
    return 0 if end is None else billable_seconds(start, end)


def rows(entry: CallLogEntry, options: Options) -> Iterator[str]:
    """The Master.csv lines (with their newline) of one ended call: one per leg, or one for
    a call that rang nobody."""
    call = entry.call
    inbound = call.direction is Direction.INBOUND
    head = ",".join(
        (
            quoted(call.did),
            quoted(call.caller_number or ""),
            quoted(call.did if inbound else call.dialled or ""),
            quoted(INBOUND_CONTEXT if inbound else OUTBOUND_CONTEXT),
            quoted(callerid(call.caller_number, call.caller_name)),
            quoted(_channel(call.trunk, options)),
        )
    )
    if not entry.legs:
        app = VOICEMAIL_APP if call.voicemail is not None else HANGUP_APP
        data = call.voicemail.message_id if call.voicemail is not None else ""
        yield _line(
            head,
            "",
            app,
            data,
            call.started_at,
            call.answered_at,
            call.ended_at,
            call_disposition(call),
            (call.call_id, "", call.call_id, 0),
            options,
        )
        return
    for sequence, leg in enumerate(entry.legs):
        yield _line(
            head,
            dialled_channel(leg.destination),
            DIAL,
            leg.destination,
            leg.started_at,
            leg.answered_at,
            leg.ended_at,
            leg_disposition(leg),
            (leg.leg_id, leg.target, call.call_id, sequence),
            options,
        )


def _line(
    head: str,
    dstchannel: str,
    app: str,
    data: str,
    start: datetime,
    answer: datetime | None,
    end: datetime | None,
    disposition: str,
    extra: tuple[str, str, str, int],
    options: Options,
) -> str:
    uniqueid, userfield, linkedid, sequence = extra
    cells = [
        head,
        quoted(dstchannel),
        quoted(app),
        quoted(data),
        asterisk_time(start, options.zone),
        asterisk_time(answer, options.zone),
        asterisk_time(end, options.zone),
        str(_seconds(start, end)),
        str(0 if answer is None else _seconds(answer, end)),
        quoted(disposition),
        quoted(AMA_FLAGS),
    ]
    if options.uniqueid:
        cells.append(quoted(uniqueid))
    if options.userfield:
        cells.append(quoted(userfield))
    if options.new_columns:
        cells += [quoted(""), quoted(linkedid), str(sequence)]
    return ",".join(cells) + "\n"
