"""A FastAGI client that speaks as Asterisk 22's res_agi does, for tests and benches.

It connects, sends the `agi_*` header block and a blank line, then answers each command
line the server sends: `SET VARIABLE` -> `200 result=1`, `GET VARIABLE` -> `200 result=1
(value)` or `200 result=0`, anything else -> `510 Invalid or unknown command`. A channel
hung up mid-session sends one `HANGUP` line and answers later commands `511 …`, as res_agi
does; the session ends when the server closes the connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

# The entity id Asterisk derives from a MAC address when asterisk.conf sets none.
ENTITY_ID = "02:42:ac:11:00:02"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


def agi_headers(
    script: str,
    *,
    uniqueid: str = "1764752400.17",
    extension: str = "+33170000001",
    caller: str = "+33612000001",
    name: str = "Jean",
    pres: str = "0",
    args: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> list[str]:
    """The header block res_agi sends for `AGI(agi://HOST/SCRIPT,ARGS)` on a trunk call."""
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://{host}/{script}",
        "agi_channel: PJSIP/trunk-in-0000002a",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.10.1",
        f"agi_callerid: {caller or 'unknown'}",
        f"agi_calleridname: {name or 'unknown'}",
        f"agi_callingpres: {pres}",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {extension}",
        "agi_rdnis: unknown",
        "agi_context: from-trunk",
        f"agi_extension: {extension}",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140245067179712",
    ]
    lines += [f"agi_arg_{n}: {arg}" for n, arg in enumerate(args, 1)]
    return lines


def parse_args(line: str) -> list[str]:
    """res_agi.c parse_args(): whitespace splits, double quotes group, backslash escapes."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = started = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char == '"':
            quoted = not quoted
            started = True
        elif char in " \t" and not quoted:
            if started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
            started = True
    if started:
        args.append("".join(current))
    return args


@dataclass
class AgiSession:
    """What happened in one session, as Asterisk saw it."""

    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)


async def run_agi(
    port: int,
    headers: list[str],
    *,
    channel_vars: dict[str, str] | None = None,
    hangup_after: int | None = None,
    raw: bytes | None = None,
    system_name: str = "",
    entity_id: str = ENTITY_ID,
) -> AgiSession:
    """One FastAGI session against 127.0.0.1:`port`; returns once the server hangs up.

    `hangup_after`: the caller hangs up after that many commands were answered. `raw`:
    bytes sent instead of the header block (garbage tests).
    """
    session = AgiSession()
    # Built-ins every channel answers: asterisk.conf's systemname ("" when unset), the entity id.
    known = {"SYSTEMNAME": system_name, "ENTITYID": entity_id, **(channel_vars or {})}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if raw is not None:
            writer.write(raw)
            writer.write_eof()  # all we have to say: the server must not wait for more
        else:
            writer.write("".join(f"{line}\n" for line in headers).encode() + b"\n")
        await writer.drain()
        dead = False
        while line := await reader.readline():
            command = line.decode().rstrip("\n")
            session.commands.append(command)
            if hangup_after is not None and len(session.commands) > hangup_after and not dead:
                dead = True
                writer.write(b"HANGUP\n")
            words = parse_args(command)
            verb = " ".join(w.upper() for w in words[:2])
            if dead:
                reply = DEAD
            elif verb == "SET VARIABLE" and len(words) == 4:
                session.variables[words[2]] = words[3]
                known[words[2]] = words[3]
                reply = "200 result=1"
            elif verb == "GET VARIABLE" and len(words) == 3:
                value = known.get(words[2])
                reply = "200 result=0" if value is None else f"200 result=1 ({value})"
            else:
                reply = "510 Invalid or unknown command"
            session.replies.append(reply)
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    except ConnectionResetError:
        pass
    finally:
        writer.close()
        await writer.wait_closed()
    return session
