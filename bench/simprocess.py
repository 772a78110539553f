"""The benches' simulator in a child process (spawned), so its CPU stays out of pbxd's figures.

The child is given one end of a pipe, then `args`; it sends ("url", base_url) once listening,
and stops when sent ("stop",).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any


@contextlib.contextmanager
def simulator_in_child(target: Callable[..., None], *args: Any) -> Iterator[tuple[str, Connection]]:
    """Start `target(pipe_end, *args)` in a child; yield its ARI URL and our end of the pipe."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    sim = ctx.Process(target=target, args=(child, *args), name="ari-simulator", daemon=True)
    sim.start()
    try:
        if not parent.poll(30):
            sys.exit("the simulator did not start")
        _, url = parent.recv()
        yield url, parent
    finally:
        with contextlib.suppress(OSError, ValueError):
            parent.send(("stop",))  # if the run failed before telling it (else a no-op)
        sim.join(10)
        if sim.is_alive():
            sim.terminate()
            sim.join(5)
