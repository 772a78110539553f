"""Compile the YAML configuration into a `Config`, reporting every problem with its place.

Like a compiler: all files are read, every entry is checked on its own (one bad entry hides
no other), then cross-references are resolved. The result is a `Config` only when there is
no error; diagnostics come back either way.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import gc
import ipaddress
import itertools
import os
import re
import types
import typing
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pbxd.config import destinations, numbering
from pbxd.config.callout import Broken, compile_call_through, compile_calling_out
from pbxd.config.destinations import DEFAULT_DENIED, DeniedPrefix
from pbxd.config.diagnostics import (
    Diagnostic,
    Diagnostics,
    Mark,
    Severity,
    did_you_mean,
    printable,
)
from pbxd.config.files import (
    DaemonFile,
    HaMode,
    InventoryEntry,
    MailboxEntry,
    MailSection,
    MailSecurity,
    NumberStatus,
    OutboundEntry,
    PlanEntry,
    RingStrategy,
    RouteEntry,
    RoutingFile,
    TargetEntry,
    TrunkEntry,
    TrunksFile,
)
from pbxd.config.files import (
    RingStep as RingStepEntry,
)
from pbxd.config.flows import RouteFlows
from pbxd.config.model import (
    DEFAULT_MAIL_PORTS,
    Block,
    Config,
    DaemonSettings,
    MailSettings,
    RingTarget,
    Route,
    Target,
    Trunk,
    VirtualNumber,
    numbers_alike,
)
from pbxd.config.plans import check_plans, compile_plan
from pbxd.config.yamlsource import LinePair, MarkedMap, MarkedSeq, load_yaml, locate
from pbxd.dialplan.callerid import CallerIdRule, CallerIdShow

M = TypeVar("M", bound=BaseModel)

# What pydantic makes of `{number: …}`: every key but the number at its default.
_NUMBER_ALONE = InventoryEntry(number="")
RING_TIME_LIMIT = 300  # seconds; carriers give up on an unanswered INVITE well before this
ROUTE_TIMEOUT_LIMIT = 3600
MAX_WEIGHT = 1000
MAX_OUTBOUND_LEGS_LIMIT = 10_000
NUMBER_WHISPER = "number"  # a route's `whisper: number`: each called number's own prompt

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "PBXD_ARI_URL": ("ari", "url"),
    "PBXD_ARI_USERNAME": ("ari", "username"),
    "PBXD_ARI_APP": ("ari", "app"),
    "PBXD_ARI_PASSWORD_ENV": ("ari", "password_env"),
    "PBXD_ARI_PASSWORD_FILE": ("ari", "password_file"),
    "PBXD_DATABASE_URL": ("database", "url"),
    "PBXD_HTTP_BIND": ("http", "bind"),
    "PBXD_HTTP_USERS_FILE": ("http", "users_file"),
    "PBXD_HTTP_SECURE_COOKIES": ("http", "secure_cookies"),
    "PBXD_HTTP_TRUSTED_PROXIES": ("http", "trusted_proxies"),
    "PBXD_AGI_BIND": ("agi", "bind"),
    "PBXD_HA_MODE": ("ha", "mode"),
    "PBXD_STATE_DIR": ("state_dir",),
    "PBXD_TRUNKS_FILE": ("trunks_file",),
    "PBXD_ROUTING_DIR": ("routing_dir",),
    "PBXD_LOG_LEVEL": ("log_level",),
}


@dataclass
class CompileResult:
    """The outcome of `compile_config`: a Config when there is no error, and every diagnostic."""

    config: Config | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is a Config (no errors; warnings allowed)."""
        return self.config is not None


def display_path(path: Path) -> str:
    """How a file is named in diagnostics: relative to the working directory when inside it.

    Symlinks are not followed: the admin sees the name they wrote (and a symlink loop or a
    dangling link cannot break the report).
    """
    absolute = os.path.abspath(path)
    try:
        return str(Path(absolute).relative_to(os.path.abspath(Path.cwd())))
    except (ValueError, OSError):
        return str(path)


def _resolve(path: Path) -> Path:
    """`path.resolve()`, or the plain absolute path when the filesystem refuses (symlink loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


# ----------------------------------------------------------------------- pydantic -> marks


def _unwrap(annotation: Any) -> Any:
    """The model class inside Optional[...], list[...], dict[str, ...]; else the annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        elif origin in (list, tuple, set, frozenset):
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: Iterable[int | str]) -> type[BaseModel] | None:
    """The model class that validates the mapping found at `loc` under `model`."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = _unwrap(info.annotation)
        # dict keys (names) leave `current` as the value model
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_WHAT: dict[str, str] = {
    "DaemonFile": "pbxd.yaml",
    "TrunksFile": "the trunks file",
    "RoutingFile": "a routing file",
    "TrunkEntry": "a trunk",
    "InventoryEntry": "an inventory entry",
    "TargetEntry": "a target",
    "RouteEntry": "a route",
}
_DATE_ERRORS = frozenset(
    {"date_parsing", "date_type", "date_from_datetime_parsing", "date_from_datetime_inexact"}
)
_INT_ERRORS = frozenset({"int_parsing", "int_type", "int_from_float"})


def kind_of(value: Any) -> str:
    """How a YAML value is called in a message: `a list`, `text 'abc'`, `empty` …"""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return f"{str(value)[:40]!r}"


def _message(error: Any, model: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    name = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = owner.model_fields if owner is not None else {}
        return f"unknown key '{name}'{did_you_mean(name, allowed)}"
    if kind == "missing":
        return f"missing required key '{name}'"
    given = error.get("input")
    text = str(error["msg"])
    text = text.removeprefix("Value error, ")
    text = text[:1].lower() + text[1:]
    if kind in ("model_type", "dict_type"):
        text = f"must be a mapping (key: value), not {kind_of(given)}"
        if not loc:
            return f"{_WHAT.get(model.__name__, 'this entry')} {text}"
    elif kind == "list_type":
        text = f"must be a list, not {kind_of(given)}"
    elif kind == "string_type":
        text = f"must be text, not {kind_of(given)}"
    elif kind in _INT_ERRORS:
        text = f"must be a whole number, not {kind_of(given)}"
    elif kind in _DATE_ERRORS:
        text = f"must be a date written YYYY-MM-DD, not {kind_of(given)}"
    elif kind == "enum" and "expected" in error.get("ctx", {}):
        expected = str(error["ctx"]["expected"])
        text = f"must be one of {expected}, not {kind_of(given)}"
        text += did_you_mean(str(given), re.findall(r"'([^']*)'", expected))
    return f"{name}: {text}" if name and not isinstance(loc[-1], int) else text


def validate_entry(model: type[M], data: Any, fallback: Mark, diags: Diagnostics) -> M | None:
    """Validate one mapping against `model`, turning pydantic errors into marked diagnostics."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            mark, key_mark = locate(data, loc, fallback)
            if error["type"] == "extra_forbidden" and key_mark is not None:
                mark = key_mark
            elif error["type"] == "missing":
                mark, _ = locate(data, loc[:-1], fallback)
            diags.error(mark, _message(error, model))
        return _recover(model, data, exc)


def _recover(model: type[M], data: Any, exc: ValidationError) -> M | None:
    """After unknown-key errors only, validate without those keys to avoid cascades.

    A typo'd key is already reported; dropping the entry too would add a misleading
    "not in the inventory" error wherever it is used. The config still fails to compile.
    """
    errors = exc.errors()
    if not isinstance(data, dict) or any(e["type"] != "extra_forbidden" for e in errors):
        return None
    unknown = {e["loc"][0] for e in errors if len(e["loc"]) == 1}
    if len(unknown) != len(errors):
        return None
    try:
        return model.model_validate({k: v for k, v in data.items() if k not in unknown})
    except ValidationError:
        return None


def _mark_of(node: Any, fallback: Mark) -> Mark:
    return node.mark if isinstance(node, MarkedMap | MarkedSeq) else fallback


# ----------------------------------------------------------------------- pbxd.yaml


