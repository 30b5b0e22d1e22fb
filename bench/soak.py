"""Chaos soak: a pool under steady load while the daemon, the transport and the actors fail.

Not a microbenchmark: this is the proof that actorpool keeps its two promises
under fire, measured end to end against a real private ``dockerd``:

1. **No call outlives its deadline.** 16 caller threads issue ``Ping``,
   ``ListContainers``, ``InspectContainer`` (some for ids that do not exist)
   and ``ContainerStats`` with deadlines; every call is timed from the
   caller's side, and one that returns (or raises) more than ``tolerance``
   seconds after its deadline counts as *outlived*. Wrong answers (a missing
   id found, another container's record) are counted too.
2. **No log line is lost or duplicated.** 20 containers (``soak=1``) print
   numbered lines on stdout and stderr; one ``FollowContainers`` subscriber
   records every line it gets. At the end the containers are stopped and
   their full logs read back from the daemon with plain docker-py
   (``timestamps=True``, one source at a time): the multiset of
   ``(source, daemon timestamp, text)`` the daemon has on disk must equal the
   multiset received. Keying by the daemon's nanosecond timestamp is what
   makes ``docker restart`` (numbering starts again at 1) harmless.

Meanwhile faults are injected at random moments, one at a time, each kind
several times: daemon restart (SIGTERM + start; ``--live-restore`` keeps the
containers running), daemon pause (SIGSTOP longer than the health-check
timeout, then SIGCONT), a connection actor killed (an unknown message by
``tell`` fails a Pykka actor, or ``stop()``), a log stream actor or the event
stream actor killed, the fault proxy in front of the daemon socket resetting
every connection or adding latency, containers restarted and new ones
started (new ones must be followed from their first line).

After each fault it measures how long until the pool is healthy again
(``PoolStatus``: every connection healthy, no breaker open, not degraded, and
a ``Ping`` through the pool answers) and until every running container's
lines flow again (a line stamped after the fault ended has arrived).

Run the long version from the repository root (as root: a sandbox needs it)::

    .venv/bin/python bench/soak.py --minutes 10

The test suite runs a short version (``tests/test_soak.py``) through
:func:`run_soak`.
"""

from __future__ import annotations

import argparse
import calendar
import collections
import contextlib
import functools
import logging
import os
import random
import select
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import pykka
from docker.errors import NotFound as NotFoundError

# Run as `python bench/soak.py` from anywhere: make the repository importable.
_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import actorpool  # noqa: E402
from actorpool.config import Config  # noqa: E402
from actorpool.errors import NotFound  # noqa: E402
from actorpool.messages import (  # noqa: E402
    ContainerStats,
    FollowContainers,
    InspectContainer,
    ListContainers,
    LogChunk,
    LogStreamEnded,
    LogStreamError,
    Ping,
    PoolStatusReport,
)
from actorpool.testing.sandbox import IMAGE, Sandbox, missing_requirements  # noqa: E402

__all__ = [
    "FAULT_KINDS",
    "FaultRecord",
    "LineStore",
    "Recorder",
    "SoakOptions",
    "SoakReport",
    "main",
    "run_soak",
]

#: Every fault the soak injects, in the order the report lists them.
FAULT_KINDS: Final = (
    "daemon_restart",
    "daemon_pause",
    "connection_kill",
    "log_stream_kill",
    "event_stream_kill",
    "proxy_reset",
    "proxy_latency",
    "container_restart",
    "container_start",
)

LABEL: Final = "soak"
_IN_FLIGHT: Final = 3_000_000_000  # ns: see drain_and_compare
_NS: Final = 1_000_000_000

# Each request's deadline (seconds): ContainerStats makes the daemon sample twice (1-2 s).
_DEADLINES: Final = {
    "ping": 2.0,
    "list_containers": 3.0,
    "inspect_container": 3.0,
    "inspect_missing": 3.0,
    "container_stats": 5.0,
}
_WEIGHTS: Final = {
    "ping": 3,
    "list_containers": 3,
    "inspect_container": 2,
    "inspect_missing": 1,
    "container_stats": 1,
}


def line_cmd(interval_us: int) -> list[str]:
    """The containers' command: numbered lines on stdout and stderr, forever."""
    script = (
        f'i=0; while :; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; usleep {interval_us}; done'
    )
    return ["sh", "-c", script]


# --------------------------------------------------------------------------- options, report


@attrs.frozen
class SoakOptions:
    """What one soak run does.

    Attributes:
        duration: Seconds of load and faults (setup and the final check come on top).
        containers: Containers started before the load begins.
        callers: Caller threads issuing requests.
        faults_per_kind: Each fault kind is injected at least this many times.
        repeat_faults: Keep injecting faults (random kinds) until ``duration`` ends,
            after every kind had its ``faults_per_kind``; the long run sets it.
        kinds: The fault kinds to inject (default: all of :data:`FAULT_KINDS`).
        line_interval_us: ``usleep`` between a container's line pairs.
        think: Each caller waits up to this many seconds between calls.
        tolerance: Seconds a call may return after its deadline and still count as on time.
        pause_seconds: How long a paused daemon stays stopped (must exceed the health timeout).
        latency_seconds: How long the proxy adds latency.
        recovery_timeout: Seconds to wait for the pool (and the streams) to recover after a fault.
        drain_timeout: Seconds to wait at the end for the last lines to arrive.
        seed: Seed of the random choices (``None``: random, printed in the report).
        thread_tolerance: Extra threads allowed at the end compared to the warm-up.
        rss_tolerance_mb: Extra resident memory (MiB) allowed at the end, beyond what the
            recorder itself stores.
    """

    duration: float = 60.0
    containers: int = 20
    callers: int = 16
    faults_per_kind: int = 2
    repeat_faults: bool = False
    kinds: tuple[str, ...] = attrs.field(
        default=FAULT_KINDS,
        converter=tuple,
        validator=attrs.validators.deep_iterable(attrs.validators.in_(FAULT_KINDS)),
    )
    line_interval_us: int = 20_000
    think: float = 0.05
    tolerance: float = 0.5
    pause_seconds: float = 3.0
    latency_seconds: float = 3.0
    recovery_timeout: float = 30.0
    drain_timeout: float = 30.0
    seed: int | None = None
    thread_tolerance: int = 4
    rss_tolerance_mb: float = 40.0


@attrs.define
class FaultRecord:
    """One injected fault and how the system came back from it.

    Times: ``start``/``end`` are ``time.monotonic()``; ``start_ns``/``end_ns`` the wall
    clock in ns (comparable with the daemon's log timestamps).
    """

    kind: str
    detail: str
    start: float
    end: float
    start_ns: int
    end_ns: int
    pool_recovery: float | None = None  # s from the fault's end to a healthy pool
    stream_recovery: float | None = None  # s from the fault's end to lines flowing everywhere
    error: str = ""


