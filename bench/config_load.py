"""Benchmark: compile a configuration of 100,000 numbers and look routes up.

Generates pbxd.yaml, sip-trunks.yaml and routing/ in a temporary directory: single numbers
plus 100-number blocks (60 % of the numbers), routes of 10 numbers each plus one route per
block, 200 targets. Numbers are written in E.164, or with --national as an admin in France
would write them (`01 70 00 00 01`, `country: FR`), which takes phonenumbers' full parser.
Prints the compile time (best and median of several runs) and the time of one route lookup
at 1,000 and at 100,000 numbers (constant time: they should match).

The compile time covers everything `pbxd check` does: reading and parsing the YAML files
from disk, validating, cross-referencing and indexing.

Run: .venv/bin/python bench/config_load.py [--numbers 100000] [--runs 5] [--national]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from pbxd.config.compile import compile_config

BLOCK_SIZE = 100


def _national(e164: str) -> str:
    """`+33170000001` -> `01 70 00 00 01`, the French national form."""
    digits = "0" + e164[3:]
    return " ".join(digits[i : i + 2] for i in range(0, 10, 2))


def generate(
    root: Path, total: int, national: bool = False, *, endpoint: str = "trunk-in", offset: int = 0
) -> list[str]:
    """Write a configuration with `total` numbers under root; return every E.164 number.

    `endpoint` is the trunk's inbound endpoint; single numbers start at +3317 `offset`
    (bench/reload.py adds bench/calls.py's routes beside them, on their own trunk).
    """
    written = _national if national else str
    in_blocks = (total * 6 // 10) // BLOCK_SIZE * BLOCK_SIZE
    singles = total - in_blocks
    numbers: list[str] = []
    inventory = []
    routes = []
    # Singles: +33 1 7x xx xx xx; blocks: +33 1 8x xx xx 00..99 (never overlapping).
    for i in range(offset, offset + singles):
        e164 = f"+3317{i:07d}"
        numbers.append(e164)
        inventory.append(f"      - number: '{written(e164)}'\n")
    for b in range(in_blocks // BLOCK_SIZE):
        first = f"+3318{b:05d}00"
        last = f"+3318{b:05d}99"
        numbers.extend(f"+3318{b:05d}{j:02d}" for j in range(BLOCK_SIZE))
        inventory.append(
            f"      - block: b{b}\n        range: '{written(first)} - {written(last)}'\n"
        )
        routes.append(f"  - block: b{b}\n    targets: [t{b % 200}]\n")
    for r in range(offset, offset + singles, 10):
        end = min(r + 10, offset + singles)
        chunk = ", ".join(f"'{written(f'+3317{i:07d}')}'" for i in range(r, end))
        routes.append(
            f"  - name: r{r}\n    numbers: [{chunk}]\n    strategy: hunt\n"
            f"    targets: [t{r % 200}, {{target: t{(r + 1) % 200}, ring_time: 15}}]\n"
        )
    (root / "pbxd.yaml").write_text("state_dir: var\n")
    (root / "sip-trunks.yaml").write_text(
        f"trunks:\n  carrier:\n    inbound_endpoint: {endpoint}\n"
        "    dial: 'PJSIP/{number}@trunk-out'\n    allowed_destinations: ['+33']\n"
        "    timezone: Europe/Paris\n    country: FR\n    numbers:\n" + "".join(inventory)
    )
    (root / "routing").mkdir()
    targets = "".join(f"  t{i}:\n    softphone: PJSIP/user{i}\n" for i in range(200))
    (root / "routing" / "all.yaml").write_text(
        "country: FR\ntargets:\n" + targets + "routes:\n" + "".join(routes)
    )
    return numbers


def lookup_ns(config_numbers: list[str], route_for: object, rounds: int = 200) -> float:
    """Mean nanoseconds per `route_for` call.

    1,000 numbers are copied into fresh strings (as a parsed ARI event gives them, hash not
    yet cached) and looked up `rounds` times, so the figure reflects the lookup itself rather
    than cache misses over a large random sample.
    """
    chosen = random.sample(config_numbers, 1_000)
    fn = route_for  # bound method
    total = 0
    for _ in range(rounds):
        fresh = ["".join(list(e164)) for e164 in chosen]
        start = time.perf_counter_ns()
        for e164 in fresh:
            fn(e164)  # type: ignore[operator]
        total += time.perf_counter_ns() - start
    return total / (rounds * len(chosen))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--national", action="store_true", help="numbers in national form")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        numbers = generate(root, args.numbers, args.national)
        size = sum(p.stat().st_size for p in root.rglob("*.yaml"))
        times, cpu = [], []
        for _ in range(args.runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = compile_config(root / "pbxd.yaml")
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert result.config is not None, [str(d) for d in result.diagnostics[:5]]
        config = result.config
        form = "national form" if args.national else "E.164"
        print(f"config: {config.summary()}, {size / 1e6:.1f} MB of YAML, numbers in {form}")
        print(
            f"compile wall: best {min(times):.2f} s, median {statistics.median(times):.2f} s; "
            f"CPU: best {min(cpu):.2f} s, median {statistics.median(cpu):.2f} s "
            f"({args.runs} runs)"
        )
        big = lookup_ns(numbers, config.route_for)
    with tempfile.TemporaryDirectory() as tmp:
        small_numbers = generate(Path(tmp), 1_000)
        small = compile_config(Path(tmp) / "pbxd.yaml").config
        assert small is not None
        little = lookup_ns(small_numbers, small.route_for)
    print(
        f"route lookup: {little:.0f} ns at 1,000 numbers, {big:.0f} ns at {args.numbers:,} numbers"
    )


if __name__ == "__main__":
    main()
