"""One timer thread per pool, so actors never sleep.

Pykka has no timers. Actors schedule a message to themselves (or to another
actor) with :meth:`Scheduler.tell_later` instead of calling ``time.sleep``;
the message arrives through the mailbox like any other, so the actor keeps
answering meanwhile. One thread with a heap serves every timer of a pool,
which is cheaper than a ``threading.Timer`` thread per retry or deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pykka import ActorDeadError, ActorRef

__all__ = ["Scheduler", "TimerHandle"]

logger = logging.getLogger(__name__)


class TimerHandle:
    """A scheduled call; :meth:`cancel` makes it a no-op."""

    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        """Cancel the call if it has not run yet (safe from any thread)."""
        self.cancelled = True


class Scheduler:
    """Runs short callbacks at given times on one daemon thread.

    Callbacks must be quick and must not block: they typically ``tell`` an
    actor. A callback that raises is logged and forgotten. The thread is a
    daemon so a forgotten scheduler never keeps the process alive, but
    :meth:`stop` should still be called (the pool does).
    """

    def __init__(self, name: str = "actorpool-scheduler") -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        """Run ``fn()`` on the scheduler thread after ``delay`` seconds."""
        handle = TimerHandle(time.monotonic() + max(0.0, delay), fn)
        with self._cond:
            if self._stopped:
                handle.cancelled = True
                return handle
            heapq.heappush(self._heap, (handle.when, next(self._counter), handle))
            if self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    def tell_later(self, delay: float, actor_ref: ActorRef[Any], message: Any) -> TimerHandle:
        """``actor_ref.tell(message)`` after ``delay`` seconds; a dead actor is ignored."""

        def tell() -> None:
            with contextlib.suppress(ActorDeadError):
                actor_ref.tell(message)

        return self.call_later(delay, tell)

    def stop(self, timeout: float = 2.0) -> None:
        """Drop pending calls and end the thread (waits at most ``timeout`` seconds)."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            try:
                handle.fn()
            except Exception:
                logger.exception("scheduled call failed")
