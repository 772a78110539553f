"""Server-rendered pages: numbers, a number's call log, its report, targets, login.

Plain HTML and one stylesheet: readable without JavaScript (calls expand with <details>),
on a phone, and offline. Every form that changes something carries the session's CSRF
token; the middleware refuses one without it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from markupsafe import Markup

from pbxd.cdr.records import CallLogEntry, Direction, Disposition, format_path
from pbxd.cdr.reports import (
    caller_text,
    format_csv,
    format_json,
    format_seconds,
    hangup_cause_text,
    leg_outcome,
    local_time,
    party_text,
)
from pbxd.cli.usage import allowance_text, minutes_text
from pbxd.dialplan.limits import PlanUsage, UsageKind
from pbxd.inventory import NumberQuery, national_form, select
from pbxd.web import api, charts
from pbxd.web.auth import (
    LOGIN_COOKIE,
    USER,
    check_password,
    client_of,
    close_session,
    current_session,
    login_csrf_ok,
    open_session,
    safe_next,
    set_cookie,
)
from pbxd.web.errors import ApiError, bad_filter, log
from pbxd.web.state import CLOCK, CONFIG, DND, LOGIN_THROTTLE, USERS, VOICEMAIL
from pbxd.web.throttle import Refusal

TEMPLATES = Path(__file__).parent / "templates"
DOWNLOAD_MAX = 100_000  # calls in one CSV/JSON download
# Numbers per page of the numbers page: 20,000 numbers on one page is not a page.
NUMBERS_PER_PAGE = 100

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every value a caller can set (names, numbers) is escaped
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the pages' routes."""
    router.add_get("/", numbers_page)
    router.add_get("/login", login_form)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
    router.add_get("/numbers/{number}", calls_page)
    router.add_get("/numbers/{number}/calls.csv", calls_csv)
    router.add_get("/numbers/{number}/calls.json", calls_json_download)
    router.add_get("/numbers/{number}/report", report_page)
    router.add_get("/targets", targets_page)
    router.add_post("/targets/{target}/dnd", targets_dnd)


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """A page from `template`, with the user, the CSRF token and the stylesheet's URL."""
    session = current_session(request)
    user = request.get(USER)

    def static(name: str) -> str:
        return str(request.app.router["static"].url_for(filename=name))

    html = _env.get_template(template).render(
        user=user, csrf=session.csrf if session else "", static=static, **context
    )
    return web.Response(text=html, status=status, content_type="text/html")


def error_page(request: web.Request, error: ApiError) -> web.Response:
    """An error as a page (the same code and message as the API's JSON)."""
    return render(
        request,
        "error.html",
        status=error.status,
        http_status=error.status,
        message=error.message,
        code=error.code,
    )


# ------------------------------------------------------------------ login


async def login_form(request: web.Request) -> web.Response:
    """The login form; its CSRF token is also set as a cookie (double submit)."""
    return _login_page(request, error=None, status=200)


def _login_page(
    request: web.Request, *, error: str | None, status: int, next_url: str | None = None
) -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status=status,
        error=error,
        login_csrf=token,
        next=safe_next(next_url or request.query.get("next")),
    )
    set_cookie(request, response, LOGIN_COOKIE, token)
    return response


async def login(request: web.Request) -> web.Response:
    """Check the name and password (or token); open a session and go where asked."""
    form = await request.post()
    fields = {k: v if isinstance(v, str) else "" for k, v in form.items()}
    if not login_csrf_ok(request, fields.get("csrf", "")):
        raise ApiError(
            403, "csrf_failed", "this login form is stale or forged: reload it and retry"
        )
    name = fields.get("name", "").strip()
    throttle = request.app[LOGIN_THROTTLE]
    address = client_of(request)
    attempt = throttle.admit(address, name)
    if isinstance(attempt, Refusal):
        # Refused before any password check; the password is never logged.
        log.warning(
            "login_throttled",
            address=address,
            user=name[:64],
            waiting=attempt.reason,
            retry_after=attempt.retry_after,
        )
        response = _login_page(
            request,
            error=f"Too many failed logins: try again in {attempt.retry_after} s.",
            status=429,
            next_url=fields.get("next"),
        )
        response.headers["Retry-After"] = str(attempt.retry_after)
        return response
    user = None
    try:
        user = await check_password(request.app[USERS], name, fields.get("password", ""))
    finally:
        throttle.settle(attempt, succeeded=user is not None)
    if user is None:
        log.info("login_failed", address=address, user=name[:64])
        return _login_page(
            request, error="Wrong user or password.", status=401, next_url=fields.get("next")
        )
    response = web.HTTPSeeOther(safe_next(fields.get("next")))
    open_session(request, response, user)
    raise response


