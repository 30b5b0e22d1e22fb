"""B4 end to end, B5 and B6: log streams pushed to subscriber actors through the pool.

``B4-e2e``
    A container that has written ``--lines`` lines (busybox ``seq``, 1,000,000
    by default) and exited, read to its end by a subscriber *actor* through
    ``pool.router.ask(SubscribeLogs(cid, subscriber, follow=False))``: the
    daemon's bytes are parsed on the stream's reader thread, batched into
    ``LogChunk`` messages by the stream actor and counted by the subscriber
    in its own thread. Compared, in the same run and in rounds whose order
    rotates, with docker-py's ``APIClient.logs(stream=True, follow=False,
    timestamps=True)`` counting lines in the caller, and with the ceiling: a
    bare socket read of the same body, thrown away (nothing decoded, nothing
    counted, pausing after short reads as the readers do; the daemon's own
    pace). The rate is lines per second until the
    subscriber has the last line. Also measured (no target): the same with
    ``follow=True`` (the window read then the per-source followers) and the
    raw chunks (chunking undone, newlines counted).
``B4-e2e-tty``
    The same with a TTY container (``--tty-lines``, 200,000 by default:
    docker-py reads a TTY one byte per item and would take minutes on more;
    it also stops after ``--budget`` seconds, its rate is over what it read).
``B5``
    ``--containers`` (200 then 500) running containers, created through the
    API in parallel, each printing ``--burst`` (50) numbered lines every
    ``--interval`` (1) seconds, followed by one ``FollowContainers``
    subscription (``tail=0``: live lines): time until every container's
    first line arrived, the peak thread count on the way, then over a
    ``--window`` seconds window threads, RSS, this process's CPU, the lines
    per second written (daemon timestamps in the window) and delivered, the
    latency from each line's daemon timestamp to the subscriber (p50, p99),
    and lines lost or repeated (gaps in each container's numbers, whole run).
    No docker-py counterpart (docker-py has no follow of many containers).
``B6``
    A followed container writing ``--follow-lines`` lines as fast as it can
    (``seq``), its stdout delivered to a subscriber actor through
    ``SubscribeLogs(follow=True)`` (the read loop's path), against the
    daemon's own follow stream of an identical container read raw in the
    caller (chunks, newlines counted), in alternating rounds: lines per
    second from the first line to the last.

``--split-cpus``
    Runs the daemon (and everything it starts: containerd, the containers)
    on the first CPU and this process on the others, so B4-e2e and B6 show
    whether actorpool keeps the daemon's pace when the two do not share a
    core. On a shared 2-CPU machine the daemon needs ~1.5 of them to send a
    log at full speed (measured from its scheduler statistics), so every µs
    a reader spends a line is taken from it: the plain run measures that
    share, this one the reader's own pace.

Targets: B4-e2e >= 1.8x docker-py and >= 0.95x the bare read, B4-e2e-tty
>= 5x docker-py; B5 at 200: threads <= 260, RSS <= 100 MiB, p99 <= 300 ms,
0 lost; at 500: threads <= 600, RSS <= 200 MiB, p99 <= 1 s, 0 lost, CPU
< 1 core; B6 >= 0.95x the daemon's follow stream.

Run from the repository root:
``.venv/bin/python bench/bench_streams.py [--quick] [--only B5] [--containers 200,500]``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from array import array
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
from actorpool.transport.logread import DEFAULT_BUFFER_SIZE, DEFAULT_COALESCE, open_logs

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
CEILING_TARGET = Target.at_least(0.95)  # B4-e2e vs the bare read, B6 vs the daemon's follow


@attrs.frozen
class B5Goal:
    threads: int
    rss_mib: float
    p99: float  # seconds
    cores: float  # this process's CPU, in cores


# Containers -> goals (issue #16). Other sizes get the 500 goal scaled.
B5_GOALS = {200: B5Goal(260, 100.0, 0.3, 1.0), 500: B5Goal(600, 200.0, 1.0, 1.0)}


class Counter(pykka.ThreadingActor):
    """A subscriber that counts lines and notes when the first and the expected count arrive."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.lines = 0
        self.last = b""
        self.first_at: float | None = None
        self.first_lines = 0
        self.done_at: float | None = None
        self.done = threading.Event()
        self.ended: Any = None

    def on_receive(self, message: Any) -> None:
        if isinstance(message, LogChunk):
            if self.first_at is None:
                self.first_at = time.perf_counter()
                self.first_lines = len(message.lines)
            self.lines += len(message.lines)
            self.last = message.lines[-1].data
            if self.expected and self.lines >= self.expected and self.done_at is None:
                self.done_at = time.perf_counter()
                self.done.set()
        elif isinstance(message, LogStreamEnded | LogStreamError) and message.container_id:
            self.ended = message
            self.done.set()


