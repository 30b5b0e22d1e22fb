"""Small helpers shared by the tests: container commands, bounded waits, logging undone.

Every wait here has a timeout and fails with an ``AssertionError`` that says
what was awaited and what was last seen, so a stuck test reads as a clear
failure instead of a pytest-timeout traceback.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["numbered_lines_cmd", "restored_logging", "wait_for_state", "wait_until"]

T = TypeVar("T")


def numbered_lines_cmd(n: int, *, stderr: bool = True, delay: float | None = None) -> list[str]:
    """A busybox ``sh`` command printing ``out 1``..``out n`` (and ``err 1``..``err n``).

    Lines go to stdout and, when ``stderr`` is true, interleaved to stderr:
    ``out 1``, ``err 1``, ``out 2``, ... ``delay`` (seconds) sleeps between
    pairs, with ``usleep`` so sub-second delays work.
    """
    if n < 0:
        msg = f"n must be >= 0, got {n}"
        raise ValueError(msg)
    body = 'echo "out $i"'
    if stderr:
        body += '; echo "err $i" >&2'
    if delay is not None:
        if delay < 0:
            msg = f"delay must be >= 0 seconds, got {delay}"
            raise ValueError(msg)
        body += f"; usleep {round(delay * 1_000_000)}"
    script = f"i=1; while [ $i -le {n} ]; do {body}; i=$((i+1)); done"
    return ["sh", "-c", script]


def stderr_on_cue_cmd() -> list[str]:
    """A busybox ``sh`` command: ``out 0``, ``out 1``, ... all along (a few thousand a second),
    and ``err 1``, ``err 2``, ... only once ``/go`` exists (``docker exec … touch /go``): the
    first hundred at once, then about one a millisecond."""
    err = "i=1; while :; do echo err $i >&2; i=$((i+1)); [ $i -gt 100 ] && usleep 1000; done"
    return [
        "sh",
        "-c",
        f"(while [ ! -e /go ]; do usleep 10000; done; {err}) & "
        "i=0; while :; do echo out $i; i=$((i+1)); usleep 100; done",
    ]


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises:
        AssertionError: ``timeout`` seconds passed; the message names the
            predicate (or ``message``) and its last result.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            msg = f"condition not met within {timeout} s: {what} (last result: {result!r})"
            raise AssertionError(msg)
        time.sleep(interval)


def wait_for_state(api: Any, cid: str, status: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until container ``cid`` has ``State.Status == status``; return its ``State``.

    ``status`` is one of Docker's: created, running, paused, restarting,
    removing, exited, dead.
    """
    seen: list[str] = []

    def reached() -> dict[str, Any] | None:
        state: dict[str, Any] = api.inspect_container(cid)["State"]
        seen[:] = [state["Status"]]
        return state if state["Status"] == status else None

    try:
        return wait_until(reached, timeout, interval=0.05)
    except AssertionError:
        last = seen[0] if seen else "unknown"
        msg = f"container {cid[:12]} did not become {status!r} within {timeout} s (last: {last!r})"
        raise AssertionError(msg) from None


def _logging_state() -> dict[str, tuple[int, list[logging.Handler]]]:
    # The root logger and actorpool's: where configure_logging (the CLI's main) adds handlers.
    names = ["", "actorpool"] + [
        name
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("actorpool.") and isinstance(logger, logging.Logger)
    ]
    loggers = [logging.getLogger(name) for name in names]
    return {name: (lg.level, list(lg.handlers)) for name, lg in zip(names, loggers, strict=True)}


@contextlib.contextmanager
def restored_logging() -> Iterator[list[str]]:
    """Undo what the block did to logging: handlers it added are removed, levels restored.

    A handler left behind (``actorpool.cli.main`` run in-process installs one on
    the root logger, writing to the ``sys.stderr`` of that moment, a capture
    that pytest closes) makes every later record print ``--- Logging error ---
    ValueError: I/O operation on closed file``. Yields a list that names, after
    the block, each handler it had to remove.
    """
    before = _logging_state()
    removed: list[str] = []
    try:
        yield removed
    finally:
        for name, (_, handlers) in _logging_state().items():
            logger = logging.getLogger(name)
            old_level, old_handlers = before.get(name, (logging.NOTSET, []))
            logger.setLevel(old_level)
            for handler in handlers:
                # pytest's own capture handlers come and go with its fixtures (caplog).
                if handler in old_handlers or type(handler).__module__.startswith("_pytest"):
                    continue
                logger.removeHandler(handler)
                handler.close()
                removed.append(f"{name or 'root'}: {handler!r}")
