"""The FastAGI server `pbxd run` starts on `agi.bind`: scripts `route` and `result`.

Written on asyncio streams rather than taken from pyst2, whose FastAGI server imports the
Python 2 `SocketServer` module and whose AGI class blocks on readline (one SET VARIABLE
answered in 50 ms stalls every call pbxd handles for 50 ms) and takes over SIGHUP.
Every session is its own task; whatever it receives, it ends with one log line and never
takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from pbxd.agi.protocol import (
    MAX_HEADERS,
    MAX_LINE,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    parse_header_line,
    quote,
)
from pbxd.agi.route import (
    AgiResult,
    DialOutcome,
    RouteAnswer,
    call_record,
    route_request,
    seconds_of,
)
from pbxd.cdr.records import CallRecord, LegRecord
from pbxd.clock import Clock
from pbxd.config.model import Config

log = structlog.get_logger("pbxd.agi")

HEADER_TIMEOUT_S = 10.0  # Asterisk sends the whole block at once; a silent peer is not it
REPLY_TIMEOUT_S = 30.0  # a reply to SET/GET VARIABLE takes microseconds on a live Asterisk
MAX_PENDING = 20_000  # routed calls waiting for their result; the oldest go first
MAX_RECORDED = 20_000  # call ids already written, so a repeated result writes nothing


class CdrWriter(Protocol):
    """The part of the CDR store AGI mode writes to (`pbxd.cdr.store.CdrStore`)."""

    def record_call(self, rec: CallRecord) -> bool: ...

    def record_leg(self, rec: LegRecord) -> bool: ...


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call routed by `route`, waiting for the dialplan's `result`."""

    answer: RouteAnswer
    started_at: datetime


