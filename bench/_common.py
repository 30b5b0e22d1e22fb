"""Helpers shared by the benchmarks in ``bench/``: a private daemon, containers, timing, a table.

Benchmarks are not tests. Each one starts its own private ``dockerd``
(:class:`actorpool.testing.sandbox.Sandbox`), measures actorpool and plain docker-py
on that same daemon in the same run, and prints every figure with its ratio
and whether it meets its target. Absolute numbers mean little on a shared
2-core machine; the ratio against docker-py measured a moment earlier does.

Typical use::

    from _common import Figure, Target, bench_args, bench_sandbox, make_containers, print_table

    args = bench_args(__doc__)
    with bench_sandbox() as sandbox:
        ids = make_containers(sandbox, 10)
        ...
        print_table([Figure.times("B1 ping", ours, theirs, Target.at_most(1.25))])

Run a benchmark as a script from the repository root
(``.venv/bin/python bench/bench_pool.py``); this module is imported from the
script's own directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

# Run as `python bench/x.py` from anywhere: make the repository importable.
_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from actorpool.config import Config  # noqa: E402
from actorpool.testing.sandbox import IMAGE, Sandbox, missing_requirements  # noqa: E402

__all__ = [
    "Figure",
    "Sample",
    "Target",
    "alternate",
    "bench_args",
    "bench_config",
    "bench_parser",
    "bench_sandbox",
    "load_note",
    "make_containers",
    "measure",
    "median",
    "print_table",
    "round_ratios",
    "rss_mib",
    "run_threads",
    "timed",
]


# ----------------------------------------------------------------- the daemon


@contextlib.contextmanager
def bench_sandbox(*, verbose: bool = True) -> Iterator[Sandbox]:
    """Start a private ``dockerd`` with the busybox image; remove everything on exit.

    Exits the process with a message (not a traceback) when the machine cannot
    run a sandbox, saying what to install.
    """
    missing = missing_requirements()
    if missing:
        sys.exit("cannot start a private dockerd:\n  - " + "\n  - ".join(missing))
    sandbox = Sandbox()
    try:
        sandbox.start()
        sandbox.ensure_image()
        if verbose:
            print(f"# private dockerd at {sandbox.url} (ready in {sandbox.start_seconds:.2f} s)")
        yield sandbox
    finally:
        sandbox.cleanup()


def make_containers(
    sandbox: Sandbox,
    count: int,
    *,
    cmd: Sequence[str] = ("sleep", "86400"),
    start: bool = True,
    labels: dict[str, str] | None = None,
) -> list[str]:
    """Create (and by default start) ``count`` busybox containers; return their ids.

    They run with ``network_mode="none"`` like every sandbox container and go
    away with the sandbox, so a benchmark need not remove them.
    """
    client = sandbox.client(timeout=60)
    try:
        ids: list[str] = []
        for _ in range(count):
            container = client.create_container(
                IMAGE,
                command=list(cmd),
                labels=labels or {"actorpool.bench": "1"},
                host_config=client.create_host_config(network_mode="none"),
            )
            cid = str(container["Id"])
            ids.append(cid)
            if start:
                client.start(cid)
        return ids
    finally:
        client.close()


def bench_config(sandbox: Sandbox, **pool: Any) -> Config:
    """A pool configuration aimed at ``sandbox`` for benchmarking the engine itself.

    Keyword arguments override ``docker.pool`` keys (e.g. ``initial_pool_size=4``).
    Monitoring's HTTP endpoint and the rate limiter are off (the limiter's
    default 100 requests/s would measure the limit, not the engine); health
    checks keep their production interval so they do not steal connections
    mid-measurement. Everything else is the production default.
    """
    pool_section: dict[str, Any] = {"socket_path": sandbox.url, **pool}
    size = pool_section.get("initial_pool_size")
    if size is not None:
        pool_section.setdefault("min_pool_size", min(size, 5))
        pool_section.setdefault("max_pool_size", max(size, 20))
    data = {
        "docker": {
            "pool": pool_section,
            "monitoring": {"enabled": False},
            "rate_limit": {"enabled": False},
        }
    }
    return Config.from_mapping(data)


# ----------------------------------------------------------------- timing


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took (``time.perf_counter``)."""
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


@attrs.frozen
class Sample:
    """One timed run: wall-clock seconds and this process's CPU seconds (all threads).

    CPU time is the steadier figure on a shared machine: other people's load
    stretches wall time (a woken thread waits for a core) but not the CPU the
    benchmark itself burns.
    """

    wall: float
    cpu: float


def measure(fn: Callable[[], object]) -> Sample:
    """Run ``fn()`` once; return its wall time and the process's CPU time during it."""
    cpu = time.process_time()
    began = time.perf_counter()
    fn()
    wall = time.perf_counter() - began
    return Sample(wall, time.process_time() - cpu)


def alternate(
    rounds: int, ours: Callable[[], object], theirs: Callable[[], object]
) -> tuple[list[Sample], list[Sample]]:
    """Measure both sides ``rounds`` times, swapping which goes first each round.

    Short, many rounds beat one long run on a shared machine: both sides of a
    round see the same background load, and the median of per-round ratios
    (:func:`round_ratios`) ignores the rounds a burst of load spoiled.
    """
    ours_samples: list[Sample] = []
    theirs_samples: list[Sample] = []
    for index in range(rounds):
        if index % 2 == 0:
            ours_samples.append(measure(ours))
            theirs_samples.append(measure(theirs))
        else:
            theirs_samples.append(measure(theirs))
            ours_samples.append(measure(ours))
    return ours_samples, theirs_samples


