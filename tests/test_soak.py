"""The chaos soak, short version: about a minute of load and every kind of fault.

The engine is ``bench/soak.py`` (run ``python bench/soak.py --minutes 10`` for
the long version); this test runs it against a private ``--live-restore``
daemon of its own and asserts every promise it checks: no call outlives its
deadline, no wrong answer, no log line missing, duplicated or made up, every
fault recovered from, no thread, descriptor or memory leak. Deselect the
minute-long run with ``-m "not slow"`` (``scripts/test.sh --quick``) when
iterating on something else; the focused drills below take seconds.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.messages import FollowContainers
from actorpool.testing.sandbox import Sandbox


def _load_soak() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("actorpool_bench_soak", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs and pickling look classes up by module
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


def test_soak_options_and_time_parsing() -> None:
    # The witness of the log comparison: the daemon's RFC 3339 nanosecond timestamps.
    assert soak.parse_docker_time(b"2024-01-01T00:00:00.123456789Z") == (
        1704067200 * 10**9 + 123456789
    )
    assert soak.parse_docker_time(b"2024-01-01T00:00:01.5Z") == 1704067201 * 10**9 + 5 * 10**8
    with pytest.raises(ValueError, match="UTC"):
        soak.parse_docker_time(b"2024-01-01T00:00:00+01:00")
    with pytest.raises(ValueError, match="kinds"):
        soak.SoakOptions(kinds=("daemon_restart", "no_such_fault"))


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.timeout(300)
def test_soak_under_fire(private_sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    # Thousands of expected warnings (retries, reconnects) would only fill the capture.
    caplog.set_level(logging.ERROR, logger="actorpool")
    # 12 containers, not the long run's 20: creating one costs ~1 s on this machine, and
    # the suite's budget is about a minute. Every fault kind still runs twice.
    options = soak.SoakOptions(
        duration=40.0,
        containers=12,
        callers=16,
        faults_per_kind=2,
        pause_seconds=2.5,
        latency_seconds=2.0,
        recovery_timeout=10.0,
        drain_timeout=20.0,
        seed=20241127,
    )
    report = soak.run_soak(options, sandbox=private_sandbox, log=lambda _line: None)
    text = report.format()
    print(text)
    assert report.problems() == [], text
    # The figures the report is built on are real: load ran, lines flowed, faults happened.
    assert report.calls_total > 500, text
    assert sum(report.expected_lines.values()) > 10_000, text
    assert {f.kind for f in report.faults} == set(soak.FAULT_KINDS), text


# --------------------------------------------------------------------------- focused drills
#
# What the soak found, one fault at a time on the shared daemon (seconds, not a minute).


@pytest.fixture
def followed(
    make_config: Callable[..., Any], make_container: Callable[..., str]
) -> Iterator[Followed]:
    label = f"drill-{uuid.uuid4().hex[:8]}"
    drill = Followed(make_config, make_container, label)
    try:
        yield drill
    finally:
        drill.close()


class Followed:
    """Containers printing numbered lines, followed by one FollowContainers recorder."""

    def __init__(
        self, make_config: Callable[..., Any], make_container: Callable[..., str], label: str
    ) -> None:
        self.label = label
        self._make_container = make_container
        # Stream actors of other pools (a failed test's orphans) must not be crashed by mistake.
        self._foreign = {
            ref.actor_urn
            for name in ("LogStream", "EventStream")
            for ref in pykka.ActorRegistry.get_by_class_name(name)
        }
        self.ids: list[str] = []
        self.store = soak.LineStore()
        self.pool = actorpool.start(make_config())
        self.recorder = soak.Recorder.start(self.store)
        self.pool.router.ask(
            FollowContainers(self.recorder, filters={"label": [f"{label}=1"]}), timeout=30
        )

    def start_container(self) -> str:
        cid = self._make_container(soak.line_cmd(20_000), labels={self.label: "1"})
        self.ids.append(cid)
        return cid

    def flowing_after(self, cid: str, since_ns: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.store.last_ns(cid) > since_ns:
                return True
            time.sleep(0.05)
        return False

    def compare(self, api: Any) -> dict[str, int]:
        """Kill the containers; missing and duplicated lines, as the soak counts them."""
        for cid in self.ids:
            api.kill(cid)
        totals = {"expected": 0, "missing": 0, "duplicated": 0}
        expected = {
            (cid, source): soak.daemon_lines(api, cid, source)
            for cid in self.ids
            for source in ("stdout", "stderr")
        }
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            self.store.count(key) < len(lines) for key, lines in expected.items()
        ):
            time.sleep(0.1)
        time.sleep(0.3)
        for key, lines in expected.items():
            want = collections.Counter(soak.line_hash(key[1], ts, data) for ts, data in lines)
            got = self.store.counter(key)
            totals["expected"] += len(lines)
            totals["missing"] += sum((want - got).values())
            totals["duplicated"] += sum((got - want).values())
        return totals

    def close(self) -> None:
        self.pool.stop()
        with contextlib.suppress(pykka.ActorDeadError):
            self.recorder.stop()
        # A pool whose stream manager died cannot stop its stream actors: stop the
        # orphans here so that one failing drill does not leak threads into the next.
        for name in ("Follow", "LogStream", "EventStream"):
            for ref in pykka.ActorRegistry.get_by_class_name(name):
                with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                    ref.stop(timeout=5)

    def crash(self, class_name: str) -> None:
        """Make this pool's (only) actor of ``class_name`` fail."""
        refs = [
            ref
            for ref in pykka.ActorRegistry.get_by_class_name(class_name)
            if ref.actor_urn not in self._foreign
        ]
        assert len(refs) == 1, f"expected one {class_name} actor of this pool, found {len(refs)}"
        refs[0].tell("crash")  # an unknown message by tell fails a Pykka actor


def test_a_crashed_log_stream_is_replaced_without_losing_a_line(
    followed: Followed, docker_api: Any
) -> None:
    cid = followed.start_container()
    assert followed.flowing_after(cid, 0, timeout=10)
    crashed_at = time.time_ns()
    followed.crash("LogStream")
    assert followed.flowing_after(cid, crashed_at, timeout=5), "lines stopped for good"
    totals = followed.compare(docker_api)
    assert totals["expected"] > 0
    assert totals["missing"] == 0, totals
    assert totals["duplicated"] == 0, totals


def test_a_crashed_event_stream_is_replaced_and_new_containers_are_followed(
    followed: Followed,
) -> None:
    first = followed.start_container()
    assert followed.flowing_after(first, 0, timeout=10)
    followed.crash("EventStream")
    time.sleep(0.5)
    later = followed.start_container()
    assert followed.flowing_after(later, 0, timeout=10), "a container started later is unseen"


def test_the_stream_manager_outlives_a_crashed_log_stream(
    followed: Followed, docker_api: Any
) -> None:
    """A crashed stream, then its container restarted: the manager must not die of it.

    (It did: it told the dead stream actor ``AddSubscriber`` and the
    ``ActorDeadError`` killed the manager, then the Follow actor, and every
    stream actor outlived ``pool.stop()``.)
    """
    cid = followed.start_container()
    assert followed.flowing_after(cid, 0, timeout=10)
    followed.crash("LogStream")
    time.sleep(0.5)
    docker_api.restart(cid, timeout=0)
    restarted_at = time.time_ns()
    time.sleep(2.0)
    managers = pykka.ActorRegistry.get_by_class_name("StreamManager")
    assert managers, "the stream manager died"
    assert pykka.ActorRegistry.get_by_class_name("Follow"), "the Follow actor died"
    assert followed.flowing_after(cid, restarted_at, timeout=5)
