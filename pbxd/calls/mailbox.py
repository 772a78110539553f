"""A call's queue of things to handle: ARI events, its timers, resyncs.

One reader (the call's task), never full. An `asyncio.Queue` holds four deques, an Event
and a counter: 4.6 KB per call, measured with tracemalloc in bench/concurrency.py, where a
carrier-sized pbxd holds 10,000 calls. This holds a list and, while its reader waits, one
future (`wait`; a coroutine waiting in `get` would hold a frame too).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Mailbox(Generic[Item]):
    """Items in the order they were put; `wait` until there is one, then `pop` it."""

    __slots__ = ("_items", "_reader")

    def __init__(self) -> None:
        self._items: list[Item] = []  # a call has a handful waiting at most
        self._reader: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        """Add `item` and wake the reader; never blocks."""
        self._items.append(item)
        reader = self._reader
        if reader is not None:
            self._reader = None
            if not reader.done():  # a cancelled reader is nobody's any more
                reader.set_result(None)

    def pop(self) -> Item:
        """The oldest item (there must be one: see `wait`)."""
        return self._items.pop(0)

    def wait(self) -> asyncio.Future[None]:
        """Done once an item is put: awaited as it is, with no coroutine of its own, so a
        call waiting for its next event holds one future and nothing else."""
        reader = asyncio.get_running_loop().create_future()
        if self._items:
            reader.set_result(None)
        else:
            self._reader = reader
        return reader
