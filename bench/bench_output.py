"""B7: writing a container's log to a file: JSON records, the text printer, ``docker logs``.

A finished container's N lines (``seq``) are read through the pool with
``SubscribeLogs(follow=False)`` and

- counted by a bare subscriber actor: the in-process subscriber rate, the ceiling;
- written as JSON lines to a file by the monitor's ``LogWriter`` (with a
  positions store, as ``monitor --format json --output --positions`` runs);
- written as text to a file by the terminal's ``LinePrinter`` (``name | line``);

and, for comparison, ``docker -H <sandbox> logs -t <id> > file`` (the Docker CLI
binary). Each round runs all four; figures are medians over rounds, ratios the
median of per-round ratios.

Target: JSON writer >= 0.8x the in-process subscriber rate.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_streams import read_pool, written_container

import actorpool
from actorpool.cli.printer import GetStats, LinePrinter, Output
from actorpool.cli.records import RecordEncoder
from actorpool.cli.writer import LogWriter
from actorpool.logs.positions import FilePositionStore
from actorpool.messages import SubscribeLogs

from _common import (
    Figure,
    Target,
    bench_config,
    bench_parser,
    bench_sandbox,
    load_note,
    print_table,
)


def _to_file(
    pool: actorpool.Pool, cid: str, lines: int, start: Callable[[threading.Event], Any]
) -> float:
    """Seconds from subscribing until ``start(done)``'s subscriber has all ``lines``."""
    done = threading.Event()
    ref = start(done)
    try:
        began = time.perf_counter()
        pool.router.ask(SubscribeLogs(cid, ref, follow=False), timeout=60)
        if not done.wait(600):
            msg = "the writer did not finish within 600 s"
            raise RuntimeError(msg)
        took = time.perf_counter() - began
        got = ref.ask(GetStats(), timeout=30).lines
        if got != lines:
            msg = f"the writer wrote {got:,} lines, expected {lines:,}"
            raise RuntimeError(msg)
        return took
    finally:
        ref.stop(timeout=30)


def json_writer(pool: actorpool.Pool, cid: str, lines: int, workdir: Path) -> float:
    out = workdir / "out.jsonl"
    out.unlink(missing_ok=True)
    store = FilePositionStore(workdir / "positions.json", interval=None, reset=True)

    def start(done: threading.Event) -> Any:
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return LogWriter.start(fd, RecordEncoder("json"), store=store, done=done, expect=1)

    took = _to_file(pool, cid, lines, start)
    if sum(1 for _ in out.open("rb")) != lines:
        msg = "the JSON file does not hold every line"
        raise RuntimeError(msg)
    return took


def text_printer(pool: actorpool.Pool, cid: str, lines: int, workdir: Path) -> float:
    out = workdir / "out.txt"
    with out.open("w", encoding="utf-8") as file:

        def start(done: threading.Event) -> Any:
            output = Output(prefix=True, timestamps=False, stdout=file, stderr=file)
            return LinePrinter.start(output, names={cid: "bench"}, expect=1, done=done)

        return _to_file(pool, cid, lines, start)


def docker_cli(url: str, cid: str, lines: int, workdir: Path) -> float:
    out = workdir / "docker.txt"
    docker = shutil.which("docker")
    assert docker is not None
    with out.open("wb") as file:
        began = time.perf_counter()
        subprocess.run([docker, "-H", url, "logs", "-t", cid], stdout=file, check=True)
        took = time.perf_counter() - began
    if sum(1 for _ in out.open("rb")) != lines:
        msg = "docker logs did not write every line"
        raise RuntimeError(msg)
    return took


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--lines", type=int, default=500_000, help="lines of the container")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    lines = 100_000 if args.quick and args.lines == 500_000 else args.lines
    print(f"# bench_output: {rounds} round(s) of {lines:,} lines; {load_note()}")
    if shutil.which("docker") is None:
        print("# the docker CLI is missing (apt-get install docker.io): its row is left out")
    rates: dict[str, list[float]] = {"subscriber": [], "json": [], "text": [], "docker": []}
    with bench_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        pool = actorpool.start(bench_config(sandbox))
        try:
            cid = written_container(sandbox.client(timeout=120), lines, tty=False)
            for r in range(rounds):
                rates["subscriber"].append(read_pool(pool, cid, lines, follow=False).rate)
                rates["json"].append(lines / json_writer(pool, cid, lines, workdir))
                rates["text"].append(lines / text_printer(pool, cid, lines, workdir))
                if shutil.which("docker"):
                    rates["docker"].append(lines / docker_cli(sandbox.url, cid, lines, workdir))
                shown = ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items() if v)
                print(f"# round {r + 1}: {shown}")
        finally:
            pool.stop(timeout=10)
    ceiling = statistics.median(rates["subscriber"])

    def ratio(ours: str, theirs: str) -> float:
        # The median of per-round ratios: both sides of a round saw the same background load.
        return statistics.median(a / b for a, b in zip(rates[ours], rates[theirs], strict=True))

    figures = [
        Figure.rates(
            "B7 JSON lines to a file vs in-process subscriber",
            statistics.median(rates["json"]),
            ceiling,
            Target.at_least(0.8),
            note="LogWriter + positions store",
            ratio=ratio("json", "subscriber"),
        ),
        Figure.rates(
            "B7 text printer to a file vs in-process subscriber",
            statistics.median(rates["text"]),
            ceiling,
            note="LinePrinter, name | line",
            ratio=ratio("text", "subscriber"),
        ),
    ]
    if rates["docker"]:
        figures.append(
            Figure.rates(
                "B7 JSON lines to a file vs `docker logs -t > file`",
                statistics.median(rates["json"]),
                statistics.median(rates["docker"]),
                note="the Docker CLI on the same daemon",
                ratio=ratio("json", "docker"),
            )
        )
    print_table(figures, title=f"# results ({load_note()})")
    return 0 if all(f.verdict != "MISS" for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
