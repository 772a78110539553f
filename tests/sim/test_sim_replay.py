"""Self-check: each capture's REST calls replayed against the simulator give Asterisk's statuses
and, per channel/bridge/playback, Asterisk's event sequence."""

from __future__ import annotations

import pytest

from pbxd.sim import AriSimulator

from .conftest import Ari
from .replay import SCENARIOS, captures_dir, replay

pytestmark = pytest.mark.skipif(
    not captures_dir().is_dir(), reason="Asterisk captures not available"
)


def _show(seqs: dict[str, list[tuple[object, ...]]]) -> str:
    lines = []
    for subject in sorted(seqs):
        lines.append(subject)
        lines.extend(f"    {fact}" for fact in seqs[subject])
    return "\n".join(lines)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_matches_capture(name: str, sim: AriSimulator, ari: Ari) -> None:
    result = await replay(name, sim, ari)
    assert result.statuses == result.expected_statuses
    assert _show(result.events) == _show(result.expected_events)
