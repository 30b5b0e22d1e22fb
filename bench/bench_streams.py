"""B4 end to end and B5: log streams pushed to subscriber actors through the pool (issue #4).

``B4-e2e``
    A container that has written ``--lines`` lines (busybox ``seq``, 1,000,000
    by default) and exited, read to its end by a subscriber *actor* through
    ``pool.router.ask(SubscribeLogs(cid, subscriber, follow=False))``: the
    daemon's bytes are parsed on the stream's reader thread, batched into
    ``LogChunk`` messages by the stream actor and counted by the subscriber
    in its own thread. Compared, in the same run and in alternating rounds,
    with docker-py's ``APIClient.logs(stream=True, follow=False,
    timestamps=True)`` counting lines in the caller. The rate is lines per
    second until the subscriber has the last line. Also measured (no target):
    the same with ``follow=True`` (the window read then the per-source
    followers), and the daemon's own pace (raw chunks read and counted, no
    parsing): a single log stream cannot go faster than the daemon serves it.
``B4-e2e-tty``
    The same with a TTY container (``--tty-lines``, 200,000 by default:
    docker-py reads a TTY one byte per item and would take minutes on more;
    it also stops after ``--budget`` seconds, its rate is over what it read).
``B5``
    ``--containers`` (200) running containers, each printing ``--burst`` (50)
    lines every ``--interval`` (1) seconds, followed by one ``FollowContainers``
    subscription (``tail=0``: live lines):
    time until every container's first line arrived, then threads, RSS, the
    lines per second written (daemon timestamps in a ``--window`` seconds
    window) and delivered, and the latency from each line's daemon timestamp
    to the subscriber. No docker-py counterpart (docker-py has no follow of
    many containers): the target is that delivery keeps up, p99 latency <= 1 s.

Targets: B4-e2e >= 1.8x docker-py, B4-e2e-tty >= 5x; B5 p99 latency <= 1 s.

Run from the repository root: ``.venv/bin/python bench/bench_streams.py [--quick] [--only B5]``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pykka

import actorpool
from actorpool.config import Config
from actorpool.messages import (
    FollowContainers,
    LogChunk,
    LogStreamEnded,
    LogStreamError,
    SubscribeLogs,
)
from actorpool.testing.sandbox import IMAGE, Sandbox
from actorpool.transport.logread import open_logs

from _common import (
    Figure,
    Target,
    bench_config,
    bench_parser,
    bench_sandbox,
    load_note,
    median,
    print_table,
    rss_mib,
)

B4_TARGET = Target.at_least(1.8)
B4_TTY_TARGET = Target.at_least(5.0)
B5_LATENCY = 1.0  # seconds from the daemon's timestamp to the subscriber, p99


class Counter(pykka.ThreadingActor):
    """A subscriber that counts lines and notes when the expected count is reached."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.lines = 0
        self.last = b""
        self.done_at: float | None = None
        self.done = threading.Event()
        self.ended: Any = None
        self.per_container: dict[str, int] = {}
        self.stamps: list[tuple[int, int]] | None = None  # (daemon timestamp, received), ns

    def on_receive(self, message: Any) -> None:
        if isinstance(message, LogChunk):
            if self.stamps is not None:
                now = time.time_ns()
                self.stamps.extend((line.timestamp, now) for line in message.lines)
            self.lines += len(message.lines)
            self.last = message.lines[-1].data
            self.per_container[message.container_id] = self.per_container.get(
                message.container_id, 0
            ) + len(message.lines)
            if self.expected and self.lines >= self.expected and self.done_at is None:
                self.done_at = time.perf_counter()
                self.done.set()
        elif isinstance(message, LogStreamEnded | LogStreamError) and message.container_id:
            self.ended = message
            self.done.set()


@attrs.frozen
class Reading:
    path: str
    lines: int
    seconds: float
    cpu: float
    complete: bool

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def read_docker_py(client: Any, cid: str, budget: float) -> Reading:
    began, cpu = time.perf_counter(), time.process_time()
    stream = client.logs(cid, stream=True, follow=False, timestamps=True)
    lines = 0
    complete = True
    deadline = began + budget
    try:
        for i, item in enumerate(stream):
            lines += item.count(b"\n")
            if not i & 0x3FFF and time.perf_counter() > deadline:
                complete = False
                break
    finally:
        stream.close()
    return Reading(
        "docker-py", lines, time.perf_counter() - began, time.process_time() - cpu, complete
    )


def read_raw(client: Any, cid: str, tty: bool) -> Reading:
    """The daemon's pace: raw chunks off the socket, newlines counted, nothing parsed."""
    began, cpu = time.perf_counter(), time.process_time()
    raw = open_logs(client, cid, follow=False, timestamps=True, tty=tty)
    lines = 0
    with raw:
        for chunk in raw.chunks():
            lines += chunk.count(b"\n")
    return Reading(
        "raw chunks", lines, time.perf_counter() - began, time.process_time() - cpu, True
    )


