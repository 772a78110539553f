"""AGI mode: FastAGI sessions as Asterisk sends them -> PBXD_* variables and CDRs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog.testing

from pbxd.agi.protocol import AgiProtocolError, AgiRequest, parse_header_line, quote
from pbxd.agi.route import AgiResult, DialOutcome, call_record, route_request, walk_flow
from pbxd.agi.server import FastAgiServer
from pbxd.cdr.records import CallRecord, Disposition, LegRecord, format_path
from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from tests.agi.fake_asterisk import agi_headers, parse_args, run_agi

REPO = Path(__file__).resolve().parents[2]
MONDAY_10H_PARIS = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SATURDAY_NOON_PARIS = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
HOURS = "    caller_id: caller            # show who is calling\n"
SHIPPED_FLOW_KEYS = (
    "    hours: acme-office",
    "    closed: {voicemail: reception}",
    "    greeting: {play: [acme-welcome]}",
    "    no_answer: {voicemail: reception}",
)


class FixedClock:
    """A clock that says what the test wants (only `now` is used by AGI mode)."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("AGI mode never sleeps")

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        raise AssertionError("AGI mode sets no timers")


class CdrBook:
    """Records what would reach the CDR writer."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.legs: list[LegRecord] = []

    def record_call(self, rec: CallRecord) -> bool:
        self.calls.append(rec.snapshot())
        return True

    def record_leg(self, rec: LegRecord) -> bool:
        self.legs.append(rec.snapshot())
        return True


def load(tmp_path: Path, *, hours: bool = False) -> Config:
    for name in ("pbxd.yaml", "sip-trunks.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "routing", tmp_path / "routing")
    shutil.copytree(REPO / "sounds", tmp_path / "sounds")
    acme = tmp_path / "routing" / "acme.yaml"
    # The shipped reception greets and takes voicemail, which FastAGI hands back as a reject:
    # these tests route a reception of today's shape (ring only, opening hours of their own).
    acme.write_text(
        "".join(
            line
            for line in acme.read_text().splitlines(keepends=True)
            if not line.startswith(SHIPPED_FLOW_KEYS)
        )
    )
    if hours:  # Paris reception opens 09:00-18:00 on weekdays
        text = acme.read_text()
        assert text.count(HOURS) == 1
        extra = "    hours: {weekly: {mon-fri: [09:00-18:00]}}\n    closed: {hangup: normal}\n"
        acme.write_text(text.replace(HOURS, HOURS + extra))
    result = compile_config(tmp_path / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    for var in ("PBXD_CONFIG", "PBXD_AGI_BIND", "PBXD_ROUTING_DIR", "PBXD_TRUNKS_FILE"):
        monkeypatch.delenv(var, raising=False)
    return load(tmp_path, hours=True)


Served = tuple[FastAgiServer, int, CdrBook, FixedClock]


@pytest.fixture
async def served(config: Config) -> AsyncIterator[Served]:
    clock = FixedClock(MONDAY_10H_PARIS)
    book = CdrBook()
    server = FastAgiServer(config, book, clock)
    _, port = await server.start("127.0.0.1:0")
    yield server, port, book, clock
    await server.stop()


# ------------------------------------------------------------------ routing a call


async def test_ringall_route_sets_the_dial_string_timeout_and_caller_id(served: Served) -> None:
    _, port, book, _ = served
    session = await run_agi(port, agi_headers("route"))
    assert session.variables == {
        "PBXD_DID": "+33170000001",
        "PBXD_ROUTE": "paris-reception",
        "PBXD_DIAL": "PJSIP/alice&PJSIP/bob&PJSIP/+33612345678@trunk-out",
        "PBXD_TIMEOUT": "20",  # each target's ring time (20 s default) under the 30 s timeout
        "PBXD_CALLERID": "+33612000001",
        "PBXD_CALLERID_NAME": "Jean",
        "PBXD_RESULT": "ring",
    }
    assert session.commands[-1] == 'SET VARIABLE PBXD_RESULT "ring"'  # last: never half-said
    assert all(reply == "200 result=1" for reply in session.replies)
    assert book.calls == []  # written when the dialplan reports the outcome


async def test_hunt_dials_its_first_target_and_lists_the_others(served: Served) -> None:
    _, port, _, _ = served
    session = await run_agi(port, agi_headers("route", extension="+33972100001"))
    variables = session.variables
    assert variables["PBXD_RESULT"] == "ring"
    assert (variables["PBXD_DIAL"], variables["PBXD_TIMEOUT"]) == ("PJSIP/bob", "15")
    assert variables["PBXD_HUNT_COUNT"] == "3"
    hunt = [
        (variables[f"PBXD_HUNT_DIAL_{n}"], variables[f"PBXD_HUNT_TIMEOUT_{n}"]) for n in (1, 2, 3)
    ]
    assert hunt == [
        ("PJSIP/bob", "15"),
        ("PJSIP/carol", "10"),
        ("PJSIP/+33612345679@trunk-out", "20"),
    ]


async def test_the_number_comes_from_the_argument_or_the_dnid(served: Served) -> None:
    _, port, _, _ = served
    by_argument = await run_agi(port, agi_headers("route", extension="s", args=("0972100001",)))
    assert by_argument.variables["PBXD_ROUTE"] == "support-line"  # national form, FR trunk
    headers = agi_headers("route", extension="s")  # `s`: a context without numbers
    headers = [h.replace("agi_dnid: s", "agi_dnid: +33972100001") for h in headers]
    by_dnid = await run_agi(port, headers)
    assert by_dnid.variables["PBXD_DID"] == "+33972100001"


async def test_unknown_and_reserved_numbers_are_rejected_and_logged_in_the_cdr(
    served: Served,
) -> None:
    _, port, book, _ = served
    unknown = await run_agi(port, agi_headers("route", uniqueid="u.1", extension="+33199999999"))
    reserved = await run_agi(port, agi_headers("route", uniqueid="u.2", extension="+33170000002"))
    for session in (unknown, reserved):
        assert session.variables["PBXD_RESULT"] == "reject"
        assert session.variables["PBXD_CAUSE"] == "1"  # unallocated number
        assert "PBXD_DIAL" not in session.variables
    assert [(c.call_id, c.disposition, c.hangup_cause) for c in book.calls] == [
        ("u.1", Disposition.REJECTED, 1),
        ("u.2", Disposition.REJECTED, 1),
    ]
    # The dialplan's `h` report after a reject writes nothing twice.
    await run_agi(port, agi_headers("result", uniqueid="u.1", extension="h", args=("",)))
    assert len(book.calls) == 2


async def test_closed_outside_opening_hours_then_the_cdr_says_closed(served: Served) -> None:
    _, port, book, clock = served
    clock.at = SATURDAY_NOON_PARIS
    session = await run_agi(port, agi_headers("route", uniqueid="c.1"))
    assert session.variables["PBXD_RESULT"] == "closed"
    assert "PBXD_DIAL" not in session.variables
    await run_agi(port, agi_headers("result", uniqueid="c.1", extension="h", args=("", "", "")))
    [call] = book.calls
    assert call.disposition is Disposition.CLOSED and format_path(call.path) == "closed"
    clock.at = MONDAY_10H_PARIS
    again = await run_agi(port, agi_headers("route", uniqueid="c.2"))
    assert again.variables["PBXD_RESULT"] == "ring"


async def test_a_withheld_caller_is_not_shown_to_the_softphones(served: Served) -> None:
    _, port, _, _ = served
    session = await run_agi(port, agi_headers("route", pres="32"))  # prohib_not_screened
    assert session.variables["PBXD_CALLERID"] == "anonymous"
    assert session.variables["PBXD_CALLERID_NAME"] == "Anonymous"


# ------------------------------------------------------------------ the outcome -> CDR


async def test_answered_call_reported_with_arguments_writes_call_and_legs(served: Served) -> None:
    _, port, book, clock = served
    await run_agi(port, agi_headers("route", uniqueid="a.1"))
    clock.at = MONDAY_10H_PARIS.replace(minute=1, second=30)
    await run_agi(
        port,
        agi_headers("result", uniqueid="a.1", args=("ANSWER", "75", "80", "bob", "16")),
    )
    [call] = book.calls
    assert call.call_id == "a.1" and call.did == "+33170000001"
    assert call.disposition is Disposition.ANSWERED and call.answered_by == "bob"
    assert (call.duration, call.billsec, call.hangup_cause) == (90, 75, 16)
    assert (call.route, call.strategy, call.trunk) == ("paris-reception", "ringall", "carrier-fr")
    assert format_path(call.path) == "ring → answered"
    by_target = {leg.target: leg for leg in book.legs}
    assert set(by_target) == {"alice", "bob", "ceo-mobile"}
    assert by_target["bob"].answered_at == call.answered_at
    assert (
        by_target["alice"].answered_at is None and by_target["alice"].ended_at == call.answered_at
    )


async def test_each_cdr_names_its_asterisk_as_ari_does(served: Served) -> None:
    # Several Asterisk servers share one database: AGI rows carry the server, like ARI's.
    _, port, book, _ = served
    await run_agi(port, agi_headers("route", uniqueid="s.1"), system_name="ast-paris-1")
    await run_agi(
        port,
        agi_headers("result", uniqueid="s.1", extension="h", args=("ANSWER", "5", "9")),
        system_name="ast-paris-1",
    )
    # No systemname in asterisk.conf: the entity id, as ARI's asterisk_id then says.
    await run_agi(port, agi_headers("route", uniqueid="s.2"), entity_id="02:00:00:00:00:07")
    await run_agi(
        port,
        agi_headers("result", uniqueid="s.2", extension="h", args=("NOANSWER", "", "20")),
        entity_id="02:00:00:00:00:07",
    )
    # A rejected call is written by the route script itself.
    await run_agi(
        port,
        agi_headers("route", uniqueid="s.3", extension="+33199999999"),
        system_name="ast-lyon-2",
    )
    assert [(c.call_id, c.server) for c in book.calls] == [
        ("s.1", "ast-paris-1"),
        ("s.2", "02:00:00:00:00:07"),
        ("s.3", "ast-lyon-2"),
    ]


async def test_a_reject_whose_caller_hangs_up_is_written_without_its_server(
    served: Served,
) -> None:
    _, port, book, _ = served
    session = await run_agi(
        port,
        agi_headers("route", uniqueid="r.1", extension="+33199999999"),
        hangup_after=1,
        system_name="ast-paris-1",
    )
    assert session.replies[-1].startswith("511")
    assert not any("SYSTEMNAME" in c for c in session.commands)
    assert [(c.call_id, c.disposition, c.server) for c in book.calls] == [
        ("r.1", Disposition.REJECTED, None)
    ]


async def test_outcome_read_with_get_variable_when_not_passed(served: Served) -> None:
    _, port, book, _ = served
    await run_agi(port, agi_headers("route", uniqueid="g.1"))
    session = await run_agi(
        port,
        agi_headers("result", uniqueid="g.1", extension="h"),
        channel_vars={"DIALSTATUS": "NOANSWER", "DIALEDTIME": "20", "HANGUPCAUSE": "19"},
    )
    asked = [c for c in session.commands if c.startswith("GET VARIABLE")]
    assert asked[:3] == [
        "GET VARIABLE DIALSTATUS",
        "GET VARIABLE ANSWEREDTIME",
        "GET VARIABLE DIALEDTIME",
    ]
    [call] = book.calls
    assert call.disposition is Disposition.NO_ANSWER and call.hangup_cause == 19
    assert call.answered_at is None and call.billsec == 0


@pytest.mark.parametrize(
    ("status", "disposition"),
    [
        ("BUSY", Disposition.BUSY),
        ("CHANUNAVAIL", Disposition.FAILED),
        ("CONGESTION", Disposition.FAILED),
        ("CANCEL", Disposition.ABANDONED),
        ("", Disposition.ABANDONED),  # the caller left before Dial() ran
        ("NONSENSE", Disposition.ABANDONED),
    ],
)
def test_dial_status_gives_the_disposition(
    config: Config, status: str, disposition: Disposition
) -> None:
    request = AgiRequest.from_headers(dict(parse_header_line(h) for h in agi_headers("route")))
    answer = route_request(request, config, MONDAY_10H_PARIS)
    record, _ = call_record(answer, "x", MONDAY_10H_PARIS, DialOutcome(status), MONDAY_10H_PARIS)
    assert record.disposition is disposition


async def test_a_result_after_a_restart_routes_pbxd_did_again(config: Config) -> None:
    book = CdrBook()
    server = FastAgiServer(config, book, FixedClock(MONDAY_10H_PARIS))
    _, port = await server.start("127.0.0.1:0")
    try:
        # No route in this server's memory: the channel still has PBXD_DID from before.
        session = await run_agi(
            port,
            agi_headers("result", uniqueid="r.1", extension="h", args=("BUSY", "0", "12")),
            channel_vars={"PBXD_DID": "+33972100001"},
        )
    finally:
        await server.stop()
    assert "GET VARIABLE PBXD_DID" in session.commands
    [call] = book.calls
    assert (call.route, call.disposition, call.duration) == ("support-line", Disposition.BUSY, 12)


# ------------------------------------------------------------------ bad input, hangups


async def test_caller_hanging_up_mid_session_ends_it_cleanly(served: Served) -> None:
    _, port, book, _ = served
    with structlog.testing.capture_logs() as logs:
        session = await run_agi(port, agi_headers("route", uniqueid="h.1"), hangup_after=2)
        # The server is still there for the next call.
        after = await run_agi(port, agi_headers("route", uniqueid="h.2"))
    # Two commands answered, the third met HANGUP + 511: pbxd stopped asking at once.
    assert len(session.commands) == 3 and session.replies[-1].startswith("511")
    assert "PBXD_RESULT" not in session.variables
    assert after.variables["PBXD_RESULT"] == "ring"
    [hangup] = [e for e in logs if e["event"] == "agi_hangup"]
    assert hangup["uniqueid"] == "h.1"
    # Its `h` report still gets a CDR: the caller left before Dial() ran.
    await run_agi(port, agi_headers("result", uniqueid="h.1", extension="h", args=("",)))
    assert [(c.call_id, c.disposition) for c in book.calls] == [("h.1", Disposition.ABANDONED)]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"GET / HTTP/1.1\r\nHost: pbxd\r\n\r\n", "not an agi_* header line: 'GET / HTTP/1.1'"),
        (b"agi_network: yes\nagi_request: agi://h/route\n\n", "no agi_uniqueid"),
        (b"agi_network: yes\n" + b"agi_x: " + b"y" * 100_000 + b"\n\n", "a line longer than"),
        (b"agi_network: yes\nagi_uniq", "the connection ended inside the header block"),
        (b"".join(b"agi_h%d: x\n" % n for n in range(500)) + b"\n", "more than 200 header"),
        (b"\xff\xfe\x00garbage\n\n", "not an agi_* header line"),
    ],
)
async def test_bad_input_gets_one_clear_line_and_the_server_lives_on(
    served: Served, raw: bytes, error: str
) -> None:
    _, port, _, _ = served
    with structlog.testing.capture_logs() as logs:
        session = await run_agi(port, [], raw=raw)
    assert session.commands == []
    [bad] = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert bad["event"] == "agi_bad_input" and error in bad["error"], bad
    ok = await run_agi(port, agi_headers("route"))
    assert ok.variables["PBXD_RESULT"] == "ring"


async def test_unknown_script_is_logged_and_answered_with_nothing(served: Served) -> None:
    _, port, _, _ = served
    with structlog.testing.capture_logs() as logs:
        session = await run_agi(port, agi_headers("rout"))
    assert session.commands == []
    [line] = [e for e in logs if e["event"] == "agi_unknown_script"]
    assert line["script"] == "rout" and line["known"] == ["result", "route"]


async def test_a_command_asterisk_refuses_ends_the_session_with_a_warning(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, port, _, _ = served

    async def odd(channel: object) -> None:
        await channel.command("NOSUCH THING")  # type: ignore[attr-defined]

    server.scripts["odd"] = odd
    with structlog.testing.capture_logs() as logs:
        session = await run_agi(port, agi_headers("odd"))
    assert session.replies == ["510 Invalid or unknown command"]
    [bad] = [e for e in logs if e["event"] == "agi_bad_input"]
    assert "510 Invalid or unknown command" in bad["error"]


async def test_stop_ends_a_session_waiting_for_asterisk(config: Config) -> None:
    server = FastAgiServer(config, CdrBook(), FixedClock(MONDAY_10H_PARIS))
    _, port = await server.start("127.0.0.1:0")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_network: yes\n")  # ... and then nothing: a stuck peer
    await writer.drain()
    async with asyncio.timeout(5):
        while server.sessions == 0:  # noqa: ASYNC110 -- the server offers no event for this
            await asyncio.sleep(0)
        with structlog.testing.capture_logs() as logs:
            await server.stop()
        # A reset is pbxd closing too (with our line not yet acknowledged by the kernel).
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""  # closed by pbxd
    writer.close()
    assert [e["event"] for e in logs] == ["agi_session_stopped"]


# ------------------------------------------------------------------ the protocol itself


def test_values_are_quoted_as_res_agi_parses_them() -> None:
    for value in ['"Jean" <+33612000001>', "back\\slash", "two  spaces", "", "new\nline"]:
        [verb, name, parsed] = parse_args(f"SET_VARIABLE X {quote(value)}")[0:1] + parse_args(
            f"X {quote(value)}"
        )
        assert verb == "SET_VARIABLE" and name == "X"
        assert parsed == value.replace("\n", "")


def test_header_lines_must_be_agi_keys() -> None:
    assert parse_header_line("agi_callerid: +33 6 12") == ("agi_callerid", "+33 6 12")
    assert parse_header_line("agi_accountcode: ") == ("agi_accountcode", "")
    with pytest.raises(AgiProtocolError):
        parse_header_line("HANGUP")


def test_a_flow_walk_passes_greetings_and_gotos_to_the_dialplan() -> None:
    from pbxd.config.files import HangupReason, RingStrategy
    from pbxd.dialplan.flow import Flow, GotoStep, HangupStep, LegPlan, PlayStep, RingStep

    leg = LegPlan("alice", "PJSIP/alice", None, 25, "+33612000001", "Jean")
    flow = Flow(
        did="+33170000001",
        trunk="carrier-fr",
        route="front",
        start="greeting",
        steps={
            "greeting": PlayStep(
                "greeting", ("sound:acme-welcome", "sound:acme-wait"), False, "go"
            ),
            "go": GotoStep("go", "overflow/ring"),
            "overflow/ring": RingStep(
                "overflow/ring", RingStrategy.RINGALL, (leg,), 20, "end", "end", "end"
            ),
            "end": HangupStep("end", HangupReason.NO_ANSWER),
        },
        caller_number="+33612000001",
        caller_name="Jean",
    )
    answer = walk_flow(flow, MONDAY_10H_PARIS)
    variables = dict(answer.variables())
    assert variables["PBXD_GREETING"] == "acme-welcome&acme-wait"
    assert variables["PBXD_GREETING_ANSWER"] == "0"  # early media: the caller is not billed
    assert variables["PBXD_TIMEOUT"] == "20"  # the ring time, capped by the step's timeout
    assert format_path(answer.path) == "goto overflow/ring"
    # A flow that only hangs up is a reject with the step's cause.
    flow_end = dataclasses.replace(flow, start="end")
    ended = walk_flow(flow_end, MONDAY_10H_PARIS)
    assert (ended.result, ended.cause) == (AgiResult.REJECT, 19)
