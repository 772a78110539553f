"""ARI's REST resources, answered the way Asterisk 22's res/ari/resource_*.c answer them.

Parameters are read like Asterisk's generated glue (res_ari_*.c): query string, then the
form body, then same-named fields of a JSON body (which win); ints go through atoi(), so
`timeout=abc` is 0 as on a real Asterisk; multi-valued parameters are comma-separated and may
repeat. Checks happen in Asterisk's order, so the first error reported is Asterisk's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from .event_filter import EventFilter, FilterFormatError
from .model import HANGUP_REASONS, JsonDict, SimBridge, SimChannel, ari_time
from .pbx import AriError, SimPbx, parse_caller_id

# ast_format_cache names accepted by `formats=` (a subset of Asterisk's codecs).
KNOWN_FORMATS = frozenset(
    {"ulaw", "alaw", "gsm", "g722", "g729", "g726", "ilbc", "opus", "slin", "slin16", "slin48"}
)
TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})


@dataclass
class Reply:
    """One REST answer: status, JSON body (None = no body) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def no_content() -> Reply:
    return Reply(204)


def atoi(text: str) -> int:
    """C atoi(): leading whitespace, optional sign, digits; anything else reads as 0."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def scan_int(text: str) -> int | None:
    """sscanf("%30d"): like atoi but None when no digits were read."""
    m = re.match(r"\s*([+-]?\d{1,30})", text)
    return int(m.group(1)) if m else None


@dataclass
class RestRequest:
    """A parsed ARI request (path relative to /ari)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any = None
    path_args: dict[str, str] = field(default_factory=dict)

    def _body_field(self, name: str) -> Any:
        if isinstance(self.body, dict):
            return self.body.get(name)
        return None

    def str_param(self, name: str) -> str:
        """A string parameter ("" when absent), JSON body first like Asterisk's parse_body."""
        field_value = self._body_field(name)
        if isinstance(field_value, str):
            return field_value
        values = self.query.get(name)
        return values[-1] if values else ""

    def has_param(self, name: str) -> bool:
        return name in self.query or self._body_field(name) is not None

    def int_param(self, name: str, default: int = 0) -> int:
        field_value = self._body_field(name)
        if isinstance(field_value, int) and not isinstance(field_value, bool):
            return field_value
        values = self.query.get(name)
        return atoi(values[-1]) if values else default

    def bool_param(self, name: str, default: bool = False) -> bool:
        field_value = self._body_field(name)
        if isinstance(field_value, bool):
            return field_value
        values = self.query.get(name)
        return values[-1].strip().lower() in TRUE_WORDS if values else default

    def list_param(self, name: str) -> list[str]:
        """An allowMultiple parameter: repeated and/or comma-separated values."""
        field_value = self._body_field(name)
        raw: list[str]
        if isinstance(field_value, str):
            raw = [field_value]
        elif isinstance(field_value, list):
            raw = [v for v in field_value if isinstance(v, str)]
        else:
            raw = list(self.query.get(name, []))
        out: list[str] = []
        for value in raw:
            out.extend(value.split(","))
        return out

    def variables(self) -> dict[str, str]:
        """The JSON body's `variables` object; 400 on a non-string value (json_to_ast_variables)."""
        raw = self._body_field("variables")
        if not isinstance(raw, dict):
            return {}
        out: dict[str, str] = {}
        for key, value in raw.items():
            if not isinstance(value, str):
                raise AriError(400, "Only string values in the 'variables' object allowed")
            if key:
                out[str(key)] = value
        return out


Handler = Callable[[RestRequest], Reply]

