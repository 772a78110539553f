"""Authentication on every request but the health checks: API tokens and browser sessions.

- A script sends `Authorization: Bearer pbxd_…`; no cookie, so no CSRF check is needed.
- A browser logs in at `/login` and gets a session cookie (HttpOnly, SameSite=Strict, and
  Secure unless `http.secure_cookies: false`); every request that changes something must
  then carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`).
- `viewer` reads; `admin` also changes runtime state (`require_admin`).
- A token not verified yet counts against its client's address when wrong, as a failed
  login does (`pbxd.web.throttle`): one that must wait is refused 429 with Retry-After
  before any hash is checked. A token already verified skips the throttle (a hash look-up).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
from urllib.parse import quote

import structlog
from aiohttp import web

from pbxd.web.clients import FORWARDED_FOR, client_address
from pbxd.web.errors import ApiError, Handler, wants_html
from pbxd.web.state import CLOCK, CONFIG, LOGIN_THROTTLE, SESSIONS, USERS
from pbxd.web.throttle import Refusal
from pbxd.web.users import Session, User, UserDirectory

log = structlog.get_logger("pbxd.web")

SESSION_COOKIE = "pbxd_session"
LOGIN_COOKIE = "pbxd_login"  # the login form's CSRF token (double submit: cookie and field)
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/favicon.ico"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

USER = web.RequestKey("user", User)
SESSION = web.RequestKey("session", Session)

# One argon2 check at a time: each takes 64 MiB, and logins are rare.
_ARGON2 = threading.Lock()


def is_public(path: str) -> bool:
    """Paths anyone may read: health checks, the login page and the stylesheet."""
    return path in PUBLIC_PATHS or path.startswith("/static/")


def current_user(request: web.Request) -> User:
    """The authenticated user (the middleware guarantees one outside public paths)."""
    return request[USER]


def current_session(request: web.Request) -> Session | None:
    """The browser session of this request; None for a token or a public path."""
    return request.get(SESSION)


def require_admin(request: web.Request) -> User:
    """The user, when an admin; 403 `forbidden` otherwise."""
    user = current_user(request)
    if not user.is_admin:
        raise ApiError(403, "forbidden", f"user {user.name} is a viewer: only an admin may do this")
    return user


async def check_token(users: UserDirectory, token: str) -> User | None:
    """The user of an API token, verified off the event loop."""

    def verify() -> User | None:
        with _ARGON2:
            return users.by_token(token)

    return await asyncio.to_thread(verify)


async def check_password(users: UserDirectory, name: str, password: str) -> User | None:
    """The user when `password` (or one of their tokens) is right, verified off the loop."""

    def verify() -> User | None:
        with _ARGON2:
            return users.by_password(name, password)

    return await asyncio.to_thread(verify)


def client_of(request: web.Request) -> str | None:
    """The client's address: the peer, or behind `http.trusted_proxies` the right-most
    untrusted address of X-Forwarded-For (`pbxd.web.clients`)."""
    trusted = request.app[CONFIG].current.settings.http_trusted_proxies
    return client_address(request.remote, request.headers.getall(FORWARDED_FOR, []), trusted)


async def _token_user(request: web.Request, token: str) -> User | None:
    """The token's user (None when wrong); 429 when its address must wait. The token itself
    is never logged."""
    users = request.app[USERS]
    user = users.verified_token(token)
    if user is not None:
        return user
    throttle = request.app[LOGIN_THROTTLE]
    address = client_of(request)
    attempt = throttle.admit(address)
    if isinstance(attempt, Refusal):
        log.warning("token_throttled", address=address, retry_after=attempt.retry_after)
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many wrong API tokens from {address}: try again in {attempt.retry_after} s",
            retry_after=attempt.retry_after,
        )
    checked = None
    try:
        checked = await check_token(users, token)
    finally:
        throttle.settle(attempt, succeeded=checked is not None)
    if checked is None:
        log.info("token_refused", address=address)
    return checked


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of ours, never another site (`//evil`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _identify(request: web.Request) -> tuple[User | None, Session | None]:
    users = request.app[USERS]
    token = _bearer(request)
    if token is not None:
        return await _token_user(request, token), None
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None, None
    session = request.app[SESSIONS].get(session_id, request.app[CLOCK].monotonic())
    if session is None:
        return None, None
    user = users.users().get(session.user)
    return user, session if user is not None else None


async def _form_csrf(request: web.Request) -> str:
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse the unauthenticated (401, or the login page for a browser) and forged forms."""
    if is_public(request.path):
        return await handler(request)
    user, session = await _identify(request)
    if user is None:
        if wants_html(request) and request.method in SAFE_METHODS:
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
        raise ApiError(
            401,
            "unauthenticated",
            "log in, or send an API token: Authorization: Bearer pbxd_… (`pbxd users add`)",
        )
    request[USER] = user
    if session is not None:
        request[SESSION] = session
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER) or await _form_csrf(request)
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise ApiError(
                    403, "csrf_failed", "this form is stale or forged: reload the page and retry"
                )
    return await handler(request)


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    """A cookie of ours: HttpOnly, SameSite=Strict, Secure unless configured off."""
    settings = request.app[CONFIG].current.settings
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=settings.http_secure_cookies,
        path="/",
    )


def login_csrf(request: web.Request, response: web.StreamResponse) -> str:
    """The login form's CSRF token: the one its cookie holds, or a new one set now."""
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    set_cookie(request, response, LOGIN_COOKIE, token)
    return token


def login_csrf_ok(request: web.Request, sent: str) -> bool:
    """Whether a login form came from our own page (its field matches its cookie)."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def open_session(request: web.Request, response: web.StreamResponse, user: User) -> Session:
    """Log `user` in: a new session and its cookie (any earlier session id is not reused)."""
    session = request.app[SESSIONS].open(user, request.app[CLOCK].monotonic())
    set_cookie(request, response, SESSION_COOKIE, session.session_id)
    response.del_cookie(LOGIN_COOKIE, path="/")
    return session


def close_session(request: web.Request, response: web.StreamResponse) -> None:
    """Log out: forget the session and clear its cookie."""
    session = current_session(request)
    if session is not None:
        request.app[SESSIONS].close(session.session_id)
    response.del_cookie(SESSION_COOKIE, path="/")
