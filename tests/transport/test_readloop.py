"""The shared read loop: many real follow streams decoded on one thread, paused and cancelled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actorpool.messages import LogLine
from actorpool.testing.sandbox import Sandbox
from actorpool.transport.logread import RawLogStream, open_logs
from actorpool.transport.readloop import ReadLoop, Watch

from helpers import numbered_lines_cmd, wait_for_state, wait_until

MIB = 1024 * 1024


class Sink:
    """Collects a stream's lines; can refuse more (backpressure) or raise."""

    def __init__(self, *, room: int | None = None, fail: BaseException | None = None) -> None:
        self.got: list[LogLine] = []
        self.room = room  # say "full" once this many lines were taken
        self.fail = fail
        self.watch: Watch | None = None
        self.ends: list[BaseException | None] = []
        self.threads: set[str] = set()
        self.done = threading.Event()

    def lines(self, lines: list[LogLine], watch: Watch) -> bool:
        self.threads.add(threading.current_thread().name)
        if self.fail is not None:
            raise self.fail
        self.watch = watch
        self.got.extend(lines)
        return self.room is None or len(self.got) < self.room

    def ended(self, error: BaseException | None) -> None:
        self.ends.append(error)
        self.done.set()


@pytest.fixture
def loop() -> Iterator[ReadLoop]:
    reads = ReadLoop(buffer_size=65536)
    yield reads
    reads.close()


@pytest.fixture
def clients(sandbox: Sandbox) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for client in made:
        client.close()


def follow(
    sandbox: Sandbox, clients: list[Any], cid: str, **params: Any
) -> tuple[RawLogStream, Any]:
    client = sandbox.client(timeout=30)
    clients.append(client)
    raw = open_logs(client, cid, follow=params.pop("follow", True), tty=False, **params)
    return raw, raw.decoder(max_line_size=MIB)


def texts(lines: list[LogLine], stream: str) -> list[bytes]:
    return [line.data for line in lines if line.stream == stream]


def test_many_follow_streams_are_read_exactly_on_one_thread(
    sandbox: Sandbox, clients: list[Any], loop: ReadLoop, make_container: Any
) -> None:
    n = 2000
    cids = [make_container(numbered_lines_cmd(n, delay=0.0005)) for _ in range(4)]
    before = threading.active_count()
    sinks = []
    for cid in cids:
        raw, decoder = follow(sandbox, clients, cid)
        sink = Sink()
        assert loop.add(raw, decoder, sink) is not None
        sinks.append((raw, sink))
    # One thread for all of them: the loop's own.
    assert threading.active_count() <= before + 1
    for raw, sink in sinks:
        assert sink.done.wait(60), "the follow stream did not end with its container"
        assert sink.ends == [None]
        assert raw.end_reason == "complete"
        assert texts(sink.got, "stdout") == [b"out %d" % i for i in range(1, n + 1)]
        assert texts(sink.got, "stderr") == [b"err %d" % i for i in range(1, n + 1)]
        assert sink.threads == {"actorpool-log-reads"}
    assert loop.streams == 0


def test_bytes_that_came_with_the_headers_are_decoded_first(
    sandbox: Sandbox, clients: list[Any], loop: ReadLoop, make_container: Any, docker_api: Any
) -> None:
    # A small finished log arrives in the same packet as the headers: the connection's
    # buffered reader holds it all, and the socket has nothing more to say but its end.
    cid = make_container(numbered_lines_cmd(20))
    wait_for_state(docker_api, cid, "exited", timeout=30)
    raw, decoder = follow(sandbox, clients, cid, follow=False)
    sink = Sink()
    assert loop.add(raw, decoder, sink) is not None
    assert sink.done.wait(30)
    assert raw.end_reason == "complete"
    assert texts(sink.got, "stdout") == [b"out %d" % i for i in range(1, 21)]
    assert texts(sink.got, "stderr") == [b"err %d" % i for i in range(1, 21)]


def test_a_full_sink_pauses_its_stream_until_resumed_and_loses_nothing(
    sandbox: Sandbox, clients: list[Any], loop: ReadLoop, make_container: Any
) -> None:
    n = 3000
    cid = make_container(numbered_lines_cmd(n, stderr=False, delay=0.0002))
    raw, decoder = follow(sandbox, clients, cid, stderr=False)
    sink = Sink(room=100)
    assert loop.add(raw, decoder, sink) is not None
    wait_until(lambda: len(sink.got) >= 100, 30)
    paused_at = len(sink.got)
    # Paused: the loop reads no more, although the container keeps writing.
    assert not sink.done.wait(1.0)
    assert len(sink.got) == paused_at
    assert sink.watch is not None
    assert sink.watch.paused
    sink.room = None
    sink.watch.resume()
    assert sink.done.wait(60)
    assert raw.end_reason == "complete"
    assert texts(sink.got, "stdout") == [b"out %d" % i for i in range(1, n + 1)]


@pytest.mark.parametrize("paused", [False, True])
def test_closing_a_watched_stream_from_another_thread_ends_it_once(
    sandbox: Sandbox, clients: list[Any], loop: ReadLoop, make_container: Any, paused: bool
) -> None:
    cid = make_container(["sh", "-c", "while true; do echo tick; usleep 20000; done"])
    raw, decoder = follow(sandbox, clients, cid)
    sink = Sink(room=1 if paused else None)
    assert loop.add(raw, decoder, sink) is not None
    wait_until(lambda: sink.got, 30)
    if paused:
        wait_until(lambda: sink.watch is not None and sink.watch.paused, 10)
    threading.Thread(target=raw.close).start()
    assert sink.done.wait(10)
    assert sink.ends == [None]
    assert raw.end_reason == "closed"
    assert loop.streams == 0
    raw.close()  # idempotent; nothing more is reported
    assert sink.ends == [None]


def test_what_a_sink_raises_ends_its_stream_and_is_handed_back(
    sandbox: Sandbox, clients: list[Any], loop: ReadLoop, make_container: Any
) -> None:
    cid = make_container(["sh", "-c", "while true; do echo tick; usleep 20000; done"])
    raw, decoder = follow(sandbox, clients, cid)
    boom = RuntimeError("boom")
    sink = Sink(fail=boom)
    assert loop.add(raw, decoder, sink) is not None
    assert sink.done.wait(30)
    assert sink.ends == [boom]
    assert raw.end_reason == "closed"


def test_closing_the_loop_ends_its_streams_and_refuses_new_ones(
    sandbox: Sandbox, clients: list[Any], make_container: Any
) -> None:
    reads = ReadLoop(buffer_size=65536)
    cid = make_container(["sh", "-c", "while true; do echo tick; usleep 20000; done"])
    raw, decoder = follow(sandbox, clients, cid)
    sink = Sink()
    assert reads.add(raw, decoder, sink) is not None
    wait_until(lambda: sink.got, 30)
    reads.close()
    assert sink.done.wait(5)
    assert raw.end_reason == "closed"
    assert not any(t.name == "actorpool-log-reads" for t in threading.enumerate())
    raw2, decoder2 = follow(sandbox, clients, cid)
    try:
        assert reads.add(raw2, decoder2, Sink()) is None
    finally:
        raw2.close()