@attrs.define
class SoakReport:
    """Everything a soak run measured; :meth:`problems` says what broke a promise."""

    options: SoakOptions
    seed: int
    seconds: float = 0.0
    calls: collections.Counter[str] = attrs.field(factory=collections.Counter)
    outcomes: dict[str, collections.Counter[str]] = attrs.field(factory=dict)
    outlived: list[tuple[str, float, float, str]] = attrs.field(factory=list)
    failures: list[tuple[float, str, str]] = attrs.field(factory=list)  # (began, op, outcome)
    wrong: list[str] = attrs.field(factory=list)
    worst_overrun: float = 0.0
    faults: list[FaultRecord] = attrs.field(factory=list)
    containers: int = 0
    expected_lines: dict[tuple[str, str], int] = attrs.field(factory=dict)
    received_lines: dict[tuple[str, str], int] = attrs.field(factory=dict)
    missing: dict[tuple[str, str], int] = attrs.field(factory=dict)
    duplicated: dict[tuple[str, str], int] = attrs.field(factory=dict)
    unexpected: dict[tuple[str, str], int] = attrs.field(factory=dict)
    missing_by_fault: collections.Counter[str] = attrs.field(factory=collections.Counter)
    gaps_by_fault: collections.Counter[str] = attrs.field(factory=collections.Counter)
    missing_examples: list[str] = attrs.field(factory=list)
    untimed_lines: int = 0
    stream_errors: list[str] = attrs.field(factory=list)
    stream_ends: collections.Counter[str] = attrs.field(factory=collections.Counter)
    restarts: int = 0
    stream_stats: dict[str, int] = attrs.field(factory=dict)
    threads_warm: int = 0
    threads_end: int = 0
    threads_before_pool: int = 0
    threads_after_pool: int = 0
    thread_kinds_warm: dict[str, int] = attrs.field(factory=dict)
    thread_kinds_end: dict[str, int] = attrs.field(factory=dict)
    leaked_threads: list[str] = attrs.field(factory=list)
    pool_size_warm: int = 0
    pool_size_end: int = 0
    rss_warm_mb: float = 0.0
    rss_base_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_samples: list[tuple[float, float, int]] = attrs.field(factory=list)  # (s, MiB, threads)
    recorder_mb: float = 0.0
    proxy_connections_left: int = 0
    fds_before_pool: int = 0
    fds_after_pool: int = 0
    fds_warm: int = 0
    fds_end: int = 0
    unrecovered: list[str] = attrs.field(factory=list)

    # -- derived figures --

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    @property
    def failed_by_type(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter()
        for counter in self.outcomes.values():
            for outcome, n in counter.items():
                if outcome not in ("ok", "NotFound (expected)"):
                    total[outcome] += n
        return total

    @property
    def succeeded(self) -> int:
        return sum(
            n
            for counter in self.outcomes.values()
            for outcome, n in counter.items()
            if outcome in ("ok", "NotFound (expected)")
        )

    def failures_by_fault(self) -> dict[str, collections.Counter[str]]:
        """Failed calls by the fault whose window (until recovered, plus 5 s) they started in."""
        windows = []
        for fault in self.faults:
            recovered = fault.pool_recovery
            if recovered is None:
                recovered = self.options.recovery_timeout
            windows.append((fault.start, fault.end + recovered + 5.0, fault.kind))
        counts: dict[str, collections.Counter[str]] = {}
        for began, _, outcome in self.failures:
            kinds = [kind for start, end, kind in windows if start <= began <= end]
            kind = kinds[-1] if kinds else "outside any fault"
            counts.setdefault(kind, collections.Counter())[outcome] += 1
        return counts

    def worst(self, attribute: str) -> tuple[float | None, str]:
        """The worst recovery time of any fault, and that fault's kind."""
        worst: tuple[float | None, str] = (None, "")
        for fault in self.faults:
            value = getattr(fault, attribute)
            if value is not None and (worst[0] is None or value > worst[0]):
                worst = (value, fault.kind)
        return worst

    def problems(self) -> list[str]:
        """Every broken promise, one line each; empty means the soak passed."""
        found: list[str] = []
        if self.outlived:
            op, timeout, elapsed, outcome = self.outlived[0]
            found.append(
                f"{len(self.outlived)} calls outlived their deadline by more than "
                f"{self.options.tolerance}s (first: {op} timeout {timeout}s took {elapsed:.2f}s, "
                f"{outcome})"
            )
        if self.wrong:
            found.append(f"{len(self.wrong)} wrong answers (first: {self.wrong[0]})")
        if self.calls_total == 0 or self.succeeded == 0:
            found.append("no call succeeded: the load never ran")
        for name, table in (
            ("missing", self.missing),
            ("duplicated", self.duplicated),
            ("unexpected", self.unexpected),
        ):
            total = sum(table.values())
            if total:
                found.append(f"{total} log lines {name} ({_worst_keys(table)})")
        if sum(self.expected_lines.values()) == 0:
            found.append("the daemon logged no line: the containers never ran")
        if self.untimed_lines:
            found.append(f"{self.untimed_lines} received lines carry no daemon timestamp")
        if self.stream_errors:
            found.append(
                f"{len(self.stream_errors)} LogStreamError messages (first: "
                f"{self.stream_errors[0]})"
            )
        for fault in self.faults:
            if fault.error:
                found.append(f"fault {fault.kind} could not be injected: {fault.error}")
        found.extend(self.unrecovered)
        done = collections.Counter(f.kind for f in self.faults if not f.error)
        for kind in self.options.kinds:
            if done[kind] < self.options.faults_per_kind:
                found.append(
                    f"fault {kind} ran {done[kind]} times, fewer than "
                    f"{self.options.faults_per_kind} (raise the duration)"
                )
        grown = max(0, self.pool_size_end - self.pool_size_warm)
        if self.threads_end > self.threads_warm + grown + self.options.thread_tolerance:
            found.append(
                f"threads grew from {self.threads_warm} (warm-up) to {self.threads_end} (end, "
                f"streams drained; pool grew by {grown}): {_kind_diff(self)}"
            )
        if self.leaked_threads:
            found.append(
                f"{len(self.leaked_threads)} threads outlived the pool: "
                f"{', '.join(self.leaked_threads[:8])}"
            )
        if self.rss_end_mb - self.recorder_mb > self.rss_base_mb + self.options.rss_tolerance_mb:
            found.append(
                f"RSS grew from {self.rss_base_mb:.0f} MiB (a third into the load) to "
                f"{self.rss_end_mb:.0f} MiB (recorder: {self.recorder_mb:.1f} MiB)"
            )
        if self.proxy_connections_left:
            found.append(
                f"{self.proxy_connections_left} connections through the proxy stayed open "
                "for 10 s after the pool stopped"
            )
        if self.fds_after_pool > self.fds_before_pool + 2:
            found.append(
                f"open file descriptors: {self.fds_before_pool} before the pool started, "
                f"{self.fds_after_pool} after it stopped"
            )
        return found

    def format(self) -> str:
        """The report as text (what the script prints)."""
        o = self.options
        out: list[str] = []
        add = out.append
        add(
            f"soak: {self.seconds:.0f}s of load, {self.containers} containers "
            f"({o.containers} at start), {o.callers} callers, seed {self.seed}"
        )
        add(
            f"calls: {self.calls_total} made, {self.succeeded} succeeded "
            f"(incl. {sum(c['NotFound (expected)'] for c in self.outcomes.values())} expected "
            f"NotFound), failed by type: {dict(self.failed_by_type.most_common()) or 'none'}"
        )
        for op in sorted(self.outcomes):
            add(f"  {op:<18} {dict(self.outcomes[op].most_common())}")
        if self.failures:
            add("  failed calls by the fault they ran in (or within 5 s of its recovery):")
            for kind, outcomes in sorted(self.failures_by_fault().items()):
                add(f"    {kind:<18} {dict(outcomes.most_common())}")
        add(
            f"deadlines: {len(self.outlived)} calls outlived their deadline by > {o.tolerance}s; "
            f"worst overrun {self.worst_overrun:+.3f}s; wrong answers: {len(self.wrong)}"
        )
        expected = sum(self.expected_lines.values())
        received = sum(self.received_lines.values())
        add(
            f"log lines: expected {expected} (daemon's log files), received {received}; "
            f"missing {sum(self.missing.values())}, duplicated {sum(self.duplicated.values())}, "
            f"unexpected {sum(self.unexpected.values())}, without timestamp {self.untimed_lines}"
        )
        per_source: dict[str, list[int]] = {}
        for (_, source), n in self.expected_lines.items():
            per_source.setdefault(source, [0, 0])[0] += n
        for (_, source), n in self.received_lines.items():
            per_source.setdefault(source, [0, 0])[1] += n
        for source, (exp, rec) in sorted(per_source.items()):
            add(f"  {source}: expected {exp}, received {rec}")
        add("  per container (received/expected):")
        cids = sorted({cid for cid, _ in self.expected_lines})
        for start in range(0, len(cids), 3):
            add(
                "  "
                + "; ".join(
                    f"{cid[:12]} out {self.received_lines.get((cid, 'stdout'), 0)}/"
                    f"{self.expected_lines.get((cid, 'stdout'), 0)} err "
                    f"{self.received_lines.get((cid, 'stderr'), 0)}/"
                    f"{self.expected_lines.get((cid, 'stderr'), 0)}"
                    for cid in cids[start : start + 3]
                )
            )
        bad = sorted(set(self.missing) | set(self.duplicated) | set(self.unexpected))
        for key in bad[:20]:
            add(
                f"  {key[0][:12]} {key[1]}: expected {self.expected_lines.get(key, 0)}, "
                f"received {self.received_lines.get(key, 0)}, missing {self.missing.get(key, 0)}, "
                f"duplicated {self.duplicated.get(key, 0)}, unexpected "
                f"{self.unexpected.get(key, 0)}"
            )
        if self.missing_by_fault:
            add(
                f"  missing lines by the fault that caused each gap (the last one started before, "
                f"or up to {_IN_FLIGHT // _NS}s after, the gap's first line): lines "
                f"{dict(self.missing_by_fault)}, gaps {dict(self.gaps_by_fault)}"
            )
        for example in self.missing_examples[:5]:
            add(f"  e.g. missing {example}")
        add(f"stream ends: {dict(self.stream_ends) or 'none'}; errors: {len(self.stream_errors)}")
        add(f"stream stats: {self.stream_stats}")
        add(f"actor restarts (connections replaced): {self.restarts}")
        add(
            f"threads: warm-up {self.threads_warm} (pool size {self.pool_size_warm}), end "
            f"{self.threads_end} (pool size {self.pool_size_end}, streams drained); before the "
            f"pool {self.threads_before_pool}, after it stopped {self.threads_after_pool}"
        )
        add(
            f"file descriptors: warm-up {self.fds_warm}, end {self.fds_end}; before the pool "
            f"{self.fds_before_pool}, after it stopped {self.fds_after_pool}; connections "
            f"through the proxy left open after the stop: {self.proxy_connections_left}"
        )
        add(
            f"RSS: warm-up {self.rss_warm_mb:.1f} MiB, a third into the load "
            f"{self.rss_base_mb:.1f} MiB, end {self.rss_end_mb:.1f} MiB (the recorder holds "
            f"{self.recorder_mb:.1f} MiB of line hashes)"
        )
        if self.rss_samples:
            step = max(1, len(self.rss_samples) // 10)
            shown = self.rss_samples[::step] + self.rss_samples[-1:]
            add(
                "  over time (s: MiB/threads): "
                + ", ".join(f"{t:.0f}: {mb:.0f}/{n}" for t, mb, n in shown)
            )
        add("faults (pool = s from the fault's end to a healthy pool, streams = to lines flowing):")
        by_kind: dict[str, list[FaultRecord]] = {}
        for fault in self.faults:
            by_kind.setdefault(fault.kind, []).append(fault)
        for kind in FAULT_KINDS:
            faults = by_kind.get(kind)
            if not faults:
                continue
            pools = [f.pool_recovery for f in faults if f.pool_recovery is not None]
            streams = [f.stream_recovery for f in faults if f.stream_recovery is not None]
            lasted = [f.end - f.start for f in faults]
            add(
                f"  {kind:<18} x{len(faults):<3} lasted max {max(lasted):5.2f}s; pool max "
                f"{_fmt(max(pools) if pools else None)} streams max "
                f"{_fmt(max(streams) if streams else None)}"
            )
        worst_pool, worst_pool_kind = self.worst("pool_recovery")
        worst_stream, worst_stream_kind = self.worst("stream_recovery")
        add(
            f"worst fault -> healthy pool: {_fmt(worst_pool)} ({worst_pool_kind}); "
            f"worst fault -> lines flowing: {_fmt(worst_stream)} ({worst_stream_kind})"
        )
        problems = self.problems()
        add("RESULT: PASS" if not problems else "RESULT: FAIL")
        out.extend(f"  - {p}" for p in problems)
        return "\n".join(out)


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.2f}s"


def _worst_keys(table: dict[tuple[str, str], int]) -> str:
    items = sorted(table.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{cid[:12]} {source}: {n}" for (cid, source), n in items)


def _kind_diff(report: SoakReport) -> str:
    keys = set(report.thread_kinds_warm) | set(report.thread_kinds_end)
    diff = {
        k: report.thread_kinds_end.get(k, 0) - report.thread_kinds_warm.get(k, 0)
        for k in sorted(keys)
    }
    return ", ".join(f"{k} {v:+d}" for k, v in diff.items() if v)


# --------------------------------------------------------------------------- recording lines


class LineStore:
    """Every line the subscriber received, kept compactly (8 bytes a line). Thread-safe.

    Lines are stored as the hash of ``(source, timestamp, data)`` per
    container and source, so ten minutes at 2,000 lines/s cost ~10 MiB and
    the RSS figure is not swamped by the recording itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, str], array[int]] = {}
        self._last_ns: dict[str, int] = {}
        self.untimed = 0
        self.ends: list[LogStreamEnded] = []
        self.errors: list[LogStreamError] = []

    def add(self, chunk: LogChunk) -> None:
        with self._lock:
            cid = chunk.container_id
            last = self._last_ns.get(cid, 0)
            for line in chunk.lines:
                key = (cid, line.stream)
                hashes = self._hashes.get(key)
                if hashes is None:
                    hashes = self._hashes[key] = array("q")
                hashes.append(line_hash(line.stream, line.timestamp, line.data))
                if line.timestamp == 0:
                    self.untimed += 1
                last = max(last, line.timestamp)
            self._last_ns[cid] = last

    def ended(self, message: LogStreamEnded | LogStreamError) -> None:
        with self._lock:
            if isinstance(message, LogStreamError):
                self.errors.append(message)
            else:
                self.ends.append(message)

    def last_ns(self, cid: str) -> int:
        """The newest daemon timestamp received from ``cid`` (0 if none)."""
        with self._lock:
            return self._last_ns.get(cid, 0)

    def count(self, key: tuple[str, str]) -> int:
        with self._lock:
            hashes = self._hashes.get(key)
            return 0 if hashes is None else len(hashes)

    def total(self) -> int:
        with self._lock:
            return sum(len(h) for h in self._hashes.values())

    def counter(self, key: tuple[str, str]) -> collections.Counter[int]:
        with self._lock:
            return collections.Counter(self._hashes.get(key, ()))

    def sources(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._hashes)

    def nbytes(self) -> int:
        with self._lock:
            return sum(h.buffer_info()[1] * h.itemsize for h in self._hashes.values())


def line_hash(source: str, timestamp: int, data: bytes) -> int:
    """One line's identity (Python's hash is stable within a process, which is all we need)."""
    return hash((source, timestamp, data))


class Recorder(pykka.ThreadingActor):
    """The FollowContainers subscriber: records every line and every end message."""

    def __init__(self, store: LineStore) -> None:
        super().__init__()
        self._store = store

    def on_receive(self, message: Any) -> None:
        if isinstance(message, LogChunk):
            self._store.add(message)
        elif isinstance(message, LogStreamEnded | LogStreamError):
            self._store.ended(message)


# --------------------------------------------------------------------------- the daemon's truth


def parse_docker_time(text: bytes) -> int:
    """``2024-01-01T00:00:00.123456789Z`` -> ns since the epoch (independent of actorpool)."""
    stamp = text.decode()
    if not stamp.endswith("Z"):
        msg = f"not a UTC RFC 3339 timestamp: {stamp!r}"
        raise ValueError(msg)
    whole, _, fraction = stamp[:-1].partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * _NS + int((fraction or "0").ljust(9, "0")[:9])


def daemon_lines(client: Any, cid: str, source: str) -> list[tuple[int, bytes]]:
    """Every ``(timestamp ns, data)`` line of one source of ``cid``, as the daemon stored it.

    Plain docker-py, one source per request, non-follow: an independent witness.
    """
    raw: bytes = client.logs(
        cid, stdout=source == "stdout", stderr=source == "stderr", timestamps=True, tail="all"
    )
    lines: list[tuple[int, bytes]] = []
    for line in raw.split(b"\n")[:-1] if raw.endswith(b"\n") else raw.split(b"\n"):
        if not line:
            continue
        stamp, _, data = line.partition(b" ")
        lines.append((parse_docker_time(stamp), data))
    return lines


# --------------------------------------------------------------------------- process figures


def rss_mb() -> float:
    """This process's resident memory in MiB (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    """File descriptors this process has open (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


def thread_kinds() -> dict[str, int]:
    """Live threads of this process by kind (name without its counter or container id)."""
    kinds: collections.Counter[str] = collections.Counter()
    for thread in threading.enumerate():
        kinds[_thread_kind(thread.name)] += 1
    return dict(kinds)


def _thread_kind(name: str) -> str:
    if name.startswith("actorpool-logs-"):
        return "log-reader-" + name.rsplit("-", 1)[-1].split("-")[0]
    head = name.split(" ")[0]
    base = head.rstrip("0123456789").rstrip("-_")
    return base or head


# --------------------------------------------------------------------------- the run


_PROXY_SCRIPT: Final = """
import os, sys
from actorpool.testing.faultproxy import FaultProxy
proxy = FaultProxy(sys.argv[1])
print("ready", proxy.path, flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    answer = "ok"
    if command == "set":
        name, value = argument.split()
        setattr(proxy, name, value if name == "mode" else float(value))
    elif command == "reset_all":
        proxy.reset_all()
    elif command == "stats":
        sockets = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                pass  # the descriptor listdir itself used
        answer = f"ok {proxy.connections} {sockets}"
    elif command == "quit":
        break
    print(answer, flush=True)
proxy.close()
"""


class ProxyProcess:
    """A :class:`~actorpool.testing.faultproxy.FaultProxy` in a process of its own, on commands.

    In its own process the proxy's threads, sockets and memory stay out of
    the figures the soak measures (threads, RSS, file descriptors), and the
    number of file descriptors it holds tells how many connections the pool
    keeps open through it.
    """

    def __init__(self, upstream: str | os.PathLike[str], timeout: float = 20.0) -> None:
        env = dict(os.environ, PYTHONPATH=str(_REPO))
        self._process = subprocess.Popen(
            [sys.executable, "-c", _PROXY_SCRIPT, str(upstream)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(_REPO),
            env=env,
        )
        self._lock = threading.Lock()
        words = self._read(timeout).split()
        if words[:1] != ["ready"]:
            self.close()
            msg = f"the fault proxy did not start: {' '.join(words)!r}"
            raise RuntimeError(msg)
        self.path = words[1]
        self._base_fds = self.stats()[1]

    @property
    def url(self) -> str:
        """``unix://`` URL of the proxy, for ``docker.pool.socket_path``."""
        return f"unix://{self.path}"

    def _read(self, timeout: float) -> str:
        stdout = self._process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            msg = f"the fault proxy did not answer within {timeout}s"
            raise RuntimeError(msg)
        return stdout.readline().strip()

    def command(self, text: str, timeout: float = 10.0) -> str:
        """Send one command (``set latency 0.25``, ``reset_all``, ``stats``); return the answer."""
        with self._lock:
            stdin = self._process.stdin
            assert stdin is not None
            stdin.write(text + "\n")
            stdin.flush()
            answer = self._read(timeout)
        if not answer.startswith("ok"):
            msg = f"the fault proxy answered {answer!r} to {text!r}"
            raise RuntimeError(msg)
        return answer

    def set(self, name: str, value: float | str) -> None:
        self.command(f"set {name} {value}")

    def reset_all(self) -> None:
        self.command("reset_all")

    def stats(self) -> tuple[int, int]:
        """(connections accepted so far, sockets the proxy holds)."""
        _, accepted, fds = self.command("stats").split()
        return int(accepted), int(fds)

    def open_connections(self) -> int:
        """Client connections the proxy is forwarding now (two sockets each)."""
        return max(0, (self.stats()[1] - self._base_fds) // 2)

    def settled_connections(self, timeout: float = 10.0) -> int:
        """Connections still open once the count reached 0 or ``timeout`` passed.

        The proxy closes its two sockets of a connection only when its pump
        thread sees the client's end close, some time after the pool stopped
        (longer on a loaded machine): one look right after the stop races it.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = self.open_connections()
            if left == 0 or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.command("quit", timeout=2.0)
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)


class _Control:
    """Direct docker-py access to the sandbox (not through the proxy) for the harness.

    Every call is retried for a while: the harness restarts and pauses the
    daemon, and its own requests must not be what fails.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._client = sandbox.client(timeout=30)
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Any], Any], *, within: float = 30.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                try:
                    return fn(self._client)
                except NotFoundError:
                    raise
                except Exception:
                    if time.monotonic() >= deadline:
                        raise
                    with contextlib.suppress(Exception):
                        self._client.close()
                    self._client = self._sandbox.client(timeout=30)
            time.sleep(0.1)

    def close(self) -> None:
        """Close the client's connections (the next call opens new ones)."""
        with self._lock:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = self._sandbox.client(timeout=30)

    def shutdown(self) -> None:
        """Close the client for good."""
        with self._lock, contextlib.suppress(Exception):
            self._client.close()


class _Soak:
    """One run: owns the threads, the containers and the report while it lasts."""

    def __init__(self, options: SoakOptions, sandbox: Sandbox, log: Callable[[str], None]) -> None:
        self.o = options
        self.sandbox = sandbox
        self.log = log
        seed = options.seed if options.seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(seed)
        self.report = SoakReport(options=options, seed=seed)
        self.control = _Control(sandbox)
        self.store = LineStore()
        self.ids: list[str] = []
        self._known: set[str] = set()  # containers started before the current fault
        self.ids_lock = threading.Lock()
        self.stop_load = threading.Event()
        self.calls_lock = threading.Lock()
        self.proxy: ProxyProcess | None = None
        self.pool: actorpool.Pool | None = None
        self.recorder: pykka.ActorRef[Any] | None = None

    # -- setup --

    def config(self, url: str) -> Config:
        data = {
            "docker": {
                "pool": {
                    "socket_path": url,
                    "min_pool_size": 4,
                    "initial_pool_size": 6,
                    "max_pool_size": 12,
                    "health_check_interval": 0.5,
                    "health_check_timeout": 1.0,
                    "unhealthy_threshold": 2,
                    "recovery_check_interval": 1.0,
                    "connection_timeout": 5.0,
                    "initial_retry_delay": 0.05,
                    "max_retry_delay": 0.5,
                    "max_retries": 5,
                    "restart_window": 10.0,
                    "max_restarts": 20,
                },
                "api": {"timeout": 10.0},
                "circuit_breaker": {"timeout": 2.0},
                "rate_limit": {"enabled": False},
                "monitoring": {"enabled": False},
                "streams": {
                    "reconnect_initial_delay": 0.05,
                    "reconnect_max_delay": 1.0,
                    "give_up_after": 300.0,
                },
            }
        }
        return Config.from_mapping(data)

    def new_container(self) -> str:
        cmd = line_cmd(self.o.line_interval_us)

        def create(client: Any) -> str:
            container = client.create_container(
                IMAGE,
                command=cmd,
                labels={LABEL: "1"},
                host_config=client.create_host_config(network_mode="none"),
            )
            return str(container["Id"])

        cid: str = self.control.call(create)
        self.control.call(lambda c: c.start(cid))
        with self.ids_lock:
            self.ids.append(cid)
            if not self.report.faults:
                self._known.add(cid)
        return cid

    # -- load --

    def caller(self, index: int) -> None:
        rng = random.Random(self.report.seed * 1000 + index)
        ops = list(_WEIGHTS)
        weights = [_WEIGHTS[op] for op in ops]
        assert self.pool is not None
        router = self.pool.router
        while not self.stop_load.is_set():
            op = rng.choices(ops, weights)[0]
            timeout = _DEADLINES[op]
            with self.ids_lock:
                cid = rng.choice(self.ids)
            message: Any
            if op == "ping":
                message = Ping(timeout=timeout)
            elif op == "list_containers":
                message = ListContainers(filters={"label": [f"{LABEL}=1"]}, timeout=timeout)
            elif op == "inspect_container":
                message = InspectContainer(cid, timeout=timeout)
            elif op == "inspect_missing":
                message = InspectContainer(f"{rng.getrandbits(256):064x}", timeout=timeout)
            else:
                message = ContainerStats(cid, timeout=timeout)
            began = time.monotonic()
            wrong = ""
            try:
                # No timeout of our own: the pool's deadline must bound the call. The
                # generous outer bound only keeps a broken pool from hanging the soak.
                result = router.ask(message, timeout=timeout + 60)
            except NotFound:
                outcome = "NotFound (expected)" if op == "inspect_missing" else "NotFound"
                if op != "inspect_missing":
                    wrong = f"{op} of running container {cid[:12]}: NotFound"
            except pykka.Timeout:
                outcome = "hung (no answer 60 s past the deadline)"
            except Exception as exc:
                outcome = type(exc).__name__
            else:
                outcome = "ok"
                wrong = _check_result(op, cid, result)
            elapsed = time.monotonic() - began
            with self.calls_lock:
                self.report.calls[op] += 1
                self.report.outcomes.setdefault(op, collections.Counter())[outcome] += 1
                overrun = elapsed - timeout
                self.report.worst_overrun = max(self.report.worst_overrun, overrun)
                if overrun > self.o.tolerance:
                    self.report.outlived.append((op, timeout, elapsed, outcome))
                if wrong:
                    self.report.wrong.append(wrong)
                if outcome not in ("ok", "NotFound (expected)"):
                    self.report.failures.append((began, op, outcome))
            if self.o.think:
                self.stop_load.wait(rng.uniform(0, self.o.think))

    # -- health --

    def pool_healthy(self) -> bool:
        assert self.pool is not None
        try:
            report: PoolStatusReport = self.pool.status(timeout=2.0)
        except Exception:
            return False
        if (
            report.degraded
            or report.size < report.min_size
            or report.healthy < report.size
            or any(c.breaker == "open" for c in report.connections)
        ):
            return False
        try:
            return bool(self.pool.router.ask(Ping(timeout=1.0), timeout=10))
        except Exception:
            return False

    def running_ids(self) -> list[str]:
        def running(client: Any) -> list[str]:
            listed = client.containers(filters={"label": f"{LABEL}=1", "status": "running"})
            return [str(c["Id"]) for c in listed]

        ids: list[str] = self.control.call(running)
        return ids

    def streams_flowing(self, since_ns: int, ids: Sequence[str]) -> bool:
        return all(self.store.last_ns(cid) > since_ns for cid in ids)

    def wait_recovered(self, fault: FaultRecord, flowing: Sequence[str]) -> None:
        """Measure how long until the pool is healthy and lines flow again after ``fault``.

        Lines must flow again from every container that is running now and
        was delivering lines just before the fault (a container stalled by an
        earlier fault was reported then), plus any container the fault started.
        """
        deadline = fault.end + self.o.recovery_timeout
        running = set(self.running_ids())
        with self.ids_lock:
            started = [cid for cid in self.ids if cid not in self._known]
            self._known.update(started)
        ids = [cid for cid in (*flowing, *started) if cid in running]
        while time.monotonic() < deadline:
            now = time.monotonic()
            if fault.pool_recovery is None and self.pool_healthy():
                fault.pool_recovery = time.monotonic() - fault.end
            if fault.stream_recovery is None and self.streams_flowing(fault.end_ns, ids):
                fault.stream_recovery = time.monotonic() - fault.end
            if fault.pool_recovery is not None and fault.stream_recovery is not None:
                return
            time.sleep(max(0.0, 0.05 - (time.monotonic() - now)))
        if fault.pool_recovery is None:
            self.report.unrecovered.append(
                f"the pool was not healthy {self.o.recovery_timeout:g}s after {fault.kind} "
                f"({fault.detail})"
            )
        if fault.stream_recovery is None:
            stalled = [cid[:12] for cid in ids if self.store.last_ns(cid) <= fault.end_ns]
            self.report.unrecovered.append(
                f"lines of {len(stalled)} running containers ({', '.join(stalled[:5])}) did not "
                f"flow again within {self.o.recovery_timeout:g}s after {fault.kind} "
                f"({fault.detail})"
            )

    # -- faults --

    def sample(self, began: float) -> None:
        """Record RSS and threads every few seconds; the RSS a third into the load is the base."""
        base_at = began + max(10.0, self.o.duration / 3)
        interval = max(1.0, min(10.0, self.o.duration / 30))
        while not self.stop_load.is_set():
            now = time.monotonic()
            mb = rss_mb()
            self.report.rss_samples.append((now - began, mb, sum(thread_kinds().values())))
            if not self.report.rss_base_mb and now >= base_at:
                self.report.rss_base_mb = mb
            self.stop_load.wait(interval)

    def flowing(self) -> list[str]:
        """Containers whose lines arrived within the last two seconds."""
        recent = time.time_ns() - 2 * _NS
        with self.ids_lock:
            ids = list(self.ids)
        return [cid for cid in ids if self.store.last_ns(cid) > recent]

    def inject(self, kind: str) -> FaultRecord:
        start, start_ns = time.monotonic(), time.time_ns()
        detail = ""
        error = ""
        try:
            detail = getattr(self, "_fault_" + kind)()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        fault = FaultRecord(kind, detail, start, time.monotonic(), start_ns, time.time_ns())
        fault.error = error
        return fault

    def _fault_daemon_restart(self) -> str:
        self.sandbox.restart()
        return "SIGTERM + start, live restore"

    def _fault_daemon_pause(self) -> str:
        self.sandbox.pause()
        try:
            time.sleep(self.o.pause_seconds)
        finally:
            self.sandbox.resume()
        return f"SIGSTOP for {self.o.pause_seconds:g}s"

    def _fault_connection_kill(self) -> str:
        assert self.pool is not None
        conns = self.pool.connections()
        conn_id = self.rng.choice(sorted(conns))
        ref = conns[conn_id]
        if self.rng.random() < 0.5:
            ref.tell("crash")  # an unknown message by tell fails a Pykka actor
            return f"{conn_id} crashed"
        ref.stop(block=False)
        return f"{conn_id} stopped"

    def _fault_log_stream_kill(self) -> str:
        refs = pykka.ActorRegistry.get_by_class_name("LogStream")
        if not refs:
            msg = "no LogStream actor is running"
            raise RuntimeError(msg)
        self.rng.choice(refs).tell("crash")  # an unknown message by tell fails the actor
        return f"one of {len(refs)} LogStream actors crashed"

    def _fault_event_stream_kill(self) -> str:
        refs = pykka.ActorRegistry.get_by_class_name("EventStream")
        if not refs:
            earlier = sum(f.kind == "event_stream_kill" for f in self.report.faults)
            msg = "no EventStream actor is running" + (
                " (the one killed earlier was never replaced)" if earlier else ""
            )
            raise RuntimeError(msg)
        self.rng.choice(refs).tell("crash")
        return "EventStream crashed"

    def _fault_proxy_reset(self) -> str:
        assert self.proxy is not None
        self.proxy.set("reset_probability", 0.5)
        try:
            self.proxy.reset_all()
            time.sleep(1.0)
            self.proxy.reset_all()
        finally:
            self.proxy.set("reset_probability", 0.0)
        return "reset all, half of new connections reset for 1 s, reset all"

    def _fault_proxy_latency(self) -> str:
        assert self.proxy is not None
        latency = self.rng.choice((0.1, 0.25, 0.5))
        self.proxy.set("latency", latency)
        try:
            time.sleep(self.o.latency_seconds)
        finally:
            self.proxy.set("latency", 0.0)
        return f"{latency:g}s per chunk for {self.o.latency_seconds:g}s"

    def _fault_container_restart(self) -> str:
        ids = self.running_ids()
        chosen = self.rng.sample(ids, min(len(ids), self.rng.randint(1, 3)))
        for cid in chosen:
            self.control.call(functools.partial(_restart, cid=cid))
        return "restarted " + ", ".join(cid[:12] for cid in chosen)

    def _fault_container_start(self) -> str:
        started = [self.new_container() for _ in range(self.rng.randint(1, 2))]
        return "started " + ", ".join(cid[:12] for cid in started)

    def fault_loop(self, until: float, hard_stop: float) -> None:
        """Inject faults one at a time at random moments until ``until``.

        Every kind gets its ``faults_per_kind`` even when recoveries took
        longer than planned: the loop may run on past ``until``, never past
        ``hard_stop``.
        """
        bag = [k for k in self.o.kinds for _ in range(self.o.faults_per_kind)]
        self.rng.shuffle(bag)
        while True:
            now = time.monotonic()
            if not bag:
                if not self.o.repeat_faults or now >= until:
                    return
                bag = list(self.o.kinds)
                self.rng.shuffle(bag)
            if now >= hard_stop:
                return
            # Spread what is left over the time left; leave room for the last recovery.
            slot = max(0.0, (until - now - 3.0) / len(bag))
            if self.stop_load.wait(self.rng.uniform(0.2, 0.6) * slot):
                return
            kind = bag.pop()
            flowing = self.flowing()
            fault = self.inject(kind)
            self.report.faults.append(fault)
            self.log(
                f"  {time.strftime('%H:%M:%S')} {kind}: {fault.detail or fault.error} "
                f"({fault.end - fault.start:.2f}s)"
            )
            if not fault.error:
                self.wait_recovered(fault, flowing)
                self.log(
                    f"    -> pool healthy after {_fmt(fault.pool_recovery).strip()}, "
                    f"lines flowing after {_fmt(fault.stream_recovery).strip()}"
                )

    # -- the end --

    def drain_and_compare(self) -> None:
        """Stop the containers, read the daemon's logs, compare with what was received."""
        with self.ids_lock:
            ids = list(self.ids)
        for cid in ids:
            with contextlib.suppress(Exception):
                self.control.call(functools.partial(_kill, cid=cid))
        expected: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
        for cid in ids:
            for source in ("stdout", "stderr"):
                expected[(cid, source)] = self.control.call(
                    functools.partial(daemon_lines, cid=cid, source=source), within=60
                )
        target = {key: len(lines) for key, lines in expected.items()}
        deadline = time.monotonic() + self.o.drain_timeout
        while time.monotonic() < deadline:
            if all(self.store.count(key) >= n for key, n in target.items()):
                break
            time.sleep(0.1)
        time.sleep(0.5)  # a duplicate arriving late would still be counted
        report = self.report
        report.containers = len(ids)
        fault_starts = sorted((f.start_ns, f.kind) for f in report.faults)
        for key, lines in expected.items():
            want: collections.Counter[int] = collections.Counter()
            original: dict[int, tuple[int, bytes]] = {}
            for ts, data in lines:
                h = line_hash(key[1], ts, data)
                want[h] += 1
                original[h] = (ts, data)
            got = self.store.counter(key)
            report.expected_lines[key] = len(lines)
            report.received_lines[key] = sum(got.values())
            missing = want - got
            extra = got - want
            duplicated = sum(n for h, n in extra.items() if h in want)
            unexpected = sum(n for h, n in extra.items() if h not in want)
            if missing:
                report.missing[key] = sum(missing.values())
                left = collections.Counter(missing)
                in_gap = False
                gap_kind = ""
                for ts, data in lines:  # the daemon's order: contiguous runs are gaps
                    h = line_hash(key[1], ts, data)
                    if left[h] > 0:
                        left[h] -= 1
                        if not in_gap:
                            # Lines in flight when a fault hits are lost by it: a fault
                            # starting just after a gap's first line counts as its cause.
                            before = [k for start, k in fault_starts if start <= ts + _IN_FLIGHT]
                            gap_kind = before[-1] if before else "(before any fault)"
                            report.gaps_by_fault[gap_kind] += 1
                            in_gap = True
                        report.missing_by_fault[gap_kind] += 1
                    else:
                        in_gap = False
                first = min(original[h][0] for h in missing)
                report.missing_examples.append(
                    f"{key[0][:12]} {key[1]} from {_clock(first)}: "
                    f"{sum(missing.values())} lines, e.g. {original[next(iter(missing))][1]!r}"
                )
            if duplicated:
                report.duplicated[key] = duplicated
            if unexpected:
                report.unexpected[key] = unexpected
        for key in self.store.sources():
            if key not in expected:
                report.unexpected[key] = self.store.count(key)
        report.untimed_lines = self.store.untimed
        report.stream_errors = [f"{e.container_id[:12]}: {e.error}" for e in self.store.errors]
        report.stream_ends = collections.Counter(e.reason for e in self.store.ends)
        report.recorder_mb = self.store.nbytes() / 2**20

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no LogStream actor is left (every container exited, streams ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pykka.ActorRegistry.get_by_class_name("LogStream"):
                return
            time.sleep(0.1)


def _restart(client: Any, *, cid: str) -> None:
    client.restart(cid, timeout=0)


def _kill(client: Any, *, cid: str) -> None:
    client.kill(cid)


def _clock(ns: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ns / _NS)) + f".{ns % _NS // 1_000_000:03d}"


def _check_result(op: str, cid: str, result: Any) -> str:
    """Why ``result`` is a wrong answer to ``op`` (empty when it is right)."""
    if op == "ping":
        return "" if result is True else f"ping answered {result!r}"
    if op == "list_containers":
        if not isinstance(result, list):
            return f"list_containers answered a {type(result).__name__}"
        strays = [
            c.get("Id", "?")[:12] for c in result if (c.get("Labels") or {}).get(LABEL) != "1"
        ]
        return f"list_containers returned unlabelled containers {strays}" if strays else ""
    if op == "inspect_container":
        got = result.get("Id") if isinstance(result, dict) else None
        return "" if got == cid else f"inspect of {cid[:12]} answered {str(got)[:12]}"
    if op == "inspect_missing":
        return "inspect of a missing id succeeded"
    got = result.get("id") if isinstance(result, dict) else None
    return "" if got == cid else f"stats of {cid[:12]} answered {str(got)[:12]}"


def _joined_threads(threads: Sequence[threading.Thread], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


@contextlib.contextmanager
def _own_sandbox() -> Iterator[Sandbox]:
    missing = missing_requirements()
    if missing:
        sys.exit("cannot start a private dockerd:\n  - " + "\n  - ".join(missing))
    sandbox = Sandbox(live_restore=True)
    try:
        sandbox.start()
        sandbox.ensure_image()
        yield sandbox
    finally:
        sandbox.cleanup()


def run_soak(
    options: SoakOptions,
    *,
    sandbox: Sandbox | None = None,
    log: Callable[[str], None] = print,
) -> SoakReport:
    """Run one soak and return its report (``report.problems()`` is empty when it passed).

    Args:
        options: What to run.
        sandbox: A started private daemon with ``live_restore`` and the busybox
            image (the test's fixture); ``None`` starts (and removes) one.
        log: Where progress lines go.
    """
    if sandbox is None:
        with _own_sandbox() as own:
            return run_soak(options, sandbox=own, log=log)
    if not sandbox.live_restore:
        msg = "the soak restarts the daemon: give it a Sandbox(live_restore=True)"
        raise ValueError(msg)
    soak = _Soak(options, sandbox, log)
    report = soak.report
    o = options
    callers: list[threading.Thread] = []
    began = time.monotonic()
    try:
        log(
            f"soak: seed {report.seed}, load average {os.getloadavg()[0]:.1f}; starting "
            f"{o.containers} containers"
        )
        for _ in range(o.containers):
            soak.new_container()
        soak.proxy = ProxyProcess(sandbox.socket_path)
        report.threads_before_pool = sum(thread_kinds().values())
        soak.control.close()  # its sockets are not the pool's
        report.fds_before_pool = open_fds()
        soak.pool = pool = actorpool.start(soak.config(soak.proxy.url))
        soak.recorder = Recorder.start(soak.store)
        pool.router.ask(
            FollowContainers(soak.recorder, filters={"label": [f"{LABEL}=1"]}), timeout=60
        )
        log(f"soak: {o.containers} containers followed after {time.monotonic() - began:.1f}s")
        callers = [
            threading.Thread(target=soak.caller, args=(i,), name=f"soak-caller-{i}", daemon=True)
            for i in range(o.callers)
        ]
        for thread in callers:
            thread.start()
        # Warm-up: every container delivers lines, the pool has served calls.
        warm_deadline = time.monotonic() + 30
        start_ns = time.time_ns()
        while time.monotonic() < warm_deadline and not soak.streams_flowing(start_ns, soak.ids):
            time.sleep(0.1)
        time.sleep(1.0)
        report.threads_warm = sum(thread_kinds().values())
        report.thread_kinds_warm = thread_kinds()
        report.pool_size_warm = pool.status().size
        report.rss_warm_mb = rss_mb()
        report.fds_warm = open_fds()
        load_began = time.monotonic()
        log(
            f"soak: warm ({report.threads_warm} threads, {report.rss_warm_mb:.0f} MiB); "
            f"{o.duration:g}s of load and faults"
        )
        sampler = threading.Thread(
            target=soak.sample, args=(load_began,), name="soak-sampler", daemon=True
        )
        sampler.start()
        soak.fault_loop(
            until=load_began + o.duration,
            hard_stop=load_began + o.duration + max(30.0, o.duration / 2),
        )
        rest = load_began + o.duration - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        soak.stop_load.set()
        report.rss_end_mb = rss_mb()
        stuck = _joined_threads(callers, timeout=max(_DEADLINES.values()) + 70)
        if stuck:
            report.unrecovered.append(f"caller threads never returned: {stuck}")
        report.seconds = time.monotonic() - load_began
        log(f"soak: load stopped after {report.seconds:.0f}s; stopping containers and comparing")
        soak.drain_and_compare()
        soak.settle()
        report.threads_end = sum(thread_kinds().values())
        report.thread_kinds_end = thread_kinds()
        status = pool.status()
        report.pool_size_end = status.size
        report.restarts = status.restarts
        report.fds_end = open_fds()
        if not report.rss_base_mb:
            report.rss_base_mb = report.rss_warm_mb
        with contextlib.suppress(Exception):
            from actorpool.messages import StreamStats

            managers = pykka.ActorRegistry.get_by_class_name("StreamManager")
            if managers:
                stats: Any = managers[0].ask(StreamStats(), timeout=5)
                report.stream_stats = {
                    k: v
                    for k, v in attrs.asdict(stats).items()
                    if k
                    in (
                        "reconnects",
                        "resumed_lines",
                        "resume_gaps",
                        "history_reads",
                        "lines_delivered",
                        "dropped_chunks",
                        "truncated_lines",
                    )
                }
    finally:
        soak.stop_load.set()
        _joined_threads(callers, timeout=5)
        if soak.pool is not None:
            soak.pool.stop()
        if soak.recorder is not None:
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                soak.recorder.stop(timeout=5)
        if soak.pool is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if sum(thread_kinds().values()) <= report.threads_before_pool:
                    break
                time.sleep(0.1)
            if soak.proxy is not None:
                with contextlib.suppress(Exception):
                    report.proxy_connections_left = soak.proxy.settled_connections()
            report.threads_after_pool = sum(thread_kinds().values())
            soak.control.close()
            report.fds_after_pool = open_fds()
            report.leaked_threads = [
                t.name for t in threading.enumerate() if _is_pool_thread(t.name)
            ]
            # A pool whose stream manager died cannot stop its stream actors (reported
            # above as threads that outlived the pool): stop them so the process can exit.
            for name in ("Follow", "LogStream", "EventStream"):
                for ref in pykka.ActorRegistry.get_by_class_name(name):
                    with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                        ref.stop(timeout=5)
        if soak.proxy is not None:
            soak.proxy.close()
        soak.control.shutdown()
    return report


def _is_pool_thread(name: str) -> bool:
    # What the pool runs: actor threads (named after their classes), readers, the scheduler.
    prefixes = (
        "RouterActor", "ConnectionActor", "SupervisorActor", "StreamManager", "LogStream",
        "EventStream", "Follow", "actorpool-",
    )  # fmt: skip
    return name.startswith(prefixes) and not name.startswith("actorpool-metrics")


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python bench/soak.py [--minutes M]``: run the soak, print the report, exit 1 on failure."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of load and faults")
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument(
        "--faults-per-kind", type=int, default=2, help="at least this many of each kind"
    )
    parser.add_argument("--kinds", default=",".join(FAULT_KINDS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--verbose", action="store_true", help="show actorpool's own warnings")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = SoakOptions(
        duration=args.minutes * 60,
        containers=args.containers,
        callers=args.callers,
        faults_per_kind=args.faults_per_kind,
        repeat_faults=True,
        kinds=tuple(k for k in args.kinds.split(",") if k),
        seed=args.seed,
        tolerance=args.tolerance,
    )
    report = run_soak(options)
    print(report.format())
    return 0 if not report.problems() else 1


if __name__ == "__main__":
    sys.exit(main())
