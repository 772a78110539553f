"""ARI's media and presence resources, answered as Asterisk 22's resource_recordings.c,
resource_channels.c (`record`, `snoop`), resource_applications.c (subscriptions) and
resource_device_states.c answer them: live and stored recordings (files as bytes),
subscriptions, device states and snoop channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .pbx import AriError
from .presence import PresenceError
from .recordings import RecordingError, RecordOptions
from .rest import AriRest, Reply, RestRequest, no_content

Handler = Callable[[RestRequest], Reply]


def _checked(handler: Handler) -> Handler:
    """A RecordingError becomes its ARI error answer."""

    def run(req: RestRequest) -> Reply:
        try:
            return handler(req)
        except RecordingError as err:
            raise AriError(err.status, err.message) from None

    return run


class RecordingRoutes:
    """The recording routes over one AriRest (and its SimPbx's RecordingDesk)."""

    def __init__(self, rest: AriRest) -> None:
        self.rest = rest
        self.desk = rest.pbx.recordings
        add = rest.add_route
        add("/channels/{id}/record", POST=_checked(self.channel_record))
        add("/recordings/live/{name}", GET=_checked(self.live_get), DELETE=_checked(self.cancel))
        add("/recordings/live/{name}/stop", POST=_checked(self.stop))
        add("/recordings/stored", GET=self.stored_list)
        add(
            "/recordings/stored/{name}",
            GET=_checked(self.stored_get),
            DELETE=_checked(self.stored_delete),
        )
        add("/recordings/stored/{name}/file", GET=_checked(self.stored_file))
        add("/recordings/stored/{name}/copy", POST=_checked(self.stored_copy))

    def channel_record(self, req: RestRequest) -> Reply:
        """POST /channels/{id}/record: Asterisk checks the durations before the channel."""
        options = RecordOptions(
            name=req.str_param("name"),
            file_format=req.str_param("format"),
            max_duration=req.int_param("maxDurationSeconds"),
            max_silence=req.int_param("maxSilenceSeconds"),
            if_exists=req.str_param("ifExists") or "fail",
            beep=req.bool_param("beep"),
            terminate_on=req.str_param("terminateOn") or "none",
        )
        if options.max_duration < 0 or options.max_silence < 0:
            options.check()
        chan = self.rest.pbx.control(req.path_args["id"])
        recording = self.desk.record(chan, options)
        location = {"Location": f"/recordings/live/{recording.name}"}
        return Reply(201, recording.to_json(), location)

    def live_get(self, req: RestRequest) -> Reply:
        return Reply(200, self.desk.get_live(req.path_args["name"]).to_json())

    def stop(self, req: RestRequest) -> Reply:
        self.desk.stop(req.path_args["name"])
        return no_content()

    def cancel(self, req: RestRequest) -> Reply:
        self.desk.cancel(req.path_args["name"])
        return no_content()

    def stored_list(self, req: RestRequest) -> Reply:
        stored = sorted(self.desk.stored.values(), key=lambda s: s.name)
        return Reply(200, [s.to_json() for s in stored])

    def stored_get(self, req: RestRequest) -> Reply:
        return Reply(200, self.desk.get_stored(req.path_args["name"]).to_json())

    def stored_delete(self, req: RestRequest) -> Reply:
        self.desk.delete_stored(req.path_args["name"])
        return no_content()

    def stored_file(self, req: RestRequest) -> Reply:
        stored = self.desk.get_stored(req.path_args["name"])
        body: Any = stored.data()
        return Reply(200, body, {"Content-Type": stored.content_type})

    def stored_copy(self, req: RestRequest) -> Reply:
        name = req.path_args["name"]
        copy = self.desk.copy_stored(name, req.str_param("destinationRecordingName"))
        return Reply(200, copy.to_json())


def _presence_checked(handler: Handler) -> Handler:
    """A PresenceError becomes its ARI error answer."""

    def run(req: RestRequest) -> Reply:
        try:
            return handler(req)
        except PresenceError as err:
            raise AriError(err.status, err.message) from None

    return run


SNOOP_DIRECTIONS = frozenset({"none", "in", "out", "both"})


class PresenceRoutes:
    """Subscriptions, device states and snoop channels over one AriRest."""

    def __init__(self, rest: AriRest) -> None:
        self.rest = rest
        self.desk = rest.pbx.presence
        add = rest.add_route
        add(
            "/applications/{app}/subscription",
            POST=_presence_checked(self.subscribe),
            DELETE=_presence_checked(self.unsubscribe),
        )
        add("/deviceStates", GET=self.device_states)
        add(
            "/deviceStates/{device}",
            GET=self.device_get,
            PUT=_presence_checked(self.device_put),
            DELETE=_presence_checked(self.device_delete),
        )
        add("/channels/{id}/snoop", POST=self.snoop)
        add("/channels/{id}/snoop/{snoop}", POST=self.snoop)

    def subscribe(self, req: RestRequest) -> Reply:
        app = req.path_args["app"]
        self.rest.application_json(app)  # 404 for an unknown application first
        self.desk.subscribe(app, [s for s in req.list_param("eventSource") if s])
        return Reply(200, self.rest.application_json(app))

    def unsubscribe(self, req: RestRequest) -> Reply:
        app = req.path_args["app"]
        self.rest.application_json(app)
        self.desk.unsubscribe(app, [s for s in req.list_param("eventSource") if s])
        return Reply(200, self.rest.application_json(app))

    def device_states(self, req: RestRequest) -> Reply:
        return Reply(200, [self.desk.device_json(name) for name in self.desk.device_states])

    def device_get(self, req: RestRequest) -> Reply:
        return Reply(200, self.desk.device_json(req.path_args["device"]))

    def device_put(self, req: RestRequest) -> Reply:
        self.desk.set_device_state(req.path_args["device"], req.str_param("deviceState"))
        return no_content()

    def device_delete(self, req: RestRequest) -> Reply:
        self.desk.delete_device_state(req.path_args["device"])
        return no_content()

    def snoop(self, req: RestRequest) -> Reply:
        """ast_ari_channels_snoop_channel(): directions, app, then the channel; 200."""
        spy = req.str_param("spy") or "none"
        whisper = req.str_param("whisper") or "none"
        if spy not in SNOOP_DIRECTIONS:
            raise AriError(400, "Invalid direction specified for spy")
        if whisper not in SNOOP_DIRECTIONS:
            raise AriError(400, "Invalid direction specified for whisper")
        if spy == "none" and whisper == "none":
            raise AriError(400, "Direction must be specified for at least spy or whisper")
        app = req.str_param("app")
        if not app:
            raise AriError(400, "Application name is required")
        target = self.rest.pbx.get_channel(req.path_args["id"])
        args_text = req.str_param("appArgs")
        snoop_id = req.path_args.get("snoop") or req.str_param("snoopId")
        chan = self.rest.pbx.snoop(target, app, args_text.split(",") if args_text else [], snoop_id)
        return Reply(200, chan.to_json())
