"""A call's queue of things to handle: ARI events, its timers, resyncs.

One reader (the call's task), never full. An `asyncio.Queue` holds four deques, an Event
and a counter: 4.6 KB per call, measured with tracemalloc in bench/concurrency.py, where a
carrier-sized pbxd holds 10,000 calls. This holds a list and, while its reader waits, one
future.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Mailbox(Generic[Item]):
    """Items in the order they were put; `get` waits for one."""

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
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def get(self) -> Item:
        """The oldest item, waiting for one if there is none."""
        while not self._items:
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self._items.pop(0)
