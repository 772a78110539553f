"""The JSON API (docs/openapi.yaml): numbers, call logs, calls, reports, voicemail,
diagnose, and the targets' do-not-disturb (admin only).

Numbers in paths may be E.164 (`+33170000001`) or national (`0170000001`). Times in answers
are in the number's time zone with `*_utc` twins; filters read in that zone too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from pbxd.cdr import queries
from pbxd.cdr.records import CallLogEntry, Disposition
from pbxd.cdr.reports import (
    NumberReport,
    PeriodError,
    ReportPeriod,
    call_json,
    iso_local,
    iso_utc,
    report_to_json,
)
from pbxd.cdr.store import CdrStore
from pbxd.cli.calls import parse_bound
from pbxd.cli.common import resolve_number
from pbxd.config.files import NumberStatus
from pbxd.config.model import Config, VirtualNumber
from pbxd.config.numbering import NumberError
from pbxd.diagnose import Presence, diagnose, diagnosis_json
from pbxd.dialplan.limits import PlanUsage, plan_usage
from pbxd.inventory import NumberQuery, national_form, select
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageNotFound
from pbxd.web.auth import require_admin
from pbxd.web.errors import ApiError, bad_filter, log, not_found
from pbxd.web.state import CLOCK, CONFIG, DND, RUNTIME, VOICEMAIL

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_CALLER_FILTER = 32
NUMBERS_PAGE = 100  # numbers a page by default, as the numbers page shows
MAX_SEARCH = 64  # characters of a numbers search (`q`), as the numbers page reads


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the API's routes."""
    router.add_get("/api/numbers", numbers)
    router.add_get("/api/numbers/{number}/calls", number_calls)
    router.add_get("/api/numbers/{number}/report", number_report)
    router.add_get("/api/numbers/{number}/diagnose", number_diagnose)
    router.add_get("/api/numbers/{number}/voicemail", voicemail_list)
    router.add_get("/api/numbers/{number}/voicemail/{message_id}", voicemail_audio)
    router.add_get("/api/calls/{call_id}", one_call)
    router.add_get("/api/targets", targets)
    router.add_post("/api/targets/{target}/dnd", set_dnd)
    router.add_post("/api/config/reload", reload_config)


# ------------------------------------------------------------------ reading requests


def store_of(request: web.Request) -> CdrStore:
    """The CDR store (503 `not_ready` while it is not open)."""
    store = request.app[RUNTIME].store
    if store is None:
        raise ApiError(503, "not_ready", "the CDR database is not open yet")
    return store


def number_of(request: web.Request) -> tuple[VirtualNumber, ZoneInfo]:
    """The inventory entry named in the path; 404 `unknown_number` when it is not ours."""
    config = request.app[CONFIG].current
    text = request.match_info["number"]
    try:
        e164, tz = resolve_number(text[:64], config)
    except NumberError:
        raise not_found("unknown_number", f"{text[:40]!r} is not a phone number") from None
    number = config.number(e164)
    if number is None:
        raise not_found("unknown_number", f"{e164} is not in the inventory")
    return number, tz


@dataclass(frozen=True, slots=True)
class CallFilter:
    """A call-log query as read from the query string (times already UTC)."""

    since: datetime | None = None
    until: datetime | None = None
    dispositions: tuple[Disposition, ...] = ()
    caller: str | None = None
    limit: int = DEFAULT_PAGE
    before: tuple[datetime, str] | None = None
    server: str | None = None


def read_filter(query: Any, tz: ZoneInfo, *, max_limit: int = MAX_PAGE) -> CallFilter:
    """The filters of a call-log request; 400 `bad_filter` naming the first bad field."""
    since = until = None
    try:
        if query.get("since"):
            since = parse_bound(query["since"], tz, end=False)
    except ValueError:
        raise bad_filter("since", "expected a date (2026-11-23) or date and time") from None
    try:
        if query.get("until"):
            until = parse_bound(query["until"], tz, end=True)
    except ValueError:
        raise bad_filter("until", "expected a date (2026-11-23) or date and time") from None
    if since is not None and until is not None and since >= until:
        raise bad_filter("until", "must be after since")
    dispositions: list[Disposition] = []
    for value in query.getall("disposition", []):
        for word in filter(None, value.split(",")):
            try:
                dispositions.append(Disposition(word))
            except ValueError:
                known = ", ".join(d.value for d in Disposition)
                raise bad_filter("disposition", f"{word[:30]!r} is not one of {known}") from None
    caller = (query.get("caller") or "").strip() or None
    if caller is not None and len(caller) > MAX_CALLER_FILTER:
        raise bad_filter("caller", f"at most {MAX_CALLER_FILTER} characters")
    server = (query.get("server") or "").strip() or None
    if server is not None and len(server) > MAX_CALLER_FILTER:
        raise bad_filter("server", f"at most {MAX_CALLER_FILTER} characters")
    limit = read_limit(query, DEFAULT_PAGE, max_limit)
    before = decode_cursor(query["cursor"]) if query.get("cursor") else None
    return CallFilter(since, until, tuple(dispositions), caller, limit, before, server)