class AgiChannel:
    """One FastAGI session: the request, and commands sent to its channel."""

    def __init__(
        self, request: AgiRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.request = request
        self._reader = reader
        self._writer = writer
        self.hung_up = False  # Asterisk said HANGUP: the caller is gone

    async def command(self, text: str) -> AgiReply:
        """Send one command and read its reply (skipping an unsolicited HANGUP line)."""
        self._writer.write(text.encode() + b"\n")
        await self._writer.drain()
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            while True:
                line = await read_line(self._reader)
                if line is None:
                    raise AgiHangup("Asterisk closed the connection")
                if line == "HANGUP":
                    self.hung_up = True
                    continue
                reply = AgiReply.parse(line)
                if line.startswith("520-"):  # usage text follows, up to "520 End of …"
                    while (more := await read_line(self._reader)) is not None:
                        if more.startswith("520 "):
                            break
                if reply.code == 511:
                    raise AgiHangup("the channel is gone (511)")
                if not reply.ok:
                    raise AgiProtocolError(f"Asterisk refused {text.split()[0:2]}: {line[:80]}")
                return reply

    async def set_variable(self, name: str, value: str) -> None:
        """SET VARIABLE name "value"."""
        await self.command(f"SET VARIABLE {name} {quote(value)}")

    async def get_variable(self, name: str) -> str | None:
        """GET VARIABLE name: its value, or None when the channel has no such variable."""
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.result == 1 else None


async def asterisk_name(channel: AgiChannel) -> str | None:
    """The Asterisk the channel is on, named as ARI names it: `systemname`, else the entity id.

    Both are built-in dialplan variables, so GET VARIABLE answers them even in the `h`
    extension after a hang-up. None when the channel can no longer be asked: the CDR is
    written without its server rather than lost.
    """
    try:
        for variable in ("SYSTEMNAME", "ENTITYID"):
            if value := (await channel.get_variable(variable) or "").strip():
                return value
    except (AgiHangup, AgiProtocolError, TimeoutError, ConnectionError, OSError):
        pass
    return None


async def read_line(reader: asyncio.StreamReader) -> str | None:
    """One line without its newline; None at end of stream. Too long: AgiProtocolError."""
    try:
        raw = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError, re-raised by readline
        raise AgiProtocolError(f"a line longer than {MAX_LINE} bytes") from None
    if not raw:
        return None
    if not raw.endswith(b"\n"):
        return None  # the peer closed in the middle of a line
    return raw.decode("utf-8", "replace").rstrip("\r\n")


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """The `agi_*: value` block up to its blank line."""
    headers: dict[str, str] = {}
    while True:
        line = await read_line(reader)
        if line is None:
            raise AgiProtocolError("the connection ended inside the header block")
        if not line:
            return headers
        if len(headers) >= MAX_HEADERS:
            raise AgiProtocolError(f"more than {MAX_HEADERS} header lines")
        key, value = parse_header_line(line)
        headers[key] = value


Script = Callable[[AgiChannel], Awaitable[None]]


class FastAgiServer:
    """Serves `AGI(agi://HOST/route)` and `AGI(agi://HOST/result,…)` for dialplan-driven setups."""

    def __init__(self, config: Config, cdr: CdrWriter, clock: Clock) -> None:
        self.config = config
        self.cdr = cdr
        self.clock = clock
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._pending: OrderedDict[str, PendingCall] = OrderedDict()
        self._recorded: OrderedDict[str, None] = OrderedDict()
        self.scripts: dict[str, Script] = {"route": self.route, "result": self.result}
        self.sessions = 0  # sessions served, for tests and benches

    def use_config(self, config: Config) -> None:
        """Answer new AGI requests from `config` (a reload)."""
        self.config = config

    # ------------------------------------------------------------------ lifecycle

    async def start(self, bind: str) -> tuple[str, int]:
        """Listen on `bind` (HOST:PORT, port 0 for any); returns the address bound."""
        host, _, port = bind.rpartition(":")
        self._server = await asyncio.start_server(
            self._session, host.strip("[]"), int(port), limit=MAX_LINE
        )
        address = self._server.sockets[0].getsockname()
        log.info("agi_listening", host=address[0], port=address[1])
        return address[0], address[1]

    async def stop(self) -> None:
        """Stop listening and end the sessions in progress (the dialplan goes on without us)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection from Asterisk (asyncio runs it as its own task)."""
        task = asyncio.current_task()
        if task is not None:  # kept so stop() can end it
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.sessions += 1
        request: AgiRequest | None = None
        try:
            async with asyncio.timeout(HEADER_TIMEOUT_S):
                request = AgiRequest.from_headers(await read_headers(reader))
            script = self.scripts.get(request.script)
            if script is None:
                log.warning(
                    "agi_unknown_script",
                    peer=where,
                    script=request.script[:80],
                    known=sorted(self.scripts),
                    uniqueid=request.uniqueid,
                )
                return
            await script(AgiChannel(request, reader, writer))
        except AgiHangup as exc:
            log.info("agi_hangup", peer=where, uniqueid=_id(request), detail=str(exc))
        except AgiProtocolError as exc:
            log.warning("agi_bad_input", peer=where, uniqueid=_id(request), error=str(exc))
        except TimeoutError:
            log.warning("agi_timeout", peer=where, uniqueid=_id(request))
        except (ConnectionError, OSError) as exc:
            log.info("agi_connection_lost", peer=where, error=f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            # stop(): end as a finished task; asyncio's stream callback reads its exception.
            log.info("agi_session_stopped", peer=where, uniqueid=_id(request))
        except Exception:
            # A bug in one session must not take the server (or another call) down.
            log.exception("agi_session_failed", peer=where, uniqueid=_id(request))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # ------------------------------------------------------------------ the scripts

    async def route(self, channel: AgiChannel) -> None:
        """`AGI(agi://…/route[,NUMBER])`: set PBXD_* for the dialplan to dial with."""
        request = channel.request
        now = self.clock.now()
        answer = route_request(request, self.config, now)
        log.info(
            "agi_routed",
            uniqueid=request.uniqueid,
            did=answer.did,
            route=answer.route,
            result=str(answer.result),
            why=answer.why,
        )
        if answer.result is not AgiResult.REJECT:
            self._remember(request.uniqueid, PendingCall(answer, now))
        reject = answer.result is AgiResult.REJECT
        try:
            for name, value in answer.variables():
                await channel.set_variable(name, value)
                if channel.hung_up:
                    raise AgiHangup("the caller hung up while pbxd answered")
        except BaseException:
            if reject:  # nothing for the dialplan to report later: write it now, hung up or not
                self._write(request.uniqueid, answer, now, DialOutcome(""), now, None)
            raise
        if reject:
            server = await asterisk_name(channel)
            self._write(request.uniqueid, answer, now, DialOutcome(""), now, server)

    async def result(self, channel: AgiChannel) -> None:
        """`AGI(agi://…/result[,DIALSTATUS,ANSWEREDTIME,DIALEDTIME])` after Dial: write the CDR."""
        request = channel.request
        uniqueid = request.uniqueid
        if uniqueid in self._recorded:
            log.info("agi_result_repeated", uniqueid=uniqueid)
            return
        now = self.clock.now()
        outcome = await self._outcome(channel)
        pending = self._pending.pop(uniqueid, None)
        if pending is None:
            pending = await self._reroute(channel, outcome, now)
            if pending is None:
                return
        server = await asterisk_name(channel)
        self._write(uniqueid, pending.answer, pending.started_at, outcome, now, server)

    async def _outcome(self, channel: AgiChannel) -> DialOutcome:
        """DIALSTATUS, ANSWEREDTIME, DIALEDTIME from the arguments, else asked of the channel."""
        args = channel.request.args

        async def value(position: int, name: str) -> str:
            if len(args) > position:
                return args[position].strip()
            return (await channel.get_variable(name) or "").strip()

        status = (await value(0, "DIALSTATUS")).upper()
        answered = seconds_of(await value(1, "ANSWEREDTIME"))
        dialed = seconds_of(await value(2, "DIALEDTIME"))
        peer = await value(3, "DIALEDPEERNUMBER") if status == "ANSWER" else ""
        cause = seconds_of(await value(4, "HANGUPCAUSE")) if status else None
        return DialOutcome(status, answered, dialed, peer, cause)

    async def _reroute(
        self, channel: AgiChannel, outcome: DialOutcome, now: datetime
    ) -> PendingCall | None:
        """A result whose route pbxd no longer knows (a restart): route PBXD_DID again."""
        request = channel.request
        did = await channel.get_variable("PBXD_DID")
        if not did:
            log.warning(
                "agi_result_without_route",
                uniqueid=request.uniqueid,
                hint="call AGI(agi://…/route) before AGI(agi://…/result)",
            )
            return None
        answer = route_request(
            AgiRequest(
                "route",
                request.uniqueid,
                request.channel,
                did,
                request.dnid,
                request.context,
                request.caller_number,
                request.caller_name,
                request.calling_pres,
                (),
            ),
            self.config,
            now,
        )
        # The route time is gone with the previous run: Dial's own length is the best floor.
        started = now - timedelta(seconds=outcome.dialed_seconds or 0)
        log.info("agi_result_rerouted", uniqueid=request.uniqueid, did=did)
        return PendingCall(answer, started)

    # ------------------------------------------------------------------ bookkeeping

    def _remember(self, uniqueid: str, pending: PendingCall) -> None:
        self._pending[uniqueid] = pending
        self._pending.move_to_end(uniqueid)
        while len(self._pending) > MAX_PENDING:
            dropped, _ = self._pending.popitem(last=False)
            log.warning("agi_pending_dropped", uniqueid=dropped, limit=MAX_PENDING)

    def _write(
        self,
        uniqueid: str,
        answer: RouteAnswer,
        started_at: datetime,
        outcome: DialOutcome,
        now: datetime,
        server: str | None,
    ) -> None:
        record, legs = call_record(answer, uniqueid, started_at, outcome, now)
        record.server = server
        self.cdr.record_call(record)
        for leg in legs:
            self.cdr.record_leg(leg)
        self._recorded[uniqueid] = None
        while len(self._recorded) > MAX_RECORDED:
            self._recorded.popitem(last=False)
        log.info(
            "agi_cdr_written",
            uniqueid=uniqueid,
            did=record.did,
            disposition=str(record.disposition),
            answered_by=record.answered_by,
        )


async def start_agi(config: Config, cdr: CdrWriter, clock: Clock) -> FastAgiServer | None:
    """The FastAGI server on `agi.bind`, listening; None when AGI mode is off.

    Raises OSError when the address cannot be bound (in use, not ours).
    """
    bind = config.settings.agi_bind
    if bind is None:
        return None
    server = FastAgiServer(config, cdr, clock)
    await server.start(bind)
    return server


def _id(request: AgiRequest | None) -> str | None:
    return request.uniqueid if request is not None else None
