"""Benchmarks of the core engine (issue #3): router overhead, parallel stats, threaded throughput.

Every figure is compared with plain docker-py on the same private daemon in
the same run, so what is printed is a ratio, not an absolute speed:

B0  (no target) The engine's own cost: sequential ``router.ask(Execute(noop))``,
    wall and CPU per call split by thread, next to one bare Pykka ``ask``.
    Steadier than B1 on a loaded machine; use it to see a change in the path.
B1  Sequential ``Ping`` and ``ListContainers`` through ``pool.router.ask``
    against direct ``APIClient.ping()`` / ``.containers()``, with 10
    containers present. Rounds alternate which side goes first; the figure
    is the median over rounds. Target: router time <= 1.25x direct time.
B2  One-shot ``ContainerStats`` of 20 running containers with a pool of 10
    against sequential ``client.stats(c, stream=False)``.
    Target: >= 6x faster.
B3  16 caller threads issuing ``ListContainers`` through the router against
    16 threads sharing one docker-py client (same total number of calls).
    Target: >= 0.9x docker-py's throughput.

Run from the repository root: ``.venv/bin/python bench/bench_pool.py [--quick]``.
The machine is shared: look at the load note printed first and rerun when
it is high.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import pykka

import actorpool
from actorpool.messages import ContainerStats, Execute, ListContainers, Ping
from actorpool.testing.sandbox import Sandbox
from actorpool.transport.client import make_client

from _common import (
    Figure,
    Sample,
    Target,
    alternate,
    bench_config,
    bench_parser,
    bench_sandbox,
    load_note,
    make_containers,
    measure,
    median,
    print_table,
    round_ratios,
    run_threads,
)

B1_TARGET = Target.at_most(1.25)
B2_TARGET = Target.at_least(6.0)
B3_TARGET = Target.at_least(0.9)

B3_THREADS = 16
# One connection per caller thread: as many sockets as the docker-py baseline
# (max_pool_size=16), so the comparison isolates the engine. Smaller pools were
# not faster on 2 cores (sweep with --b3-sizes 2,4,8,16: 0.73x, 0.80x, 0.80x, 0.88x).
B3_POOL_SIZE = 16


def _spread(ratios: list[float]) -> str:
    ordered = sorted(ratios)
    return f"rounds {ordered[0]:.2f}..{ordered[-1]:.2f} (n={len(ordered)})"


def _noop(_client: object) -> None:
    return None


class _Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def _thread_cpu(prefixes: dict[str, str]) -> dict[str, float]:
    """CPU seconds used so far by the live threads of each role (by thread-name prefix)."""
    totals = dict.fromkeys(prefixes, 0.0)
    totals["caller"] = time.thread_time()
    for thread in threading.enumerate():
        for role, prefix in prefixes.items():
            if thread.name.startswith(prefix) and thread.ident is not None:
                with contextlib.suppress(OSError):  # the thread ended meanwhile
                    clock = time.pthread_getcpuclockid(thread.ident)
                    totals[role] += time.clock_gettime(clock)
    return totals


def bench_b0(sandbox: Sandbox, calls: int) -> list[str]:
    """Where a sequential call's time goes, by thread; no target.

    ``router.ask(Execute(noop))`` is the engine's own cost without Docker
    I/O; ``router.ask(Ping())`` next to a direct ``client.ping()`` shows what
    the hops add to a real call. Per-thread CPU (caller, router, connections,
    the rest) comes from the threads' CPU clocks, so nothing is patched, and
    CPU is far steadier than wall time on a shared machine. One bare Pykka
    ``ask`` round trip is printed for scale.
    """
    roles = {
        "router": "RouterActor",
        "connections": "ConnectionActor",
        "other actors": "SupervisorActor",
        "scheduler": "actorpool-scheduler",
        "echo actor": "_Echo",
    }
    config = bench_config(sandbox)
    lines: list[str] = []

    def per_call(label: str, call: Callable[[], Any]) -> None:
        for _ in range(200):
            call()
        before = _thread_cpu(roles)
        sample = measure(lambda: [call() for _ in range(calls)])
        after = _thread_cpu(roles)
        split = ", ".join(
            f"{role} {(after[role] - before[role]) / calls * 1e6:.0f}"
            for role in after
            if after[role] - before[role] > 0
        )
        lines.append(
            f"B0 {label} x{calls}: wall {sample.wall / calls * 1e6:.0f} µs/call, "
            f"CPU {sample.cpu / calls * 1e6:.0f} µs/call ({split})"
        )

    with actorpool.start(config) as pool:
        router = pool.router
        per_call("router.ask(Execute(noop))", lambda: router.ask(Execute(_noop)))
        per_call("router.ask(Ping())       ", lambda: router.ask(Ping()))
        client = make_client(config)
        try:
            per_call("client.ping() direct     ", client.ping)
        finally:
            client.close()
    echo = _Echo.start()
    try:
        per_call("bare pykka ask round trip", lambda: echo.ask(None))
    finally:
        echo.stop()
    return lines


def bench_b1(sandbox: Sandbox, calls: int, chunk: int) -> list[Figure]:
    """Sequential calls: what the hops through the router cost one caller."""
    make_containers(sandbox, 10)
    config = bench_config(sandbox)
    rounds = max(1, calls // chunk)
    figures: list[Figure] = []
    with actorpool.start(config) as pool:
        client = make_client(config)  # built exactly as a pooled connection's client
        try:
            router = pool.router
            for _ in range(5 * config.pool.initial_pool_size):  # open every pooled socket
                router.ask(Ping())
                router.ask(ListContainers())
            client.ping()
            client.containers()
            cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
                ("ping", lambda: router.ask(Ping()), client.ping),
                ("list_containers", lambda: router.ask(ListContainers()), client.containers),
            ]
            for name, via_router, direct in cases:

                def ours(call: Callable[[], Any] = via_router) -> None:
                    for _ in range(chunk):
                        call()

                def theirs(call: Callable[[], Any] = direct) -> None:
                    for _ in range(chunk):
                        call()

                ours_s, theirs_s = alternate(rounds, ours, theirs)
                ratios = round_ratios(ours_s, theirs_s)
                cpu_ours = sum(s.cpu for s in ours_s) / (rounds * chunk)
                cpu_theirs = sum(s.cpu for s in theirs_s) / (rounds * chunk)
                figures.append(
                    Figure.times(
                        f"B1 {name} (per call, {rounds}x{chunk} calls)",
                        median([s.wall for s in ours_s]) / chunk,
                        median([s.wall for s in theirs_s]) / chunk,
                        B1_TARGET,
                        note=(
                            f"{_spread(ratios)}; process CPU/call {cpu_ours * 1e6:.0f} vs "
                            f"{cpu_theirs * 1e6:.0f} µs ({cpu_ours / cpu_theirs:.2f}x)"
                        ),
                        ratio=median(ratios),
                    )
                )
        finally:
            client.close()
    return figures


def bench_b2(sandbox: Sandbox, containers: int, pool_size: int, rounds: int) -> list[Figure]:
    """One-shot stats: where the pool's parallelism pays (each call takes the daemon 1-2 s)."""
    ids = make_containers(sandbox, containers)
    config = bench_config(sandbox, initial_pool_size=pool_size)
    with actorpool.start(config) as pool:
        client = make_client(config)
        try:
            router = pool.router

            def ours() -> None:
                futures = [router.ask(ContainerStats(c), block=False) for c in ids]
                for future in futures:
                    future.get(timeout=120)

            def theirs() -> None:
                for c in ids:
                    client.stats(c, stream=False)

            ours_s, theirs_s = alternate(rounds, ours, theirs)
        finally:
            client.close()
    speedups = round_ratios(theirs_s, ours_s)
    return [
        Figure.speedup(
            f"B2 stats of {containers} containers, pool {pool_size}",
            median([s.wall for s in ours_s]),
            median([s.wall for s in theirs_s]),
            B2_TARGET,
            note=f"speed-up {_spread(speedups)}",
            ratio=median(speedups),
        )
    ]