def round_ratios(
    numerators: Sequence[Sample], denominators: Sequence[Sample], *, cpu: bool = False
) -> list[float]:
    """Per-round ratios of wall (or CPU) times, in round order."""
    if cpu:
        return [n.cpu / d.cpu for n, d in zip(numerators, denominators, strict=True)]
    return [n.wall / d.wall for n, d in zip(numerators, denominators, strict=True)]


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (the figure reported for repeated rounds)."""
    return float(statistics.median(values))


def run_threads(threads: int, total: int, work: Callable[[int], object]) -> float:
    """Run ``work(i)`` for ``i`` in ``range(total)`` from ``threads`` threads; return seconds.

    Calls are split evenly (the first ``total % threads`` threads do one more).
    All threads start together behind a barrier, so thread start-up is not
    timed; the clock stops when the last one ends. The first error raised in
    a worker is re-raised here.
    """
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    share, extra = divmod(total, threads)

    def worker(index: int) -> None:
        count = share + (1 if index < extra else 0)
        base = index * share + min(index, extra)
        barrier.wait()
        try:
            for i in range(base, base + count):
                work(i)
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return seconds


def rss_mib() -> float:
    """This process's resident memory in MiB (``VmRSS``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load_note() -> str:
    """A one-line note about the machine: cores and load averages (benchmarks share it).

    Past 1.5 runnable tasks per core it says the ratios are unreliable: every
    thread hand-off then waits for a core, which swamps what is measured.
    """
    cores = os.cpu_count() or 1
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return f"{cores} cores"
    note = f"{cores} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"
    if one > 1.5 * cores:
        note += " -- BUSY: ratios are unreliable, rerun when it is lower"
    return note


# ----------------------------------------------------------------- reporting


@attrs.frozen
class Target:
    """What a ratio must reach: ``ratio <= value`` or ``ratio >= value``."""

    op: Literal["<=", ">="] = attrs.field(validator=attrs.validators.in_(("<=", ">=")))
    value: float

    @classmethod
    def at_most(cls, value: float) -> Target:
        return cls("<=", value)

    @classmethod
    def at_least(cls, value: float) -> Target:
        return cls(">=", value)

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.value:g}x"


@attrs.frozen
class Figure:
    """One compared measurement: actorpool's figure, docker-py's, and their ratio.

    Build it with :meth:`times` (lower is better, ratio = ours / theirs),
    :meth:`speedup` (ratio = theirs / ours, i.e. how many times faster) or
    :meth:`rates` (higher is better, ratio = ours / theirs). Each takes an
    explicit ``ratio`` too, for when the figure to judge is not the ratio of
    the two printed values (typically the median of per-round ratios).
    """

    name: str
    ours: float
    theirs: float
    unit: str
    ratio: float
    target: Target | None = None
    note: str = ""

    @classmethod
    def times(
        cls,
        name: str,
        ours: float,
        theirs: float,
        target: Target | None = None,
        note: str = "",
        *,
        ratio: float | None = None,
    ) -> Figure:
        """Durations in seconds; ratio ours/theirs (1.10 means 10 % slower than docker-py)."""
        return cls(name, ours, theirs, "s", ours / theirs if ratio is None else ratio, target, note)

    @classmethod
    def speedup(
        cls,
        name: str,
        ours: float,
        theirs: float,
        target: Target | None = None,
        note: str = "",
        *,
        ratio: float | None = None,
    ) -> Figure:
        """Durations in seconds; ratio theirs/ours (6.0 means six times faster)."""
        return cls(name, ours, theirs, "s", theirs / ours if ratio is None else ratio, target, note)

    @classmethod
    def rates(
        cls,
        name: str,
        ours: float,
        theirs: float,
        target: Target | None = None,
        note: str = "",
        *,
        ratio: float | None = None,
        unit: str = "/s",
    ) -> Figure:
        """Throughputs; ratio ours/theirs (0.95 means 5 % fewer per second than docker-py)."""
        return cls(
            name, ours, theirs, unit, ours / theirs if ratio is None else ratio, target, note
        )

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        return "PASS" if self.target.met(self.ratio) else "MISS"


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def print_table(figures: Sequence[Figure], *, title: str = "") -> None:
    """Print one row per figure: actorpool, docker-py, ratio, target, PASS/MISS, note."""
    header = ("benchmark", "actorpool", "docker-py", "ratio", "target", "result")
    rows = [
        (
            f.name,
            _fmt(f.ours, f.unit),
            _fmt(f.theirs, f.unit),
            f"{f.ratio:.2f}x",
            str(f.target) if f.target else "-",
            f.verdict,
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    if title:
        print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row, figure in zip(rows, figures, strict=True):
        text = "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        print(text + (f"  {figure.note}" if figure.note else ""))


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes; add your own to it.

    ``--quick`` (fewer calls and rounds), ``--rounds N`` and ``--only NAME``
    (repeatable; run only the named parts, e.g. ``--only B1``).
    """
    parser = argparse.ArgumentParser(
        description=(description or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer calls and rounds (a smoke run, noisier)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds per comparison")
    parser.add_argument(
        "--only", action="append", default=None, help="run only these (e.g. --only B1)"
    )
    return parser


def bench_args(description: str | None, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the common options (see :func:`bench_parser`)."""
    return bench_parser(description).parse_args(argv)
