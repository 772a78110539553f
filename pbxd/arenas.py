"""How many malloc arenas pbxd's threads share (glibc).

glibc gives each thread that allocates an arena of its own (up to 8 per core), and an
arena's freed memory mostly stays with it. pbxd's threads are its SQLite connections
(aiosqlite runs each in a thread) and the resolver's; what they allocate (SQLite's page
cache, results) was held apart in their arenas: at 1,000 calls in progress
(bench/concurrency.py) RSS grew 19.3 MB with an arena per thread, 13.0 MB with two shared,
the Python heap alike. So `pbxd run` caps them at two, as `MALLOC_ARENA_MAX=2` would; an
admin's own MALLOC_ARENA_MAX is left alone.
"""

from __future__ import annotations

import os
import sys

ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def share_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas`; call before any thread starts.

    False when nothing was changed: not glibc, or MALLOC_ARENA_MAX set already.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    import ctypes  # only here: ~0.3 MB nobody else in pbxd needs

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))  # musl has a mallopt that does nothing: 0
