"""The shape of each configuration file, as pydantic models (syntax, not meaning).

Cross-file meaning (a routed number is in the inventory, a target exists, …) is checked in
`pbxd.config.compile`, which reports it with file marks. Numeric limits are checked there too
so the messages can say what a sensible value is.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pbxd.config.numbering import foreign_digit

# Runtime vocabulary, re-exported: the YAML models name these values.
from pbxd.vocabulary import HangupReason as HangupReason
from pbxd.vocabulary import RingStrategy as RingStrategy


def _not_a_boolean(value: Any) -> Any:
    """Refuse `yes`/`true` where a number is expected (pydantic would read them as 1), and
    say which character of `3²` is not a digit 0-9."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()}")
    if isinstance(value, str):
        foreign = foreign_digit(value)
        if foreign is not None:
            raise ValueError(f"must be a whole number written with 0-9: {foreign}")
    return value


Whole = Annotated[int, BeforeValidator(_not_a_boolean)]
"""An integer setting (seconds, counts): YAML booleans are an error, not 0 or 1."""


def _a_boolean(value: Any) -> Any:
    """Only YAML's true/false: `yes please` or 1 must not be guessed into a flag."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


Flag = Annotated[bool, BeforeValidator(_a_boolean)]
"""An on/off setting: true or false, nothing else."""


class _Strict(BaseModel):
    """Every file model refuses unknown keys: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- pbxd.yaml (daemon settings)


class AriSection(_Strict):
    """How to reach Asterisk's ARI. The password never sits in this file."""

    url: str = "http://127.0.0.1:8088/ari"
    username: str = "pbxd"
    password_env: str | None = "PBXD_ARI_PASSWORD"
    password_file: str | None = None
    app: str = "pbxd"


class DatabaseSection(_Strict):
    """Where CDRs go; None means a SQLite file in the state directory."""

    url: str | None = None


class HttpSection(_Strict):
    """The HTTP API and web pages: where they listen, who may use them, how cookies go."""

    bind: str = "127.0.0.1:8080"  # port 0: any free port (tests), logged as http_listening
    users_file: str = "users.yaml"  # API tokens and passwords, argon2-hashed (`pbxd users add`)
    # Browser session cookies are `Secure` (sent over HTTPS only). false: plain HTTP, only on
    # loopback or behind a TLS reverse proxy on the same host.
    secure_cookies: bool = True
    session_hours: Whole = 12
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks); empty: none,
    # the TCP peer is the client. A string (PBXD_HTTP_TRUSTED_PROXIES) is split at commas.
    trusted_proxies: list[str] | str = Field(default_factory=list)


class VoicemailSection(_Strict):
    """Where voicemail messages are kept; None means `voicemail/` in the state directory."""

    dir: str | None = None


class MailSecurity(StrEnum):
    """How the SMTP connection is protected."""

    STARTTLS = "starttls"  # plain connection upgraded by STARTTLS (submission, port 587)
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # a local relay only: nothing is encrypted


class MailSection(_Strict):
    """The SMTP server voicemail e-mails go through. The password never sits in this file."""

    host: str
    port: Whole | None = None  # default: 587, 465 with tls, 25 with none
    security: MailSecurity = MailSecurity.STARTTLS
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    from_address: str
    timeout: Whole = 30
    ca_file: str | None = None  # a private CA's certificate(s), PEM; default: the system's


class AgiSection(_Strict):
    """FastAGI for dialplan-driven setups (`AGI(agi://HOST/route)`); off when bind is null."""

    bind: str | None = None


class HaMode(StrEnum):
    """How many pbxd drive one Asterisk's Stasis application."""

    SINGLE = "single"  # one pbxd (systemd restarts it)
    ACTIVE_STANDBY = "active-standby"  # two: a PostgreSQL lock says which one drives calls


class HaSection(_Strict):
    """High availability: `active-standby` pairs two pbxd for one Asterisk (PostgreSQL only)."""

    mode: HaMode = HaMode.SINGLE


class DaemonFile(_Strict):
    """pbxd.yaml."""

    ari: AriSection = AriSection()
    database: DatabaseSection = DatabaseSection()
    http: HttpSection = HttpSection()
    agi: AgiSection = AgiSection()
    ha: HaSection = HaSection()
    state_dir: str = "var"
    trunks_file: str = "sip-trunks.yaml"
    routing_dir: str = "routing"
    sounds_dir: str | None = None  # where prompt files are, to check that each one exists
    log_level: str = "info"
    voicemail: VoicemailSection = VoicemailSection()
    mail: MailSection | None = None


# ---------------------------------------------------------------- sip-trunks.yaml (inventory)


