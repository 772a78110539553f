"""What `systemctl status pbxd` and `/readyz` say of each pbxd of a pair (health.readiness)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pbxd.ari import AsteriskInfo
from pbxd.calls.runtime import AriEndpoint
from pbxd.clock import VirtualClock
from pbxd.ha.lease import Role
from pbxd.ha.service import PairedService
from pbxd.web.health import Readiness, readiness


def paired() -> PairedService:
    config: Any = SimpleNamespace(settings=SimpleNamespace(database_url="postgresql://db/pbx"))
    endpoint = AriEndpoint("http://127.0.0.1:8088/ari", "pbxd", "secret", "pbxd")
    return PairedService(config, endpoint, None, VirtualClock())  # type: ignore[arg-type]


def test_each_role_is_the_first_word_of_the_status() -> None:
    service = paired()
    assert readiness(service).status.startswith("standby (starting): asking Asterisk who it is")
    service.pair.server = "ast-paris"
    service.pair.role = Role.STANDBY
    standby = "standby: another pbxd is active for app pbxd on ast-paris"
    assert readiness(service) == Readiness(False, standby)  # /readyz: 503, it takes no call
    service.pair.role = Role.TAKING_OVER
    assert readiness(service).status.startswith("taking over app pbxd on ast-paris")
    service.pair.role = Role.ACTIVE
    # Active, its call service not connected yet: what a single pbxd would say, after the role.
    active = "active for app pbxd on ast-paris; connecting to ARI"
    assert readiness(service) == Readiness(False, active)
    assert service.daemon is None and service.stream is None


def test_a_reload_reaches_the_next_takeover() -> None:
    service = paired()
    newer: Any = SimpleNamespace(settings=SimpleNamespace(database_url="postgresql://db/pbx"))
    service.use_config(newer)
    driver = service._drive(_info(), service.pair)
    assert service.active is not None and service.active.config is newer
    assert driver.service is service.active


def _info() -> AsteriskInfo:
    return AsteriskInfo("22.10.1", "02:fc:00:00:00:01", "en", None, None, None, None)