class Tracker(pykka.ThreadingActor):
    """B5's subscriber: gaps and repeats in each container's numbers; latencies while recording."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, int] = {}
        self.lost = 0
        self.repeated = 0
        self.lines = 0
        self.recording = False
        self.stamps = array("q")  # daemon timestamps (ns) of the lines received while recording
        self.received = array("q")  # when each arrived (ns)

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, LogChunk):
            return
        now = time.time_ns()
        lines = message.lines
        cid = message.container_id
        last = self.last.get(cid)
        for line in lines:
            n = int(line.data)
            if last is not None:
                if n > last + 1:
                    self.lost += n - last - 1
                elif n <= last:
                    self.repeated += 1
            last = n
        if last is not None:
            self.last[cid] = last
        self.lines += len(lines)
        if self.recording:
            self.stamps.extend(line.timestamp for line in lines)
            self.received.extend(itertools.repeat(now, len(lines)))


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
    """Raw chunks off the socket (chunking undone), newlines counted, nothing parsed."""
    began, cpu = time.perf_counter(), time.process_time()
    raw = open_logs(client, cid, follow=False, timestamps=True, tty=tty)
    lines = 0
    with raw:
        for chunk in raw.chunks():
            lines += chunk.count(b"\n")
    return Reading(
        "raw chunks", lines, time.perf_counter() - began, time.process_time() - cpu, True
    )


_LAST_CHUNK = b"\r\n0\r\n\r\n"  # the end of a chunked body (after the last data chunk)
# As in the readers: a read shorter than 1/16 of the buffer is followed by a pause.
_BARE_SHORT = DEFAULT_BUFFER_SIZE // 16


def read_bare(client: Any, cid: str, tty: bool, lines: int) -> Reading:
    """The ceiling: the body's bytes off the socket and thrown away, until its last chunk.

    Nothing is decoded or counted; the rate is the container's known line
    count over the time the daemon took to send its body. After a short read
    it pauses as the readers do (:data:`DEFAULT_COALESCE`): a read loop that
    never pauses spins on one-line reads, takes the CPU the daemon needs and
    is 20-25% slower (measured), so it would not be the daemon's pace.
    """
    began, cpu = time.perf_counter(), time.process_time()
    raw = open_logs(client, cid, follow=False, timestamps=True, tty=tty)
    sock = raw.socket
    head = raw.detach(lambda: None)
    if sock is None or head is None:
        msg = "the bare read needs a plain, chunked unix-socket body"
        raise RuntimeError(msg)
    sock.settimeout(60)
    tail = head[-16:]
    buf = bytearray(DEFAULT_BUFFER_SIZE)
    view = memoryview(buf)
    try:
        while not tail.endswith(_LAST_CHUNK):
            n = sock.recv_into(buf)
            if not n:
                msg = "the daemon ended the bare read before the body's end"
                raise RuntimeError(msg)
            tail = (tail + bytes(view[max(0, n - 16) : n]))[-16:]
            if n < _BARE_SHORT:
                time.sleep(DEFAULT_COALESCE)
    finally:
        raw.end_detached("complete", None)
    return Reading(
        "bare socket", lines, time.perf_counter() - began, time.process_time() - cpu, True
    )


def read_pool(
    pool: actorpool.Pool, cid: str, lines: int, *, follow: bool, from_first: bool = False
) -> Reading:
    """``lines`` lines of ``cid`` to a subscriber actor, timed from the subscribe.

    ``from_first``: stdout only, and the rate is from the first chunk's arrival to the last line
    (for a container that starts writing after the subscribe).
    """
    counter = Counter.start(lines)
    try:
        began, cpu = time.perf_counter(), time.process_time()
        request = SubscribeLogs(cid, counter, follow=follow, stderr=not from_first)
        pool.router.ask(request, timeout=60)
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
        name = "actorpool follow" if follow and not from_first else "actorpool"
        if from_first:
            began, got = proxy.first_at.get(), got - proxy.first_lines.get()
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


def rotated(steps: Sequence[str], r: int) -> list[str]:
    """``steps`` rotated by ``r``: each step goes first (and last) in turn."""
    k = r % len(steps)
    return [*steps[k:], *steps[:k]]


def b4(
    sandbox: Sandbox, config: Config, *, lines: int, tty: bool, rounds: int, budget: float
) -> list[Figure]:
    client = sandbox.client(timeout=120)
    pool = actorpool.start(config)
    try:
        cid = written_container(client, lines, tty=tty)
        steps = ["actorpool", "docker-py", "bare socket", "raw chunks"]
        if not tty:
            steps.append("actorpool follow")
        readings: dict[str, list[Reading]] = {step: [] for step in steps}
        for r in range(rounds):
            for step in rotated(steps, r):
                if step == "docker-py":
                    reading = read_docker_py(client, cid, budget)
                elif step == "raw chunks":
                    reading = read_raw(client, cid, tty)
                elif step == "bare socket":
                    reading = read_bare(client, cid, tty, lines)
                else:
                    reading = read_pool(pool, cid, lines, follow=step != "actorpool")
                readings[step].append(reading)
                print(
                    f"#   round {r + 1} {step:<16} {reading.rate:>10,.0f} lines/s"
                    f"  ({reading.lines:,} lines in {reading.seconds:.2f} s, "
                    f"CPU {reading.cpu:.2f} s){'' if reading.complete else ' budget'}"
                )

        def ratios(ours: str, theirs: str) -> list[float]:
            pairs = zip(readings[ours], readings[theirs], strict=True)
            return [o.rate / t.rate for o, t in pairs]

        def rate(step: str) -> float:
            return median([r.rate for r in readings[step]])

        kind = "TTY" if tty else "plain"
        name = f"B4-e2e{'-tty' if tty else ''} {kind} -> subscriber actor"
        figures = [
            Figure.rates(
                f"{name} vs docker-py",
                rate("actorpool"),
                rate("docker-py"),
                B4_TTY_TARGET if tty else B4_TARGET,
                note="ratio = median of per-round ratios",
                ratio=median(ratios("actorpool", "docker-py")),
                unit="lines/s",
            ),
            Figure.rates(
                f"{name} vs bare socket read",
                rate("actorpool"),
                rate("bare socket"),
                None if tty else CEILING_TARGET,
                note=(
                    "2nd column = the body read off the socket and thrown away (the ceiling); "
                    f"raw chunks {rate('raw chunks'):,.0f}/s"
                ),
                ratio=median(ratios("actorpool", "bare socket")),
                unit="lines/s",
            ),
        ]
        if not tty:
            figures.append(
                Figure.rates(
                    "B4-e2e follow=True (window + followers)",
                    rate("actorpool follow"),
                    rate("bare socket"),
                    note="informative; 2nd column = the bare read",
                    ratio=median(ratios("actorpool follow", "bare socket")),
                    unit="lines/s",
                )
            )
        return figures
    finally:
        pool.stop()
        client.close()


def fast_writer(client: Any, lines: int) -> str:
    """A started container that waits a moment (for its follower), then writes as fast as it can."""
    container = client.create_container(
        IMAGE,
        command=["sh", "-c", f"sleep 2; seq 1 {lines}"],
        labels={"actorpool.bench": "B6"},
        host_config=client.create_host_config(network_mode="none"),
    )
    cid = str(container["Id"])
    client.start(cid)
    return cid


def follow_daemon(sandbox: Sandbox, cid: str, lines: int) -> Reading:
    """The daemon's own follow stream: raw chunks, newlines counted, until the last line."""
    client = sandbox.client(timeout=60)
    try:
        cpu = time.process_time()
        raw = open_logs(client, cid, stdout=True, stderr=False, follow=True, tty=False)
        got = first_lines = 0
        first_at = last_at = 0.0
        with raw:
            for chunk in raw.chunks():
                got += chunk.count(b"\n")
                if not first_at:
                    first_at, first_lines = time.perf_counter(), got
                if got >= lines:
                    last_at = time.perf_counter()
                    break
        if got < lines:
            msg = f"the daemon's follow stream ended after {got:,} of {lines:,} lines"
            raise RuntimeError(msg)
        return Reading(
            "daemon follow",
            lines - first_lines,
            last_at - first_at,
            time.process_time() - cpu,
            True,
        )
    finally:
        client.close()


