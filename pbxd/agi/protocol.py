"""The FastAGI line protocol as Asterisk speaks it (res_agi.c), parsed at the edge.

Asterisk connects, sends `agi_key: value` lines ended by a blank line, then waits for
commands; each command gets one reply line, `200 result=1` or `200 result=1 (value)`, or an
error (`510 Invalid or unknown command`, `511 Command Not Permitted on a dead channel…`,
`520-Invalid command syntax…` up to `520 End of proper usage.`). When the channel hangs up
mid-session Asterisk sends one unsolicited `HANGUP` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_LINE = 8192  # bytes; Asterisk's own lines are far shorter (a long caller name is ~80)
MAX_HEADERS = 200  # a real header block has about 25 lines plus the arguments


class AgiProtocolError(Exception):
    """What Asterisk (or whoever connected) sent is not FastAGI."""


class AgiHangup(Exception):
    """The channel or the connection is gone: nothing more can be asked of it."""


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """One FastAGI session's header block, typed: who is calling what, and the script."""

    script: str  # `route` for agi://host/route
    uniqueid: str
    channel: str
    extension: str
    dnid: str
    context: str
    caller_number: str
    caller_name: str
    calling_pres: str
    args: tuple[str, ...]

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> AgiRequest:
        """The request a header block describes; AgiProtocolError names what is missing."""
        script = _script_of(headers)
        uniqueid = headers.get("agi_uniqueid", "").strip()
        if not uniqueid:
            raise AgiProtocolError("no agi_uniqueid in the header block")
        args: list[str] = []
        while f"agi_arg_{len(args) + 1}" in headers:
            args.append(headers[f"agi_arg_{len(args) + 1}"])
        return cls(
            script=script,
            uniqueid=uniqueid,
            channel=headers.get("agi_channel", ""),
            extension=headers.get("agi_extension", ""),
            dnid=_known(headers.get("agi_dnid", "")),
            context=headers.get("agi_context", ""),
            caller_number=_known(headers.get("agi_callerid", "")),
            caller_name=_known(headers.get("agi_calleridname", "")),
            calling_pres=headers.get("agi_callingpres", ""),
            args=tuple(args),
        )


def _known(value: str) -> str:
    # res_agi writes "unknown" for an empty caller ID or DNID.
    return "" if value.strip() == "unknown" else value.strip()


def _script_of(headers: dict[str, str]) -> str:
    """`route` from agi_network_script, or from the path of agi_request (older Asterisk)."""
    script = headers.get("agi_network_script", "")
    if not script:
        request = headers.get("agi_request", "")
        try:
            script = urlsplit(request).path
        except ValueError:
            raise AgiProtocolError("agi_request is not an agi:// URL") from None
    # `route?x=1` or `/route/`: the script is the path's name, arguments come as agi_arg_N.
    return unquote(script.partition("?")[0]).strip("/")


def parse_header_line(line: str) -> tuple[str, str]:
    """`agi_key: value` -> (key, value); AgiProtocolError for anything else."""
    key, sep, value = line.partition(":")
    if not sep or not key.startswith("agi_") or not key[4:].replace("_", "").isalnum():
        shown = line[:60] + ("…" if len(line) > 60 else "")
        raise AgiProtocolError(f"not an agi_* header line: {shown!r}")
    return key, value.removeprefix(" ")


_REPLY = re.compile(r"^(?P<code>\d{3})[ -](?:result=(?P<result>-?\d+)(?: \((?P<data>.*)\))?)?")


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One reply: `200 result=1 (alice)` -> code 200, result 1, data `alice`."""

    code: int
    result: int | None
    data: str | None
    line: str

    @classmethod
    def parse(cls, line: str) -> AgiReply:
        """The reply a line carries; AgiProtocolError when it does not start with a code."""
        match = _REPLY.match(line)
        if match is None:
            raise AgiProtocolError(f"not an AGI reply: {line[:60]!r}")
        result = match["result"]
        return cls(int(match["code"]), int(result) if result else None, match["data"], line)

    @property
    def ok(self) -> bool:
        """A command that ran (200)."""
        return self.code == 200


def quote(value: str) -> str:
    """A command argument as res_agi's parser reads it: in double quotes, `"` and `\\` escaped.

    Control characters are dropped: a newline would end the command and start another.
    """
    clean = "".join(c for c in value if c.isprintable())
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'