def _prompt_list(value: Any) -> Any:
    """`acme-menu` is shorthand for `[acme-menu]`."""
    return [value] if isinstance(value, str) else value


Prompts = Annotated[list[str], BeforeValidator(_prompt_list)]


class NumberStatus(StrEnum):
    """Where a number stands in its life: only `active` numbers take live traffic."""

    ACTIVE = "active"
    PORTING = "porting"
    RESERVED = "reserved"


class InventoryEntry(_Strict):
    """One number (`number`) or one block (`range` or `prefix` + `count`)."""

    number: str | None = None
    range: str | None = None
    prefix: str | None = None
    count: Whole | None = None
    block: str | None = None
    label: str = ""
    status: NumberStatus = NumberStatus.ACTIVE
    port_date: date | None = None
    losing_carrier: str | None = None
    timezone: str | None = None
    country: str | None = None
    # The number's own whisper (its label as a prompt): what a callee hears before bridging
    # on a route with `whisper: number`, so they know which line is ringing.
    whisper: Prompts = Field(default_factory=list)


class TrunkEntry(_Strict):
    """A SIP trunk (carrier) and the numbers it delivers."""

    inbound_endpoint: str
    dial: str
    allowed_destinations: list[str] = Field(default_factory=list)
    # Added to the built-in premium-rate and satellite prefixes (DEFAULT_DENIED).
    denied_destinations: list[str] = Field(default_factory=list)
    max_outbound_legs: Whole = 30
    max_call_duration: Whole | None = None
    country: str | None = None
    timezone: str | None = None
    label: str = ""
    # Entries are validated one by one (InventoryEntry) so one bad entry hides no other.
    numbers: list[Any] = Field(default_factory=list)