def b6(sandbox: Sandbox, config: Config, *, lines: int, rounds: int) -> list[Figure]:
    client = sandbox.client(timeout=120)
    pool = actorpool.start(config)
    readings: dict[str, list[Reading]] = {"actorpool": [], "daemon follow": []}
    try:
        for r in range(rounds):
            for side in rotated(list(readings), r):
                cid = fast_writer(client, lines)
                if side == "actorpool":
                    reading = read_pool(pool, cid, lines, follow=True, from_first=True)
                else:
                    reading = follow_daemon(sandbox, cid, lines)
                readings[side].append(reading)
                print(
                    f"#   round {r + 1} {side:<14} {reading.rate:>10,.0f} lines/s"
                    f"  (first to last line: {reading.seconds:.2f} s, CPU {reading.cpu:.2f} s)"
                )
                client.wait(cid, timeout=120)
                client.remove_container(cid, force=True)
        pairs = zip(readings["actorpool"], readings["daemon follow"], strict=True)
        return [
            Figure.rates(
                "B6 followed fast writer -> subscriber actor",
                median([r.rate for r in readings["actorpool"]]),
                median([r.rate for r in readings["daemon follow"]]),
                CEILING_TARGET,
                note="2nd column = the daemon's own follow stream read raw; median of round ratios",
                ratio=median([o.rate / t.rate for o, t in pairs]),
                unit="lines/s",
            )
        ]
    finally:
        pool.stop()
        client.close()


