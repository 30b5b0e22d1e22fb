"""Several endpoints in one process (issue #14): a fan-out against sequential calls, idle cost.

Starts five private daemons (``--daemons``), each with 10 running containers.

E1  ``pool.router.ask(ListContainers())`` on a pool of the five endpoints (one
    fan-out: every endpoint's router asked at once, the replies merged) against
    five sequential docker-py ``APIClient.containers()`` calls, one per daemon,
    on warm clients. Rounds alternate which side goes first; the figure is the
    median of the per-round ratios. Target: the fan-out >= 3x faster.
    Also printed: the ceiling this machine allows. The daemons' own CPU per
    fan-out (their /proc stat, read in the same rounds) divided by the cores
    is the least time any fan-out can take while the daemons share this
    machine with each other and with the client; on real hosts each daemon
    has its own. Sequential time / that least time is the best ratio possible
    here, whatever the client does.
E2  (no target) What an endpoint costs idle inside one pool: the process's
    threads, RSS and CPU over ``--seconds`` of idleness with 1, 5 and 50
    endpoints (50 = ten endpoints per daemon), production pool defaults (10
    connections, health checks every 30 s), every connection used once first.
    Per endpoint = (cost at N - cost at 1) / (N - 1): the scheduler thread and
    the metrics registry are shared, so an extra endpoint costs less than an
    extra pool (bench_idle.py).

    .venv/bin/python bench/bench_endpoints.py [--quick] [--only E1] [--seconds S]
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import actorpool
from actorpool.config import Config
from actorpool.messages import ListContainers, Ping, PoolStatus
from actorpool.runtime import Pool
from actorpool.testing.sandbox import Sandbox

from _common import (
    Figure,
    Target,
    alternate,
    bench_parser,
    bench_sandbox,
    load_note,
    make_containers,
    median,
    print_table,
    round_ratios,
    rss_mib,
)


def endpoints_config(urls: dict[str, str], *, monitoring: bool = False) -> Config:
    """Production defaults with one endpoint per ``urls`` entry; no rate limit."""
    data: dict[str, Any] = {
        "docker": {
            "endpoints": {name: {"host": url} for name, url in urls.items()},
            "rate_limit": {"enabled": False},
            "monitoring": {"enabled": monitoring, "listen": "127.0.0.1:0"},
        }
    }
    return Config.from_mapping(data)


@contextlib.contextmanager
def daemons(count: int) -> Iterator[list[Sandbox]]:
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(bench_sandbox(verbose=False)) for _ in range(count)]
        print(f"# {count} private daemons: " + ", ".join(s.url for s in started))
        yield started


def daemons_cpu(sandboxes: list[Sandbox]) -> float:
    """CPU seconds the daemons have used so far (user + system, from ``/proc/PID/stat``)."""
    total = 0
    for sandbox in sandboxes:
        with open(f"/proc/{sandbox.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def fan_out_vs_sequential(sandboxes: list[Sandbox], rounds: int, calls: int) -> Figure:
    urls = {f"d{i}": s.url for i, s in enumerate(sandboxes)}
    clients = [s.client(timeout=30) for s in sandboxes]
    spent = [0.0]  # the daemons' CPU seconds during our rounds
    try:
        with actorpool.start(endpoints_config(urls)) as pool:
            expected = sum(len(c.containers()) for c in clients)
            assert len(pool.router.ask(ListContainers())) == expected  # warm, and the same answer

            def ours() -> None:
                before = daemons_cpu(sandboxes)
                for _ in range(calls):
                    pool.router.ask(ListContainers())
                spent[0] += daemons_cpu(sandboxes) - before

            def theirs() -> None:
                for _ in range(calls):
                    for client in clients:
                        client.containers()

            ours_s, theirs_s = alternate(rounds, ours, theirs)
    finally:
        for client in clients:
            client.close()
    ratio = median(round_ratios(theirs_s, ours_s))
    cpu = median(round_ratios(ours_s, theirs_s, cpu=True))
    per_ours = median([s.wall for s in ours_s]) / calls
    per_theirs = median([s.wall for s in theirs_s]) / calls
    floor = spent[0] / (rounds * calls) / (os.cpu_count() or 1)
    ceiling = per_theirs / floor
    note = (
        f"{len(sandboxes)} daemons x {expected // len(sandboxes)} containers; per fan-out; "
        f"this process's CPU {cpu:.2f}x docker-py's; the daemons' CPU per fan-out over "
        f"{os.cpu_count()} cores = {1e3 * floor:.1f} ms, so at most "
        f"{ceiling:.2f}x is possible on this machine ({ratio / ceiling:.0%} of it reached)"
    )
    return Figure.speedup(
        "E1 ListContainers fan-out vs sequential",
        per_ours,
        per_theirs,
        Target.at_least(3.0),
        note,
        ratio=ratio,
    )


def settle(pool: Pool) -> None:
    """Every connection of every endpoint used once, as a pool in use would be."""
    size = pool.config.pool.initial_pool_size
    for _ in range(size):
        pool.router.ask(Ping(timeout=30))  # a fan-out with several endpoints
    for name in pool.endpoints:
        status = pool.router.ask(PoolStatus(endpoint=name), timeout=10)
        assert status.size >= size, (name, status.size)


def idle_cost(urls: dict[str, str], seconds: float) -> tuple[int, float, float]:
    """Threads and RSS a pool of ``urls``' endpoints adds, and its idle CPU (share of a core)."""
    threads_before, rss_before = threading.active_count(), rss_mib()
    with actorpool.start(endpoints_config(urls, monitoring=True)) as pool:
        settle(pool)
        threads, rss = threading.active_count(), rss_mib()
        cpu_start, wall_start = os.times(), time.monotonic()
        time.sleep(seconds)
        cpu_end, wall = os.times(), time.monotonic() - wall_start
        rss = max(rss, rss_mib())
    cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    return threads - threads_before, rss - rss_before, cpu / wall


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--daemons", type=int, default=5, help="private daemons (default 5)")
    parser.add_argument("--seconds", type=float, default=30.0, help="idle time measured (E2)")
    args = parser.parse_args()
    only = set(args.only or ["E1", "E2"])
    rounds = args.rounds or (5 if args.quick else 15)
    calls = 10 if args.quick else 40
    seconds = min(args.seconds, 10.0) if args.quick else args.seconds
    print(f"# several endpoints; {load_note()}")
    with daemons(args.daemons) as sandboxes:
        for sandbox in sandboxes:
            make_containers(sandbox, 10)
        if "E1" in only:
            print_table([fan_out_vs_sequential(sandboxes, rounds, calls)])
        if "E2" in only:
            print(f"\nE2 idle cost inside one pool, {seconds:g} s idle each; {load_note()}")
            costs: dict[int, tuple[int, float, float]] = {}
            for count in (1, 5, 50):
                urls = {f"e{i}": sandboxes[i % len(sandboxes)].url for i in range(count)}
                costs[count] = idle_cost(urls, seconds)
                threads, rss, cpu = costs[count]
                print(
                    f"  {count:>2} endpoint(s): +{threads} threads, +{rss:.1f} MiB RSS, "
                    f"idle CPU {100 * cpu:.2f}% of one core"
                )
            base = costs[1]
            for count in (5, 50):
                threads, rss, cpu = costs[count]
                n = count - 1
                print(
                    f"  per extra endpoint (from 1 to {count}): {(threads - base[0]) / n:.1f} "
                    f"threads, {(rss - base[1]) / n:.2f} MiB, {100 * (cpu - base[2]) / n:.3f}% "
                    "of a core"
                )
    print(f"# done; {load_note()}")


if __name__ == "__main__":
    main()
