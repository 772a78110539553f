"""pbxd.sim: an ARI simulator that behaves like Asterisk 22.10.1 (REST + event WebSocket).

pbxd's test double, and what `pbxd simulate` runs to dry-run a number's routing. The public
API is fixed by docs/CONTRACTS.md (`AriSimulator`, `PeerScript`); the event sequences, bodies
and error answers mirror the captures in shared/asterisk-ari (see the module docs of
`pbx.py`, `rest.py` and `hub.py`).

Files: `model.py` (state classes, JSON renderings, cause tables), `peers.py` (PeerScript,
dial-string parsing, script lookup), `pbx.py` (channels, Stasis, dialing, bridges,
playbacks and the events they raise), `hub.py` (event WebSockets and app ownership),
`rest.py` (ARI routes and handlers), `server.py` (AriSimulator, aiohttp plumbing),
`faults.py` (`AriSimulator.faults`: the fault-injection API tests use).

Extras beyond the contract (all typed): `AriSimulator(..., asterisk_id=, stasis_delay=,
stasis_min_real_delay=)`, `add_endpoint(..., context=)`, `inbound_call(..., app=, dtmf=,
dtmf_after=, presentation=, stasis_args=)` (a withheld caller; the dialplan's Stasis()
arguments), `hangup(channel_id)` and `send_dtmf(channel_id, digits)` (the far end acts
now), `await wait_connected(app)`, `await wait_until_idle()`, `channel(id)`, `channels`,
`bridge(id)`, `bridges`, `default_script`, `sound_seconds`, `base_url`; and on a channel,
`SimChannel.presented`: the identity its INVITE showed the callee (chan_pjsip's From is the
connected line, not the caller ID), with its `presentation` (CONNECTEDLINE(pres)).
`SHIPPED_STASIS_ARGS` and the `PRES_*` codes go with `inbound_call`.

Media and presence (media.py, recordings.py, presence.py, media_rest.py): `sounds`,
`add_sound`, `scan_sounds`, `recordings`, `register`/`unregister`, `channel_history(id)`,
`inbound_call(..., script=PeerScript(keys=, talk=))`; see docs/CONTRACTS.md.
"""

from .model import (
    PRES_ALLOWED_NOT_SCREENED,
    PRES_NUMBER_NOT_AVAILABLE,
    PRES_PROHIB_NOT_SCREENED,
    CallerId,
    SimBridge,
    SimChannel,
    SimEndpoint,
    SimPlayback,
)
from .pbx import SHIPPED_OUTBOUND_STASIS_ARGS, SHIPPED_STASIS_ARGS
from .peers import PeerScript
from .server import AriSimulator

__all__ = [
    "PRES_ALLOWED_NOT_SCREENED",
    "PRES_NUMBER_NOT_AVAILABLE",
    "PRES_PROHIB_NOT_SCREENED",
    "SHIPPED_OUTBOUND_STASIS_ARGS",
    "SHIPPED_STASIS_ARGS",
    "AriSimulator",
    "CallerId",
    "PeerScript",
    "SimBridge",
    "SimChannel",
    "SimEndpoint",
    "SimPlayback",
]
