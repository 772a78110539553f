"""ARI's media resources beyond playbacks, answered as Asterisk 22's resource_recordings.c and
resource_channels.c (`record`) answer them: live and stored recordings, stored files as bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .pbx import AriError
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