def start_b5_containers(
    client: Any, count: int, *, burst: int, interval: float, labels: dict[str, str]
) -> list[str]:
    """``count`` started containers printing numbered bursts; created 8 at a time via the API."""
    # Bursts of `burst` lines (seq) then a sleep: two processes per burst, so the machine
    # spends its time on the logs, not on forking one `usleep` per line.
    script = (
        f"i=1; while true; do seq $i $((i+{burst - 1})); i=$((i+{burst})); sleep {interval}; done"
    )

    def make(_: int) -> str:
        container = client.create_container(
            IMAGE,
            command=["sh", "-c", script],
            labels=labels,
            host_config=client.create_host_config(network_mode="none"),
        )
        cid = str(container["Id"])
        client.start(cid)
        return cid

    began = time.perf_counter()
    with ThreadPoolExecutor(8) as workers:
        cids = list(workers.map(make, range(count)))
    took = time.perf_counter() - began
    print(f"# B5: {count} containers created and started in {took:.1f} s ({load_note()})")
    return cids


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; NaN when it is gone."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_latency(sandbox: Sandbox, cids: Sequence[str], seconds: float) -> list[float]:
    """The floor: latencies of the daemon's own follow streams of ``cids``, read raw.

    One plain blocking reader per container (``tail=0``, stdout) for
    ``seconds``; each line's latency is from its daemon timestamp to the
    moment its bytes came off the socket.
    """
    latencies: list[float] = []
    clients = [sandbox.client(timeout=30) for _ in cids]
    raws = [
        open_logs(client, cid, stderr=False, follow=True, tail=0, tty=False)
        for client, cid in zip(clients, cids, strict=True)
    ]

    def read(raw: Any) -> None:
        for lines in raw.batches(raw.decoder(max_line_size=1 << 20)):
            now = time.time_ns()
            latencies.extend((now - line.timestamp) / 1e9 for line in lines)

    readers = [threading.Thread(target=read, args=(raw,), daemon=True) for raw in raws]
    for reader in readers:
        reader.start()
    time.sleep(seconds)
    for raw in raws:
        raw.close()
    for reader in readers:
        reader.join(10)
    for client in clients:
        client.close()
    return sorted(latencies)