def read_pool(pool: actorpool.Pool, cid: str, lines: int, *, follow: bool) -> Reading:
    counter = Counter.start(lines)
    try:
        began, cpu = time.perf_counter(), time.process_time()
        pool.router.ask(SubscribeLogs(cid, counter, follow=follow), timeout=60)
        proxy = counter.proxy()
        done: threading.Event = proxy.done.get()
        if not done.wait(600):
            msg = f"the subscriber did not get {lines:,} lines within 600 s"
            raise RuntimeError(msg)
        done_at = proxy.done_at.get()
        got = proxy.lines.get()
        last = proxy.last.get()
        if done_at is None:
            msg = f"the stream ended after {got:,} of {lines:,} lines: {proxy.ended.get()}"
            raise RuntimeError(msg)
        if got != lines or last != str(lines).encode():
            msg = f"the subscriber got {got:,} lines ending with {last!r}, expected {lines:,}"
            raise RuntimeError(msg)
        name = "actorpool" if not follow else "actorpool follow"
        return Reading(name, got, done_at - began, time.process_time() - cpu, True)
    finally:
        counter.stop()


def written_container(client: Any, lines: int, *, tty: bool) -> str:
    container = client.create_container(
        IMAGE,
        command=["seq", "1", str(lines)],
        tty=tty,
        labels={"actorpool.bench": "B4-e2e"},
        host_config=client.create_host_config(network_mode="none"),
    )
    cid = str(container["Id"])
    began = time.perf_counter()
    client.start(cid)
    client.wait(cid, timeout=600)
    kind = "TTY" if tty else "plain"
    took = time.perf_counter() - began
    print(f"# {kind} container {cid[:12]} wrote {lines:,} lines in {took:.1f} s")
    return cid


def b4(
    sandbox: Sandbox, config: Config, *, lines: int, tty: bool, rounds: int, budget: float
) -> list[Figure]:
    client = sandbox.client(timeout=120)
    pool = actorpool.start(config)
    try:
        cid = written_container(client, lines, tty=tty)
        readings: dict[str, list[Reading]] = {"actorpool": [], "docker-py": [], "raw chunks": []}
        if not tty:
            readings["actorpool follow"] = []
        for r in range(rounds):
            steps = ["actorpool", "docker-py"] if r % 2 == 0 else ["docker-py", "actorpool"]
            steps.append("raw chunks")
            if not tty:
                steps.append("actorpool follow")
            for step in steps:
                if step == "docker-py":
                    reading = read_docker_py(client, cid, budget)
                elif step == "raw chunks":
                    reading = read_raw(client, cid, tty)
                else:
                    reading = read_pool(pool, cid, lines, follow=step != "actorpool")
                readings[step].append(reading)
                print(
                    f"#   round {r + 1} {step:<16} {reading.rate:>10,.0f} lines/s"
                    f"  ({reading.lines:,} lines in {reading.seconds:.2f} s, "
                    f"CPU {reading.cpu:.2f} s){'' if reading.complete else ' budget'}"
                )
        ratios = [
            o.rate / t.rate
            for o, t in zip(readings["actorpool"], readings["docker-py"], strict=True)
        ]
        kind = "TTY" if tty else "plain"
        figures = [
            Figure.rates(
                f"B4-e2e{'-tty' if tty else ''} {kind} -> subscriber actor",
                median([r.rate for r in readings["actorpool"]]),
                median([r.rate for r in readings["docker-py"]]),
                B4_TTY_TARGET if tty else B4_TARGET,
                note=(
                    "ratio = median of per-round ratios; the daemon's own pace (raw chunks, "
                    f"no parsing) was {median([r.rate for r in readings['raw chunks']]):,.0f}/s"
                ),
                ratio=median(ratios),
                unit="lines/s",
            )
        ]
        if not tty:
            figures.append(
                Figure.rates(
                    "B4-e2e follow=True (window + followers)",
                    median([r.rate for r in readings["actorpool follow"]]),
                    median([r.rate for r in readings["docker-py"]]),
                    note="informative",
                    unit="lines/s",
                )
            )
        return figures
    finally:
        pool.stop()
        client.close()


