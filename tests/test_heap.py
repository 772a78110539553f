"""The configuration is kept out of the GC's walks; reloads leave nothing frozen behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import weakref
from pathlib import Path

from pbxd import heap
from pbxd.clock import VirtualClock
from pbxd.config.compile import compile_config
from pbxd.config.reload import RunningConfig, compile_here, decode, encode
from tests.config.test_reload import _compiled, _many_numbers

NUMBERS = 1_000


def _walked_by_the_collector(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_settling_freezes_the_configuration(
    tmp_path: Path,
) -> None:
    config = _compiled(_many_numbers(tmp_path, NUMBERS))
    route = next(iter(config.routes.values()))
    assert _walked_by_the_collector(route)
    heap.settle()
    assert not _walked_by_the_collector(route)
    assert gc.get_freeze_count() > NUMBERS  # every VirtualNumber at least


async def test_a_configuration_taken_in_from_the_compiler_process_is_frozen(
    tmp_path: Path,
) -> None:
    data = encode(compile_config(_many_numbers(tmp_path, NUMBERS)))
    frozen = gc.get_freeze_count()
    crossed = await decode(io.BytesIO(data))
    assert crossed.config is not None
    assert gc.get_freeze_count() - frozen > NUMBERS
    assert not _walked_by_the_collector(next(iter(crossed.config.numbers.values())))


async def test_reloads_leave_no_replaced_configuration_in_the_frozen_heap(tmp_path: Path) -> None:
    path = _many_numbers(tmp_path, NUMBERS)
    running = RunningConfig(_compiled(path), compiler=compile_here)
    heap.settle()
    assert (await running.reload()).accepted
    after_first = gc.get_freeze_count()
    for _ in range(4):
        assert (await running.reload()).accepted
    # Each reload froze a whole new configuration (thousands of objects); the one it
    # replaced was freed from the frozen heap, so the frozen heap stays the same size.
    assert gc.get_freeze_count() - after_first < NUMBERS // 4
    assert not _walked_by_the_collector(next(iter(running.current.numbers.values())))


def test_what_a_full_collection_keeps_is_frozen_after_it() -> None:
    heap.settle()
    survivor = [object()]
    assert _walked_by_the_collector(survivor)
    gc.collect(1)  # a younger collection leaves it to the collector
    assert _walked_by_the_collector(survivor)
    gc.collect()
    assert not _walked_by_the_collector(survivor)
    heap.unsettle()
    assert gc.get_freeze_count() == 0 and heap._freeze_survivors not in gc.callbacks


def test_a_cycle_frozen_alive_is_freed_by_a_walk_of_the_whole_heap() -> None:
    # A library's reference cycle, alive at a full collection, garbage later: not a leak.
    class Cycle:
        me: object

    heap.settle()
    cycles = [Cycle() for _ in range(1_000)]
    for cycle in cycles:
        cycle.me = [cycle]  # a list each: blocks the heap's measure sees go
    died = weakref.ref(cycles[0])
    gc.collect()  # a full collection: the cycles survive and are frozen
    assert not _walked_by_the_collector(cycles[0])
    del cycles, cycle
    for _ in range(20):
        gc.collect()
    assert died() is not None  # frozen: out of the collector's reach until a walk
    done = heap.reclaim()
    assert died() is None
    assert done.freed >= 2_000
    assert gc.get_freeze_count() > 0  # what lives is frozen again after the walk
    assert done.blocks_before - done.blocks_after >= 1_000  # the cycles' blocks are gone


def test_settling_keeps_full_collections_small_and_unsettling_restores_cpython() -> None:
    heap.settle()
    assert gc.get_threshold() == heap.THRESHOLDS
    _, middle, full = heap.THRESHOLDS
    assert middle < 10 and full < 10  # smaller than CPython's: shorter stalls
    heap.unsettle()
    assert gc.get_threshold() == heap.CPYTHON_THRESHOLDS


def _policy(**kwargs: float) -> heap.ReclaimPolicy:
    return heap.ReclaimPolicy(blocks_after_walk=400_000, walked_at=0.0, **kwargs)  # type: ignore[arg-type]


def test_a_walk_waits_for_growth_worth_it() -> None:
    policy = _policy()
    policy.due(400_000, 1_000, 60.0)  # the peak
    # Quiet and long enough, but grown by less than a quarter: not worth the stall.
    assert not policy.due(400_000 + 99_999, 0, 7_200.0)
    assert policy.due(400_000 + 100_000, 0, 7_200.0)
    # A small heap still waits for `min_growth` blocks.
    small = heap.ReclaimPolicy(blocks_after_walk=1_000, walked_at=0.0)
    assert not small.due(100_000, 0, 7_200.0)
    assert small.due(101_000, 0, 7_200.0)


def test_a_walk_waits_for_a_quiet_moment_or_a_day() -> None:
    policy = _policy()
    grown = 600_000
    assert not policy.due(grown, 1_000, 700.0)  # busy: the peak so far
    assert not policy.due(grown, 101, 800.0)  # still more than a tenth of the peak
    assert policy.due(grown, 100, 900.0)  # quiet: a tenth of the peak
    never_quiet = _policy()
    assert not never_quiet.due(grown, 1_000, 86_399.0)
    assert never_quiet.due(grown, 1_000, 86_400.0)  # once a day at least


def test_walks_are_never_closer_than_the_shortest_interval() -> None:
    policy = _policy()
    assert not policy.due(900_000, 0, 599.0)
    assert policy.due(900_000, 0, 600.0)
    policy.walked(450_000, 600.0)
    assert policy.peak_calls == 0 and policy.blocks_after_walk == 450_000
    assert not policy.due(900_000, 0, 1_199.0)
    assert policy.due(900_000, 0, 1_200.0)


async def test_the_heap_watch_walks_when_the_policy_says_so() -> None:
    class Cycle:
        me: object

    clock = VirtualClock()
    heap.settle()
    policy = heap.ReclaimPolicy(0, 0.0, min_growth=1_000, shortest_s=60.0)
    calls = [5]
    watch = asyncio.create_task(heap.watch_heap(lambda: calls[0], clock, policy=policy))
    cycles = [Cycle() for _ in range(5_000)]
    for cycle in cycles:
        cycle.me = cycle
    died = weakref.ref(cycles[0])
    gc.collect()  # frozen alive
    del cycles, cycle
    try:
        await clock.advance(60.0)
        assert died() is not None and policy.peak_calls == 5  # busy: no walk yet
        calls[0] = 0
        await clock.advance(60.0)
        assert died() is None  # a quiet moment: walked, the dead cycles freed
        assert policy.walked_at == 120.0 and policy.peak_calls == 0
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