def read_limit(query: Any, default: int, max_limit: int) -> int:
    """`limit=` (a page's size), `default` when absent; 400 `bad_filter` out of 1..max."""
    text = query.get("limit")
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= max_limit:
        raise bad_filter("limit", f"a whole number from 1 to {max_limit}")
    return int(text)


def pack_cursor(values: list[str]) -> str:
    """An opaque cursor holding where a page ended (next_cursor)."""
    raw = json.dumps(values)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def unpack_cursor(text: str, size: int) -> list[str]:
    """The `size` strings a cursor of `pack_cursor` holds; ValueError for anything else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise ValueError("not a cursor") from None
    if not isinstance(values, list) or len(values) != size:
        raise ValueError("not a cursor")
    if not all(isinstance(v, str) for v in values):
        raise ValueError("not a cursor")
    return values


def bad_cursor() -> ApiError:
    """400 `bad_filter` on `cursor`: one this API did not give."""
    return bad_filter("cursor", "not a cursor this API gave (use next_cursor as is)")


def encode_cursor(entry: CallLogEntry) -> str:
    """An opaque cursor: the page goes on after this call (newest first)."""
    return pack_cursor([entry.call.started_at.isoformat(), entry.call.call_id])


def decode_cursor(text: str) -> tuple[datetime, str]:
    """The (started_at, call_id) a cursor holds; 400 `bad_filter` for anything else."""
    try:
        moment, call_id = unpack_cursor(text, 2)
        started = datetime.fromisoformat(moment)
        if started.utcoffset() is None:
            raise ValueError("naive time")
    except ValueError:
        raise bad_cursor() from None
    return started, call_id


async def query_calls(store: CdrStore, did: str, wanted: CallFilter) -> list[CallLogEntry]:
    """One page of calls (one more than the limit: whether there is a next page)."""
    return await store.call_log(
        did,
        since=wanted.since,
        until=wanted.until,
        limit=wanted.limit + 1,
        dispositions=wanted.dispositions,
        caller=wanted.caller,
        before=wanted.before,
        server=wanted.server,
    )


# ------------------------------------------------------------------ numbers


async def calls_today(
    config: Config, store: CdrStore, now: datetime, numbers: Sequence[str] | None = None
) -> dict[str, int]:
    """Calls since local midnight, per number (each number's own midnight); `numbers` only
    when given (a page of the inventory), else every number."""
    wanted = config.numbers if numbers is None else numbers
    zones = {e164: ZoneInfo(config.numbers[e164].timezone) for e164 in wanted}
    tallies = await queries.calls_today(store.engine, zones, now)
    return {did: tally.calls for did, tally in tallies.items()}


def number_json(config: Config, number: VirtualNumber, today: int | None) -> dict[str, Any]:
    """One inventory entry as the API shows it."""
    route = config.route_of_number.get(number.e164)
    return {
        "number": number.e164,
        "national": national_form(number.e164),
        "label": number.label,
        "status": number.status.value,
        "port_date": number.port_date.isoformat() if number.port_date else None,
        "losing_carrier": number.losing_carrier,
        "block": number.block,
        "trunk": number.trunk,
        "route": route.name if route else None,
        "time_zone": number.timezone,
        "whisper": list(number.whisper),
        "calls_today": today,
    }


def read_number_query(query: Any, config: Config) -> NumberQuery:
    """`status`, `trunk` and `q` of a numbers request; 400 `bad_filter` naming a bad one."""
    status = None
    if query.get("status"):
        try:
            status = NumberStatus(query["status"])
        except ValueError:
            known = ", ".join(s.value for s in NumberStatus)
            raise bad_filter("status", f"one of {known}") from None
    trunk = query.get("trunk") or None
    if trunk is not None and trunk not in config.trunks:
        raise bad_filter("trunk", f"no trunk {trunk[:40]!r} (known: {', '.join(config.trunks)})")
    search = (query.get("q") or "").strip()
    if len(search) > MAX_SEARCH:
        raise bad_filter("q", f"at most {MAX_SEARCH} characters")
    return NumberQuery(status, trunk, search)


def decode_number_cursor(text: str) -> str:
    """The number a numbers cursor holds (the page goes on after it)."""
    try:
        (e164,) = unpack_cursor(text, 1)
    except ValueError:
        raise bad_cursor() from None
    return e164


async def numbers(request: web.Request) -> web.Response:
    """A page of the inventory in number order, filtered, with each number's route, status,
    port date, whisper and today's calls; `next_cursor` when there is more."""
    config = request.app[CONFIG].current
    wanted = read_number_query(request.query, config)
    limit = read_limit(request.query, NUMBERS_PAGE, MAX_PAGE)
    cursor = request.query.get("cursor")
    after = decode_number_cursor(cursor) if cursor else None
    found = select(config, wanted, after=after, limit=limit + 1)
    page = found[:limit]
    today = await calls_today(config, store_of(request), request.app[CLOCK].now(), page)
    more = len(found) > limit
    return web.json_response(
        {
            "numbers": [number_json(config, config.numbers[e], today.get(e)) for e in page],
            "next_cursor": pack_cursor([page[-1]]) if more else None,
        }
    )


async def number_calls(request: web.Request) -> web.Response:
    """A page of a number's call log, newest first, with `next_cursor` when there is more."""
    number, tz = number_of(request)
    wanted = read_filter(request.query, tz)
    entries = await query_calls(store_of(request), number.e164, wanted)
    page = entries[: wanted.limit]
    more = len(entries) > wanted.limit
    return web.json_response(
        {
            "number": number.e164,
            "time_zone": tz.key,
            "calls": [call_json(e, tz) for e in page],
            "next_cursor": encode_cursor(page[-1]) if more else None,
        }
    )


async def one_call(request: web.Request) -> web.Response:
    """One call with its legs and its path; 404 `unknown_call`."""
    call_id = request.match_info["call_id"]
    entry = await store_of(request).get_call(call_id[:256])
    if entry is None:
        raise not_found("unknown_call", f"no call {call_id[:80]!r}")
    config = request.app[CONFIG].current
    number = config.number(entry.call.did)
    tz = ZoneInfo(number.timezone) if number else ZoneInfo("UTC")
    return web.json_response(call_json(entry, tz))


# ------------------------------------------------------------------ reports


def read_period(request: web.Request, tz: ZoneInfo) -> ReportPeriod:
    """`period=` from the query string (default: this month where the number is)."""
    text = request.query.get("period") or f"{request.app[CLOCK].now().astimezone(tz):%Y-%m}"
    try:
        return ReportPeriod.parse(text[:40])
    except PeriodError as exc:
        raise bad_filter("period", str(exc)) from None


async def report_of(request: web.Request) -> tuple[VirtualNumber, NumberReport, PlanUsage]:
    """The number, its report for the period asked and its plan usage (`pbxd usage`'s)."""
    number, tz = number_of(request)
    period = read_period(request, tz)
    store = store_of(request)
    report = await queries.number_report(store.engine, number.e164, period, tz, label=number.label)
    since, until = period.bounds(tz)
    billables = await store.billables_of(number.e164, since, until)
    plan = request.app[CONFIG].current.plan_of_number.get(number.e164)
    return number, report, plan_usage(plan, billables, request.app[CLOCK].now(), tz)


async def number_report(request: web.Request) -> web.Response:
    """Calls, answered, missed, abandoned, answer rate, waits, talk time, busiest hours, and
    the minutes used against the number's plan."""
    _, report, usage = await report_of(request)
    return web.json_response({**report_to_json(report), "usage": usage.to_json()})


# ------------------------------------------------------------------ voicemail


def message_json(message: Message, tz: ZoneInfo) -> dict[str, Any]:
    """A voicemail message with local and UTC times and where to download it."""
    return {
        **message.to_json(),
        "recorded_at": iso_local(message.recorded_at, tz),
        "recorded_at_utc": iso_utc(message.recorded_at),
        "time_zone": tz.key,
        "audio": f"/api/numbers/{message.did}/voicemail/{message.message_id}",
    }


async def voicemail_list(request: web.Request) -> web.Response:
    """A number's voicemail messages, newest first."""
    number, tz = number_of(request)
    found = await asyncio.to_thread(request.app[VOICEMAIL].messages, number.e164)
    return web.json_response(
        {"number": number.e164, "messages": [message_json(m, tz) for m in found]}
    )


async def voicemail_audio(request: web.Request) -> web.Response:
    """One message's WAV; 404 `unknown_message` for an unknown id (or a path like `../x`)."""
    number, _ = number_of(request)
    message_id = request.match_info["message_id"]
    try:
        audio = await asyncio.to_thread(request.app[VOICEMAIL].audio, number.e164, message_id)
    except (MessageNotFound, ValueError):
        raise not_found(
            "unknown_message", f"no message {message_id[:60]!r} for {number.e164}"
        ) from None
    return web.Response(
        body=audio,
        content_type="audio/wav",
        headers={"Content-Disposition": f'attachment; filename="{message_id}.wav"'},
    )


# ------------------------------------------------------------------ diagnose


def live_presence(request: web.Request) -> Presence:
    """The daemon's live presence table (fed by ARI), or why it cannot answer now."""
    service = request.app[RUNTIME].service
    daemon = service.daemon if service is not None else None
    stream = service.stream if service is not None else None
    source = "the daemon's presence table (ARI)"
    if daemon is None or stream is None:
        return Presence.unknown("can't ask: the daemon is not running calls (standby, or starting)")
    if not stream.connected:
        return Presence.unknown("can't ask: the daemon is not connected to Asterisk (ARI)")
    return Presence(dict(daemon.roster.presence.states), source)


async def number_diagnose(request: web.Request) -> web.Response:
    """The checklist support runs when "my number doesn't ring" (`pbxd.diagnose`)."""
    number, _ = number_of(request)
    found = await diagnose(
        request.app[CONFIG].current,
        store_of(request).engine,
        number.e164,
        request.app[CLOCK].now(),
        live_presence(request),
        set(request.app[DND].targets()),
    )
    return web.json_response(diagnosis_json(found))


# ------------------------------------------------------------------ targets and DND


def target_json(request: web.Request, name: str) -> dict[str, Any]:
    """A target, its kind and its do-not-disturb flag (with who set it, when)."""
    target = request.app[CONFIG].current.targets[name]
    change = request.app[DND].change(name)
    return {
        "target": name,
        "kind": target.kind,
        "label": target.label,
        "do_not_disturb": change is not None,
        "set_by": change.by if change else None,
        "set_at": iso_utc(change.at) if change else None,
    }


async def targets(request: web.Request) -> web.Response:
    """Every target with its do-not-disturb flag."""
    names = sorted(request.app[CONFIG].current.targets)
    return web.json_response({"targets": [target_json(request, n) for n in names]})


async def read_dnd_body(request: web.Request) -> bool:
    """`{"on": true}` (JSON) or `on=true` (form); 400 `bad_request` otherwise."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "bad_request", "the body is not JSON", field="on") from None
        value = body.get("on") if isinstance(body, dict) else None
        if isinstance(value, bool):
            return value
    else:
        form = await request.post()
        text = form.get("on")
        if text in ("true", "false"):
            return text == "true"
    raise ApiError(400, "bad_request", 'expected {"on": true} or {"on": false}', field="on")


def change_dnd(request: web.Request, target: str, on: bool) -> None:
    """Set a target's flag (admin only; 404 `unknown_target`); logged with who did it."""
    user = require_admin(request)
    if target not in request.app[CONFIG].current.targets:
        raise not_found("unknown_target", f"no target {target[:60]!r}")
    if request.app[DND].set(target, on, by=user.name, at=request.app[CLOCK].now()):
        log.info("dnd_changed", target=target, on=on, by=user.name)


async def set_dnd(request: web.Request) -> web.Response:
    """Turn a target's do-not-disturb on or off (admin only)."""
    on = await read_dnd_body(request)
    target = request.match_info["target"]
    change_dnd(request, target, on)
    return web.json_response(target_json(request, target))


async def reload_config(request: web.Request) -> web.Response:
    """Re-read the YAML (admin only), as SIGHUP does; 422 `config_refused` with the errors."""
    user = require_admin(request)
    log.info("reload_requested", by=user.name)
    with request.app[RUNTIME].notifier.reloading():
        result = await request.app[CONFIG].reload()
    if result.accepted:
        return web.json_response(result.as_dict())
    first = result.errors[0] if result.errors else result.reason
    body = {"error": {"code": "config_refused", "message": str(first)}, "reload": result.as_dict()}
    return web.json_response(body, status=422)
