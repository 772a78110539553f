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

The calls in progress would be in the way next: ~200 objects each (bench/concurrency.py),
so a full collection with 225 calls up stalled the loop 30-38 ms (bench/reload.py) and one
with 10,000 calls up more than a second. So whatever survives a full collection is frozen
too (`_freeze_survivors`): the next full collection walks only what was promoted since. A
call's objects are freed by reference counting when it ends, frozen or not: a call leaves
no cyclic garbage behind (tests/calls/test_call_garbage.py), which frozen objects could
never give back. The collection thresholds stay CPython's (700, 10, 10): raising the young one
made the middle collections walk more (at 2,000: 24-62 ms of CPU under traffic in
bench/reload.py, against ~5 ms).

Frozen objects are never walked, so a reference cycle that was alive at a full collection
(a library's: SQLAlchemy statements, aiohttp responses, exceptions with their frames) and
dies later would never be freed. So every `RECLAIM_EVERY`-th full collection does not
freeze: it unfreezes, and the next full collection walks the whole heap once, frees such
cycles, and freezes again. A long-running daemon pays one longer collection now and then
instead of a slow leak.
"""

from __future__ import annotations

import gc

OLDEST = 2  # the generation a full collection collects
RECLAIM_EVERY = 64  # full collections between two walks of the whole heap


class _FullCollections:
    """How many full collections ran since `settle` (the GC callback's only state)."""

    count = 0


def settle() -> None:
    """Collect once, freeze what start-up built (config, imports) and what later survives.

    Call once the daemon is up: from then on only objects made later are ever walked.
    """
    gc.collect()
    gc.freeze()
    # Again, over nothing: CPython waits for the old generation to grow by a quarter of
    # what the last full collection kept; that was everything just frozen.
    gc.collect()
    _FullCollections.count = 0
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After a full collection, what it kept is alive: out of the next one's way.

    Every `RECLAIM_EVERY`-th, unfreeze instead: the next one walks everything and frees the
    cycles that died frozen.
    """
    if phase == "stop" and info["generation"] == OLDEST:
        _FullCollections.count += 1
        if _FullCollections.count % RECLAIM_EVERY == 0:
            gc.unfreeze()
        else:
            gc.freeze()


def unsettle() -> None:
    """Survivors of full collections no longer frozen, nothing frozen (between tests)."""
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.unfreeze()


def freeze_long_lived() -> None:
    """Take everything alive now out of future collections: a configuration just taken in.

    Call it before the collector runs again (with it paused while the configuration was
    built), or its next pass walks the whole new configuration at once. Calls in progress
    are frozen too: their objects are freed by reference counting when the call ends.
    """
    gc.freeze()