def b5(
    sandbox: Sandbox,
    config: Config,
    *,
    containers: int,
    cids: Sequence[str],
    label: str,
    burst: int,
    interval: float,
    window: float,
) -> list[Figure]:
    threads_before, rss_before = threading.active_count(), rss_mib()
    pool = actorpool.start(config)
    tracker = Tracker.start()
    try:
        proxy = tracker.proxy()
        began = time.perf_counter()
        # tail=0: live lines only (each container's history would be a one-off backlog).
        follow = FollowContainers(tracker, {"label": [label]}, tail=0)
        pool.router.ask(follow, timeout=60)
        peak = 0
        while len(proxy.last.get()) < containers:
            peak = max(peak, threading.active_count())
            if time.perf_counter() - began > 600:
                msg = f"only {len(proxy.last.get())} containers followed after 600 s"
                raise RuntimeError(msg)
            time.sleep(0.1)
        all_followed = time.perf_counter() - began
        time.sleep(2.0)  # let the start settle
        proxy.recording = True
        daemon_cpu = process_cpu(sandbox.pid)
        window_start, cpu = time.time_ns(), time.process_time()
        time.sleep(window)
        window_end, cpu = time.time_ns(), time.process_time() - cpu
        daemon_cpu = process_cpu(sandbox.pid) - daemon_cpu
        threads, rss = threading.active_count(), rss_mib()
        load = load_note()
        time.sleep(2.0)  # stragglers of the window
        proxy.recording = False
        # The same moment's floor: the daemon's own follow streams of a sample, read raw.
        sample = cids[:: max(1, len(cids) // 20)]
        floor = daemon_latency(sandbox, sample, 5.0)
        stamps: array[int] = proxy.stamps.get()
        received: array[int] = proxy.received.get()
        in_window = sorted(
            (got - stamp) / 1e9
            for stamp, got in zip(stamps, received, strict=True)
            if window_start <= stamp < window_end
        )
        lost, repeated = proxy.lost.get(), proxy.repeated.get()
        rate = len(in_window) / ((window_end - window_start) / 1e9)
        p50 = in_window[len(in_window) // 2]
        p99 = in_window[int(len(in_window) * 0.99)]
        cores = cpu / window
        print(
            f"# B5 {containers}: all followed {all_followed:.1f} s after FollowContainers "
            f"(peak {peak} threads on the way); threads {threads_before} -> {threads}; "
            f"RSS {rss_before:.0f} -> {rss:.0f} MiB; {rate:,.0f} lines/s written and "
            f"delivered over {window:.0f} s (nominal {containers * burst / interval:,.0f}/s); "
            f"latency daemon -> subscriber p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms; "
            f"this process used {cores:.0%} of a core, dockerd {daemon_cpu / window:.0%}; "
            f"lines lost {lost}, repeated {repeated} (of {proxy.lines.get():,}); {load}"
        )
        floor_p50, floor_p99 = floor[len(floor) // 2], floor[int(len(floor) * 0.99)]
        print(
            f"# B5 {containers}: the daemon's own follow streams of {len(sample)} of them, "
            f"read raw just after: p50 {floor_p50 * 1e3:.0f} ms, "
            f"p99 {floor_p99 * 1e3:.0f} ms ({len(floor):,} lines; {load_note()})"
        )
        goal = B5_GOALS.get(containers) or B5Goal(
            round(containers * 1.2), 200.0 * containers / 500, 1.0, 1.0
        )
        note = f"({load})"
        return [
            Figure(
                f"B5 {containers}: threads",
                threads,
                goal.threads,
                "",
                threads / goal.threads,
                Target.at_most(1.0),
                f"2nd column = goal; before the pool {threads_before}",
            ),
            Figure(
                f"B5 {containers}: RSS MiB",
                rss,
                goal.rss_mib,
                "MiB",
                rss / goal.rss_mib,
                Target.at_most(1.0),
                f"2nd column = goal; before the pool {rss_before:.0f}",
            ),
            Figure(
                f"B5 {containers}: CPU",
                cores * 100,
                goal.cores * 100,
                "% of a core",
                cores / goal.cores,
                Target.at_most(1.0),
                "2nd column = goal",
            ),
            Figure.times(
                f"B5 {containers}: p99 latency",
                p99,
                goal.p99,
                Target.at_most(1.0),
                note=(
                    f"2nd column = goal; p50 {p50 * 1e3:.0f} ms; {rate:,.0f} lines/s; the "
                    f"daemon's own follow streams p50 {floor_p50 * 1e3:.0f} ms, "
                    f"p99 {floor_p99 * 1e3:.0f} ms"
                ),
            ),
            Figure(
                f"B5 {containers}: lines lost+repeated",
                lost + repeated,
                0,
                "lines",
                float(lost + repeated),
                Target.at_most(0.0),
                note,
            ),
        ]
    finally:
        tracker.stop()
        pool.stop()


def remove_all(client: Any, cids: list[str]) -> None:
    with ThreadPoolExecutor(8) as workers:
        list(workers.map(lambda cid: client.remove_container(cid, force=True), cids))


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it (from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def split_cpus(sandbox: Sandbox) -> str:
    """Pin the daemon's process tree to the first CPU and this process to the others.

    Call it before the pool starts: threads and processes inherit the CPUs
    of whoever creates them (so later containers land on the daemon's CPU).

    Returns:
        A note naming the split, for the figures.
    """
    cpus = sorted(os.sched_getaffinity(0))
    pid = sandbox.pid
    if len(cpus) < 2 or pid is None:
        msg = "--split-cpus needs two CPUs and a running daemon"
        raise SystemExit(msg)
    daemon, ours = cpus[0], set(cpus[1:])
    for process in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{process}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), {daemon})
    os.sched_setaffinity(0, ours)
    return f"the daemon on CPU {daemon}, this process on {','.join(map(str, sorted(ours)))}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines for B4-e2e")
    parser.add_argument("--tty-lines", type=int, default=200_000, help="lines for B4-e2e-tty")
    parser.add_argument("--budget", type=float, default=30.0, help="docker-py's time budget (s)")
    parser.add_argument(
        "--containers", default="200,500", help="B5 container counts, ascending (200,500)"
    )
    parser.add_argument("--burst", type=int, default=50, help="B5 lines per burst")
    parser.add_argument("--interval", type=float, default=1.0, help="B5 seconds between bursts")
    parser.add_argument("--window", type=float, default=10.0, help="B5 measuring window (s)")
    parser.add_argument("--follow-lines", type=int, default=300_000, help="lines for B6")
    parser.add_argument(
        "--split-cpus",
        action="store_true",
        help="the daemon on the first CPU, this process on the others (B4-e2e, B6)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    lines = 100_000 if args.quick and args.lines == 1_000_000 else args.lines
    tty_lines = 50_000 if args.quick and args.tty_lines == 200_000 else args.tty_lines
    follow_lines = 50_000 if args.quick and args.follow_lines == 300_000 else args.follow_lines
    sizes = sorted(int(n) for n in args.containers.split(","))
    if args.quick and args.containers == "200,500":
        sizes = [40]
    only = set(args.only or ["B4-e2e", "B4-e2e-tty", "B5", "B6"])
    print(f"# bench_streams: {rounds} round(s); {load_note()}")
    figures: list[Figure] = []
    with bench_sandbox() as sandbox:
        split = split_cpus(sandbox) if args.split_cpus else ""
        if split:
            print(f"# --split-cpus: {split}")
        config = bench_config(sandbox)
        config = attrs.evolve(
            config,
            performance=attrs.evolve(
                config.performance, max_concurrent_streams=max(400, sizes[-1] + 10)
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
        if "B6" in only:
            figures += b6(sandbox, config, lines=follow_lines, rounds=rounds)
        if "B5" in only:
            client = sandbox.client(timeout=120)
            cids: list[str] = []
            try:
                for size in sizes:
                    # Each size adds to the containers of the last (only as many run as are
                    # followed): 200 created, measured; 300 more created, 500 measured.
                    cids += start_b5_containers(
                        client,
                        size - len(cids),
                        burst=args.burst,
                        interval=args.interval,
                        labels={"actorpool.bench": "B5"},
                    )
                    figures += b5(
                        sandbox,
                        config,
                        containers=size,
                        cids=cids,
                        label="actorpool.bench=B5",
                        burst=args.burst,
                        interval=args.interval,
                        window=args.window,
                    )
            finally:
                remove_all(client, cids)
                client.close()
    print_table(figures, title=f"# results ({load_note()}){'; ' + split if split else ''}")
    return 0 if all(f.verdict != "MISS" for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