def _apply_env(data: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """Environment variables win over pbxd.yaml, as systemd units expect (in place).

    Returns which setting came from which variable, so a bad value is blamed on the variable.
    """
    applied: dict[tuple[str, ...], str] = {}
    for var, path in ENV_OVERRIDES.items():
        value = os.environ.get(var)
        if value is None or value == "":
            continue
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
        applied[path] = var
    return applied


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")  # what systemd EnvironmentFile= admins write
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_MAX = 255  # bytes in one file name (Linux NAME_MAX)
_PATH_MAX = 4096  # bytes in a whole path (Linux PATH_MAX)
_DATABASE_SCHEMES = frozenset(
    {"sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg"}
)


def _in_memory_sqlite(url: str) -> bool:
    """`sqlite://`, `sqlite:///`, `sqlite:///:memory:`: a database that dies with the process."""
    scheme, _, rest = url.partition("://")
    return scheme.lower().startswith("sqlite") and rest.partition("?")[0] in ("", "/", "/:memory:")


class _SettingsChecker:
    """Checks the meaning of pbxd.yaml values; blames the file's line or the PBXD_* variable."""

    def __init__(
        self, data: dict[str, Any], env: dict[tuple[str, ...], str], top: Mark, diags: Diagnostics
    ) -> None:
        self.data = data
        self.env = env
        self.top = top
        self.diags = diags

    def error(self, path: tuple[str, ...], message: str) -> None:
        """An error about the setting at `path` (`("http", "bind")`)."""
        self._report(self.diags.error, path, message)

    def warning(self, path: tuple[str, ...], message: str) -> None:
        """A warning about the setting at `path`."""
        self._report(self.diags.warning, path, message)

    def _report(
        self, emit: Callable[[Mark, str], None], path: tuple[str, ...], message: str
    ) -> None:
        dotted = ".".join(path)
        var = self.env.get(path)
        if var is not None:
            emit(self.top, f"{dotted} (from ${var}): {message}")
            return
        mark, _ = locate(self.data, path, self.top)
        emit(mark, f"{dotted}: {message}")

    def check(self, parsed: DaemonFile, base: Path) -> None:
        """Every check; URLs are never echoed, they may carry credentials."""
        self._url(parsed.ari.url)
        if not parsed.ari.username.strip():
            self.error(("ari", "username"), "must not be empty")
        if not parsed.ari.app.strip():
            self.error(("ari", "app"), "must not be empty (the Stasis application name)")
        self._password_env(("ari", "password_env"), parsed.ari.password_env)
        for key in ("username", "app"):
            if _CONTROL.search(getattr(parsed.ari, key)):
                self.error(("ari", key), "must not contain control characters")
        paths_ok = all(
            self._path(where, value)
            for where, value in (
                (("state_dir",), parsed.state_dir),
                (("trunks_file",), parsed.trunks_file),
                (("routing_dir",), parsed.routing_dir),
                (("ari", "password_file"), parsed.ari.password_file),
            )
        )
        # PBXD_ARI_PASSWORD, when set, wins over the file: a missing file then does no harm.
        if (
            paths_ok
            and parsed.ari.password_file is not None
            and not os.environ.get("PBXD_ARI_PASSWORD")
        ):
            self._password_file(base / parsed.ari.password_file)
        if parsed.database.url is not None:
            self._database_url(parsed.database.url)
        self._bind(parsed.http.bind, any_port=True)
        self._path(("http", "users_file"), parsed.http.users_file)
        if not 1 <= parsed.http.session_hours <= 24 * 90:
            self.error(("http", "session_hours"), "must be from 1 to 2160 (90 days)")
        self._trusted_proxies(parsed.http.trusted_proxies)
        if parsed.agi.bind is not None:
            self._agi_bind(parsed.agi.bind)
        if parsed.ha.mode is HaMode.ACTIVE_STANDBY:
            self._pair(parsed.database.url)
        if parsed.mail is not None:
            self._mail(parsed.mail, base)
        if parsed.log_level.lower() not in LOG_LEVELS:
            self.error(
                ("log_level",),
                f"must be one of {', '.join(LOG_LEVELS)}, not {parsed.log_level!r}"
                + did_you_mean(parsed.log_level.lower(), LOG_LEVELS),
            )

    def _url(self, url: str) -> None:
        # Any `@` (not just one urlsplit sees as userinfo): `pbxd:12/34@host` hides a password.
        if "@" in url:
            self.error(
                ("ari", "url"),
                "must not carry credentials (user:password@): put the user in ari.username "
                "and the password in PBXD_ARI_PASSWORD or ari.password_file",
            )
            return
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            self.error(
                ("ari", "url"),
                "must be an http:// or https:// URL such as http://127.0.0.1:8088/ari",
            )
            return
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if not port_ok:
            self.error(("ari", "url"), "the port must be a number from 1 to 65535")

    def _path(self, where: tuple[str, ...], value: str | None) -> bool:
        """Whether `value` can name a file at all (no NUL, names the filesystem accepts)."""
        if value is None:
            return True
        control = _CONTROL.search(value)
        if control is not None:
            self.error(where, f"a path must not contain control characters (found {control[0]!r})")
            return False
        if not value.strip():
            self.error(where, "must not be empty")
            return False
        longest = max(Path(value).parts or ("",), key=lambda p: len(p.encode()))
        if len(longest.encode()) > _NAME_MAX:
            self.error(
                where,
                f"a file name in this path is {len(longest.encode())} bytes long; "
                f"at most {_NAME_MAX} are allowed",
            )
            return False
        if len(value.encode()) > _PATH_MAX:
            self.error(where, f"this path is longer than {_PATH_MAX} bytes")
            return False
        return True

    def _database_url(self, url: str) -> None:
        if _CONTROL.search(url):
            self.error(("database", "url"), "must not contain control characters")
            return
        scheme = url.partition("://")[0].lower()
        if "://" not in url or scheme not in _DATABASE_SCHEMES:
            self.error(("database", "url"), "must be sqlite:///PATH or postgresql://USER@HOST/DB")
            return
        # Imported here: SQLAlchemy is only worth loading when a URL is set.
        from pbxd.cdr.url import check_database_url

        problem = check_database_url(url)
        if problem is not None:
            self.error(("database", "url"), problem)
        elif _in_memory_sqlite(url):
            self.warning(
                ("database", "url"),
                "an in-memory database loses every CDR when pbxd stops: "
                "use sqlite:///PATH or postgresql://USER@HOST/DB",
            )

    def _bind(
        self,
        bind: str,
        path: tuple[str, ...] = ("http", "bind"),
        example: str = "127.0.0.1:8080",
        *,
        any_port: bool = False,
    ) -> str | None:
        """The host of a HOST:PORT setting, or None after reporting why it is not one.

        `any_port`: port 0 is allowed (the system picks a free one, logged at start).
        """
        host, colon, port = bind.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        foreign = numbering.foreign_digit(port)
        if foreign is not None:
            self.error(path, f"the port must be written with 0-9: {foreign}")
            return None
        lowest = 0 if any_port else 1
        if not colon or not host or not port.isdigit() or not lowest <= int(port) <= 65535:
            self.error(
                path,
                f"{bind!r} must be HOST:PORT with a port from 1 to 65535, such as {example}",
            )
            return None
        return host

    def _trusted_proxies(self, entries: list[str] | str) -> None:
        where = ("http", "trusted_proxies")
        for entry in proxy_entries(entries):
            try:
                network = ipaddress.ip_network(entry, strict=True)
            except ValueError as exc:
                self.error(
                    where,
                    f"{printable(entry)!r} is not an address or a network such as 10.0.0.5 "
                    f"or 10.0.0.0/24 ({exc})",
                )
                continue
            if network.prefixlen == 0:
                self.warning(
                    where,
                    f"{network} trusts every client: any of them can choose the address "
                    "the throttles count and the logs show (list the proxies only)",
                )

    def _password_env(self, path: tuple[str, ...], name: str | None) -> None:
        if name is not None and not _ENV_NAME.match(name):
            # Not echoed: an admin may have pasted the password itself here.
            self.error(
                path,
                "must be the name of an environment variable (capital letters, digits, _, "
                f"such as {'PBXD_ARI_PASSWORD' if path[0] == 'ari' else 'PBXD_SMTP_PASSWORD'}), "
                "not the password itself",
            )

    def _mail(self, mail: MailSection, base: Path) -> None:
        """The SMTP settings: a reachable shape, a sender, a password source never inline."""
        if not mail.host.strip() or any(c in mail.host for c in "/@ "):
            self.error(("mail", "host"), "must be a host name or address, such as smtp.example.com")
        if mail.port is not None and not 1 <= mail.port <= 65535:
            self.error(("mail", "port"), f"must be from 1 to 65535, not {mail.port}")
        if mail.timeout < 1:
            self.error(("mail", "timeout"), "must be at least 1 second")
        _, address = email.utils.parseaddr(mail.from_address)
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            self.error(
                ("mail", "from_address"),
                f"{mail.from_address!r} is not an e-mail address (pbxd@example.com, "
                "or 'PBX <pbxd@example.com>')",
            )
        self._password_env(("mail", "password_env"), mail.password_env)
        has_source = mail.password_env is not None or mail.password_file is not None
        if mail.username is not None and not has_source:
            self.error(
                ("mail", "username"),
                "needs a password: set mail.password_env (a variable's name) or mail.password_file",
            )
        if mail.username is None and has_source:
            self.warning(("mail",), "a password is configured without a username: it is unused")
        if mail.password_file is not None:
            path = base / mail.password_file
            if not path.is_file():
                what = "is not a file" if path.exists() else "does not exist"
                self.warning(
                    ("mail", "password_file"),
                    f"{path} {what}: voicemail e-mails cannot be sent without it",
                )
        if mail.ca_file is not None and not (base / mail.ca_file).is_file():
            self.error(("mail", "ca_file"), f"{base / mail.ca_file} is not a file")
        if mail.security is MailSecurity.NONE and mail.username is not None:
            self.warning(
                ("mail", "security"),
                "none sends the SMTP password unencrypted: use starttls or tls",
            )

    def _agi_bind(self, bind: str) -> None:
        host = self._bind(bind, ("agi", "bind"), "127.0.0.1:4573 (FastAGI's port)")
        if host is None:
            return
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            # FastAGI has no authentication: whoever connects can route calls and write CDRs.
            self.warning(
                ("agi", "bind"),
                f"{host[:60]} is not a loopback address: FastAGI has no authentication, so anyone "
                "who reaches this port can query routes and write call records; bind it to "
                "127.0.0.1 or firewall it to the Asterisk servers",
            )

    def _pair(self, url: str | None) -> None:
        scheme = (url or "sqlite").partition("://")[0].lower()
        if not scheme.startswith("postgres"):
            # The pair shares the lock and the calls' journals through one database server.
            self.error(
                ("ha", "mode"),
                "active-standby needs a PostgreSQL database (database.url: "
                "postgresql://USER@HOST/DB) that both pbxd share; with SQLite there is no "
                "pair: use ha.mode: single, and systemd restarts pbxd",
            )

    def _password_file(self, path: Path) -> None:
        # A warning: only `pbxd run` needs the password; check, simulate and calls do not.
        if path.is_file():
            return
        what = "is not a file" if path.exists() else "does not exist"
        self.warning(
            ("ari", "password_file"), f"{path} {what}: pbxd run cannot log in to ARI without it"
        )


def _refuse_inline_password(data: dict[str, Any], diags: Diagnostics) -> None:
    ari = data.get("ari")
    if isinstance(ari, MarkedMap) and "password" in ari:
        diags.error(
            ari.key_marks["password"],
            "the ARI password must not be written in pbxd.yaml: use password_env "
            "(default PBXD_ARI_PASSWORD) or password_file",
        )
        del ari["password"]
    mail = data.get("mail")
    if isinstance(mail, MarkedMap) and "password" in mail:
        diags.error(
            mail.key_marks["password"],
            "the SMTP password must not be written in pbxd.yaml: use mail.password_env "
            "(the name of a variable holding it) or mail.password_file",
        )
        del mail["password"]


def load_settings(config_path: Path, diags: Diagnostics) -> DaemonSettings | None:
    """Read pbxd.yaml (with PBXD_* overrides) into DaemonSettings; paths resolve beside it."""
    name = display_path(config_path)
    top = Mark(name, 1, 1)
    data = load_yaml(config_path, name, diags)
    if data is None and not config_path.exists():
        return None
    if data is None:
        data = MarkedMap(top)
    if not isinstance(data, dict):
        diags.error(_mark_of(data, top), "pbxd.yaml must be a mapping of settings")
        return None
    _refuse_inline_password(data, diags)
    from_env = _apply_env(data)
    parsed = validate_entry(DaemonFile, data, top, diags)
    if parsed is None:
        return None
    base = _resolve(config_path).parent
    _SettingsChecker(data, from_env, top, diags).check(parsed, base)  # also after a typo'd key
    if diags.has_errors:
        return None
    state_dir = _resolve(base / parsed.state_dir)
    mail = parsed.mail
    mail_settings = (
        None
        if mail is None
        else MailSettings(
            host=mail.host.strip(),
            port=mail.port or DEFAULT_MAIL_PORTS[mail.security],
            security=mail.security,
            from_address=mail.from_address,
            username=mail.username,
            password_env=mail.password_env,
            password_file=(base / mail.password_file) if mail.password_file else None,
            timeout=mail.timeout,
            ca_file=(base / mail.ca_file) if mail.ca_file else None,
        )
    )
    db_url = parsed.database.url or f"sqlite:///{state_dir / 'pbxd.db'}"
    return DaemonSettings(
        config_path=_resolve(config_path),
        ari_url=parsed.ari.url.rstrip("/"),
        ari_username=parsed.ari.username,
        ari_password_env=parsed.ari.password_env,
        ari_password_file=(base / parsed.ari.password_file) if parsed.ari.password_file else None,
        ari_app=parsed.ari.app,
        database_url=db_url,
        http_bind=parsed.http.bind,
        state_dir=state_dir,
        trunks_file=_resolve(base / parsed.trunks_file),
        routing_dir=_resolve(base / parsed.routing_dir),
        log_level=parsed.log_level.lower(),
        sounds_dir=_resolve(base / parsed.sounds_dir) if parsed.sounds_dir else None,
        voicemail_dir=_resolve(base / parsed.voicemail.dir) if parsed.voicemail.dir else None,
        mail=mail_settings,
        agi_bind=parsed.agi.bind.strip() if parsed.agi.bind else None,
        ha_mode=parsed.ha.mode,
        http_users_file=_resolve(base / parsed.http.users_file),
        http_secure_cookies=parsed.http.secure_cookies,
        http_session_hours=parsed.http.session_hours,
        http_trusted_proxies=trusted_networks(parsed.http.trusted_proxies),
    )


def proxy_entries(entries: list[str] | str) -> list[str]:
    """`http.trusted_proxies` as a list: a string (from the environment) split at commas."""
    if isinstance(entries, str):
        return [entry.strip() for entry in entries.split(",") if entry.strip()]
    return entries


def trusted_networks(
    entries: list[str] | str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of `http.trusted_proxies` (those `pbxd check` refused left out)."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in proxy_entries(entries):
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry, strict=True))
    return tuple(networks)


