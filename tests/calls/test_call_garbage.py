"""A call leaves no cyclic garbage: its objects are freed by reference counting when it ends.

pbxd freezes whatever survives a full collection (`pbxd.heap`), calls in progress included;
a frozen object in a reference cycle would never be freed. So no call may leave one.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from types import ModuleType
from typing import Any

import pytest

from pbxd.calls.session import CallSession
from pbxd.calls.states import CallState
from pbxd.sim import PeerScript

from .conftest import HUNT, RINGALL, SHORT, CallLab


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


def _held_by(root: object, old: set[int]) -> Counter[str]:
    """Objects reachable from `root` that were made after `old` was taken, by module.type.

    What existed before the call (the configuration, the daemon, the clients, modules,
    classes) is not the call's: the walk stops there.
    """
    found: Counter[str] = Counter()
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or id(obj) in old or isinstance(obj, type | ModuleType):
            continue
        seen.add(id(obj))
        found[f"{type(obj).__module__}.{type(obj).__qualname__}"] += 1
        todo.extend(gc.get_referents(obj))
    return found


def _task_of(session: CallSession) -> asyncio.Task[Any]:
    """The task running `session.run()`."""
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if frame is not None and frame.f_locals.get("self") is session:
            return task
    raise AssertionError("no task runs the call")


async def test_a_call_in_progress_holds_no_ari_event_and_a_bounded_number_of_objects(
    lab: CallLab,
) -> None:
    # A bridged call waiting for its next event: 10,000 of these make a carrier-sized pbxd
    # (bench/concurrency.py), so what each holds is counted, in objects, and over time.
    lab.sim.script("PJSIP/alice", PeerScript(answer_after=1))
    await lab.finish(await lab.call(SHORT, hangup_after=2))  # caches warmed up
    gc.collect()
    before = gc.get_objects()  # kept alive: no new object may take an old one's address
    old = {id(o) for o in before}
    call_id = await lab.call(RINGALL)
    await lab.wait_for(lambda: call_id in lab.daemon.calls, what="call set up")
    session = lab.daemon.calls[call_id]
    await lab.wait_for(lambda: session.state is CallState.BRIDGED, what="bridged")
    task = _task_of(session)
    first = _held_by(task, old)
    await lab.virtual_sleep(600)  # ten minutes of talk change nothing of what the call holds
    held = _held_by(task, old)
    assert held == first
    events = [kind for kind in held if kind.startswith(("pbxd.ari.events.", "pbxd.ari.models."))]
    assert events == [], held
    # Measured 2026-12-03: 128 objects (session, journal and records, 3 legs and their plans,
    # the flow, 12 timeline lines, a timer, the task). A per-event leftover shows here.
    assert sum(held.values()) <= 160, held.most_common(25)
    del before
    lab.sim.hangup(call_id)
    await lab.finish(call_id)
