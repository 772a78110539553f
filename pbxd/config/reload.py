"""Reloading the configuration while calls go on: compile elsewhere, swap at once.

`systemctl reload pbxd` (SIGHUP) and the HTTP API both call `RunningConfig.reload()`. It
re-reads every YAML file in a child process (`compile_elsewhere`): 100,000 numbers take about
a second of CPU, far longer than the event loop may stall (ARI events queue up, timers slip).
A configuration with any error is refused whole, its FILE:LINE:COLUMN errors logged, and the
running one stays. A good one is swapped in with one assignment per holder (`on_swap`):
calls in progress keep the `Flow` they were planned with, new calls are planned on the new
configuration, and the daemon's count of outbound legs per trunk is untouched.

The child sends the Config back as a stream of small pickles written by one Pickler (its
memo spans them: a Route shared by a thousand numbers crosses once and stays one object).
The loop keeps the answer in the blocks it was read in (never one large copy), unpickles it
a slice at a time (`SLICE_SECONDS`), with the cyclic GC paused, then freezes the result out
of the GC's reach (`pbxd.heap`, as at start-up) and frees the replaced configuration a
slice at a time too. The compiler process runs at the lowest priority (SCHED_IDLE, nice
19), so on a busy machine the daemon's loop comes first. bench/reload.py measures the
longest stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import dataclasses
import gc
import io
import os
import pickle
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from pbxd import heap
from pbxd.config.compile import CompileResult, compile_config
from pbxd.config.diagnostics import Diagnostic, Severity
from pbxd.config.model import (
    Block,
    Config,
    DaemonSettings,
    Fallback,
    Greeting,
    RingTarget,
    Route,
    Target,
    VirtualNumber,
)

log = structlog.get_logger("pbxd.reload")

# The event loop runs other work at least this often while a configuration is taken in.
SLICE_SECONDS = 0.001
# Entries per pickle: each unpickles in well under a slice (a route weighs ~20 numbers).
PIECE_ENTRIES = 100
PIECE_ENTRIES_OF = {"routes": 25}
# Config's indexes, in the order they cross: what later ones point to has crossed already.
INDEXES = (
    "trunks",
    "trunk_of_endpoint",
    "targets",
    "hours",
    "mailboxes",
    "blocks",
    "routes",
    "numbers",
)
ROUTED = "route_of_number"  # filled with "numbers": both indexes share each key string
# Settings a reload applies: where the YAML is read from. The rest (ARI, database, state
# directory, listening addresses, log level) are held by running connections: a restart.
RELOADED_SETTINGS = frozenset({"trunks_file", "routing_dir", "sounds_dir"})
_LENGTH = struct.Struct(">Q")
_HEAD_LIMIT = 1 << 28  # the diagnostics of a broken 1,000,000-number configuration fit
ANSWER_BLOCK = 1 << 16  # the compiler process's answer is read and kept in blocks this big
# The child's command: `-c`, not `-m`, so the classes it pickles keep their module's name.
_CHILD = "import sys; from pbxd.config import reload; reload.compile_to_stream(sys.argv[1])"


class CompilerFailedError(RuntimeError):
    """The compiling process could not start, crashed, or sent back something unreadable."""


class ReloadOutcome(StrEnum):
    """What became of a reload request."""

    ACCEPTED = "accepted"  # the new configuration routes new calls
    REFUSED = "refused"  # the running configuration stays


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The answer to a reload, for the log, systemd and the HTTP API."""

    outcome: ReloadOutcome
    errors: tuple[Diagnostic, ...] = ()  # why a configuration was refused, FILE:LINE:COLUMN
    warnings: tuple[Diagnostic, ...] = ()
    reason: str = ""  # a refusal without diagnostics (the compiler process failed)
    summary: str = ""  # what runs now (`Config.summary`)
    restart_needed: tuple[str, ...] = ()  # settings changed that only a restart applies
    seconds: float = 0.0  # from the request to the swap (or the refusal)

    @property
    def accepted(self) -> bool:
        """True when the new configuration was swapped in."""
        return self.outcome is ReloadOutcome.ACCEPTED

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the HTTP API's answer)."""
        return {
            "outcome": str(self.outcome),
            "errors": [str(d) for d in self.errors],
            "warnings": [str(d) for d in self.warnings],
            "reason": self.reason,
            "summary": self.summary,
            "restart_needed": list(self.restart_needed),
            "seconds": round(self.seconds, 3),
        }


Compiler = Callable[[Path], Awaitable[CompileResult]]
"""Reads and checks a pbxd.yaml and everything it names: `compile_elsewhere` or `compile_here`."""

Listener = Callable[[Config], None]


