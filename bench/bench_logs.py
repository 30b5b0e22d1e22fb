"""B4: reading a container's logs (issues #4 and #8): actorpool.transport.logread against docker-py.

Two containers on a private daemon each write ``--lines`` lines (busybox
``seq``, 1,000,000 by default): one plain, one with a TTY. Each is read to
the end (``follow=False``, timestamps on) by every measured path, in the
same run, rounds alternating which path goes first; the figure is the
median over rounds of lines per second.

Paths (one function each; add yours to ``PATHS``):

``docker-py``
    ``APIClient.logs(stream=True, follow=False, timestamps=True)``, counting
    the newlines of each item: one frame per item, or one *byte* per item for
    a TTY container. Stops after ``--budget`` seconds (the TTY read would take
    minutes); the rate is over what it read.
``actorpool``
    :func:`actorpool.transport.logread.open_logs` + :func:`~actorpool.transport.logread.iter_lines`:
    parsed :class:`~actorpool.messages.LogLine` records with their timestamps.
``raw chunks``
    :meth:`RawLogStream.chunks` alone, no parsing: the daemon's pace, the
    ceiling for the other two.

Targets: ``actorpool`` >= 1.8x docker-py without TTY, >= 5x with a TTY.

Run from the repository root: ``.venv/bin/python bench/bench_logs.py [--quick]``.
The machine is shared: look at the load note printed first and rerun when
it is high.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from actorpool.testing.sandbox import IMAGE, Sandbox
from actorpool.transport.logread import iter_lines, open_logs

from _common import Figure, Target, bench_parser, bench_sandbox, load_note, median, print_table

B4_TARGET = Target.at_least(1.8)
B4_TTY_TARGET = Target.at_least(5.0)
MAX_LINE_SIZE = 1024 * 1024


@attrs.frozen
class Reading:
    """One read of a container's logs by one path."""

    path: str
    lines: int
    seconds: float
    cpu: float  # this process's CPU seconds (all threads) during the read
    complete: bool  # read to the end (False: stopped by the budget)

    @property
    def rate(self) -> float:
        return self.lines / self.seconds

    @property
    def cpu_per_line(self) -> float:
        return self.cpu / max(self.lines, 1)


class _Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


# ----------------------------------------------------------------- measured paths
# Each path reads container `cid` to its end (or until `budget` seconds passed) and
# returns a Reading. `tty` is known to the caller (it created the container).

Path = Callable[[Any, str, bool, float], Reading]


def read_docker_py(client: Any, cid: str, tty: bool, budget: float) -> Reading:
    """docker-py's own streaming: one frame (or, for a TTY, one byte) per item."""
    clock = _Clock()
    stream = client.logs(cid, stream=True, follow=False, timestamps=True)
    lines = 0
    complete = True
    deadline = time.perf_counter() + budget
    try:
        for i, item in enumerate(stream):
            lines += item.count(b"\n")
            if not i & 0x3FFF and time.perf_counter() > deadline:
                complete = False
                break
    finally:
        stream.close()
    seconds, cpu = clock.elapsed()
    return Reading("docker-py", lines, seconds, cpu, complete)


def read_actorpool(client: Any, cid: str, tty: bool, budget: float) -> Reading:
    """actorpool.transport.logread: parsed LogLine batches with timestamps."""
    clock = _Clock()
    raw = open_logs(client, cid, follow=False, timestamps=True, tty=tty)
    lines = 0
    last = b""
    deadline = time.perf_counter() + budget
    with raw:
        for batch in iter_lines(raw, max_line_size=MAX_LINE_SIZE):
            lines += len(batch)
            last = batch[-1].data
            if time.perf_counter() > deadline:
                break
    seconds, cpu = clock.elapsed()
    complete = raw.end_reason == "complete"
    if complete and last != str(lines).encode():
        msg = f"actorpool read {lines} lines ending with {last!r}: the count is wrong"
        raise AssertionError(msg)
    return Reading("actorpool", lines, seconds, cpu, complete)


def read_raw_chunks(client: Any, cid: str, tty: bool, budget: float) -> Reading:
    """The byte stream only (no frames, no lines): how fast the daemon serves it."""
    clock = _Clock()
    raw = open_logs(client, cid, follow=False, timestamps=True, tty=tty)
    lines = 0
    deadline = time.perf_counter() + budget
    with raw:
        for chunk in raw.chunks():
            lines += chunk.count(b"\n")
            if time.perf_counter() > deadline:
                break
    seconds, cpu = clock.elapsed()
    return Reading("raw chunks", lines, seconds, cpu, raw.end_reason == "complete")


