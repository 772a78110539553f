"""How pbxd keeps Python's cyclic garbage collector from stalling the event loop.

A collection stops the loop for as long as it takes to walk every object of the generations
it collects. The configuration (240,000 objects at 100,000 numbers) lives as long as the
daemon, or until a reload replaces it: walking it on every full collection stalled the loop
60-70 ms (bench/calls.py). So what is long-lived is frozen out of the collector's reach:

- at start-up (`settle`), once everything start-up built is in place;
- after a reload (`freeze_long_lived`), before the collector runs again over the new
  configuration. The replaced configuration is freed by reference counting, a slice at a
  time (`pbxd.config.reload`): a frozen object whose count drops to zero is freed like any
  other, so replaced configurations do not pile up in the frozen heap (tests/test_heap.py).

What stays in the collector's way is the calls in progress: a full collection walks their
objects (bench/concurrency.py reports how many per call), hence `__slots__` on per-call
objects and few tasks per call. The young generation's threshold is raised so that bursts
of ARI events are collected in fewer, still short, passes.
"""

from __future__ import annotations

import gc

# Allocations between two young collections (CPython's default: 700). A young collection
# walks at most this many new objects (well under a millisecond); a burst of events then
# triggers a tenth as many collections, so fewer short-lived objects are promoted.
YOUNG_THRESHOLD = 7_000
# Young collections per middle one, middle ones per full one (CPython's defaults).
MIDDLE_THRESHOLD = 10
OLD_THRESHOLD = 10


def settle() -> None:
    """Tune the collector, collect once and freeze what start-up built (config, imports).

    Call once the daemon is up: from then on only objects made later are ever walked.
    """
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    gc.collect()
    gc.freeze()


def freeze_long_lived() -> None:
    """Take everything alive now out of future collections: a configuration just taken in.

    Call it before the collector runs again (with it paused while the configuration was
    built), or its next pass walks the whole new configuration at once. Calls in progress
    are frozen too: their objects are freed by reference counting when the call ends.
    """
    gc.freeze()