# Asterisk 22 resources the simulator does not model: 501 rather than a misleading 404.
NOT_SIMULATED: list[tuple[str, tuple[str, ...]]] = [
    ("/asterisk/config/dynamic/{cls}/{type}/{id}", ("GET", "PUT", "DELETE")),
    ("/asterisk/modules", ("GET",)),
    ("/asterisk/modules/{module}", ("GET", "POST", "DELETE", "PUT")),
    ("/asterisk/logging", ("GET",)),
    ("/asterisk/logging/{log}", ("POST", "DELETE")),
    ("/asterisk/logging/{log}/rotate", ("PUT",)),
    ("/asterisk/variable", ("GET", "POST")),
    ("/bridges/{bridge}/variable", ("GET", "POST")),
    ("/bridges/{bridge}/variables", ("GET", "POST")),
    ("/bridges/{bridge}/videoSource/{id}", ("POST",)),
    ("/bridges/{bridge}/videoSource", ("DELETE",)),
    ("/bridges/{bridge}/moh", ("POST", "DELETE")),
    ("/bridges/{bridge}/record", ("POST",)),
    ("/channels/{id}/move", ("POST",)),
    ("/channels/{id}/redirect", ("POST",)),
    ("/channels/{id}/variables", ("GET", "POST")),
    ("/channels/{id}/rtp_statistics", ("GET",)),
    ("/channels/externalMedia", ("POST",)),
    ("/channels/{id}/transfer_progress", ("POST",)),
    ("/endpoints/sendMessage", ("PUT",)),
    ("/endpoints/refer", ("POST",)),
    ("/endpoints/{tech}/{resource}/sendMessage", ("PUT",)),
    ("/endpoints/{tech}/{resource}/refer", ("POST",)),
    ("/events/user/{event}", ("POST",)),
    ("/events/claim", ("POST",)),
    ("/mailboxes", ("GET",)),
    ("/mailboxes/{mailbox}", ("GET", "PUT", "DELETE")),
    ("/playbacks/{playback}/control", ("POST",)),
    ("/recordings/live/{name}/pause", ("POST", "DELETE")),
    ("/recordings/live/{name}/mute", ("POST", "DELETE")),
    ("/sounds", ("GET",)),
    ("/sounds/{sound}", ("GET",)),
]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]


@dataclass
class AsteriskIdentity:
    """What GET /asterisk/info reports."""

    asterisk_id: str
    version: str
    startup_time: datetime
    build_date: str = "2026-11-23 18:41:17 UTC"