# ----------------------------------------------------------------------- the compiler


class _Compiler:
    """One compilation; holds what has been resolved so far and the diagnostics."""

    def __init__(self, settings: DaemonSettings, diags: Diagnostics) -> None:
        self.diags = diags
        self.config = Config(settings=settings)
        self.trunk_country: dict[str, str | None] = {}
        self.number_marks: dict[str, Mark] = {}
        # Their hundreds (`+331700001` for +33170000123): a block of 100 looks one up
        # before it looks for each of its numbers among 400,000 singles.
        self.single_hundreds: set[str] = set()
        self.block_marks: dict[str, Mark] = {}
        # Each block's numbers, as its VirtualNumbers are keyed: its route reuses the strings.
        self.block_numbers: dict[str, list[str]] = {}
        self.spans: list[tuple[numbering.NumberSpan, str, Mark]] = []
        self.span_index: numbering.SpanIndex[tuple[str, Mark]] = numbering.SpanIndex()
        self.target_marks: dict[str, Mark] = {}
        self.broken_targets: set[str] = set()
        self.used_targets: set[str] = set()
        self.route_marks: dict[str, Mark] = {}
        # What each route was compiled from: where a routed number is written in its route
        # is found again from it, for a message only (a million marks kept for nothing).
        self.route_inputs: dict[str, tuple[RouteEntry, MarkedMap, Mark, str | None]] = {}
        self.route_trunk_of_block: dict[str, tuple[str, str, Mark]] = {}
        # What a broken entry would have defined: a route using it gets no cascade error,
        # since the entry's own error is already reported.
        self.inventory_unusable = False
        self.broken_trunks: set[str] = set()
        self.broken_numbers: set[str] = set()
        self.broken_blocks: set[str] = set()
        self.broken_spans: list[numbering.NumberSpan] = []
        self.unchecked_numbers: set[str] = set()
        self.unchecked_blocks: set[str] = set()
        self.flows = RouteFlows(diags, self.config)
        self.number_whispers: list[Mark] = []  # inventory entries with a `whisper:`
        self.whisper_number_routes = 0  # routes that say `whisper: number`

    # ---- sip-trunks.yaml

    def trunks_file(self, path: Path) -> None:
        name = display_path(path)
        top = Mark(name, 1, 1)
        errors_before = len(self.diags.items)
        data = load_yaml(path, name, self.diags)
        if data is None and len(self.diags.items) > errors_before:
            self.inventory_unusable = True
            return
        parsed = validate_entry(TrunksFile, data or {}, top, self.diags)
        if parsed is None:
            self.inventory_unusable = True
            return
        raw_trunks = data.get("trunks") if isinstance(data, MarkedMap) else None
        if not parsed.trunks:
            # `trunk:` for `trunks:` hides the whole inventory: that error is enough.
            self.inventory_unusable = len(self.diags.items) > errors_before
            if not self.inventory_unusable:
                self.diags.warning(_mark_of(raw_trunks, top), "no trunk is defined")
            return
        assert isinstance(raw_trunks, MarkedMap)
        for trunk_name in parsed.trunks:
            raw = raw_trunks[trunk_name]
            self.trunk(trunk_name, raw, raw_trunks.key_marks[trunk_name])

    def trunk(self, name: str, raw: Any, key_mark: Mark) -> None:
        entry = validate_entry(TrunkEntry, raw, key_mark, self.diags)
        if entry is None:
            self.broken_trunks.add(name)
            numbers = raw.get("numbers") if isinstance(raw, MarkedMap) else None
            if isinstance(numbers, MarkedSeq):
                country = raw.get("country")
                for item in numbers:
                    self._note_broken_entry(item, country if isinstance(country, str) else None)
            return
        country = entry.country.upper() if entry.country else None
        if country is not None and not numbering.is_region(country):
            self.diags.error(raw.mark_of("country"), f"unknown country code '{entry.country}'")
            country = None
        default_zone = entry.timezone
        if default_zone is not None and not self._check_zone(default_zone, raw, "timezone"):
            default_zone = None
        dial = self._check_dial_template(entry.dial, raw.mark_of("dial"))
        prefixes = self._allowed_prefixes(entry.allowed_destinations, raw)
        denied = self._denied_prefixes(entry.denied_destinations, prefixes, raw)
        if not 1 <= entry.max_outbound_legs <= MAX_OUTBOUND_LEGS_LIMIT:
            self.diags.error(
                raw.mark_of("max_outbound_legs"),
                f"max_outbound_legs must be between 1 and {MAX_OUTBOUND_LEGS_LIMIT}, "
                f"not {entry.max_outbound_legs}",
            )
        self._check_max_call_duration(entry.max_call_duration, raw)
        if entry.inbound_endpoint in self.config.trunk_of_endpoint:
            other = self.config.trunk_of_endpoint[entry.inbound_endpoint].name
            self.diags.error(
                raw.mark_of("inbound_endpoint"),
                f"inbound endpoint '{entry.inbound_endpoint}' already belongs to trunk '{other}'",
            )
        trunk = Trunk(
            name=name,
            inbound_endpoint=entry.inbound_endpoint,
            dial_template=dial,
            allowed_prefixes=prefixes,
            max_outbound_legs=entry.max_outbound_legs,
            label=entry.label,
            country=country,
            denied_prefixes=denied,
            max_call_duration=entry.max_call_duration,
        )
        self._check_outbound_endpoint(trunk, raw.mark_of("dial"))
        self.config.trunks[name] = trunk
        self.config.trunk_of_endpoint.setdefault(entry.inbound_endpoint, trunk)
        self.trunk_country[name] = country
        numbers = raw.get("numbers")
        if isinstance(numbers, MarkedSeq):
            self.inventory(trunk, country, default_zone, numbers)

    def inventory(
        self, trunk: Trunk, country: str | None, zone: str | None, items: MarkedSeq
    ) -> None:
        """A trunk's `numbers:`, with a short way for most of a large inventory.

        `- number: '+33…'` alone, already in E.164, valid, new and in no block, can only
        become a VirtualNumber like its neighbours': those are built together at the next
        entry that is anything else (in file order); every other entry takes the full path.
        """
        marks, hundreds = self.number_marks, self.single_hundreds
        blocks = self.span_index
        alone: list[str] = []  # numbers of the current run of such entries, in order
        for index, item in enumerate(items):
            number = item.get("number") if isinstance(item, MarkedMap) and len(item) == 1 else None
            if (
                type(number) is str
                and zone is not None
                and number not in marks
                and numbering.is_valid_e164(number)
                and blocks.containing(number) is None
            ):
                marks[number] = (
                    item.value_mark() if type(item) is LinePair else item.value_marks["number"]
                )
                hundreds.add(number[:-2])
                alone.append(number)
                continue
            if alone:
                self._add_numbers_alone(trunk, zone, alone)
                alone = []
            self.inventory_entry(trunk, country, zone, item, items.mark_of(index))
        if alone:
            self._add_numbers_alone(trunk, zone, alone)

    def _add_numbers_alone(self, trunk: Trunk, zone: str | None, numbers: list[str]) -> None:
        """The VirtualNumbers of `- number:` entries with no other key (see `inventory`)."""
        assert zone is not None
        entry = _NUMBER_ALONE
        template = VirtualNumber(
            numbers[0],
            trunk.name,
            entry.status,
            entry.label,
            zone,
            entry.port_date,
            entry.losing_carrier,
            whisper=(),
        )
        self.config.numbers.update(zip(numbers, numbers_alike(template, numbers), strict=True))

    def _check_dial_template(self, template: str, mark: Mark) -> str:
        """The template in canonical case; an error unless it is exactly PJSIP/{number}@NAME."""
        # Trunk.dial_string substitutes the literal `{number}`: any other brace would reach
        # Asterisk as written, so `{number!r}`, `{num}` or `{}` are refused here.
        others = re.findall(r"\{[^{}]*\}?|\}", template.replace("{number}", ""))
        if "{number}" not in template:
            self.diags.error(mark, f"dial template '{template}' has no {{number}} placeholder")
        elif others:
            found = ", ".join(f"'{o}'" for o in others)
            self.diags.error(
                mark, f"dial template may only contain the placeholder {{number}}, not {found}"
            )
        elif problem := destinations.dial_template_problem(template):
            # Anything else reaches Asterisk verbatim: `&` dials a second destination, a URI
            # a host the allowlist never sees.
            self.diags.error(
                mark,
                f"dial template '{template}' {problem}: write it as "
                "PJSIP/{number}@ENDPOINT, one technology, one number, one endpoint",
            )
        else:
            return destinations.canonical_dial_template(template)
        return template

    def _check_outbound_endpoint(self, trunk: Trunk, mark: Mark) -> None:
        """Warn when a trunk dials out through an endpoint another trunk already uses."""
        endpoint = trunk.outbound_endpoint
        if endpoint is None:
            return
        for other in self.config.trunks.values():
            if other.outbound_endpoint == endpoint:
                self.diags.warning(
                    mark,
                    f"trunk '{trunk.name}' dials out through '{endpoint}' like trunk "
                    f"'{other.name}': their allowed destinations and leg counts are kept apart",
                )
            elif other.inbound_endpoint == endpoint:
                self.diags.warning(
                    mark,
                    f"trunk '{trunk.name}' dials out through '{endpoint}', the inbound "
                    f"endpoint of trunk '{other.name}'",
                )

    def _allowed_prefixes(self, prefixes: list[str], raw: MarkedMap) -> tuple[str, ...]:
        return tuple(self._prefixes(prefixes, raw, "allowed_destinations", "allowed"))

    def _prefixes(self, prefixes: list[str], raw: MarkedMap, key: str, what: str) -> list[str]:
        seq = raw.get(key)
        good: list[str] = []
        for index, prefix in enumerate(prefixes):
            mark = seq.mark_of(index) if isinstance(seq, MarkedSeq) else raw.mark
            compact = prefix.replace(" ", "")
            if not destinations.PREFIX.fullmatch(compact):
                self.diags.error(
                    mark, f"{what} destination '{prefix}' must be an E.164 prefix such as +33"
                )
            else:
                good.append(compact)
        return good

    def _denied_prefixes(
        self, prefixes: list[str], allowed: tuple[str, ...], raw: MarkedMap
    ) -> tuple[DeniedPrefix, ...]:
        """The built-in premium/satellite prefixes plus the trunk's own `denied_destinations`."""
        seq = raw.get("denied_destinations")
        own = self._prefixes(prefixes, raw, "denied_destinations", "denied")
        for index, prefix in enumerate(own):
            if prefix in allowed:
                mark = seq.mark_of(index) if isinstance(seq, MarkedSeq) else raw.mark
                self.diags.error(mark, f"{prefix} is both allowed and denied")
        added = tuple(DeniedPrefix(p, "denied in sip-trunks.yaml", default=False) for p in own)
        return DEFAULT_DENIED + added

    def _check_max_call_duration(self, seconds: int | None, raw: MarkedMap) -> None:
        if seconds is not None and not 1 <= seconds <= destinations.MAX_CALL_DURATION_LIMIT:
            self.diags.error(
                raw.mark_of("max_call_duration"),
                f"max_call_duration must be between 1 and "
                f"{destinations.MAX_CALL_DURATION_LIMIT} seconds, not {seconds}",
            )

    def _check_zone(self, zone: str, raw: MarkedMap, key: str) -> bool:
        if numbering.is_time_zone(zone):
            return True
        hint = did_you_mean(zone, numbering.known_time_zones())
        self.diags.error(raw.mark_of(key), f"unknown time zone '{zone}'{hint}")
        return False

    def inventory_entry(
        self, trunk: Trunk, country: str | None, zone: str | None, raw: Any, mark: Mark
    ) -> None:
        errors_before = len(self.diags.items)
        number = raw.get("number") if isinstance(raw, MarkedMap) and len(raw) == 1 else None
        if type(number) is str:
            # `- number: '+33…'` alone, as most of a large inventory is written: pydantic
            # would give every other key its default, so the number goes to its checks.
            self._single_number(trunk, country, zone, _NUMBER_ALONE, number, raw, ())
        else:
            self._inventory_entry(trunk, country, zone, raw, mark)
        if len(self.diags.items) > errors_before and any(
            d.severity is Severity.ERROR for d in self.diags.items[errors_before:]
        ):
            self._note_broken_entry(raw, country)

    def _note_broken_entry(self, raw: Any, country: str | None) -> None:
        """Remember what an inventory entry with an error meant to define (best effort)."""
        if not isinstance(raw, MarkedMap):
            return
        own = raw.get("country")
        region = own.upper() if isinstance(own, str) and numbering.is_region(own) else country
        block = raw.get("block")
        if isinstance(block, str) and block not in self.config.blocks:
            self.broken_blocks.add(block)
        number, spans = raw.get("number"), []
        try:
            if isinstance(number, str):
                e164 = numbering.to_e164(number, region)
                if e164 not in self.config.numbers:
                    self.broken_numbers.add(e164)
            elif isinstance(raw.get("range"), str) and block not in self.config.blocks:
                spans.append(numbering.parse_range(raw["range"], region))
            elif isinstance(raw.get("prefix"), str) and block not in self.config.blocks:
                count = int(raw.get("count") or 0)
                spans.append(numbering.parse_prefix(raw["prefix"], count, region))
        except (numbering.NumberError, ValueError):
            pass
        self.broken_spans.extend(spans)

    def _hidden_by_broken_inventory(self, e164: str) -> bool:
        """Whether `e164` may be missing only because its inventory entry has an error."""
        return (
            self.inventory_unusable
            or e164 in self.broken_numbers
            or any(e164 in span for span in self.broken_spans)
        )

    def _inventory_entry(
        self, trunk: Trunk, country: str | None, zone: str | None, raw: Any, mark: Mark
    ) -> None:
        entry = validate_entry(InventoryEntry, raw, mark, self.diags)
        if entry is None:
            return
        if entry.country is not None and not numbering.is_region(entry.country):
            self.diags.error(raw.mark_of("country"), f"unknown country code '{entry.country}'")
            return
        region = entry.country.upper() if entry.country else country
        forms = [k for k in ("number", "range", "prefix") if getattr(entry, k) is not None]
        if len(forms) != 1:
            what = "one of `number`, `range` or `prefix`"
            self.diags.error(
                mark,
                f"an inventory entry needs exactly {what}"
                + (f", not {' and '.join(forms)}" if forms else ""),
            )
            return
        if entry.status is NumberStatus.PORTING and entry.port_date is None:
            self.diags.error(mark, "a porting number needs a port_date")
        if entry.status is NumberStatus.PORTING and not (entry.losing_carrier or "").strip():
            # Support chases the port with the losing carrier: say who it is.
            self.diags.warning(mark, "a porting number should name its losing_carrier")
        if entry.status is not NumberStatus.PORTING and entry.port_date is not None:
            self.diags.warning(
                raw.mark_of("port_date"), f"port_date is ignored: status is {entry.status}"
            )
        if entry.timezone is not None and not self._check_zone(entry.timezone, raw, "timezone"):
            return
        whisper = self.flows.prompt_list(entry.whisper, raw, "whisper", mark)
        if whisper:
            self.number_whispers.append(raw.mark_of("whisper"))
        if entry.number is not None:
            self._single_number(trunk, region, zone, entry, entry.number, raw, whisper)
        else:
            self._block(trunk, region, zone, entry, raw, mark, whisper)

    def _zone_for(self, entry: InventoryEntry, default: str | None, e164: str, mark: Mark) -> str:
        zone = entry.timezone or default or numbering.zone_of(e164)
        if zone is None:
            self.diags.error(
                mark, f"{e164} spans several time zones: set `timezone:` on it or its trunk"
            )
            return "UTC"
        return zone

    def _single_number(
        self,
        trunk: Trunk,
        region: str | None,
        zone: str | None,
        entry: InventoryEntry,
        number: str,
        raw: MarkedMap,
        whisper: tuple[str, ...],
    ) -> None:
        mark = raw.value_marks["number"]
        if entry.block is not None:
            self.diags.error(
                raw.key_marks["block"],
                "`block` names a range or prefix block; a single number has none",
            )
        try:
            e164 = numbering.to_e164(number, region)
        except numbering.NumberError as exc:
            self.diags.error(mark, str(exc))
            return
        if e164 in self.number_marks:
            first = self.number_marks[e164]
            self.diags.error(mark, f"number {e164} is listed twice (first at {first})")
            return
        holder = self.span_index.containing(e164)
        if holder is not None:
            block, block_mark = holder[1]
            self.diags.error(mark, f"number {e164} is also in block '{block}' ({block_mark})")
            return
        self.number_marks[e164] = mark
        self.single_hundreds.add(e164[:-2])
        self.config.numbers[e164] = VirtualNumber(
            e164,
            trunk.name,
            entry.status,
            entry.label,
            self._zone_for(entry, zone, e164, mark),
            entry.port_date,
            entry.losing_carrier,
            whisper=whisper,
        )

    def _block(
        self,
        trunk: Trunk,
        region: str | None,
        zone: str | None,
        entry: InventoryEntry,
        raw: MarkedMap,
        mark: Mark,
        whisper: tuple[str, ...],
    ) -> None:
        key = "range" if entry.range is not None else "prefix"
        value_mark = raw.mark_of(key)
        if entry.block is None:
            self.diags.error(mark, "a block needs a name: add `block: NAME`")
            return
        if entry.block in self.block_marks:
            first = self.block_marks[entry.block]
            self.diags.error(
                raw.mark_of("block"), f"block '{entry.block}' is defined twice (first at {first})"
            )
            return
        try:
            if entry.range is not None:
                span = numbering.parse_range(entry.range, region)
            elif entry.count is None:
                self.diags.error(mark, "a prefix block needs a `count` (10, 100, 1000 …)")
                return
            elif not 10 <= entry.count <= numbering.MAX_BLOCK_SIZE or (
                str(entry.count).rstrip("0") != "1"
            ):
                self.diags.error(
                    raw.mark_of("count"),
                    f"count must be a power of ten from 10 to {numbering.MAX_BLOCK_SIZE:,} "
                    f"(a whole prefix block), not {entry.count}",
                )
                return
            else:
                assert entry.prefix is not None
                span = numbering.parse_prefix(entry.prefix, entry.count, region)
        except numbering.NumberError as exc:
            self.diags.error(value_mark, str(exc))
            return
        if entry.range is not None and entry.count is not None:
            self.diags.error(raw.key_marks["count"], "`count` goes with `prefix`, not `range`")
        overlap = self.span_index.overlapping(span)
        if overlap is not None:
            other, (other_name, other_mark) = overlap
            self.diags.error(
                value_mark,
                f"block '{entry.block}' ({span.first}–{span.last}) overlaps block "
                f"'{other_name}' ({other.first}–{other.last}, {other_mark})",
            )
            return
        members = span.numbers()
        clash = (
            None
            # Every hundred the block touches: its numbers 100 apart, and its last.
            if self.single_hundreds.isdisjoint([n[:-2] for n in (*members[::100], members[-1])])
            or self.number_marks.keys().isdisjoint(members)
            else next(n for n in members if n in self.number_marks)
        )
        if clash is not None:
            self.diags.error(
                value_mark,
                f"block '{entry.block}' contains {clash}, already listed at "
                f"{self.number_marks[clash]}",
            )
            return
        block_zone = self._zone_for(entry, zone, span.first, value_mark)
        self.block_marks[entry.block] = value_mark
        self.block_numbers[entry.block] = members
        self.spans.append((span, entry.block, value_mark))
        self.span_index.add(span, (entry.block, value_mark))
        self.config.blocks[entry.block] = Block(
            name=entry.block,
            trunk=trunk.name,
            first=span.first,
            last=span.last,
            size=span.size,
            status=entry.status,
            label=entry.label,
            timezone=block_zone,
            port_date=entry.port_date,
            losing_carrier=entry.losing_carrier,
            whisper=whisper,
        )
        template = VirtualNumber(
            span.first,
            trunk.name,
            entry.status,
            entry.label,
            block_zone,
            entry.port_date,
            entry.losing_carrier,
            entry.block,
            whisper,
        )
        self.config.numbers.update(zip(members, numbers_alike(template, members), strict=True))

    # ---- routing/

    def routing_dir(self, path: Path) -> None:
        name = display_path(path)
        if not path.is_dir():
            self.diags.error(Mark(name, 1, 1), "routing directory not found")
            return
        errors_before = len(self.diags.items)
        files = self._routing_files(path)
        if not files and len(self.diags.items) == errors_before:
            self.diags.warning(Mark(name, 1, 1), "no routing file (*.yaml) in this directory")
        loaded: list[tuple[MarkedMap, RoutingFile, Mark]] = []
        for file in files:
            display = display_path(file)
            top = Mark(display, 1, 1)
            data = load_yaml(file, display, self.diags)
            if data is None:
                continue
            parsed = validate_entry(RoutingFile, data, top, self.diags)
            if parsed is None:
                continue
            if parsed.country and not numbering.is_region(parsed.country):
                self.diags.error(
                    data.mark_of("country"), f"unknown country code '{parsed.country}'"
                )
            loaded.append((data, parsed, top))
            self._flow_sections(data, parsed)
            raw_targets = data.get("targets")
            for target_name in parsed.targets:
                assert isinstance(raw_targets, MarkedMap)
                self.target(
                    target_name,
                    raw_targets[target_name],
                    raw_targets.key_marks[target_name],
                    parsed.country,
                )
        # Targets are global: every file's targets are known before any route uses one.
        for data, parsed, _top in loaded:
            self._calling_out(data, parsed)
            self._plans(data, parsed)
            if parsed.call_through is not None:
                compile_call_through(
                    data.get("call_through"),
                    parsed.call_through,
                    data.key_marks["call_through"],
                    parsed.country,
                    self.config,
                    self.diags,
                    self._broken(),
                )
                self.flows.prompt(parsed.call_through.tone, data.mark_of("call_through"))
            raw_routes = data.get("routes")
            if isinstance(raw_routes, MarkedSeq):
                region = parsed.country.upper() if parsed.country else None
                for index, raw in enumerate(raw_routes):
                    self.route(raw, raw_routes.mark_of(index), region)

    def _flow_sections(self, data: MarkedMap, parsed: RoutingFile) -> None:
        """`hours:` and `mailboxes:` are global, like targets."""
        raw_hours = data.get("hours")
        for name in parsed.hours:
            assert isinstance(raw_hours, MarkedMap)
            self.flows.hours(name, raw_hours[name], raw_hours.key_marks[name])
        raw_boxes = data.get("mailboxes")
        for name in parsed.mailboxes:
            assert isinstance(raw_boxes, MarkedMap)
            mark = raw_boxes.key_marks[name]
            entry = validate_entry(MailboxEntry, raw_boxes[name] or {}, mark, self.diags)
            if entry is None:
                self.flows.broken.add(name)
                continue
            self.flows.mailbox(name, raw_boxes[name], mark, entry)

    def _calling_out(self, data: MarkedMap, parsed: RoutingFile) -> None:
        """`outbound:`: softphones calling out as a virtual number (once targets are known)."""
        raw_out = data.get("outbound")
        for name in parsed.outbound:
            assert isinstance(raw_out, MarkedMap)
            mark = raw_out.key_marks[name]
            entry = validate_entry(OutboundEntry, raw_out[name], mark, self.diags)
            if entry is None:
                continue
            self.used_targets.update(entry.softphones)
            compile_calling_out(
                name,
                raw_out[name],
                entry,
                mark,
                parsed.country,
                self.config,
                self.diags,
                self._broken(),
            )

    def _plans(self, data: MarkedMap, parsed: RoutingFile) -> None:
        """`plans:`: limits of numbers and blocks (routes are checked against them at the end)."""
        raw_plans = data.get("plans")
        for name in parsed.plans:
            assert isinstance(raw_plans, MarkedMap)
            mark = raw_plans.key_marks[name]
            entry = validate_entry(PlanEntry, raw_plans[name] or {}, mark, self.diags)
            if entry is not None:
                compile_plan(
                    name,
                    raw_plans[name],
                    entry,
                    mark,
                    parsed.country,
                    self.config,
                    self.flows,
                    self.diags,
                    self._broken(),
                )

    def _broken(self) -> Broken:
        """What entries with errors would have defined (no cascade of errors about them)."""
        return Broken(
            self._hidden_by_broken_inventory,
            self.broken_trunks,
            self.broken_targets,
            self.broken_blocks,
            self.inventory_unusable,
        )

    def _routing_files(self, path: Path) -> list[Path]:
        """Every *.yaml under `path`; a directory that cannot be listed is an error, since
        the routes it hides would reject their calls."""

        def unreadable(exc: OSError) -> None:
            where = display_path(Path(exc.filename)) if exc.filename else display_path(path)
            self.diags.error(
                Mark(where, 1, 1), f"cannot read routing directory: {exc.strerror or exc}"
            )

        files: list[Path] = []
        for root, dirs, names in os.walk(path, onerror=unreadable):
            # Hidden files are editors' (`.#acme.yaml` lock links) and tools', not the admin's.
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            # A directory named *.yaml is listed too: its "Is a directory" error says why.
            files.extend(
                Path(root, n)
                for n in [*names, *dirs]
                if n.endswith((".yaml", ".yml")) and not n.startswith(".")
            )
        return sorted(files)

    def target(self, name: str, raw: Any, key_mark: Mark, country: str | None) -> None:
        # Assume broken until the end; a route naming it then gets no "unknown target" cascade.
        self.broken_targets.add(name)
        entry = validate_entry(TargetEntry, raw, key_mark, self.diags)
        if entry is None:
            return
        if name in self.target_marks:
            self.diags.error(
                key_mark, f"target '{name}' is defined twice (first at {self.target_marks[name]})"
            )
            return
        if (entry.softphone is None) == (entry.external is None):
            self.diags.error(
                key_mark, f"target '{name}' needs exactly one of `softphone` or `external`"
            )
            return
        if entry.softphone is not None:
            problem = destinations.softphone_problem(entry.softphone)
            if problem is not None:
                self.diags.error(
                    raw.mark_of("softphone"),
                    f"softphone '{entry.softphone}' {problem}: write it as PJSIP/NAME, "
                    "NAME an endpoint of pjsip.conf (letters, digits, '-', '_', '.')",
                )
                return
            endpoint = destinations.canonical_softphone(entry.softphone)
            if carrier := self._trunk_using(endpoint.partition("/")[2]):
                self.diags.error(
                    raw.mark_of("softphone"),
                    f"softphone '{entry.softphone}' is an endpoint of trunk '{carrier}': "
                    "a carrier is dialled only through `external:` numbers",
                )
                return
            if entry.trunk is not None:
                self.diags.warning(
                    raw.key_marks["trunk"],
                    "a softphone is not dialled through a trunk: `trunk` is ignored",
                )
            if entry.confirm:
                self.diags.error(
                    raw.key_marks["confirm"],
                    "confirm calls are for external numbers (a mobile's voicemail must not take "
                    "the call); a softphone is answered by its user",
                )
                return
            self.target_marks[name] = key_mark
            self.config.targets[name] = Target(
                name,
                endpoint=endpoint,
                label=entry.label,
                caller_id=self._target_caller_id(entry, raw, country),
            )
            self.broken_targets.discard(name)
            return
        assert entry.external is not None
        if entry.trunk is None:
            self.diags.error(
                key_mark, f"external target '{name}' needs a `trunk` to be dialled through"
            )
            return
        trunk = self.config.trunks.get(entry.trunk)
        if trunk is None:
            if not (self.inventory_unusable or entry.trunk in self.broken_trunks):
                hint = did_you_mean(entry.trunk, self.config.trunks)
                self.diags.error(raw.mark_of("trunk"), f"unknown trunk '{entry.trunk}'{hint}")
            return
        region = country.upper() if country else self.trunk_country.get(entry.trunk)
        try:
            e164 = numbering.to_e164(entry.external, region)
        except numbering.NumberError as exc:
            self.diags.error(raw.mark_of("external"), str(exc))
            return
        refusal = trunk.refusal(e164)
        if not any(e164.startswith(p) for p in trunk.allowed_prefixes):
            allowed = ", ".join(trunk.allowed_prefixes) or "none"
            self.diags.error(
                raw.mark_of("external"),
                f"{e164} is outside the destinations "
                f"trunk '{trunk.name}' may dial (allowed: {allowed})",
            )
            return
        if refusal is not None:
            self.diags.error(
                raw.mark_of("external"),
                f"{refusal} on trunk '{trunk.name}' (to dial it anyway, add the "
                "prefix to its allowed_destinations)",
            )
            return
        self.target_marks[name] = key_mark
        self.config.targets[name] = Target(
            name,
            number=e164,
            trunk=trunk.name,
            label=entry.label,
            confirm=entry.confirm,
            caller_id=self._target_caller_id(entry, raw, country),
        )

    def _target_caller_id(
        self, entry: TargetEntry, raw: MarkedMap, country: str | None
    ) -> CallerIdRule | None:
        if entry.caller_id is None:
            return None
        region = country.upper() if country else None
        return self._caller_id_rule(entry.caller_id, raw.mark_of("caller_id"), region)

    def _trunk_using(self, endpoint: str) -> str | None:
        """The trunk whose inbound or outbound endpoint is `endpoint`, if any."""
        for trunk in self.config.trunks.values():
            if endpoint in (trunk.inbound_endpoint, trunk.outbound_endpoint):
                return trunk.name
        return None

    def route(self, raw: Any, mark: Mark, region: str | None) -> None:
        entry = validate_entry(RouteEntry, raw, mark, self.diags)
        if entry is None:
            self._note_broken_route(raw, region)
            return
        covered, covered_marks = self._route_numbers(entry, raw, mark, region, self.diags)
        name = entry.name or (entry.block if entry.block else (covered[0] if covered else ""))
        if not name:
            name = f"route@{mark.line}"
        if name in self.route_marks:
            self.diags.error(
                raw.mark_of("name") if entry.name else mark,
                f"route '{name}' is defined twice (first at {self.route_marks[name]})",
            )
            return
        ring = self._ring_targets(entry, raw, mark, region)
        self._check_times(entry, raw, ring)
        self._check_max_call_duration(entry.max_call_duration, raw)
        entered = bool(entry.numbers) or entry.block is not None
        flow = self.flows.route_parts(name, entry, raw, mark, entered)
        if (
            entry.trunk is not None
            and entry.trunk not in self.config.trunks
            and not (self.inventory_unusable or entry.trunk in self.broken_trunks)
        ):
            hint = did_you_mean(entry.trunk, self.config.trunks)
            self.diags.error(raw.mark_of("trunk"), f"unknown trunk '{entry.trunk}'{hint}")
        whisper_number = entry.whisper == [NUMBER_WHISPER]
        if whisper_number:
            whisper: tuple[str, ...] = ()
            self.whisper_number_routes += 1
            self._check_number_whispers(name, covered, raw.mark_of("whisper"))
        else:
            whisper = self.flows.prompt_list(entry.whisper, raw, "whisper", mark)
        confirm_prompt = self.flows.prompt_list(entry.confirm_prompt, raw, "confirm_prompt", mark)
        confirming = [r.target.name for r in ring if r.confirm]
        if confirming and not confirm_prompt:
            self.diags.error(
                raw.key_marks.get("targets", mark),
                f"route '{name}' confirms calls to {', '.join(confirming)}: say what they hear "
                'when they answer with `confirm_prompt: PROMPT` ("press 1 to accept")',
            )
        elif confirm_prompt and not confirming and len(ring) == len(entry.targets):
            self.diags.warning(
                raw.key_marks["confirm_prompt"],
                "`confirm_prompt:` is never used: no target of this route has `confirm: true`",
            )
        caller_id = self._caller_id_rule(entry.caller_id, raw.mark_of("caller_id"), region)
        route = Route(
            name=name,
            whisper=whisper,
            whisper_number=whisper_number,
            confirm_prompt=confirm_prompt,
            strategy=entry.strategy,
            targets=tuple(ring),
            timeout=entry.timeout,
            caller_id=caller_id or CallerIdRule(),
            source=mark,
            max_call_duration=entry.max_call_duration,
            max_legs=entry.max_legs,
            skip_busy=entry.skip_busy,
            **flow,
        )
        self.route_marks[name] = mark
        self.route_inputs[name] = (entry, raw, mark, region)
        self.config.routes[name] = route
        self._route_numbers_to(route, covered, covered_marks, entry.trunk)

    def _route_numbers_to(
        self, route: Route, covered: list[str], marks: list[Mark], trunk: str | None
    ) -> None:
        """Point each of `covered` (written at `marks`) to `route`; a number another route
        has is an error."""
        route_of = self.config.route_of_number
        before = len(route_of)
        # One pass over the index: each number not routed yet now is, by `route`; a number
        # routed before keeps its route (setdefault), for the error below.
        collections.deque(map(route_of.setdefault, covered, itertools.repeat(route)), maxlen=0)
        if trunk is None and len(route_of) - before == len(covered):
            return  # each number once, none routed before: a large config's every route
        taken: set[str] = set()
        for e164, number_mark in zip(covered, marks, strict=True):
            owner = route_of[e164]
            if owner is not route or e164 in taken:
                self.diags.error(
                    number_mark,
                    f"number {e164} is already routed by route '{owner.name}' "
                    f"({self._routed_mark(owner.name, e164)})",
                )
                continue
            taken.add(e164)
            if trunk is not None:
                self._check_route_trunk(e164, trunk, route.name, number_mark)

    def _routed_mark(self, route: str, e164: str) -> Mark:
        """Where `e164` is written in `route`, which routes it (its first place there)."""
        entry, raw, mark, region = self.route_inputs[route]
        covered, marks = self._route_numbers(entry, raw, mark, region, Diagnostics())
        return marks[covered.index(e164)]

    def _check_number_whispers(self, route: str, covered: list[str], mark: Mark) -> None:
        """`whisper: number` on a route some of whose numbers have no whisper of their own."""
        silent = [e164 for e164 in covered if not self._number_whisper(e164)]
        if silent:
            shown = ", ".join(silent[:3]) + (
                f" and {len(silent) - 3} more" if len(silent) > 3 else ""
            )
            self.diags.warning(
                mark,
                f"route '{route}' whispers the called number's prompt, but {shown} "
                "has no `whisper:` in the inventory: its callees hear none",
            )

    def _number_whisper(self, e164: str) -> tuple[str, ...]:
        number = self.config.numbers.get(e164)
        return number.whisper if number is not None else ()

    def _note_broken_route(self, raw: Any, region: str | None) -> None:
        """A route with an error: its targets and numbers get no "unused"/"no route" warning."""
        if not isinstance(raw, MarkedMap):
            return
        self.flows.note_broken_route(raw)
        targets = raw.get("targets")
        for step in targets if isinstance(targets, list) else []:
            name = step.get("target") if isinstance(step, dict) else step
            if isinstance(name, str):
                self.used_targets.add(name)
        numbers = raw.get("numbers")
        for text in numbers if isinstance(numbers, list) else []:
            if isinstance(text, str):
                with contextlib.suppress(numbering.NumberError):
                    self.unchecked_numbers.add(numbering.to_e164(text, region))
        if isinstance(raw.get("block"), str):
            self.unchecked_blocks.add(raw["block"])

    def _route_numbers(
        self, entry: RouteEntry, raw: MarkedMap, mark: Mark, region: str | None, diags: Diagnostics
    ) -> tuple[list[str], list[Mark]]:
        """The inventory numbers a route covers, in order, and where each is written; what
        is not one is reported to `diags`."""
        seq = raw.get("numbers")
        marks = seq.item_marks if isinstance(seq, MarkedSeq) else []
        if len(marks) != len(entry.numbers):
            marks = [mark] * len(entry.numbers)
        numbers = self.config.numbers
        covered: list[str] = []
        covered_marks: list[Mark] = []
        if all(map(numbers.__contains__, entry.numbers)):
            # Written exactly as in the inventory (a large config's every number): found.
            covered.extend(entry.numbers)
            covered_marks.extend(marks)
        else:
            for text, number_mark in zip(entry.numbers, marks, strict=True):
                e164 = text if text in numbers else numbering.canonical_e164(text)
                if e164 is None or e164 not in numbers:
                    # Not an inventory number as written: parse it properly to say why.
                    try:
                        e164 = numbering.to_e164(text, region)
                    except numbering.NumberError as exc:
                        diags.error(number_mark, str(exc))
                        continue
                if e164 not in numbers:
                    if not self._hidden_by_broken_inventory(e164):
                        diags.error(
                            number_mark,
                            f"number {e164} is not in the inventory "
                            f"({display_path(self.config.settings.trunks_file)})",
                        )
                    continue
                covered.append(e164)
                covered_marks.append(number_mark)
        if entry.block is not None:
            block = self.config.blocks.get(entry.block)
            if block is None:
                if not (self.inventory_unusable or entry.block in self.broken_blocks):
                    hint = did_you_mean(entry.block, self.config.blocks)
                    diags.error(raw.mark_of("block"), f"unknown block '{entry.block}'{hint}")
            else:
                members = self.block_numbers[block.name]
                covered.extend(members)
                covered_marks.extend([raw.mark_of("block")] * len(members))
        return covered, covered_marks

    def _caller_id_rule(self, value: Any, where: Mark, region: str | None) -> CallerIdRule | None:
        """A caller-ID policy as written; None (and an error) when it is not one."""
        usage = (
            "write caller_id: caller, number, one of our numbers, or "
            '{number: caller|number|NUMBER, prefix: "[Acme] "}'
        )
        shown, prefix = value, ""
        if isinstance(value, dict):
            unknown = sorted(str(k) for k in value if k not in ("number", "prefix"))
            if unknown:
                self.diags.error(where, f"caller_id: unknown key '{unknown[0]}': {usage}")
                return None
            shown, prefix = value.get("number", "caller"), value.get("prefix", "")
            if not isinstance(prefix, str) or not prefix.isprintable() or len(prefix) > 40:
                self.diags.error(where, "caller_id: prefix must be printable text, 40 at most")
                return None
        if not isinstance(shown, str) or not shown.strip():
            self.diags.error(where, f"caller_id: {usage}")
            return None
        if shown in (CallerIdShow.CALLER, CallerIdShow.NUMBER):
            return CallerIdRule(CallerIdShow(shown), prefix=prefix)
        try:
            e164 = numbering.to_e164(shown, region)
        except numbering.NumberError as exc:
            self.diags.error(where, f"caller_id: {exc} ({usage})")
            return None
        if e164 not in self.config.numbers and not self.inventory_unusable:
            self.diags.error(
                where,
                f"caller_id: {e164} is not one of our numbers (not in the inventory): "
                "only a number we own may be shown",
            )
            return None
        return CallerIdRule(CallerIdShow.FIXED, e164, prefix)

    def _ring_targets(
        self, entry: RouteEntry, raw: MarkedMap, mark: Mark, region: str | None
    ) -> list[RingTarget]:
        if not entry.targets and entry.then is None and entry.menu is None:
            self.diags.error(
                raw.key_marks.get("targets", mark),
                "route has no targets to ring (or say where calls go with `then:` or `menu:`)",
            )
        limit = f"between 1 and {RING_TIME_LIMIT} seconds"
        if not 1 <= entry.ring_time <= RING_TIME_LIMIT:
            # Once for the route, not once per target that inherits it.
            self.diags.error(
                raw.mark_of("ring_time"), f"ring_time must be {limit}, not {entry.ring_time}"
            )
        ring: list[RingTarget] = []
        seq = raw.get("targets")
        for index, step in enumerate(entry.targets):
            step_mark = seq.mark_of(index) if isinstance(seq, MarkedSeq) else mark
            target = self.config.targets.get(step.target)
            if target is None and step.target in self.broken_targets:
                continue  # its own definition error is already reported
            if target is None:
                hint = did_you_mean(step.target, self.config.targets)
                self.diags.error(step_mark, f"unknown target '{step.target}'{hint}")
                continue
            self.used_targets.add(step.target)
            ring_time = step.ring_time if step.ring_time is not None else entry.ring_time
            if step.ring_time is not None and not 1 <= step.ring_time <= RING_TIME_LIMIT:
                where = locate(raw, ("targets", index, "ring_time"), step_mark)[0]
                self.diags.error(where, f"ring_time must be {limit}, not {step.ring_time}")
            confirm = step.confirm if step.confirm is not None else target.confirm
            if confirm and target.endpoint is not None:
                where = locate(raw, ("targets", index, "confirm"), step_mark)[0]
                self.diags.error(
                    where, f"confirm calls are for external numbers, not softphone '{target.name}'"
                )
                confirm = False
            caller_id = None
            if step.caller_id is not None:
                where = locate(raw, ("targets", index, "caller_id"), step_mark)[0]
                caller_id = self._caller_id_rule(step.caller_id, where, region)
            self._check_target_keys(entry, step, raw, index, step_mark)
            ring.append(
                RingTarget(
                    target,
                    ring_time,
                    confirm,
                    caller_id,
                    start_after=step.start_after or 0,
                    enabled=step.enabled,
                    weight=step.weight if step.weight is not None else 1,
                )
            )
        if ring and not any(r.enabled for r in ring):
            self.diags.warning(
                raw.key_marks.get("targets", mark),
                "every target of the route is disabled (`enabled: false`): nobody rings",
            )
        return ring

    def _check_target_keys(
        self, entry: RouteEntry, step: RingStepEntry, raw: MarkedMap, index: int, mark: Mark
    ) -> None:
        """`start_after` and `weight` of one target: in range, and used by the strategy."""
        if step.start_after is not None:
            where = locate(raw, ("targets", index, "start_after"), mark)[0]
            if not 0 <= step.start_after <= ROUTE_TIMEOUT_LIMIT:
                self.diags.error(
                    where,
                    f"start_after must be between 0 and {ROUTE_TIMEOUT_LIMIT} seconds, "
                    f"not {step.start_after}",
                )
            elif entry.strategy is not RingStrategy.STAGGERED:
                self.diags.warning(
                    where,
                    f"start_after is only used by `strategy: staggered` (this route is "
                    f"{entry.strategy}): it is ignored",
                )
            elif step.start_after >= entry.timeout:
                self.diags.warning(
                    where,
                    f"target '{step.target}' never rings: it joins after {step.start_after} s "
                    f"but the route times out after {entry.timeout} s",
                )
        if step.weight is not None:
            where = locate(raw, ("targets", index, "weight"), mark)[0]
            if not 1 <= step.weight <= MAX_WEIGHT:
                self.diags.error(
                    where, f"weight must be between 1 and {MAX_WEIGHT}, not {step.weight}"
                )
            elif entry.strategy is not RingStrategy.WEIGHTED:
                self.diags.warning(
                    where,
                    f"weight is only used by `strategy: weighted` (this route is "
                    f"{entry.strategy}): it is ignored",
                )

    def _check_times(self, entry: RouteEntry, raw: MarkedMap, ring: list[RingTarget]) -> None:
        if not 1 <= entry.timeout <= ROUTE_TIMEOUT_LIMIT:
            self.diags.error(
                raw.mark_of("timeout"),
                f"timeout must be between 1 and {ROUTE_TIMEOUT_LIMIT} seconds, not {entry.timeout}",
            )
            return
        if entry.max_legs is not None and not 1 <= entry.max_legs <= MAX_OUTBOUND_LEGS_LIMIT:
            self.diags.error(
                raw.mark_of("max_legs"),
                f"max_legs must be between 1 and {MAX_OUTBOUND_LEGS_LIMIT}, not {entry.max_legs}",
            )
        if entry.strategy.one_at_a_time and ring:
            elapsed = 0
            for step in (r for r in ring if r.enabled):
                if elapsed >= entry.timeout:
                    self.diags.warning(
                        raw.mark_of("timeout"),
                        f"target '{step.target.name}' "
                        f"never rings: the route times out after "
                        f"{entry.timeout} s",
                    )
                    break
                elapsed += step.ring_time

    def _check_route_trunk(self, e164: str, trunk: str, route: str, mark: Mark) -> None:
        number = self.config.numbers[e164]
        if number.trunk != trunk and trunk in self.config.trunks:
            self.diags.error(
                mark,
                f"route '{route}' puts {e164} on trunk '{trunk}' but the "
                f"inventory has it on trunk '{number.trunk}'",
            )
        if number.block is None:
            return
        seen = self.route_trunk_of_block.get(number.block)
        if seen is None:
            self.route_trunk_of_block[number.block] = (trunk, route, mark)
        elif seen[0] != trunk:
            self.diags.error(
                mark,
                f"route '{route}' splits block '{number.block}' between "
                f"trunks '{seen[0]}' (route '{seen[1]}', {seen[2]}) and '{trunk}'",
            )

    # ---- whole-configuration warnings

    def finish(self) -> None:
        check_plans(self.config, self.diags)
        if not self.whisper_number_routes:
            for mark in self.number_whispers:
                self.diags.warning(
                    mark,
                    "this whisper is never played: no route says `whisper: number`",
                )
        self.flows.finish(self.config.settings.sounds_dir)
        if self.config.settings.mail is None:
            for name, box in self.config.mailboxes.items():
                if box.email and name in self.flows.mailbox_marks:
                    self.diags.warning(
                        self.flows.mailbox_marks[name],
                        f"mailbox '{name}' e-mails {box.email}, but pbxd.yaml has no `mail:` "
                        "section: its messages will be kept, not mailed",
                    )
        unrouted_blocks: dict[str, int] = {}
        access = self.config.call_through.numbers if self.config.call_through else frozenset()
        numbers, route_of = self.config.numbers, self.config.route_of_number
        for e164 in sorted(access):
            if e164 in numbers and e164 in route_of:
                route = route_of[e164]
                self.diags.warning(
                    route.source,
                    f"route '{route.name}' never runs for {e164}: call_through takes its calls",
                )
        # The few numbers without a route, found in one pass (a million have one). Routes
        # only ever take inventory numbers (_route_numbers): as many routed is all of them.
        unrouted = numbers.keys() - route_of.keys() if len(route_of) < len(numbers) else set()
        for e164 in sorted(unrouted):
            number = numbers[e164]
            if number.status is NumberStatus.RESERVED or e164 in access:
                continue
            if e164 in self.unchecked_numbers or number.block in self.unchecked_blocks:
                continue
            if number.block is not None:
                unrouted_blocks[number.block] = unrouted_blocks.get(number.block, 0) + 1
            else:
                self.diags.warning(
                    self.number_marks[e164],
                    f"number {e164} has no route: its calls will be rejected",
                )
        for block, count in unrouted_blocks.items():
            size = self.config.blocks[block].size
            self.diags.warning(
                self.block_marks[block],
                f"block '{block}': {count} of {size} "
                "numbers have no route: their calls will be rejected",
            )
        for name, mark in self.target_marks.items():
            if name not in self.used_targets:
                self.diags.warning(mark, f"target '{name}' is not used by any route")


def compile_config(config_path: Path) -> CompileResult:
    """Load pbxd.yaml, sip-trunks.yaml and routing/ and check them all."""
    # Building 100,000 entries trips the cyclic GC dozens of times for nothing: pause it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(config_path)
    finally:
        if gc_was_enabled:
            gc.enable()


def _compile(config_path: Path) -> CompileResult:
    diags = Diagnostics()
    settings = load_settings(config_path, diags)
    if settings is None:
        return CompileResult(None, diags.sorted())
    compiler = _Compiler(settings, diags)
    compiler.trunks_file(settings.trunks_file)
    compiler.routing_dir(settings.routing_dir)
    compiler.finish()
    config = None if diags.has_errors else compiler.config
    return CompileResult(config, diags.sorted())