PATHS: dict[str, Path] = {
    "docker-py": read_docker_py,
    "actorpool": read_actorpool,
    "raw chunks": read_raw_chunks,
}


# ----------------------------------------------------------------- running


def written_container(sandbox: Sandbox, client: Any, lines: int, *, tty: bool) -> str:
    """A container that has written ``lines`` lines (``seq 1 lines``) and exited."""
    container = client.create_container(
        IMAGE,
        command=["seq", "1", str(lines)],
        tty=tty,
        labels={"actorpool.bench": "B4"},
        host_config=client.create_host_config(network_mode="none"),
    )
    cid = str(container["Id"])
    began = time.perf_counter()
    client.start(cid)
    status = client.wait(cid, timeout=600)
    if status.get("StatusCode") != 0:
        msg = f"the log writer {cid[:12]} failed: {status}"
        raise RuntimeError(msg)
    kind = "TTY" if tty else "plain"
    took = time.perf_counter() - began
    print(f"# {kind} container {cid[:12]} wrote {lines:,} lines in {took:.1f} s")
    return cid


def measure(
    client: Any, cid: str, *, tty: bool, rounds: int, budget: float, paths: Sequence[str]
) -> dict[str, list[Reading]]:
    """Read ``cid`` with every path ``rounds`` times, rotating which path goes first."""
    readings: dict[str, list[Reading]] = {name: [] for name in paths}
    for r in range(rounds):
        order = list(paths[r % len(paths) :]) + list(paths[: r % len(paths)])
        for name in order:
            reading = PATHS[name](client, cid, tty, budget)
            readings[name].append(reading)
    return readings


def print_readings(title: str, readings: dict[str, list[Reading]]) -> None:
    """One row per path: median lines/s, CPU per line, and every round's rate."""
    print(f"\n{title}")
    header = f"{'path':<12}  {'lines/s (median)':>16}  {'CPU µs/line':>11}  rounds"
    print(header)
    print("-" * len(header))
    for name, runs in readings.items():
        rate = median([r.rate for r in runs])
        cpu = median([r.cpu_per_line for r in runs]) * 1e6
        each = ", ".join(
            f"{r.rate:,.0f}" + ("" if r.complete else f" ({r.lines:,} lines, budget)") for r in runs
        )
        print(f"{name:<12}  {rate:>16,.0f}  {cpu:>11.2f}  {each}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines each container writes")
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds a single read may take at most"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    lines = 100_000 if args.quick and args.lines == 1_000_000 else args.lines
    only = set(args.only or ["B4", "B4-tty"])
    print(f"# B4 log reading, {lines:,} lines, {rounds} round(s); {load_note()}")
    figures: list[Figure] = []
    with bench_sandbox() as sandbox:
        client = sandbox.client(timeout=120)
        try:
            for tty, name, target in ((False, "B4", B4_TARGET), (True, "B4-tty", B4_TTY_TARGET)):
                if name not in only:
                    continue
                cid = written_container(sandbox, client, lines, tty=tty)
                readings = measure(
                    client, cid, tty=tty, rounds=rounds, budget=args.budget, paths=list(PATHS)
                )
                kind = "TTY" if tty else "non-TTY"
                print_readings(f"{name}: {kind} container, {lines:,} lines", readings)
                ours = median([r.rate for r in readings["actorpool"]])
                theirs = median([r.rate for r in readings["docker-py"]])
                ceiling = median([r.rate for r in readings["raw chunks"]])
                figures.append(
                    Figure.rates(
                        f"{name} logs {kind}",
                        ours,
                        theirs,
                        target,
                        note=f"daemon pace (raw chunks) {ceiling:,.0f}/s",
                        unit="lines/s",
                    )
                )
                # CPU per line hardly depends on the machine's load, unlike the rates.
                figures.append(
                    Figure.speedup(
                        f"{name} CPU per line",
                        median([r.cpu_per_line for r in readings["actorpool"]]),
                        median([r.cpu_per_line for r in readings["docker-py"]]),
                        note="ratio = docker-py's CPU / ours (informative, stable under load)",
                    )
                )
        finally:
            client.close()
    print_table(figures, title=f"# results ({load_note()})")
    return 0 if all(f.verdict != "MISS" for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