class RunningConfig:
    """The configuration calls are planned on now, and the way to replace it.

    Hold this object, never a `Config` across a reload: the replaced Config is emptied (a
    slice at a time, so freeing 100,000 numbers never stalls the loop) once nothing else
    refers to it. Read `current` when a call needs it.
    """

    def __init__(self, config: Config, *, compiler: Compiler | None = None) -> None:
        self._current = config
        self._compiler = compiler or compile_elsewhere
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._replaced: Config | None = None
        self.reloads = 0  # configurations swapped in since start

    @property
    def current(self) -> Config:
        """The configuration new calls are planned on."""
        return self._current

    @property
    def config_path(self) -> Path:
        """The pbxd.yaml a reload reads."""
        return self._current.settings.config_path

    def on_swap(self, listener: Listener) -> None:
        """Call `listener(new)` at each swap, synchronously: it must only store the Config."""
        self._listeners.append(listener)

    async def reload(self) -> ReloadResult:
        """Re-read every YAML file; swap the result in, or keep the running configuration.

        Reloads never overlap: one asked meanwhile runs after, on the files as they are then.
        """
        async with self._lock:
            started = time.monotonic()
            path = self.config_path
            log.info("config_reload_started", config=str(path))
            try:
                compiled = await self._compiler(path)
            except CompilerFailedError as exc:
                log.error("config_reload_refused", config=str(path), reason=str(exc))
                return ReloadResult(
                    ReloadOutcome.REFUSED, reason=str(exc), seconds=time.monotonic() - started
                )
            errors = tuple(d for d in compiled.diagnostics if d.severity is Severity.ERROR)
            warnings = tuple(d for d in compiled.diagnostics if d.severity is Severity.WARNING)
            for diagnostic in errors:
                log.error("config_error", diagnostic=str(diagnostic))
            for diagnostic in warnings:
                log.warning("config_warning", diagnostic=str(diagnostic))
            if compiled.config is None:
                log.error(
                    "config_reload_refused",
                    config=str(path),
                    errors=len(errors),
                    hint="the running configuration stays; fix the errors and reload again",
                )
                return ReloadResult(
                    ReloadOutcome.REFUSED,
                    errors,
                    warnings,
                    reason=f"{len(errors)} error(s) in the configuration",
                    summary=self._current.summary(),
                    seconds=time.monotonic() - started,
                )
            settings, restart_needed = settings_after_reload(
                self._current.settings, compiled.config.settings
            )
            compiled.config.settings = settings
            self._swap(compiled.config)
            del compiled  # the swapped Config is held by its holders only
            took = time.monotonic() - started
            if restart_needed:
                log.warning(
                    "config_reload_needs_restart",
                    settings=list(restart_needed),
                    hint="these settings keep their running value until pbxd restarts",
                )
            log.info("config_reloaded", summary=self._current.summary(), seconds=round(took, 3))
            await self._free_replaced()
            return ReloadResult(
                ReloadOutcome.ACCEPTED,
                (),
                warnings,
                summary=self._current.summary(),
                restart_needed=restart_needed,
                seconds=took,
            )

    def _swap(self, config: Config) -> None:
        """The new configuration everywhere, before anything else runs on the loop."""
        self._replaced, self._current = self._current, config
        for listener in self._listeners:
            listener(config)
        self.reloads += 1
        heap.freeze_long_lived()  # compiled here (tests): the new Config out of the GC's way

    async def _free_replaced(self) -> None:
        """Empty the replaced configuration a slice at a time, unless something still reads it."""
        replaced, self._replaced = self._replaced, None
        # This frame's name and getrefcount's argument: anything more is another holder,
        # which refcounting frees once it lets go.
        if replaced is None:
            return
        if sys.getrefcount(replaced) > 2:
            log.debug("config_replaced_still_held", holders=sys.getrefcount(replaced) - 2)
            return
        await _in_slices(_emptied(replaced))
        log.debug("config_replaced_freed")


def _emptied(config: Config) -> Iterator[None]:
    """Pop every entry of the Config's indexes, a hundred at a time."""
    for name in (ROUTED, *reversed(INDEXES)):
        index: dict[Any, Any] = getattr(config, name)
        while index:
            for _ in range(min(PIECE_ENTRIES, len(index))):
                index.popitem()
            yield None


async def _in_slices(steps: Iterator[object]) -> None:
    """Run `steps` to the end, letting the loop run other work every `SLICE_SECONDS`."""
    slice_began = time.perf_counter()
    for _ in steps:
        if time.perf_counter() - slice_began >= SLICE_SECONDS:
            await asyncio.sleep(0)
            slice_began = time.perf_counter()