class TrunksFile(_Strict):
    """sip-trunks.yaml."""

    trunks: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- routing/*.yaml


class TargetEntry(_Strict):
    """Something that can ring: a softphone endpoint, or an external number via a trunk."""

    softphone: str | None = None
    external: str | None = None
    trunk: str | None = None
    label: str = ""
    # Confirm calls: the callee must press 1 before the call is theirs (external targets).
    confirm: bool = False
    caller_id: Any = None  # this target's caller-ID policy (see RouteEntry.caller_id)


class RingStep(_Strict):
    """One target in a route's ring list, with its own ring time (and confirm, if set here)."""

    target: str
    ring_time: Whole | None = None
    confirm: bool | None = None  # None: the target's own
    caller_id: Any = None  # None: the target's own, else the route's
    start_after: Whole | None = None  # staggered: seconds before this target joins
    enabled: Flag = True  # false: kept in the list, not rung
    weight: Whole | None = None  # weighted: how likely this target comes first

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        # `- alice` is shorthand for `- target: alice`.
        return {"target": data} if isinstance(data, str) else data


class FallbackAction(StrEnum):
    """Where a call goes when a step ends without an answer (or the line is closed)."""

    HANGUP = "hangup"
    VOICEMAIL = "voicemail"
    GOTO = "goto"


class ActionEntry(_Strict):
    """`{action: hangup, cause: busy}`, `{voicemail: BOX}`, `{goto: ROUTE}` or `{hangup: CAUSE}`."""

    action: FallbackAction = FallbackAction.HANGUP
    cause: HangupReason | None = None
    box: str | None = None
    route: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `{voicemail: reception}` reads as `{action: voicemail, box: reception}`.
        if isinstance(data, dict) and len(data) == 1:
            ((key, value),) = data.items()
            field = {"voicemail": "box", "goto": "route", "hangup": "cause"}.get(str(key))
            if field is not None:
                return {"action": key, field: value}
        return data


# Kept for today's `no_answer: {action: hangup, cause: …}`.
NoAnswerEntry = ActionEntry


class GreetingEntry(_Strict):
    """Prompts played before ringing: `welcome`, `[a, b]`, or `{play: [a, b], answer: true}`.

    With `answer: false` (the default) they are early media: heard, not billed.
    """

    play: list[str] = Field(default_factory=list)
    answer: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"play": [data]}
        if isinstance(data, list):
            return {"play": data}
        return data


class MenuEntry(_Strict):
    """A voice menu (a route's `menu:`): a prompt, then keys to branches.

    `options` maps an entry (`1`, `12`, `"*"`) to a route name, `repeat`, or an action
    (`{voicemail: BOX}`, `{hangup: CAUSE}`, `{goto: ROUTE}`); each is checked in
    `pbxd.config.flows` so one bad option hides no other.
    """

    prompt: Prompts
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: Whole = 5
    digit_timeout: Whole = 3
    retries: Whole = 2
    invalid_prompt: Prompts = Field(default_factory=list)
    timeout_prompt: Prompts = Field(default_factory=list)
    fallback: ActionEntry | None = None


class MailboxEntry(_Strict):
    """A voicemail box (routing files' `mailboxes:`)."""

    email: str | None = None
    greeting: list[str] = Field(default_factory=list)
    language: str = "en"
    max_seconds: Whole = 180
    min_seconds: Whole = 2
    silence_seconds: Whole = 5
    finish_key: str = "#"


class RouteEntry(_Strict):
    """The route of one or more numbers, or of a whole block."""

    name: str | None = None
    numbers: list[str] = Field(default_factory=list)
    block: str | None = None
    trunk: str | None = None
    strategy: RingStrategy = RingStrategy.RINGALL
    targets: list[RingStep] = Field(default_factory=list)
    ring_time: Whole = 20
    timeout: Whole = 60
    max_legs: Whole | None = None  # at most this many legs ringing at once
    skip_busy: Flag = False  # do not ring a target already on a pbxd call
    no_answer: ActionEntry = ActionEntry()
    busy: ActionEntry | None = None
    unavailable: ActionEntry | None = None
    # `caller`, `number` (the virtual number), one of our numbers, or
    # `{number: …, prefix: "[Acme] "}`; checked in `pbxd.config.compile`.
    caller_id: Any = "caller"
    max_call_duration: Whole | None = None
    hours: Any = None  # a name from `hours:`, or opening hours written inline
    closed: ActionEntry | None = None
    greeting: GreetingEntry | None = None
    then: ActionEntry | None = None  # for a route that rings nobody
    menu: MenuEntry | None = None  # a voice menu instead of ringing
    # Played to the callee alone before bridging (which line is ringing); the caller hears ringing.
    # `whisper: number` plays the called number's own `whisper:` from the inventory.
    whisper: Prompts = Field(default_factory=list)
    # What a confirm-calls target hears when it answers ("press 1 to accept").
    confirm_prompt: Prompts = Field(default_factory=list)


class OutboundEntry(_Strict):
    """Calling out (routing files' `outbound:`): who, as which virtual number, to where."""

    softphones: list[str] = Field(default_factory=list)  # softphone targets, by name
    outbound_number: str
    trunk: str | None = None  # default: the trunk that delivers `outbound_number`
    country: str | None = None  # reads national numbers; default: the trunk's, the file's
    may_dial: list[str] = Field(default_factory=list)  # E.164 prefixes narrowing the trunk's
    withhold: bool = False  # presentation restricted by default (`*31*` does it per call)
    # The identity emergency services get (the user's own line); default: outbound_number.
    emergency_caller_id: str | None = None
    timeout: Whole = 60  # seconds the far end may ring
    # Call through: these mobiles call an access number, key `pin` then `#`, the number, `#`.
    mobiles: list[str] = Field(default_factory=list)
    pin: str | None = None


class CallThroughEntry(_Strict):
    """Routing files' `call_through:`: the access numbers registered mobiles call out from."""

    numbers: list[str] = Field(default_factory=list)
    timeout: Whole = 15  # seconds to key the PIN or the number, each
    tone: str = "beep"


class WhenCrossed(StrEnum):
    """What happens to a call in progress that reaches its number's monthly minutes."""

    CUT = "cut"  # warned `warn_before` seconds ahead, then hung up at the limit
    FINISH = "finish"  # allowed to finish (the next call meets the limit)


class PlanEntry(_Strict):
    """A plan (routing files' `plans:`): limits of the numbers and blocks it names."""

    numbers: list[str] = Field(default_factory=list)
    blocks: list[str] = Field(default_factory=list)
    forwarded_minutes: Whole | None = None  # per calendar month; None: unlimited
    outbound_minutes: Whole | None = None
    max_destinations: Whole | None = None  # distinct numbers a route may forward to
    max_calls: Whole | None = None  # simultaneous calls on one number
    at_limit: ActionEntry = ActionEntry(cause=HangupReason.BUSY)
    when_crossed: WhenCrossed = WhenCrossed.CUT
    warn_before: Whole = 60
    warning: list[str] = Field(default_factory=lambda: ["plan-limit-warning"])


class RoutingFile(_Strict):
    """One file of routing/."""

    country: str | None = None
    # Validated one by one (TargetEntry, RouteEntry) so one bad entry hides no other.
    targets: dict[str, Any] = Field(default_factory=dict)
    routes: list[Any] = Field(default_factory=list)
    hours: dict[str, Any] = Field(default_factory=dict)
    mailboxes: dict[str, Any] = Field(default_factory=dict)
    outbound: dict[str, Any] = Field(default_factory=dict)
    plans: dict[str, Any] = Field(default_factory=dict)
    call_through: CallThroughEntry | None = None