async def logout(request: web.Request) -> web.Response:
    """End the session (the middleware checked its CSRF token)."""
    response = web.HTTPSeeOther("/login")
    close_session(request, response)
    raise response


# ------------------------------------------------------------------ numbers


async def numbers_page(request: web.Request) -> web.Response:
    """The numbers, a page at a time: label, status (porting with date and carrier), route,
    today's calls; `?q=` keeps those whose number or label contains it."""
    config = request.app[CONFIG].current
    search = request.query.get("q", "")[: api.MAX_SEARCH].strip()
    found = select(config, NumberQuery(search=search))
    pages = max(1, -(-len(found) // NUMBERS_PER_PAGE))
    try:
        current = min(max(1, int(request.query.get("page", "1")[:8])), pages)
    except ValueError:
        raise bad_filter("page", "expected a page number (1, 2, ...)") from None
    shown = found[(current - 1) * NUMBERS_PER_PAGE : current * NUMBERS_PER_PAGE]
    now = request.app[CLOCK].now()
    today = await api.calls_today(config, api.store_of(request), now, shown)
    rows = [api.number_json(config, config.numbers[e164], today.get(e164)) for e164 in shown]

    def page_href(n: int) -> str:
        return "/?" + urlencode({**({"q": search} if search else {}), "page": n})

    return render(
        request,
        "numbers.html",
        numbers=rows,
        total=len(config.numbers),
        found=len(found),
        search=search,
        page=current,
        pages=pages,
        previous_href=page_href(current - 1) if current > 1 else None,
        next_href=page_href(current + 1) if current < pages else None,
    )


def _call_view(entry: CallLogEntry, tz: ZoneInfo, did: str) -> dict[str, Any]:
    """A call as the log page shows it: local times, causes in words."""
    call = entry.call
    wait = (
        format_seconds(round((call.answered_at - call.started_at).total_seconds()))
        if call.answered_at
        else "-"
    )
    voicemail = None
    if call.voicemail is not None:
        voicemail = {
            "href": f"/api/numbers/{did}/voicemail/{call.voicemail.message_id}",
            "text": f"{format_seconds(call.voicemail.duration)} message",
        }
    outbound = call.direction is Direction.OUTBOUND
    return {
        "call_id": call.call_id,
        "when": local_time(call.started_at, tz),
        "direction": str(call.direction),
        "caller": party_text(call),  # a call going out: `alice → +33145678900`
        "user": call.caller_number if outbound else None,
        "dialled": call.dialled if outbound else None,
        "presented": call.presented if outbound else None,
        "emergency": call.emergency,
        "disposition": str(call.disposition) if call.disposition else None,
        "answered_by": call.answered_by,
        "duration": format_seconds(call.duration),
        "billsec": format_seconds(call.billsec),
        "wait": wait,
        "cause": hangup_cause_text(call.hangup_cause),
        "path": format_path(call.path),
        "voicemail": voicemail,
        "legs": [
            {
                "target": leg.target,
                "outcome": leg_outcome(leg),
                "cause": hangup_cause_text(leg.hangup_cause),
                "started": local_time(leg.started_at, tz)[11:19],
                "ended": local_time(leg.ended_at, tz)[11:19] if leg.ended_at else "-",
            }
            for leg in entry.legs
        ],
    }


def _form_values(request: web.Request) -> dict[str, str]:
    return {
        key: request.query.get(key, "")[:64] for key in ("since", "until", "disposition", "caller")
    }


async def calls_page(request: web.Request) -> web.Response:
    """A number's call log, newest first, filters, expandable calls, downloads, voicemail."""
    number, tz = api.number_of(request)
    wanted = api.read_filter(request.query, tz)
    entries = await api.query_calls(api.store_of(request), number.e164, wanted)
    page = entries[: wanted.limit]
    form = _form_values(request)
    filter_qs = urlencode({k: v for k, v in form.items() if v})
    next_href = None
    if len(entries) > wanted.limit:
        query = {**{k: v for k, v in form.items() if v}, "cursor": api.encode_cursor(page[-1])}
        next_href = f"/numbers/{number.e164}?{urlencode(query)}"
    messages = await _messages(request, number.e164, tz)
    return render(
        request,
        "calls.html",
        number=number.e164,
        national=national_form(number.e164),
        label=number.label,
        time_zone=tz.key,
        form=form,
        filter_qs=filter_qs,
        dispositions=[d.value for d in Disposition],
        calls=[_call_view(e, tz, number.e164) for e in page],
        next_href=next_href,
        messages=messages,
    )


async def _messages(request: web.Request, did: str, tz: ZoneInfo) -> list[dict[str, str]]:
    found = await asyncio.to_thread(request.app[VOICEMAIL].messages, did)
    return [
        {
            "href": f"/api/numbers/{did}/voicemail/{m.message_id}",
            "when": local_time(m.recorded_at, tz),
            "caller": caller_text(m.caller_number, m.caller_name),
            "length": format_seconds(m.duration),
        }
        for m in found
    ]


async def _download(request: web.Request) -> tuple[str, list[CallLogEntry], ZoneInfo]:
    number, tz = api.number_of(request)
    wanted = api.read_filter(request.query, tz)
    entries = await api.store_of(request).call_log(
        number.e164,
        since=wanted.since,
        until=wanted.until,
        limit=DOWNLOAD_MAX,
        dispositions=wanted.dispositions,
        caller=wanted.caller,
    )
    return number.e164, entries, tz


async def calls_csv(request: web.Request) -> web.Response:
    """The filtered call log as CSV (one row per call; times in the number's zone)."""
    did, entries, tz = await _download(request)
    return web.Response(
        text=format_csv(entries, tz),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="calls-{did.lstrip("+")}.csv"'},
    )


async def calls_json_download(request: web.Request) -> web.Response:
    """The filtered call log as JSON (one object per call, with its legs)."""
    did, entries, tz = await _download(request)
    return web.Response(
        text=format_json(entries, tz),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="calls-{did.lstrip("+")}.json"'},
    )


# ------------------------------------------------------------------ report


async def report_page(request: web.Request) -> web.Response:
    """The period's figures and two charts (per day, per hour of the week)."""
    number, report, usage = await api.report_of(request)
    rate = report.answer_rate
    busiest = ", ".join(
        f"{h.hour:02d}:00-{h.hour + 1:02d}:00 ({h.calls})" for h in report.busiest_hours
    )
    return render(
        request,
        "report.html",
        number=number.e164,
        national=national_form(number.e164),
        label=number.label,
        period=report.period.label,
        time_zone=report.time_zone,
        r=report,
        rate="-" if rate is None else f"{rate:.0%}",
        average_wait="-" if report.average_wait is None else f"{report.average_wait:.0f} s",
        longest_wait="-" if report.longest_wait is None else f"{report.longest_wait} s",
        busiest=busiest,
        usage=_usage_view(usage),
        # pygal's own SVG, with our values escaped by pygal: safe to inline.
        per_day_svg=Markup(charts.calls_per_day(report)),
        hour_of_week_svg=Markup(charts.calls_per_hour_of_week(report)),
    )


def _usage_view(usage: PlanUsage) -> dict[str, Any]:
    """The plan's minutes as `pbxd usage` prints them: used against allowed, and by day."""

    def kinds(used: Mapping[UsageKind, int]) -> dict[str, str]:
        return {str(kind): minutes_text(used[kind]) for kind in UsageKind}

    return {
        "plan": usage.plan,
        "used": kinds(usage.used),
        "allowed": {str(kind): allowance_text(usage.allowed[kind]) for kind in UsageKind},
        "days": [{"day": day.isoformat(), **kinds(used)} for day, used in usage.days.items()],
    }


# ------------------------------------------------------------------ targets


async def targets_page(request: web.Request) -> web.Response:
    """Targets with their do-not-disturb flag; an admin gets a button for each."""
    names = sorted(request.app[CONFIG].current.targets)
    user = request[USER]
    return render(
        request,
        "targets.html",
        targets=[api.target_json(request, n) for n in names],
        is_admin=user.is_admin,
        dnd_count=len(request.app[DND].targets()),
    )


async def targets_dnd(request: web.Request) -> web.Response:
    """The targets page's form: turn a flag on or off (admin, CSRF checked), then back."""
    on = await api.read_dnd_body(request)
    api.change_dnd(request, request.match_info["target"], on)
    raise web.HTTPSeeOther("/targets")