def settings_after_reload(
    running: DaemonSettings, new: DaemonSettings
) -> tuple[DaemonSettings, tuple[str, ...]]:
    """The settings to run with after a reload, and the names of those a restart applies."""
    differ = tuple(
        f.name
        for f in dataclasses.fields(DaemonSettings)
        if f.name not in RELOADED_SETTINGS and getattr(running, f.name) != getattr(new, f.name)
    )
    kept = dataclasses.replace(
        running, **{name: getattr(new, name) for name in sorted(RELOADED_SETTINGS)}
    )
    return kept, differ


# ---------------------------------------------------------------------------- compiling


async def compile_here(config_path: Path) -> CompileResult:
    """Compile in this process (blocks the loop: for tests and small configurations)."""
    return compile_config(config_path)


async def compile_elsewhere(config_path: Path) -> CompileResult:
    """Compile in a child Python process; take the result in without stalling the loop.

    The child inherits the environment (PBXD_* overrides) and the working directory (file
    names in diagnostics), as `pbxd check` would see them. Cancelled, it kills the child.
    """
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            str(config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise CompilerFailedError(f"cannot start the compiler process: {exc}") from exc
    assert child.stdout is not None and child.stderr is not None
    err = asyncio.ensure_future(child.stderr.read())  # beside stdout: neither pipe fills up
    try:
        # Block by block, never joined: one 5 MB bytes object (100,000 numbers) took
        # 16-20 ms of the loop under traffic to assemble (fresh pages, each a fault).
        out: list[bytes] = []
        while block := await child.stdout.read(ANSWER_BLOCK):
            out.append(block)
        message = await err
        await child.wait()
    except BaseException:
        err.cancel()
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        tail = message.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise CompilerFailedError(
            f"the compiler process exited with status {child.returncode}: {tail[0]}"
        )
    return await decode(io.BufferedReader(_Blocks(out), ANSWER_BLOCK))


class _Blocks(io.RawIOBase):
    """The child's answer as a file, read across the blocks it came in (none joined)."""

    def __init__(self, blocks: list[bytes]) -> None:
        super().__init__()
        self._blocks = blocks
        self._at = 0  # the block being read
        self._offset = 0  # within it

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Copy what is left of the current block (at most `len(buffer)` bytes)."""
        while self._at < len(self._blocks):
            block = self._blocks[self._at]
            n = min(len(buffer), len(block) - self._offset)
            if n > 0:
                buffer[:n] = memoryview(block)[self._offset : self._offset + n]
                self._offset += n
                return n
            self._blocks[self._at] = b""  # read: its memory goes as the next one is read
            self._at, self._offset = self._at + 1, 0
        return 0


def compile_to_stream(config_path: str, out: BinaryIO | None = None) -> None:
    """The child's side: compile, then write the diagnostics and the Config's pieces."""
    if out is None:
        # Only our bytes on the real stdout: anything printed while compiling goes to stderr.
        out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
    run_at_idle_priority()
    result = compile_config(Path(config_path))
    out.write(encode(result))
    out.flush()


def run_at_idle_priority() -> None:
    """This process yields the CPU to anything else (the daemon's loop comes first).

    SCHED_IDLE where Linux has it: a core running only idle-class work counts as idle when
    the daemon wakes (Linux 5.4+), so the daemon runs there at once; at nice 19 the woken
    loop could wait behind the compiler (bench/reload.py: the 1 ms ticker 7-15 ms late
    while the thread was not running). An idle-class process still gets a small share of
    a saturated machine (weight 3 of a normal 1,024), so a reload ends, later. Nice 19 as
    well, for systems without it.
    """
    with contextlib.suppress(OSError):
        os.nice(19 - os.nice(0))
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


# The classes there are thousands of: rebuilt by their constructor, twice as fast to unpickle
# as dataclasses' own __setstate__ (which looks their fields up again for each object).
# (Mark, a named tuple, already pickles as its class and arguments.)
_BUILT_BY_CONSTRUCTOR = (VirtualNumber, Block, Target, RingTarget, Route, Fallback, Greeting)


def _constructor_arguments(obj: Any) -> tuple[type, tuple[Any, ...]]:
    """`obj` as its class and the positional arguments that rebuild it."""
    return type(obj), tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))


def _dispatch_table() -> dict[type, Any]:
    table: dict[type, Any] = dict(copyreg.dispatch_table)
    for cls in _BUILT_BY_CONSTRUCTOR:
        # A field left out of __init__ would be lost on the way.
        assert all(f.init for f in dataclasses.fields(cls)), cls
        table[cls] = _constructor_arguments
    return table


def encode(result: CompileResult) -> bytes:
    """A compile result as bytes: the diagnostics, then the Config in pieces (if any)."""
    stream = io.BytesIO()
    pieces = 0
    if result.config is not None:
        table = _dispatch_table()
        crossed: dict[int, tuple[str, Any]] = {}
        for piece, newly_crossed in _pieces(result.config):
            # A pickler per piece: its memo (every constructor's arguments) dies with it.
            pickler = _PiecePickler(stream, crossed)
            pickler.dispatch_table = table
            pickler.dump(piece)
            pieces += 1
            crossed.update(newly_crossed)
    head = pickle.dumps((list(result.diagnostics), pieces), protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(head)) + head + stream.getvalue()


class _PiecePickler(pickle.Pickler):
    """Writes an object that crossed in an earlier piece as a reference to its index entry."""

    def __init__(self, stream: BinaryIO, crossed: dict[int, tuple[str, Any]]) -> None:
        super().__init__(stream, protocol=pickle.HIGHEST_PROTOCOL)
        self._crossed = crossed

    def persistent_id(self, obj: Any) -> tuple[str, Any] | None:
        return self._crossed.get(id(obj))


class _PieceUnpickler(pickle.Unpickler):
    """Resolves the references `_PiecePickler` wrote in the Config being filled."""

    def __init__(self, stream: BinaryIO, config: Config) -> None:
        super().__init__(stream)
        self._config = config

    def persistent_load(self, pid: Any) -> Any:
        name, key = pid
        if name not in INDEXES:
            raise pickle.UnpicklingError(f"reference to an unknown index {name!r}")
        return getattr(self._config, name)[key]


def _pieces(config: Config) -> Iterator[tuple[object, dict[int, tuple[str, Any]]]]:
    """The Config with empty indexes, then its entries a hundred at a time.

    Each piece comes with the objects it makes known (by id), which later pieces refer to
    instead of copying: a route's targets, a number's route. A number's route travels with
    the number, so both indexes share one key string.
    """
    empty: dict[str, Any] = {name: {} for name in (*INDEXES, ROUTED)}
    yield dataclasses.replace(config, **empty), {}
    routed = config.route_of_number
    for name in INDEXES:
        items = list(getattr(config, name).items())
        size = PIECE_ENTRIES_OF.get(name, PIECE_ENTRIES)
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            keys, values = [k for k, _ in chunk], [v for _, v in chunk]
            known = {id(v): (name, k) for k, v in chunk}
            if name == "numbers":
                yield (name, keys, values, [routed.get(k) for k in keys]), known
            else:
                yield (name, keys, values, None), known
    strays = [(k, v) for k, v in routed.items() if k not in config.numbers]
    if strays:  # routed numbers outside the inventory: `compile` refuses them today
        yield (ROUTED, [k for k, _ in strays], [v for _, v in strays], None), {}


async def decode(stream: BinaryIO) -> CompileResult:
    """Read what `encode` wrote, unpickling a slice at a time with the cyclic GC paused."""
    try:
        (length,) = _LENGTH.unpack(stream.read(_LENGTH.size))
        if length > _HEAD_LIMIT:  # not our answer: never allocate what a stray length says
            raise ValueError(f"a head of {length} bytes")
        diagnostics, pieces = pickle.loads(stream.read(length))
    except (struct.error, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise CompilerFailedError(f"unreadable answer from the compiler process: {exc}") from exc
    if pieces == 0:
        return CompileResult(None, list(diagnostics))
    was_enabled = gc.isenabled()
    # 500,000 new objects would set off full collections over all of them, mid-traffic.
    gc.disable()
    try:
        config = pickle.Unpickler(stream).load()
        if not isinstance(config, Config):
            raise CompilerFailedError("the compiler process sent no configuration")
        await _in_slices(_filled(config, stream, pieces - 1))
        # Before the GC is back on, or its first pass would walk all of it.
        heap.freeze_long_lived()
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise CompilerFailedError(f"unreadable answer from the compiler process: {exc}") from exc
    finally:
        if was_enabled:
            gc.enable()
    return CompileResult(config, list(diagnostics))


def _filled(config: Config, stream: BinaryIO, pieces: int) -> Iterator[None]:
    """Fill the Config's indexes from the next `pieces` pickles, one piece per step."""
    routed = config.route_of_number
    for _ in range(pieces):
        name, keys, values, routes = _PieceUnpickler(stream, config).load()
        if name not in INDEXES and name != ROUTED:
            raise CompilerFailedError(f"the compiler process sent an unknown index {name!r}")
        getattr(config, name).update(zip(keys, values, strict=True))
        if routes is not None:
            # Both indexes grow in step: growing a 100,000-entry dict copies it (~3 ms), so
            # their two copies must not fall in one slice.
            yield None
            routed.update((k, r) for k, r in zip(keys, routes, strict=True) if r is not None)
        yield None
