"""Reloading the configuration: compiled in a child process, refused whole, swapped at once."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from pbxd.config import reload
from pbxd.config.compile import CompileResult, compile_config
from pbxd.config.model import Config
from pbxd.config.reload import (
    ReloadOutcome,
    RunningConfig,
    compile_elsewhere,
    compile_here,
    decode,
    encode,
)
from tests.config.conftest import Edit


def _compiled(path: Path) -> Config:
    result = compile_config(path)
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


def _number(i: int) -> str:
    return f"'+3317{i:07d}'"


def _many_numbers(root: Path, count: int) -> Path:
    """A configuration of `count` numbers, ten to a route, two targets each."""
    numbers = "".join(f"      - number: {_number(i)}\n" for i in range(count))
    routes = "".join(
        f"  - name: r{r}\n    numbers: [{', '.join(_number(i) for i in range(r, r + 10))}]\n"
        f"    targets: [t{r % 7}, t{(r + 1) % 7}]\n"
        for r in range(0, count, 10)
    )
    targets = "".join(f"  t{i}: {{softphone: PJSIP/user{i}}}\n" for i in range(7))
    (root / "routing").mkdir(parents=True)
    (root / "pbxd.yaml").write_text("state_dir: var\n")
    (root / "sip-trunks.yaml").write_text(
        "trunks:\n  carrier:\n    inbound_endpoint: trunk-in\n"
        "    dial: 'PJSIP/{number}@trunk-out'\n    numbers:\n" + numbers
    )
    (root / "routing" / "all.yaml").write_text("targets:\n" + targets + "routes:\n" + routes)
    return root / "pbxd.yaml"


# ----------------------------------------------------------------------- the transfer


async def test_the_configuration_crosses_whole_and_keeps_its_shared_objects(
    example: Path,
) -> None:
    original = compile_config(example / "pbxd.yaml")
    crossed = await decode(io.BytesIO(encode(original)))
    assert crossed.diagnostics == original.diagnostics
    config = crossed.config
    assert config is not None and config == original.config
    # One object per route, per target, per trunk, as the compiler built them.
    for e164, route in config.route_of_number.items():
        assert route is config.routes[route.name], e164
    for route in config.routes.values():
        for ring in route.targets:
            assert ring.target is config.targets[ring.target.name]
    for trunk in config.trunk_of_endpoint.values():
        assert trunk is config.trunks[trunk.name]
    for name, hours in config.hours.items():
        assert all(r.hours is hours for r in config.routes.values() if r.hours == hours), name


async def test_a_large_configuration_crosses_in_pieces_the_loop_runs_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = compile_config(_many_numbers(tmp_path, 2_000))
    data = encode(original)
    monkeypatch.setattr(reload, "SLICE_SECONDS", 0.0)  # give the loop a turn after each piece
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = turns
    crossed = await decode(io.BytesIO(data))
    running.cancel()
    assert crossed.config == original.config
    # 2,000 numbers by the hundred, 200 routes by 25, and the few small indexes.
    assert turns - before >= 2_000 // reload.PIECE_ENTRIES + 200 // 25


async def test_the_answer_is_read_across_the_blocks_it_came_in(tmp_path: Path) -> None:
    original = compile_config(_many_numbers(tmp_path, 500))
    data = encode(original)
    # Uneven blocks, some empty, as a pipe may deliver them; the reader joins none of them.
    assert len(data) > 10_000
    cuts = [0, 1, 7, 7, 4_096, 4_097, len(data) // 2, len(data) - 3, len(data)]
    blocks = [data[a:b] for a, b in itertools.pairwise(cuts)]
    assert b"".join(blocks) == data
    stream = io.BufferedReader(reload._Blocks(blocks), 1_000)
    crossed = await decode(stream)
    assert crossed.config == original.config
    assert stream.read() == b""  # all of it read, nothing left over
    assert not any(blocks[:-1])  # each block let go once read


async def test_a_stray_length_in_the_answer_is_refused_before_anything_is_allocated() -> None:
    stray = io.BytesIO(reload._LENGTH.pack(1 << 60) + b"not a configuration")
    with pytest.raises(reload.CompilerFailedError, match="unreadable answer"):
        await decode(stray)


async def test_a_refused_configuration_crosses_as_its_diagnostics_only(edit: Edit) -> None:
    edit("routing/acme.yaml", "targets: [alice, bob, ceo-mobile]", "targets: [alice, bobby]")
    original = compile_config(Path("pbxd.yaml"))
    crossed = await decode(io.BytesIO(encode(original)))
    assert crossed.config is None
    assert crossed.diagnostics == original.diagnostics != []


@pytest.mark.timeout(180)  # a child process compiles: slow on a loaded machine
async def test_the_compiler_process_sees_what_pbxd_check_sees(edit: Edit) -> None:
    good = await compile_elsewhere(Path("pbxd.yaml"))
    assert good.config == _compiled(Path("pbxd.yaml"))
    edit("routing/acme.yaml", "timeout: 30", "timeout: soon")
    bad = await compile_elsewhere(Path("pbxd.yaml"))
    assert bad.config is None
    # Same files, same working directory: the same FILE:LINE:COLUMN.
    assert [str(d) for d in bad.diagnostics] == [
        str(d) for d in compile_config(Path("pbxd.yaml")).diagnostics
    ]
    assert any(str(d).startswith("routing/acme.yaml:") for d in bad.diagnostics)


@pytest.mark.parametrize(
    ("child", "reason"),
    [
        ("import sys; sys.exit(3)", "exited with status 3"),
        ("import sys; sys.stdout.write('not a configuration')", "unreadable answer"),
    ],
)
async def test_a_compiler_process_that_fails_is_a_refusal_not_a_crash(
    example: Path, monkeypatch: pytest.MonkeyPatch, child: str, reason: str
) -> None:
    monkeypatch.setattr(reload, "_CHILD", child)
    running = RunningConfig(_compiled(example / "pbxd.yaml"))
    before = running.current
    with structlog.testing.capture_logs() as logs:
        result = await running.reload()
    assert result.outcome is ReloadOutcome.REFUSED and reason in result.reason
    assert running.current is before
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["config_reload_refused"]


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's idle scheduling class")
async def test_the_compiler_process_runs_in_the_idle_class_at_the_lowest_nice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The child says how it runs, on stderr, and fails: its words come back in the refusal.
    monkeypatch.setattr(
        reload,
        "_CHILD",
        "import os, sys; from pbxd.config import reload; reload.run_at_idle_priority(); "
        "sys.stderr.write(f'{os.sched_getscheduler(0)} {os.nice(0)}'); sys.exit(3)",
    )
    with pytest.raises(reload.CompilerFailedError) as refused:
        await compile_elsewhere(tmp_path / "pbxd.yaml")
    assert str(refused.value).endswith(f": {os.SCHED_IDLE} 19")


async def test_a_cancelled_reload_kills_its_compiler_process(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reload, "_CHILD", "import time; time.sleep(60)")
    started: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await spawn(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    running = RunningConfig(_compiled(example / "pbxd.yaml"))
    reloading = asyncio.create_task(running.reload())
    async with asyncio.timeout(20):
        while not started:  # noqa: ASYNC110 - the spawn has no event to wait on
            await asyncio.sleep(0.01)
    reloading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reloading
    assert started[0].returncode is not None  # killed and reaped, not left compiling


# ----------------------------------------------------------------------- the swap


async def test_a_configuration_with_errors_is_refused_whole_and_each_error_logged(
    edit: Edit,
) -> None:
    running = RunningConfig(_compiled(Path("pbxd.yaml")), compiler=compile_here)
    before = running.current
    swapped: list[Config] = []
    running.on_swap(swapped.append)
    # One good change and two errors in two files: nothing of it is taken.
    edit("routing/acme.yaml", "targets: [alice, bob, ceo-mobile]", "targets: [alice, bobby]")
    edit("routing/london.yaml", "timeout: 30", "timeout: -1")
    edit("routing/acme.yaml", "timeout: 40", "timeout: 45")
    with structlog.testing.capture_logs() as logs:
        result = await running.reload()
    assert result.outcome is ReloadOutcome.REFUSED and not result.accepted
    assert running.current is before and swapped == []
    assert before.routes["direct-lines"].timeout == 40
    logged = [e["diagnostic"] for e in logs if e["event"] == "config_error"]
    assert logged == [str(d) for d in result.errors]
    assert {line.split(":")[0] for line in logged} == {"routing/acme.yaml", "routing/london.yaml"}
    assert all(line.split(":")[1].isdigit() and line.split(":")[2].isdigit() for line in logged)
    assert "bobby" in " ".join(logged)
    assert [e["event"] for e in logs][-1] == "config_reload_refused"
    assert result.as_dict()["outcome"] == "refused"


async def test_a_good_configuration_is_swapped_in_for_every_holder(edit: Edit) -> None:
    running = RunningConfig(_compiled(Path("pbxd.yaml")), compiler=compile_here)
    swapped: list[Config] = []
    running.on_swap(swapped.append)
    edit(
        "routing/acme.yaml",
        "targets: [alice, bob]\n    timeout: 40",
        "targets: [bob]\n    timeout: 45",
    )
    with structlog.testing.capture_logs() as logs:
        result = await running.reload()
    assert result.accepted and result.errors == () and result.restart_needed == ()
    assert swapped == [running.current]
    route = running.current.routes["direct-lines"]
    assert (route.timeout, [r.target.name for r in route.targets]) == (45, ["bob"])
    assert result.summary == running.current.summary()
    # Nothing else held the replaced configuration: freed a slice at a time.
    assert [e["event"] for e in logs] == [
        "config_reload_started",
        "config_reloaded",
        "config_replaced_freed",
    ]
    assert running.reloads == 1


async def test_a_replaced_configuration_someone_still_holds_is_left_whole(edit: Edit) -> None:
    running = RunningConfig(_compiled(Path("pbxd.yaml")), compiler=compile_here)
    held = running.current
    numbers = dict(held.numbers)
    edit("routing/acme.yaml", "timeout: 40", "timeout: 45")
    with structlog.testing.capture_logs() as logs:
        assert (await running.reload()).accepted
    [still] = [e for e in logs if e["event"] == "config_replaced_still_held"]
    assert still["holders"] >= 1
    # Freed a slice at a time only when nothing else refers to it: this one is read still.
    assert held.numbers == numbers and held.route_of_number
    assert held.routes["direct-lines"].timeout == 40


def test_freeing_a_replaced_configuration_empties_every_index(example: Path) -> None:
    config = _compiled(example / "pbxd.yaml")
    steps = list(reload._emptied(config))
    assert len(steps) >= 2  # one step per hundred entries of each index, at least
    for name in (*reload.INDEXES, reload.ROUTED):
        assert getattr(config, name) == {}, name


async def test_settings_held_by_connections_wait_for_a_restart(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = RunningConfig(_compiled(example / "pbxd.yaml"), compiler=compile_here)
    url = running.current.settings.ari_url
    text = (example / "pbxd.yaml").read_text()
    (example / "pbxd.yaml").write_text(
        text.replace("http://127.0.0.1:8088/ari", "http://10.0.0.9:8088/ari").replace(
            "log_level: info", "log_level: debug"
        )
    )
    (example / "london").mkdir()
    (example / "london" / "all.yaml").write_text(
        textwrap.dedent(
            """\
            country: FR
            targets: {desk: {softphone: PJSIP/desk}}
            routes:
              - {name: all, numbers: ["+33 1 70 00 00 01", "09 72 10 00 01"], targets: [desk]}
            """
        )
    )
    monkeypatch.setenv("PBXD_ROUTING_DIR", "london")  # where routing is read: applied now
    with structlog.testing.capture_logs() as logs:
        result = await running.reload()
    assert result.accepted
    assert result.restart_needed == ("ari_url", "log_level")
    settings = running.current.settings
    assert settings.ari_url == url and settings.log_level == "info"
    assert settings.routing_dir == (example / "london").resolve()
    assert list(running.current.routes) == ["all"]
    [warning] = [e for e in logs if e["event"] == "config_reload_needs_restart"]
    assert warning["settings"] == ["ari_url", "log_level"]


async def test_reloads_asked_together_run_one_after_the_other(example: Path) -> None:
    active = 0
    most = 0
    release = asyncio.Event()

    async def slow(path: Path) -> CompileResult:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await release.wait()
        active -= 1
        return compile_config(path)

    running = RunningConfig(_compiled(example / "pbxd.yaml"), compiler=slow)
    both = asyncio.gather(running.reload(), running.reload())
    await asyncio.sleep(0.01)
    release.set()
    first, second = await both
    assert first.accepted and second.accepted
    assert most == 1 and running.reloads == 2
