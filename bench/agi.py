"""FastAGI latency: `route` + `result` sessions against pbxd's AGI server, as Asterisk speaks.

    .venv/bin/python bench/agi.py [--calls 2000] [--concurrency 20]

The server (`FastAgiServer`, as `pbxd run` starts it) runs in this process with the shipped
example configuration and a CDR store on SQLite in a temporary directory; the clients are
the tests' res_agi-like client (tests/agi/fake_asterisk.py) over 127.0.0.1. Each call is one
`route` session (header block + 7 SET VARIABLE) then one `result` session (arguments
given). Reported: the wall time of one session as Asterisk sees it (connect to close),
p50/p99/max, and the CPU time per call of the whole process (server and clients).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbxd.agi.server import FastAgiServer  # noqa: E402
from pbxd.cdr.store import CdrStore  # noqa: E402
from pbxd.clock import RealClock  # noqa: E402
from pbxd.config.compile import compile_config  # noqa: E402
from tests.agi.fake_asterisk import agi_headers, run_agi  # noqa: E402


async def bench(calls: int, concurrency: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    result = compile_config(ROOT / "pbxd.yaml")
    assert result.config is not None
    with tempfile.TemporaryDirectory() as folder:
        store = await CdrStore.open(f"sqlite:///{folder}/cdr.db")
        server = FastAgiServer(result.config, store, RealClock())
        _, port = await server.start("127.0.0.1:0")
        route_times: list[float] = []
        result_times: list[float] = []
        queue = list(range(calls))

        async def client() -> None:
            while queue:
                n = queue.pop()
                uniqueid = f"1764752400.{n}"
                start = time.perf_counter()
                routed = await run_agi(port, agi_headers("route", uniqueid=uniqueid))
                middle = time.perf_counter()
                args = ("ANSWER", "30", "32", "alice", "16")
                await run_agi(port, agi_headers("result", uniqueid=uniqueid, args=args))
                route_times.append(middle - start)
                result_times.append(time.perf_counter() - middle)
                assert routed.variables["PBXD_RESULT"] == "ring"

        cpu = time.process_time()
        wall = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        await store.flush()
        written = len(await store.call_log("+33170000001"))
        await server.stop()
        await store.close()
    print(f"{calls} calls, {concurrency} at once, {wall:.1f} s ({calls / wall:.0f} calls/s)")
    for name, times in (("route", route_times), ("result", result_times)):
        ms = sorted(t * 1000 for t in times)
        p99 = ms[int(len(ms) * 0.99) - 1]
        print(
            f"  {name:6} session: p50 {statistics.median(ms):.2f} ms, "
            f"p99 {p99:.2f} ms, max {ms[-1]:.2f} ms"
        )
    print(f"  CPU per call (server + clients): {cpu / calls * 1000:.2f} ms")
    print(f"  CDRs written: {written}")
    assert written == calls, "every call must have its CDR"


def main() -> None:
    """Parse the arguments and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(bench(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