class AriRest:
    """The route table and the handlers, over one SimPbx."""

    def __init__(
        self,
        pbx: SimPbx,
        identity: AsteriskIdentity,
        apps: Callable[[], list[str]],
        event_filters: dict[str, EventFilter] | None = None,
    ):
        """`event_filters`: the apps' event filters (shared with the event hub); None is an
        Asterisk without event filtering (before 13.26/16.3): `eventFilter` is unknown (404)."""
        self.pbx = pbx
        self.identity = identity
        self._active_apps = apps
        self._filters = event_filters
        self.routes: list[Route] = []
        p = self._add
        p("/asterisk/info", GET=self.asterisk_info)
        p("/asterisk/ping", GET=self.asterisk_ping)
        p("/applications", GET=self.applications_list)
        p("/applications/{app}", GET=self.application_get)
        if event_filters is not None:
            p("/applications/{app}/eventFilter", PUT=self.application_filter)
        p("/endpoints", GET=self.endpoints_list)
        p("/endpoints/{tech}", GET=self.endpoints_by_tech)
        p("/endpoints/{tech}/{resource}", GET=self.endpoint_get)
        p("/channels", GET=self.channels_list, POST=self.channels_originate)
        p("/channels/create", POST=self.channels_create)
        p(
            "/channels/{id}",
            GET=self.channel_get,
            POST=self.channels_originate,
            DELETE=self.channel_hangup,
        )
        p("/channels/{id}/dial", POST=self.channel_dial)
        p("/channels/{id}/continue", POST=self.channel_continue)
        p("/channels/{id}/answer", POST=self.channel_answer)
        p("/channels/{id}/ring", POST=self.channel_simple, DELETE=self.channel_simple)
        p("/channels/{id}/progress", POST=self.channel_simple)
        p("/channels/{id}/hold", POST=self.channel_simple, DELETE=self.channel_simple)
        p("/channels/{id}/moh", POST=self.channel_simple, DELETE=self.channel_simple)
        p("/channels/{id}/silence", POST=self.channel_simple, DELETE=self.channel_simple)
        p("/channels/{id}/mute", POST=self.channel_mute, DELETE=self.channel_mute)
        p("/channels/{id}/dtmf", POST=self.channel_send_dtmf)
        p("/channels/{id}/play", POST=self.channel_play)
        p("/channels/{id}/play/{playback}", POST=self.channel_play)
        p("/channels/{id}/variable", GET=self.channel_var_get, POST=self.channel_var_set)
        p("/bridges", GET=self.bridges_list, POST=self.bridge_create)
        p(
            "/bridges/{bridge}",
            GET=self.bridge_get,
            POST=self.bridge_create,
            DELETE=self.bridge_destroy,
        )
        p("/bridges/{bridge}/addChannel", POST=self.bridge_add_channel)
        p("/bridges/{bridge}/removeChannel", POST=self.bridge_remove_channel)
        p("/bridges/{bridge}/play", POST=self.bridge_play)
        p("/bridges/{bridge}/play/{playback}", POST=self.bridge_play)
        p("/playbacks/{playback}", GET=self.playback_get, DELETE=self.playback_stop)
        for template, methods in NOT_SIMULATED:
            p(template, **dict.fromkeys(methods, self.not_simulated))

    def _add(self, template: str, **handlers: Handler) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self.routes.append(Route(re.compile(f"^{regex}$"), handlers))

    def add_route(self, template: str, **handlers: Handler) -> None:
        """A resource modelled in another module (media_rest.py); placed before the 501s."""
        self._add(template, **handlers)
        self.routes.insert(0, self.routes.pop())

    def dispatch(self, req: RestRequest) -> Reply:
        """Route and run; AriError becomes its error answer. Literal segments win (`create`)."""
        matches = [(r, m) for r in self.routes if (m := r.pattern.match(req.path))]
        if not matches:
            return Reply(404, {"message": "Resource not found"})
        # Prefer the route with the fewest placeholders (a literal segment beats {id}).
        route, match = min(matches, key=lambda rm: len(rm[1].groupdict()))
        handler = route.handlers.get(req.method)
        allow = ", ".join(["OPTIONS", *sorted(route.handlers)])
        if req.method == "OPTIONS":  # handle_options(): the methods this resource takes
            return Reply(204, None, {"Allow": allow})
        if handler is None:
            return Reply(405, {"message": "Invalid method"}, {"Allow": allow})
        # Segments are matched encoded (`PJSIP%2Falice` is one device name), then decoded.
        req.path_args = {k: unquote(v) for k, v in match.groupdict().items()}
        try:
            return handler(req)
        except AriError as err:
            return Reply(err.status, err.body)

    def not_simulated(self, req: RestRequest) -> Reply:
        return Reply(501, {"message": "Not implemented by the ARI simulator"})

    # ------------------------------------------------------------- asterisk
    def asterisk_info(self, req: RestRequest) -> Reply:
        ident = self.identity
        info: JsonDict = {
            "build": {
                "date": ident.build_date,
                "kernel": "6.18.44-fc-v669",
                "machine": "x86_64",
                "options": "OPTIONAL_API",
                "os": "Linux",
                "user": "root",
            },
            "config": {
                "default_language": "en",
                "name": "",
                "setid": {"group": "", "user": ""},
            },
            "status": {
                "last_reload_time": ari_time(ident.startup_time),
                "startup_time": ari_time(ident.startup_time),
            },
            "system": {"entity_id": ident.asterisk_id, "version": ident.version},
        }
        only = [o for o in req.list_param("only") if o]
        if only:
            info = {k: v for k, v in info.items() if k in only}
        return Reply(200, info)

    def asterisk_ping(self, req: RestRequest) -> Reply:
        return Reply(
            200,
            {
                "asterisk_id": self.identity.asterisk_id,
                "ping": "pong",
                "timestamp": ari_time(self.pbx.clock.now()),
            },
        )

    # ---------------------------------------------------------- applications
    def _known_apps(self) -> list[str]:
        names: dict[str, None] = dict.fromkeys(self._active_apps())
        for chan in self.pbx.channels.values():
            names.update(chan.apps)
        for bridge in self.pbx.bridges.values():
            names.update(bridge.apps)
        return list(names)

    def app_in_use(self, name: str) -> bool:
        """The app holds a channel, a bridge or a subscription (res_stasis keeps it then)."""
        subscribed = self.pbx.presence.subscriptions.get(name)
        return (
            any(name in c.apps for c in self.pbx.channels.values())
            or any(name in b.apps for b in self.pbx.bridges.values())
            or bool(subscribed and (subscribed.devices or subscribed.endpoints))
        )

    def _application_json(self, name: str) -> JsonDict:
        subscribed = self.pbx.presence.subscriptions.get(name)
        found = self._filters.get(name) if self._filters is not None else None
        return {
            "bridge_ids": [b.id for b in self.pbx.bridges.values() if name in b.apps],
            "channel_ids": [c.id for c in self.pbx.channels.values() if name in c.apps],
            "device_names": list(subscribed.devices) if subscribed else [],
            "endpoint_ids": list(subscribed.endpoints) if subscribed else [],
            "events_allowed": list(found.allowed) if found else [],
            "events_disallowed": list(found.disallowed) if found else [],
            "name": name,
        }

    def applications_list(self, req: RestRequest) -> Reply:
        return Reply(200, [self._application_json(n) for n in self._known_apps()])

    def application_json(self, name: str) -> JsonDict:
        """The ARI `Application` model of a known app (404 otherwise)."""
        if name not in self._known_apps():
            raise AriError(404, "Application not found")
        return self._application_json(name)

    def application_get(self, req: RestRequest) -> Reply:
        name = req.path_args["app"]
        if name not in self._known_apps():
            raise AriError(404, "Application not found")
        return Reply(200, self._application_json(name))

    def application_filter(self, req: RestRequest) -> Reply:
        """PUT /applications/{app}/eventFilter (ast_ari_applications_filter): 404 for an app
        Asterisk does not know, 400 for a malformed filter, else the app with its filter."""
        assert self._filters is not None
        name = req.path_args["app"]
        if name not in self._known_apps():
            raise AriError(404, f"Application '{name}' not found")
        try:
            self._filters.setdefault(name, EventFilter()).set_from(req.body)
        except FilterFormatError as exc:
            raise AriError(400, str(exc)) from None
        return Reply(200, self._application_json(name))

    # ------------------------------------------------------------- endpoints
    def _endpoint_json(self, key: tuple[str, str]) -> JsonDict:
        ep = self.pbx.endpoints[key]
        return ep.to_json(self.pbx.channels_of(ep))

    def endpoints_list(self, req: RestRequest) -> Reply:
        return Reply(200, [self._endpoint_json(k) for k in self.pbx.endpoints])

    def endpoints_by_tech(self, req: RestRequest) -> Reply:
        tech = req.path_args["tech"]
        keys = [k for k in self.pbx.endpoints if k[0] == tech.lower()]
        if not keys and tech.lower() != "pjsip":
            raise AriError(404, f"No Endpoints found - invalid tech {tech}")
        return Reply(200, [self._endpoint_json(k) for k in keys])

    def endpoint_get(self, req: RestRequest) -> Reply:
        ep = self.pbx.endpoint(req.path_args["tech"], req.path_args["resource"])
        if ep is None:
            raise AriError(404, "Endpoint not found")
        return Reply(200, ep.to_json(self.pbx.channels_of(ep)))

    # -------------------------------------------------------------- channels
    def channels_list(self, req: RestRequest) -> Reply:
        return Reply(200, [c.to_json() for c in self.pbx.channels.values()])

    def channel_get(self, req: RestRequest) -> Reply:
        return Reply(200, self.pbx.get_channel(req.path_args["id"]).to_json())

    @staticmethod
    def _check_formats(req: RestRequest) -> None:
        for name in req.str_param("formats").split(","):
            name = name.strip()
            if name and name not in KNOWN_FORMATS:
                raise AriError(400, f"Provided format ({name}) was not found")

    def channels_create(self, req: RestRequest) -> Reply:
        variables = req.variables()
        originator_id = req.str_param("originator")
        if originator_id and req.str_param("formats"):
            raise AriError(400, "Originator and formats can't both be specified")
        endpoint = req.str_param("endpoint")
        if not endpoint:
            raise AriError(400, "Endpoint must be specified")
        originator = self.pbx.channels.get(originator_id) if originator_id else None
        if originator is None:
            self._check_formats(req)
        chan = self.pbx.create_channel(
            endpoint,
            app=req.str_param("app"),
            app_args=req.str_param("appArgs"),
            channel_id=req.str_param("channelId") or None,
            originator=originator,
            variables=variables,
        )
        return Reply(200, chan.to_json())

    def channels_originate(self, req: RestRequest) -> Reply:
        variables = req.variables()
        channel_id = req.path_args.get("id") or req.str_param("channelId") or None
        endpoint = req.str_param("endpoint")
        if not endpoint:
            raise AriError(400, "Endpoint must be specified")
        originator_id = req.str_param("originator")
        if originator_id and req.str_param("formats"):
            raise AriError(400, "Originator and formats can't both be specified")
        tech, _, device = endpoint.partition("/")
        if not tech or not device:
            raise AriError(400, "Invalid endpoint specified")
        app = req.str_param("app")
        if not app and not req.str_param("extension"):
            raise AriError(400, "Application or extension must be specified")
        caller_text = req.str_param("callerId")
        caller_id = parse_caller_id(caller_text) if caller_text else None
        if originator_id and originator_id not in self.pbx.channels:
            raise AriError(400, "Provided originator channel was not found")
        self._check_formats(req)
        chan = self.pbx.originate(
            endpoint,
            app=app,
            app_args=req.str_param("appArgs"),
            caller_id=caller_id,
            timeout=req.int_param("timeout", 30),
            channel_id=channel_id,
            variables=variables,
        )
        return Reply(200, chan.to_json())

    def channel_hangup(self, req: RestRequest) -> Reply:
        chan = self.pbx.get_channel(req.path_args["id"])
        reason = req.str_param("reason")
        reason_code = req.str_param("reason_code")
        if reason and reason_code:
            raise AriError(400, "The reason and reason_code can't both be specified")
        if reason_code:
            code = scan_int(reason_code)
            if code is None:
                raise AriError(400, "Invalid reason for hangup reason code provided")
            cause = code
        elif reason:
            if reason not in HANGUP_REASONS:
                raise AriError(400, "Invalid reason for hangup reason provided")
            cause = HANGUP_REASONS[reason]
        else:
            cause = 16
        self.pbx.hangup(chan, cause)
        return no_content()

    @staticmethod
    def _check_state(chan: SimChannel) -> None:
        """channel_state_invalid(): outbound legs not yet answered cannot be controlled."""
        if chan.state in ("Down", "Rsrved", "Ringing"):
            raise AriError(412, "Channel in invalid state")

    def channel_answer(self, req: RestRequest) -> Reply:
        chan = self.pbx.control(req.path_args["id"])
        self._check_state(chan)
        self.pbx.answer(chan)
        return no_content()

    def channel_simple(self, req: RestRequest) -> Reply:
        """ring, ring stop, progress, hold, moh, silence: indications with no ARI event."""
        chan = self.pbx.control(req.path_args["id"])
        self._check_state(chan)
        if req.method == "POST":
            self.pbx.indicate(chan, req.path.rsplit("/", 1)[-1])
        return no_content()

    def channel_mute(self, req: RestRequest) -> Reply:
        chan = self.pbx.control(req.path_args["id"])
        self._check_state(chan)
        direction = req.str_param("direction") or "both"
        if direction not in ("in", "out", "both"):
            raise AriError(400, "Invalid direction specified")
        return no_content()

    def channel_send_dtmf(self, req: RestRequest) -> Reply:
        chan = self.pbx.control(req.path_args["id"])
        self._check_state(chan)
        if not req.str_param("dtmf"):
            raise AriError(400, "DTMF is required")
        return no_content()

    def channel_dial(self, req: RestRequest) -> Reply:
        chan = self.pbx.control(req.path_args["id"])
        caller_id = req.str_param("caller")
        caller = self.pbx.channels.get(caller_id) if caller_id else None
        self.pbx.dial(chan, caller, req.int_param("timeout", 0))
        return no_content()

    def channel_continue(self, req: RestRequest) -> Reply:
        """ast_ari_channels_continue_in_dialplan(): 404/409, 412, then the target is resolved
        (a label wins over priority; no target at all is the next priority)."""
        chan = self.pbx.control(req.path_args["id"])
        self._check_state(chan)
        context, extension = req.str_param("context"), req.str_param("extension")
        if context:
            target_context, exten = context, extension or "s"
        else:
            target_context, exten = chan.context, extension or chan.exten
        label = req.str_param("label")
        if label:
            priority = scan_int(label)
            if priority is None:
                priority = self.pbx.dialplan_label(target_context, exten, label)
                if priority is None:
                    raise AriError(404, "Requested label can not be found")
            if priority == 0:
                raise AriError(400, "Requested priority is illegal")
        elif req.int_param("priority"):
            priority = req.int_param("priority")
        elif not context and not extension:
            priority = chan.priority + 1
        else:
            priority = 1
        self.pbx.continue_in_dialplan(chan, target_context, exten, priority)
        return no_content()

    def channel_var_get(self, req: RestRequest) -> Reply:
        variable = req.str_param("variable")
        if not variable:
            raise AriError(400, "Variable name is required")
        chan = self.pbx.channels.get(req.path_args["id"])
        if chan is None:
            raise AriError(404, "Provided channel was not found")
        upper = variable.upper()
        if upper == "CALLERID(NUM)":
            value: str | None = chan.caller.number
        elif upper == "CALLERID(NAME)":
            value = chan.caller.name
        else:
            value = chan.variables.get(variable)
        if value is None:
            raise AriError(404, "Provided variable was not found")
        return Reply(200, {"value": value})

    def channel_var_set(self, req: RestRequest) -> Reply:
        variable = req.str_param("variable")
        if not variable:
            raise AriError(400, "Variable name is required")
        chan = self.pbx.control(req.path_args["id"])
        self.pbx.set_variables(chan, {variable: req.str_param("value")})
        return no_content()

    def _play(self, req: RestRequest, target_uri: str, language: str) -> Reply:
        if req.int_param("skipms", 3000) < 0:
            raise AriError(400, "skipms cannot be negative")
        if req.int_param("offsetms", 0) < 0:
            raise AriError(400, "offsetms cannot be negative")
        media = [m for m in req.list_param("media") if m]
        if not media:
            raise AriError(400, "Missing parameter media")
        playback_id = req.path_args.get("playback") or req.str_param("playbackId")
        playback = self.pbx.play(target_uri, media, language, playback_id)
        return Reply(201, playback.to_json(), {"Location": f"/playbacks/{playback.id}"})

    def channel_play(self, req: RestRequest) -> Reply:
        chan = self.pbx.control(req.path_args["id"])
        self._check_state(chan)
        language = req.str_param("lang") or chan.language
        return self._play(req, f"channel:{chan.id}", language)

    # --------------------------------------------------------------- bridges
    def bridges_list(self, req: RestRequest) -> Reply:
        return Reply(200, [b.to_json() for b in self.pbx.bridges.values()])

    def bridge_create(self, req: RestRequest) -> Reply:
        bridge_id = req.path_args.get("bridge") or req.str_param("bridgeId") or None
        bridge = self.pbx.create_bridge(req.str_param("type"), bridge_id, req.str_param("name"))
        return Reply(200, bridge.to_json())

    def bridge_get(self, req: RestRequest) -> Reply:
        return Reply(200, self.pbx.get_bridge(req.path_args["bridge"]).to_json())

    def bridge_destroy(self, req: RestRequest) -> Reply:
        self.pbx.destroy_bridge(self.pbx.get_bridge(req.path_args["bridge"]))
        return no_content()

    def _bridge_members(self, req: RestRequest) -> tuple[SimBridge, list[SimChannel]]:
        """find_bridge() then control_list_create(): 404, then 400 / 422 per channel."""
        bridge = self.pbx.get_bridge(req.path_args["bridge"])
        ids = [c for c in req.list_param("channel") if c]
        if not ids:
            raise AriError(400, "Missing parameter channel")
        chans: list[SimChannel] = []
        for channel_id in ids:
            chan = self.pbx.channels.get(channel_id)
            if chan is None:
                raise AriError(400, "Channel not found")
            if chan.stasis_app is None:
                raise AriError(422, "Channel not in Stasis application")
            chans.append(chan)
        return bridge, chans

    def bridge_add_channel(self, req: RestRequest) -> Reply:
        bridge, chans = self._bridge_members(req)
        self.pbx.add_to_bridge(bridge, chans, req.bool_param("inhibitConnectedLineUpdates"))
        return no_content()

    def bridge_remove_channel(self, req: RestRequest) -> Reply:
        bridge, chans = self._bridge_members(req)
        if any(c.bridge_id != bridge.id for c in chans):
            raise AriError(422, "Channel not in this bridge")
        self.pbx.remove_from_bridge(bridge, chans)
        return no_content()

    def bridge_play(self, req: RestRequest) -> Reply:
        bridge = self.pbx.get_bridge(req.path_args["bridge"])
        return self._play(req, f"bridge:{bridge.id}", req.str_param("lang") or "en")

    # ------------------------------------------------------------- playbacks
    def playback_get(self, req: RestRequest) -> Reply:
        playback = self.pbx.playbacks.get(req.path_args["playback"])
        if playback is None:
            raise AriError(404, "Playback not found")
        return Reply(200, playback.to_json())

    def playback_stop(self, req: RestRequest) -> Reply:
        playback = self.pbx.playbacks.get(req.path_args["playback"])
        if playback is None:
            raise AriError(404, "Playback not found")
        self.pbx.stop_playback(playback)
        return no_content()
