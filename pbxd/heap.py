"""How pbxd keeps Python's cyclic garbage collector from stalling the event loop.

A collection stops the loop for as long as it takes to walk every object of the generations
it collects: about a microsecond an object in pbxd's heap (its referents are scattered, so
each is a cache miss). The configuration (240,000 objects at 100,000 numbers) lives as long
as the daemon, or until a reload replaces it; the calls in progress are ~200-500 objects each.
Walking them all on every full collection stalled the loop 60-190 ms (bench/reload.py), more
than a second with 10,000 calls up. So:

- What is long-lived is frozen out of the collector's reach: at start-up (`settle`), once
  everything start-up built is in place; after a reload (`freeze_long_lived`), before the
  collector runs again over the new configuration; and after every full collection, what it
  kept (`_freeze_survivors`): the next full collection walks only what is newer. A frozen
  object whose count drops to zero is freed like any other: the replaced configuration and
  every ended call go by reference counting (a call leaves no reference cycle of pbxd's own:
  tests/calls/test_call_garbage.py), so frozen objects do not pile up.
- Collections are kept small (`THRESHOLDS`): young ones after 400 allocations, middle ones
  after 4 young ones, a full one after every second middle one (CPython: 700, 10, 10). The
  total walked stays the same, as every survivor is walked once per generation and then
  frozen; each stall is a fraction. bench/reload.py --count-walked, 50 calls/s: the largest
  full collection walked 20,053 objects (130,315 with CPython's thresholds), the largest
  middle one 12,967 (32,834), for the same 2.7 s of collection CPU over the run.
- A library's reference cycle (SQLAlchemy statements, an exception and its frames) that was
  alive at a full collection and died later cannot be freed while frozen. Giving those back
  means walking the whole heap once (`reclaim`): a stall in proportion to the heap, so pbxd
  does it at a quiet moment, when the heap has grown enough to be worth it
  (`ReclaimPolicy`, checked every minute by `watch_heap`), and at least once a day. The
  heap is measured in pymalloc's blocks (`sys.getallocatedblocks`, ~1 ms at 7.5 million
  blocks), never in frozen objects: `gc.get_freeze_count` walks the frozen list, a stall
  of its own (26 ms at 285,000 objects under traffic, bench/reload.py).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from pbxd.clock import Clock

log = structlog.get_logger(__name__)

OLDEST = 2  # the generation a full collection collects
CPYTHON_THRESHOLDS = (700, 10, 10)
# Young after 400 allocations, middle after 4 young collections, full after every second
# middle one: CPython waits for the eleventh, and its full collections walk ten times as much.
THRESHOLDS = (400, 4, 1)
CHECK_EVERY_S = 60.0  # how often `watch_heap` asks whether a reclaiming walk is due


def settle() -> None:
    """Collect once, freeze what start-up built (config, imports) and what later survives.

    Call once the daemon is up: from then on only objects made later are ever walked.
    """
    gc.collect()
    gc.freeze()
    # Again, over nothing: CPython waits for the old generation to grow by a quarter of
    # what the last full collection kept; that was everything just frozen.
    gc.collect()
    gc.set_threshold(*THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After a full collection, what it kept is alive: out of the next one's way."""
    if phase == "stop" and info["generation"] == OLDEST:
        gc.freeze()


def unsettle() -> None:
    """CPython's own collector again: nothing frozen, its thresholds (between tests)."""
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.unfreeze()
    gc.set_threshold(*CPYTHON_THRESHOLDS)


def freeze_long_lived() -> None:
    """Take everything alive now out of future collections: a configuration just taken in.

    Call it before the collector runs again (with it paused while the configuration was
    built), or its next pass walks the whole new configuration at once. Calls in progress
    are frozen too: their objects are freed by reference counting when the call ends.
    """
    gc.freeze()


@dataclass(frozen=True)
class Reclaimed:
    """What one walk of the whole heap gave back."""

    blocks_before: int  # the heap before the walk, in pymalloc blocks
    blocks_after: int  # the heap after it: what the dead cycles held is gone
    freed: int  # unreachable objects the walk found (dead cycles)
    cpu_ms: float  # the walk's stall, in the loop thread's CPU


def reclaim() -> Reclaimed:
    """Walk the whole heap once: free the cycles that died frozen, freeze the rest again."""
    before = heap_blocks()
    started = time.thread_time()
    gc.unfreeze()
    freed = gc.collect()  # its callback freezes what it kept
    gc.freeze()  # also when the callback is not installed (outside `pbxd run`)
    return Reclaimed(before, heap_blocks(), freed, (time.thread_time() - started) * 1e3)


def heap_blocks() -> int:
    """The Python heap's size in allocated blocks: cheap (no object is walked)."""
    return sys.getallocatedblocks()


@dataclass
class ReclaimPolicy:
    """When a walk of the whole heap is worth its stall: plain numbers in, no I/O.

    Worth it once the heap has grown by a quarter since the last walk (and by `min_growth`
    blocks): what grew is either calls in progress or dead cycles. At a quiet
    moment (calls in progress down to a tenth of the most seen since the last walk) the
    calls' objects are gone, so what is left over is dead cycles, and the stall hits few
    calls. A daemon that is never quiet walks anyway once `longest_s` has passed.
    """

    blocks_after_walk: int  # the heap (`heap_blocks`) just after the last walk (or start-up)
    walked_at: float  # monotonic seconds of the last walk
    peak_calls: int = 0  # the most calls in progress seen since the last walk
    min_growth: int = 100_000  # blocks: ~2 per object
    shortest_s: float = 600.0  # never two walks closer than this
    longest_s: float = 86_400.0  # walk at least this often, quiet or not, if grown

    def due(self, blocks_now: int, calls_now: int, now: float) -> bool:
        """Whether to walk now, given the heap's blocks, calls in progress and the time."""
        self.peak_calls = max(self.peak_calls, calls_now)
        since = now - self.walked_at
        grown = blocks_now - self.blocks_after_walk
        if since < self.shortest_s or grown < max(self.min_growth, self.blocks_after_walk // 4):
            return False
        quiet = calls_now <= self.peak_calls // 10
        return quiet or since >= self.longest_s

    def walked(self, blocks_after: int, now: float) -> None:
        """A walk just ended: measure growth and quiet from here."""
        self.blocks_after_walk, self.walked_at, self.peak_calls = blocks_after, now, 0


async def watch_heap(
    calls_in_progress: Callable[[], int],
    clock: Clock,
    *,
    every_s: float = CHECK_EVERY_S,
    policy: ReclaimPolicy | None = None,
) -> None:
    """Every `every_s`, walk the whole heap if `policy` says so; until cancelled.

    Start it once `settle` has run: the heap then is the start-up's, the baseline.
    """
    policy = policy or ReclaimPolicy(heap_blocks(), clock.monotonic())
    while True:
        await clock.sleep(every_s)
        calls = calls_in_progress()
        if policy.due(heap_blocks(), calls, clock.monotonic()):
            done = reclaim()
            policy.walked(done.blocks_after, clock.monotonic())
            log.info(
                "heap_reclaimed",
                calls_in_progress=calls,
                blocks_before=done.blocks_before,
                blocks_after=done.blocks_after,
                freed=done.freed,
                stall_ms=round(done.cpu_ms, 1),
            )
