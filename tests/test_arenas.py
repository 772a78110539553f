"""pbxd's threads share two malloc arenas (glibc), unless the admin said otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pbxd.arenas import share_malloc_arenas

# In a process of its own: the cap lasts for the process's life.
_PROBE = "from pbxd.arenas import share_malloc_arenas; print(share_malloc_arenas())"


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt: Linux only")
def test_the_arenas_are_capped_on_glibc() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(_glibc())


def test_an_admins_malloc_arena_max_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert share_malloc_arenas() is False