def bench_b3(
    sandbox: Sandbox, total: int, chunk: int, threads: int, sizes: list[int]
) -> list[Figure]:
    """Many callers: the router's throughput against threads sharing one docker-py client."""
    client = sandbox.client()
    present = len(client.containers())
    client.close()
    if present < 10:  # B1 makes them; make sure they are there when it did not run
        make_containers(sandbox, 10 - present)
    rounds = max(1, total // chunk)
    figures: list[Figure] = []
    for size in sizes:
        ours_s, theirs_s = _b3_rounds(sandbox, size, threads, chunk, rounds)
        ratios = round_ratios(theirs_s, ours_s)  # time ratio theirs/ours = throughput ours/theirs
        cpu_ours = sum(s.cpu for s in ours_s) / (rounds * chunk)
        cpu_theirs = sum(s.cpu for s in theirs_s) / (rounds * chunk)
        figures.append(
            Figure.rates(
                f"B3 {threads} threads list_containers, pool {size}",
                chunk / median([s.wall for s in ours_s]),
                chunk / median([s.wall for s in theirs_s]),
                B3_TARGET if size == B3_POOL_SIZE else None,
                note=(
                    f"{_spread(ratios)}; process CPU/call {cpu_ours * 1e6:.0f} vs "
                    f"{cpu_theirs * 1e6:.0f} µs"
                ),
                ratio=median(ratios),
                unit="calls/s",
            )
        )
    return figures


def _b3_rounds(
    sandbox: Sandbox, size: int, threads: int, chunk: int, rounds: int
) -> tuple[list[Sample], list[Sample]]:
    config = bench_config(sandbox, initial_pool_size=size)
    # docker-py at its best: an idle-connection pool as large as the number of threads
    # (its default of 10 would make 16 threads open and discard sockets).
    shared = docker.APIClient(
        base_url=sandbox.url, version=config.api.version, max_pool_size=threads
    )
    try:
        with actorpool.start(config) as pool:
            router = pool.router

            def ours() -> None:
                run_threads(threads, chunk, lambda _i: router.ask(ListContainers()))

            def theirs() -> None:
                run_threads(threads, chunk, lambda _i: shared.containers())

            run_threads(threads, 4 * threads, lambda _i: router.ask(ListContainers()))
            run_threads(threads, 4 * threads, lambda _i: shared.containers())
            return alternate(rounds, ours, theirs)
    finally:
        shared.close()


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--b3-sizes",
        default=None,
        help=f"comma-separated pool sizes for B3 (default {B3_POOL_SIZE}; the target applies "
        f"to {B3_POOL_SIZE})",
    )
    args = parser.parse_args()
    quick = args.quick
    only = {name.upper() for name in args.only} if args.only else {"B0", "B1", "B2", "B3"}
    sizes = [int(s) for s in args.b3_sizes.split(",")] if args.b3_sizes else [B3_POOL_SIZE]
    print(f"# {load_note()}")
    figures: list[Figure] = []
    with bench_sandbox() as sandbox:
        if "B0" in only:
            for line in bench_b0(sandbox, calls=500 if quick else 2000):
                print(line)
        if "B1" in only:
            calls = 300 if quick else 2000
            chunk = 50 if quick else 100
            if args.rounds:
                calls = args.rounds * chunk
            b1 = bench_b1(sandbox, calls=calls, chunk=chunk)
            print_table(b1)
            figures += b1
        if "B2" in only:
            rounds = args.rounds or (1 if quick else 3)
            b2 = bench_b2(sandbox, containers=20, pool_size=10, rounds=rounds)
            print_table(b2)
            figures += b2
        if "B3" in only:
            total = 600 if quick else 3000
            chunk = 200 if quick else 500
            if args.rounds:
                total = args.rounds * chunk
            b3 = bench_b3(sandbox, total=total, chunk=chunk, threads=B3_THREADS, sizes=sizes)
            print_table(b3)
            figures += b3
    print(f"# {load_note()}")
    if figures:
        print_table(figures, title="Summary (core engine, issue #3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
