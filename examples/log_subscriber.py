"""Follow a container's logs with a subscriber actor.

    DOCKER_HOST=unix:///path/to/docker.sock python examples/log_subscriber.py [CONTAINER]

The pool streams the logs on a connection of their own and sends them to the
subscriber, a Pykka actor, as ``LogChunk`` messages (batches of ``LogLine``);
a ``LogStreamEnded`` says the stream is over (the container exited, or we
unsubscribed). Without a CONTAINER the example starts a small busybox
container itself, through the pool with ``Execute``, and removes it at the end.
No daemon? ``actorpool sandbox`` starts one (see examples/README.md).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import pykka
from docker import APIClient

import actorpool
from actorpool.config import Config
from actorpool.errors import ActorPoolError
from actorpool.messages import (
    Execute,
    LogChunk,
    LogStreamEnded,
    LogStreamError,
    Ping,
    SubscribeLogs,
    Unsubscribe,
)
from actorpool.testing.sandbox import import_busybox_image


class Printer(pykka.ThreadingActor):
    """The subscriber: prints every line it is sent, and says when the stream is over."""

    def __init__(self, finished: threading.Event) -> None:
        super().__init__()
        self.finished = finished

    def on_receive(self, message: Any) -> None:
        if isinstance(message, LogChunk):
            for line in message.lines:  # line.stream is "stdout" or "stderr"
                print(f"{message.container_id[:12]} {line.stream}: {line.text}", flush=True)
        elif isinstance(message, LogStreamEnded):
            print(f"{message.container_id[:12]} stream ended: {message.reason}", flush=True)
            self.finished.set()
        elif isinstance(message, LogStreamError):
            print(f"{message.container_id[:12]} stream failed: {message.error}", flush=True)
            self.finished.set()


def start_talker(client: APIClient) -> str:
    """Start a container that logs 5 lines to stdout and 2 to stderr, then exits.

    Runs inside the pool (``Execute``) with a pooled docker-py client. The image is
    the static busybox the test sandbox uses: it is imported, no registry needed.
    """
    script = (
        'for i in 1 2 3 4 5; do echo "hello $i"; usleep 200000; done; '
        "echo 'warning: almost done' >&2; echo 'bye' >&2"
    )
    container = client.create_container(
        import_busybox_image(client),
        command=["sh", "-c", script],
        labels={"actorpool.example": "log_subscriber"},
        host_config=client.create_host_config(network_mode="none"),
    )
    client.start(container["Id"])
    return str(container["Id"])


config = Config.from_mapping({"docker": {"pool": {"min_pool_size": 1, "initial_pool_size": 2}}})


def main() -> None:
    with actorpool.start(config) as pool:
        # No daemon: one clear error within 5 s, not a wait through every retry.
        pool.router.ask(Ping(timeout=5))
        ours = len(sys.argv) < 2
        container = pool.router.ask(Execute(start_talker, timeout=60)) if ours else sys.argv[1]
        finished = threading.Event()
        printer = Printer.start(finished)
        try:
            # tail="all": the lines logged before we subscribed come first, then new ones.
            subscription = pool.router.ask(SubscribeLogs(container, printer, tail="all"))
            # A bounded run: our container exits by itself; someone else's we follow 10 s.
            if not finished.wait(timeout=10):
                pool.router.ask(Unsubscribe(subscription.id))
                finished.wait(timeout=5)
        finally:
            printer.stop()
            if ours:
                pool.router.ask(
                    Execute(lambda client: client.remove_container(container, force=True))
                )


if __name__ == "__main__":
    try:
        main()
    except ActorPoolError as error:  # e.g. no daemon, no such container: one line, no traceback
        sys.exit(f"log_subscriber.py: {error}")
