"""The validated configuration the daemon runs on: plain, frozen, cross-referenced data."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbxd.config.destinations import (
    DEFAULT_DENIED,
    DeniedPrefix,
    DestinationRules,
    outbound_endpoint_of,
)
from pbxd.config.diagnostics import Mark
from pbxd.config.files import (
    FallbackAction,
    HaMode,
    HangupReason,
    MailSecurity,
    NumberStatus,
    RingStrategy,
)
from pbxd.config.yamlsource import read_regular_file

if TYPE_CHECKING:  # the dialplan imports this module at run time, not the reverse
    from pbxd.dialplan.callerid import CallerIdRule
    from pbxd.dialplan.flow import Mailbox
    from pbxd.dialplan.hours import OpeningHours


@dataclass(frozen=True, slots=True)
class Trunk:
    """A SIP trunk: where inbound calls come from and outbound legs go."""

    name: str
    inbound_endpoint: str
    dial_template: str
    allowed_prefixes: tuple[str, ...]
    max_outbound_legs: int
    label: str = ""
    country: str | None = None
    # Safe by default: a trunk built without this still refuses premium and satellite ranges.
    denied_prefixes: tuple[DeniedPrefix, ...] = DEFAULT_DENIED
    max_call_duration: int | None = None  # seconds; None: the route's, else 4 h
    _rules: DestinationRules = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_rules", DestinationRules(self.allowed_prefixes, self.denied_prefixes)
        )

    @property
    def outbound_endpoint(self) -> str | None:
        """The Asterisk endpoint legs go out through (`trunk-out`); None for a bad template."""
        return outbound_endpoint_of(self.dial_template)

    def dial_string(self, e164: str) -> str:
        """The Asterisk dial string for an outbound leg to `e164`."""
        return self.dial_template.replace("{number}", e164)

    def refusal(self, e164: str) -> str | None:
        """Why this trunk must not carry a leg to `e164` (None: it may)."""
        return self._rules.refusal(e164)

    def allows(self, e164: str) -> bool:
        """Whether this trunk may carry an outbound leg to `e164`."""
        return self.refusal(e164) is None


@dataclass(frozen=True, slots=True)
class Block:
    """A range of numbers that is ported and owned as a whole."""

    name: str
    trunk: str
    first: str
    last: str
    size: int
    status: NumberStatus
    label: str
    timezone: str
    port_date: date | None
    losing_carrier: str | None
    whisper: tuple[str, ...] = ()  # each member's whisper (see VirtualNumber)


@dataclass(frozen=True, slots=True)
class VirtualNumber:
    """A number we receive calls for (a DID), in E.164."""

    e164: str
    trunk: str
    status: NumberStatus
    label: str
    timezone: str
    port_date: date | None = None
    losing_carrier: str | None = None
    block: str | None = None
    # Its label as a prompt: a callee on a `whisper: number` route hears it before bridging.
    whisper: tuple[str, ...] = ()


# VirtualNumber's fields as its slots, e164 first (see `numbers_alike`).
_NUMBER_SLOTS: tuple[Any, ...] = tuple(vars(VirtualNumber)[f.name] for f in fields(VirtualNumber))
assert fields(VirtualNumber)[0].name == "e164" and not hasattr(VirtualNumber, "__post_init__")
assert len(_NUMBER_SLOTS) == 9, "numbers_alike sets each field by name: update it"


def numbers_alike(template: VirtualNumber, numbers: Iterable[str]) -> Iterator[VirtualNumber]:
    """A VirtualNumber for each of `numbers`, every other field as `template`'s.

    The members of a block differ only by their number: their fields are set straight on
    each object, 3x faster than the frozen __init__ a million times over (which checks
    nothing: the values were checked once, in `template`). One call per field, unrolled: a
    loop over the fields cost a third more.
    """
    set0, set1, set2, set3, set4, set5, set6, set7, set8 = (s.__set__ for s in _NUMBER_SLOTS)
    v1, v2, v3, v4, v5, v6, v7, v8 = (s.__get__(template) for s in _NUMBER_SLOTS[1:])
    new = object.__new__
    for e164 in numbers:
        number = new(VirtualNumber)
        set0(number, e164)
        set1(number, v1)
        set2(number, v2)
        set3(number, v3)
        set4(number, v4)
        set5(number, v5)
        set6(number, v6)
        set7(number, v7)
        set8(number, v8)
        yield number


@dataclass(frozen=True, slots=True)
class Target:
    """Something that can ring: a softphone endpoint or an external number via a trunk."""

    name: str
    endpoint: str | None = None
    number: str | None = None
    trunk: str | None = None
    label: str = ""
    confirm: bool = False  # the callee presses 1 to take the call
    caller_id: CallerIdRule | None = None  # None: the route's policy

    @property
    def kind(self) -> str:
        """`softphone` or `external`."""
        return "softphone" if self.endpoint is not None else "external"


@dataclass(frozen=True, slots=True)
class RingTarget:
    """A target in a route, with how long it rings (and when it joins, how likely first)."""

    target: Target
    ring_time: int
    confirm: bool = False  # this leg is bridged only once its callee pressed 1
    caller_id: CallerIdRule | None = None  # set on the route's entry; None: the target's
    start_after: int = 0
    enabled: bool = True
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Fallback:
    """Where a call goes next: hang up with `cause`, a voicemail box, or another route."""

    action: FallbackAction
    cause: HangupReason = HangupReason.NORMAL
    mailbox: str | None = None
    route: str | None = None
    mark: Mark | None = None

    def __str__(self) -> str:
        if self.action is FallbackAction.VOICEMAIL:
            return f"voicemail {self.mailbox}"
        if self.action is FallbackAction.GOTO:
            return f"goto {self.route}"
        return f"hangup ({self.cause})"


def hangup(cause: HangupReason) -> Fallback:
    """A fallback that ends the call with `cause`."""
    return Fallback(FallbackAction.HANGUP, cause)


@dataclass(frozen=True, slots=True)
class Greeting:
    """Prompts played before the ringing; early media unless `answer`."""

    prompts: tuple[str, ...]
    answer: bool = False


@dataclass(frozen=True, slots=True)
class Menu:
    """A voice menu: its prompt, the branch of each entry, and its patience."""

    prompts: tuple[str, ...]
    options: Mapping[str, Fallback]  # entry (`2`, `12`, `*`) -> where it leads
    repeat: frozenset[str]
    timeout: int
    digit_timeout: int
    retries: int
    invalid_prompts: tuple[str, ...]
    timeout_prompts: tuple[str, ...]
    fallback: Fallback


@dataclass(frozen=True, slots=True)
class Route:
    """What happens to a call to one of the route's numbers.

    The flow an admin writes: opening `hours` (with where a call goes when `closed`), a
    `greeting`, ringing the `targets` (or, with none, going straight to `then`), and where a
    call goes on no answer, busy (every leg busy) or unavailable (every leg offline or
    refused).
    """

    name: str
    strategy: RingStrategy
    targets: tuple[RingTarget, ...]
    timeout: int
    no_answer: Fallback
    caller_id: CallerIdRule
    source: Mark
    max_call_duration: int | None = None  # seconds an answered leg may last; None: default
    max_legs: int | None = None  # legs ringing at once; None: no limit
    skip_busy: bool = False  # targets already on a pbxd call are not rung
    busy: Fallback = field(default_factory=lambda: hangup(HangupReason.BUSY))
    unavailable: Fallback = field(default_factory=lambda: hangup(HangupReason.CONGESTION))
    hours: OpeningHours | None = None
    closed: Fallback | None = None
    greeting: Greeting | None = None
    then: Fallback | None = None
    menu: Menu | None = None
    whisper: tuple[str, ...] = ()  # to the callee before bridging
    whisper_number: bool = False  # `whisper: number`: the called number's own whisper instead
    confirm_prompt: tuple[str, ...] = ()  # to a confirm-calls callee

    @property
    def no_answer_cause(self) -> HangupReason:
        """The cause a no-answer hangup gives (today's `no_answer: {cause: …}`)."""
        return self.no_answer.cause

    def fallbacks(self) -> dict[str, Fallback]:
        """Every branch out of the route, by the key it is written under."""
        found = {"closed": self.closed, "then": self.then}
        if self.targets:
            found |= {"no_answer": self.no_answer, "busy": self.busy}
            found["unavailable"] = self.unavailable
        return {key: value for key, value in found.items() if value is not None}


@dataclass(frozen=True, slots=True)
class CallingOut:
    """Who may call out from which softphones, presenting which virtual number, to where.

    `may_dial` narrows the trunk's allowlist (empty: the trunk's own); the trunk's denied
    destinations always apply. `country` reads numbers dialled in national form.
    """

    name: str
    endpoints: tuple[str, ...]  # softphone endpoint names (`alice` for PJSIP/alice)
    number: str  # the virtual number presented, E.164
    trunk: str
    country: str | None
    may_dial: tuple[str, ...] = ()
    withhold: bool = False
    emergency_caller_id: str | None = None  # None: `number`
    timeout: int = 60
    source: Mark | None = None
    mobiles: tuple[str, ...] = ()  # E.164 numbers that may call through
    pin: str | None = field(default=None, repr=False)  # never in logs or reprs

    def refusal(self, e164: str, trunk: Trunk) -> str | None:
        """Why this user may not dial `e164` through `trunk` (None: they may)."""
        if self.may_dial and not any(e164.startswith(p) for p in self.may_dial):
            return f"{e164} is outside what {self.name} may dial ({', '.join(self.may_dial)})"
        return trunk.refusal(e164)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a number's plan allows: monthly minutes (in its time zone), destinations, calls.

    At a limit a new call goes to `at_limit` (a hangup with its cause, voicemail or another
    route); a call in progress that reaches the minutes is cut (warned `warn_before` seconds
    ahead with `warning`) unless `finish`.
    """

    name: str
    forwarded_minutes: int | None = None
    outbound_minutes: int | None = None
    max_destinations: int | None = None
    max_calls: int | None = None
    at_limit: Fallback = field(default_factory=lambda: hangup(HangupReason.BUSY))
    finish: bool = False
    warn_before: int = 60
    warning: tuple[str, ...] = ()
    source: Mark | None = None


@dataclass(frozen=True, slots=True)
class CallThrough:
    """The access numbers registered mobiles call to call out with the virtual number."""

    numbers: frozenset[str]
    timeout: int = 15
    tone: tuple[str, ...] = ("sound:beep",)


PASSWORD_FILE_BYTES = 64 * 1024


def read_password_file(path: Path, what: str) -> str:
    """A password from its file (stripped); LookupError naming the file, never its content."""
    try:
        # A FIFO or /dev/zero named here must not hang or fill `pbxd run`: 64 KB at most.
        secret = read_regular_file(path, limit=PASSWORD_FILE_BYTES).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise LookupError(f"cannot read the {what} password file {path}: {reason}") from None
    if not secret:
        raise LookupError(f"the {what} password file {path} is empty")
    return secret


DEFAULT_MAIL_PORTS = {MailSecurity.STARTTLS: 587, MailSecurity.TLS: 465, MailSecurity.NONE: 25}


@dataclass(frozen=True, slots=True)
class MailSettings:
    """pbxd.yaml's `mail:`: the SMTP server voicemail goes through (password read at use)."""

    host: str
    port: int
    security: MailSecurity
    from_address: str
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    timeout: int = 30
    ca_file: Path | None = None  # PEM CA bundle for the server's certificate (else the system's)

    def password(self) -> str | None:
        """The SMTP password from its file or environment variable; None without a username.

        Raises LookupError with a message for the admin (never the password) when it is
        configured but cannot be read.
        """
        if self.username is None:
            return None
        if self.password_file is not None:
            return read_password_file(self.password_file, "SMTP")
        if self.password_env and os.environ.get(self.password_env):
            return os.environ[self.password_env]
        raise LookupError(
            f"no SMTP password: set {self.password_env or 'mail.password_env'}, "
            "or mail.password_file in pbxd.yaml"
        )

    def __repr__(self) -> str:
        # Never a secret here, but keep reprs to what an admin needs.
        return f"MailSettings(host={self.host!r}, port={self.port}, security={self.security})"


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """pbxd.yaml after environment overrides; paths are absolute."""

    config_path: Path
    ari_url: str
    ari_username: str
    ari_password_env: str | None
    ari_password_file: Path | None
    ari_app: str
    database_url: str
    http_bind: str
    state_dir: Path
    trunks_file: Path
    routing_dir: Path
    log_level: str
    sounds_dir: Path | None = None
    voicemail_dir: Path | None = None  # None: <state_dir>/voicemail
    mail: MailSettings | None = None  # None: voicemail is not mailed
    agi_bind: str | None = None  # HOST:PORT of the FastAGI server; None: AGI mode is off
    ha_mode: HaMode = HaMode.SINGLE  # active-standby: two pbxd share this Asterisk (pbxd.ha)
    http_users_file: Path | None = None  # None: users.yaml beside pbxd.yaml
    http_secure_cookies: bool = True
    http_session_hours: int = 12
    # X-Forwarded-For is read only from these peers (pbxd.web.clients); empty: never.
    http_trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()

    @property
    def users_file(self) -> Path:
        """The file of web users and API tokens (`http.users_file`)."""
        return self.http_users_file or self.config_path.parent / "users.yaml"

    @property
    def voicemail_folder(self) -> Path:
        """Where voicemail messages are kept."""
        return self.voicemail_dir or self.state_dir / "voicemail"

    def ari_password(self) -> str:
        """Read the ARI password from its file or environment variable, at the moment of use.

        Raises LookupError with a message for the admin (never the password) when none is set.
        """
        direct = os.environ.get("PBXD_ARI_PASSWORD")
        if direct:
            return direct
        if self.ari_password_file is not None:
            return read_password_file(self.ari_password_file, "ARI")
        if self.ari_password_env and os.environ.get(self.ari_password_env):
            return os.environ[self.ari_password_env]
        names = dict.fromkeys(["PBXD_ARI_PASSWORD", self.ari_password_env or "PBXD_ARI_PASSWORD"])
        raise LookupError(
            f"no ARI password: set {' or '.join(names)}, or ari.password_file in pbxd.yaml"
        )


@dataclass(slots=True)
class Config:
    """Everything the daemon needs to route a call, indexed for constant-time lookup."""

    settings: DaemonSettings
    trunks: dict[str, Trunk] = field(default_factory=dict)
    numbers: dict[str, VirtualNumber] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    route_of_number: dict[str, Route] = field(default_factory=dict)
    trunk_of_endpoint: dict[str, Trunk] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    hours: dict[str, OpeningHours] = field(default_factory=dict)
    outbound: dict[str, CallingOut] = field(default_factory=dict)
    # Softphone endpoint name (`alice`) -> its rights to call out.
    outbound_of_endpoint: dict[str, CallingOut] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    outbound_of_mobile: dict[str, CallingOut] = field(default_factory=dict)  # call through
    call_through: CallThrough | None = None
    plan_of_number: dict[str, Plan] = field(default_factory=dict)  # E.164 -> its plan

    def number(self, e164: str) -> VirtualNumber | None:
        """The inventory entry of a number, if we have it."""
        return self.numbers.get(e164)

    def route_for(self, e164: str) -> Route | None:
        """The route of a number (one dict lookup, whatever the inventory size)."""
        return self.route_of_number.get(e164)

    def trunk_for_endpoint(self, endpoint: str) -> Trunk | None:
        """The trunk whose inbound Asterisk endpoint is `endpoint` (e.g. `trunk-in`)."""
        return self.trunk_of_endpoint.get(endpoint)

    def dial_string(self, target: Target) -> str:
        """What to pass to channels/create to ring `target`."""
        if target.endpoint is not None:
            return target.endpoint
        assert target.number is not None and target.trunk is not None
        return self.trunks[target.trunk].dial_string(target.number)

    def summary(self) -> str:
        """The one-line summary `pbxd check` prints on success."""
        return (
            f"{_count(len(self.numbers), 'number')} ({_count(len(self.blocks), 'block')}), "
            f"{_count(len(self.routes), 'route')}, {_count(len(self.targets), 'target')}, "
            f"{_count(len(self.trunks), 'trunk')}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
