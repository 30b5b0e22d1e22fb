"""actorpool inside an actor pipeline: logs -> parser -> aggregator -> periodic report.

    DOCKER_HOST=unix:///path/to/docker.sock python examples/pipeline.py

Two containers log lines tagged INFO, WARN or ERROR. The pool streams their
logs to the parser actor (the subscriber), which finds each line's level and
tells the aggregator, which counts lines per container and level. A timer on
the pool's scheduler tells the aggregator to report every second: actors never
sleep, they get a message when it is time. When both streams have ended the
example prints the final counts and stops every actor it started. No daemon?
``actorpool sandbox`` starts one (see examples/README.md).
"""

from __future__ import annotations

import collections
import sys
import threading
from typing import Any

import attrs
import pykka
from docker import APIClient

import actorpool
from actorpool.config import Config
from actorpool.engine.scheduler import Scheduler, TimerHandle
from actorpool.errors import ActorPoolError
from actorpool.messages import (
    Execute,
    LogChunk,
    LogStreamEnded,
    LogStreamError,
    Ping,
    SubscribeLogs,
)
from actorpool.testing.sandbox import import_busybox_image

REPORT_EVERY = 1.0  # seconds
LEVELS = ("INFO", "WARN", "ERROR")


# The pipeline's own messages: small frozen records, like actorpool's.
@attrs.frozen
class Parsed:
    container: str
    level: str


@attrs.frozen
class StreamDone:
    container: str


@attrs.frozen
class Report:
    pass


@attrs.frozen
class GetCounts:
    pass


class Parser(pykka.ThreadingActor):
    """Subscriber of the pool's log streams: turns each line into a ``Parsed`` level."""

    def __init__(self, names: dict[str, str], aggregator: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.names = names  # container id -> name
        self.aggregator = aggregator

    def on_receive(self, message: Any) -> None:
        if isinstance(message, LogChunk):
            name = self.names[message.container_id]
            for line in message.lines:
                words = line.text.split(maxsplit=1)
                level = words[0] if words and words[0] in LEVELS else "OTHER"
                self.aggregator.tell(Parsed(name, level))
        elif isinstance(message, LogStreamEnded | LogStreamError):
            # Mailboxes are FIFO: the aggregator gets this after every line before it.
            self.aggregator.tell(StreamDone(self.names[message.container_id]))


class Aggregator(pykka.ThreadingActor):
    """Counts lines per (container, level); reports when its timer says so."""

    def __init__(self, scheduler: Scheduler, streams: int, finished: threading.Event) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.open_streams = streams
        self.finished = finished
        self.timer: TimerHandle | None = None

    def on_start(self) -> None:
        self.timer = self.scheduler.tell_later(REPORT_EVERY, self.actor_ref, Report())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Parsed):
            self.counts[message.container, message.level] += 1
        elif isinstance(message, StreamDone):
            self.open_streams -= 1
            if self.open_streams == 0:
                self.finished.set()
        elif isinstance(message, Report):
            levels = collections.Counter[str]()
            for (_, level), n in self.counts.items():
                levels[level] += n
            by_level = " ".join(f"{level}={levels[level]}" for level in LEVELS)
            print(f"report: {levels.total()} lines so far ({by_level})", flush=True)
            self.timer = self.scheduler.tell_later(REPORT_EVERY, self.actor_ref, Report())
        elif isinstance(message, GetCounts):
            return dict(self.counts)
        return None

    def on_stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def start_loggers(client: APIClient) -> dict[str, str]:
    """Start two containers that log a known mix of levels; return id -> name."""
    image = import_busybox_image(client)  # static busybox, imported: no registry needed
    started = {}
    for name, lines, pause in (("pipeline-api", 15, 200000), ("pipeline-jobs", 10, 100000)):
        # Line i is ERROR when i % 5 == 0, else WARN when i % 3 == 0 (to stderr), else INFO.
        script = (
            f"i=1; while [ $i -le {lines} ]; do "
            'if [ $((i % 5)) -eq 0 ]; then echo "ERROR request $i failed" >&2; '
            'elif [ $((i % 3)) -eq 0 ]; then echo "WARN request $i slow" >&2; '
            'else echo "INFO request $i ok"; fi; '
            f"i=$((i + 1)); usleep {pause}; done"
        )
        container = client.create_container(
            image,
            command=["sh", "-c", script],
            labels={"actorpool.example": "pipeline"},
            host_config=client.create_host_config(network_mode="none"),
        )
        client.start(container["Id"])
        started[container["Id"]] = name
    return started


def remove(client: APIClient, ids: list[str]) -> None:
    for cid in ids:
        client.remove_container(cid, force=True)


config = Config.from_mapping({"docker": {"pool": {"min_pool_size": 1, "initial_pool_size": 2}}})


def main() -> None:
    with actorpool.start(config) as pool:
        # No daemon: one clear error within 5 s, not a wait through every retry.
        pool.router.ask(Ping(timeout=5))
        names = pool.router.ask(Execute(start_loggers, timeout=60))
        finished = threading.Event()
        aggregator = Aggregator.start(pool.scheduler, len(names), finished)
        parser = Parser.start(names, aggregator)
        try:
            for cid in names:
                pool.router.ask(SubscribeLogs(cid, parser))
            finished.wait(timeout=30)  # both containers exit after a few seconds
            counts: dict[tuple[str, str], int] = aggregator.ask(GetCounts(), block=True)
        finally:
            parser.stop()
            aggregator.stop()
            pool.router.ask(Execute(lambda client: remove(client, list(names))))

    print("final counts:")
    for name in sorted(names.values()):
        row = "  ".join(f"{level}={counts.get((name, level), 0)}" for level in LEVELS)
        print(f"  {name:<14} {row}")


if __name__ == "__main__":
    try:
        main()
    except ActorPoolError as error:  # e.g. no daemon, no such container: one line, no traceback
        sys.exit(f"pipeline.py: {error}")