def b5(
    sandbox: Sandbox,
    config: Config,
    *,
    containers: int,
    burst: int,
    interval: float,
    window: float,
) -> list[Figure]:
    client = sandbox.client(timeout=120)
    # Bursts of `burst` lines (seq) then a sleep: two processes per burst, so the machine
    # spends its time on the logs, not on forking one `usleep` per line.
    script = (
        f"i=1; while true; do seq $i $((i+{burst - 1})); i=$((i+{burst})); sleep {interval}; done"
    )

    def make(_: int) -> str:
        container = client.create_container(
            IMAGE,
            command=["sh", "-c", script],
            labels={"actorpool.bench": "B5"},
            host_config=client.create_host_config(network_mode="none"),
        )
        cid = str(container["Id"])
        client.start(cid)
        return cid

    began = time.perf_counter()
    with ThreadPoolExecutor(8) as workers:
        cids = list(workers.map(make, range(containers)))
    print(f"# B5: {containers} containers started in {time.perf_counter() - began:.1f} s")
    threads_before, rss_before = threading.active_count(), rss_mib()
    pool = actorpool.start(config)
    counter = Counter.start(0)
    try:
        proxy = counter.proxy()
        began = time.perf_counter()
        # tail=0: live lines only (each container's history would be a one-off backlog).
        follow = FollowContainers(counter, {"label": ["actorpool.bench=B5"]}, tail=0)
        pool.router.ask(follow, timeout=60)
        while len(proxy.per_container.get()) < containers:
            if time.perf_counter() - began > 300:
                msg = f"only {len(proxy.per_container.get())} containers followed after 300 s"
                raise RuntimeError(msg)
            time.sleep(0.1)
        all_followed = time.perf_counter() - began
        time.sleep(1.0)  # let the initial history drain
        proxy.stamps = []
        window_start, cpu = time.time_ns(), time.process_time()
        time.sleep(window)
        window_end, cpu = time.time_ns(), time.process_time() - cpu
        threads, rss = threading.active_count(), rss_mib()
        time.sleep(2.0)  # stragglers of the window
        stamps: list[tuple[int, int]] = proxy.stamps.get()
        in_window = sorted(
            (received - stamp) / 1e9
            for stamp, received in stamps
            if window_start <= stamp < window_end
        )
        rate = len(in_window) / ((window_end - window_start) / 1e9)
        p50 = in_window[len(in_window) // 2]
        p99 = in_window[int(len(in_window) * 0.99)]
        print(
            f"# B5: all {containers} followed {all_followed:.1f} s after FollowContainers; "
            f"threads {threads_before} -> {threads}; RSS {rss_before:.0f} -> {rss:.0f} MiB; "
            f"{rate:,.0f} lines/s written and delivered over {window:.0f} s "
            f"(nominal {containers * burst / interval:,.0f}/s); latency daemon -> subscriber "
            f"p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms; this process used "
            f"{cpu / window:.0%} of a core"
        )
        return [
            Figure.times(
                f"B5 {containers} followed: p99 line latency",
                p99,
                B5_LATENCY,
                Target.at_most(1.0),
                note=(
                    f"2nd column = the {B5_LATENCY:.0f} s budget; {rate:,.0f} lines/s, "
                    f"p50 {p50 * 1e3:.0f} ms, threads {threads}, RSS {rss:.0f} MiB, "
                    f"all followed in {all_followed:.1f} s"
                ),
            )
        ]
    finally:
        counter.stop()
        pool.stop()
        with ThreadPoolExecutor(8) as workers:
            list(workers.map(lambda cid: client.remove_container(cid, force=True), cids))
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines for B4-e2e")
    parser.add_argument("--tty-lines", type=int, default=200_000, help="lines for B4-e2e-tty")
    parser.add_argument("--budget", type=float, default=30.0, help="docker-py's time budget (s)")
    parser.add_argument("--containers", type=int, default=200, help="B5 containers")
    parser.add_argument("--burst", type=int, default=50, help="B5 lines per burst")
    parser.add_argument("--interval", type=float, default=1.0, help="B5 seconds between bursts")
    parser.add_argument("--window", type=float, default=10.0, help="B5 measuring window (s)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    lines = 100_000 if args.quick and args.lines == 1_000_000 else args.lines
    tty_lines = 50_000 if args.quick and args.tty_lines == 200_000 else args.tty_lines
    containers = 40 if args.quick and args.containers == 200 else args.containers
    only = set(args.only or ["B4-e2e", "B4-e2e-tty", "B5"])
    print(f"# bench_streams: {rounds} round(s); {load_note()}")
    figures: list[Figure] = []
    with bench_sandbox() as sandbox:
        config = bench_config(sandbox)
        config = attrs.evolve(
            config,
            performance=attrs.evolve(
                config.performance, max_concurrent_streams=max(400, containers + 10)
            ),
        )
        if "B4-e2e" in only:
            figures += b4(
                sandbox, config, lines=lines, tty=False, rounds=rounds, budget=args.budget
            )
        if "B4-e2e-tty" in only:
            figures += b4(
                sandbox, config, lines=tty_lines, tty=True, rounds=rounds, budget=args.budget
            )
        if "B5" in only:
            figures += b5(
                sandbox,
                config,
                containers=containers,
                burst=args.burst,
                interval=args.interval,
                window=args.window,
            )
    print_table(figures, title=f"# results ({load_note()})")
    return 0 if all(f.verdict != "MISS" for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
