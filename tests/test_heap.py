"""The configuration is kept out of the GC's walks; reloads leave nothing frozen behind."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from pbxd import heap
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
    crossed = await decode(data)
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


def test_a_cycle_frozen_alive_is_freed_after_it_dies() -> None:
    # A library's reference cycle, alive at a full collection, garbage later: not a leak.
    class Cycle:
        me: object

    heap.settle()
    cycle = Cycle()
    cycle.me = cycle
    died = weakref.ref(cycle)
    gc.collect()  # a full collection: the cycle survives and is frozen
    assert not _walked_by_the_collector(cycle)
    del cycle
    gc.collect()
    assert died() is not None  # frozen: out of the collector's reach for now
    for _ in range(heap.RECLAIM_EVERY):
        gc.collect()
    assert died() is None
    assert gc.get_freeze_count() > 0  # the heap is frozen again after the walk
