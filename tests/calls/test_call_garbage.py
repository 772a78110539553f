"""A call leaves no cyclic garbage: its objects are freed by reference counting when it ends.

pbxd freezes whatever survives a full collection (`pbxd.heap`), calls in progress included;
a frozen object in a reference cycle would never be freed. So no call may leave one.
"""

from __future__ import annotations

import gc
from collections import Counter

import pytest

from pbxd.sim import PeerScript

from .conftest import HUNT, SHORT, CallLab


def _pbxd_garbage() -> Counter[str]:
    """pbxd's own objects (the simulator aside) that only the cyclic collector could free."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found: Counter[str] = Counter()
        for obj in gc.garbage:
            module = getattr(type(obj), "__module__", "") or ""
            code = getattr(obj, "f_code", None) or getattr(obj, "cr_code", None)
            where = getattr(code, "co_filename", "")
            if module.startswith("pbxd.") and not module.startswith("pbxd.sim"):
                found[type(obj).__qualname__] += 1
            elif "/pbxd/" in where and "/pbxd/sim/" not in where:
                found[f"{type(obj).__name__} of {code.co_name}"] += 1
        return found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_answered_and_unanswered_calls_leave_no_cyclic_garbage(lab: CallLab) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=3))
    await lab.finish(await lab.call(SHORT))  # first calls warm caches up
    gc.collect()
    gc.disable()
    try:
        answered = [await lab.call(SHORT) for _ in range(3)]
        unanswered = [await lab.call(HUNT) for _ in range(3)]
        abandoned = await lab.call(SHORT, hangup_after=0.5)
        for call_id in [*answered, *unanswered, abandoned]:
            await lab.finish(call_id)
        lab.finished.clear()  # the lab keeps finished calls for assertion messages
        assert _pbxd_garbage() == Counter()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        # The session's abort path: an ARI request failed outright.
        ("POST", "/channels/*/answer", 500, "Internal Server Error"),
        # Bridging failed (a channel gone under load): the ring step never ends.
        ("POST", "/bridges/*/addChannel", 400, "Channel not found"),
    ],
)
async def test_a_call_that_fails_midway_leaves_no_cyclic_garbage(
    lab: CallLab, method: str, path: str, status: int, message: str
) -> None:
    lab.sim.script("PJSIP/bob", PeerScript(answer_after=1, hangup_after=3))
    await lab.finish(await lab.call(SHORT))
    broken = lab.sim.faults.fail_requests(method, path, status, {"message": message})
    gc.collect()
    gc.disable()
    try:
        failed = await lab.call(SHORT, hangup_after=8)
        await lab.finish(failed)
        assert broken.applied == 1
        lab.finished.clear()
        assert _pbxd_garbage() == Counter()
    finally:
        gc.enable()
