"""Futures that let ``router.ask(request)`` return plain data without blocking the router.

Pykka sets whatever ``on_receive`` returns on the caller's future, and does
not unwrap a returned future. The router must not wait for Docker, so it
answers every request at once with a :class:`ReplyFuture` that it (or the
connection actor) completes later. :class:`UnwrappingFuture`, the future the
router's refs create, follows such nested futures in ``get()``, so the caller
sees the plain result: ``router.ask(Ping())`` is ``True``.

A :class:`ReplyFuture` carries its request's deadline, so even ``get()``
without a timeout cannot wait forever: past the deadline plus a grace period
it raises :class:`~actorpool.errors.RequestTimeout`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pykka import Future, Timeout
from pykka._threading import ThreadingFuture

from actorpool.errors import RequestTimeout

__all__ = ["DEADLINE_GRACE", "ReplyFuture", "UnwrappingFuture"]

# Extra time a caller waits past a request's deadline before giving up on the pool itself.
# The router fails every request at its deadline; this only matters if the router died.
DEADLINE_GRACE = 5.0


class ReplyFuture(ThreadingFuture[Any]):
    """A reply that may be completed by whichever party gets there first.

    The router's deadline timer and the connection actor that ran the call
    race to answer; ``try_set`` and ``try_set_exception`` make the loser a
    no-op instead of pykka's ``queue.Full``.

    Attributes:
        deadline: ``time.monotonic()`` value after which the request is late.
        outcome: ``"ok"``, the class name of the error set, or ``""`` while pending.
    """

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline
        self._lock = threading.Lock()
        self._done = False
        self.outcome = ""

    def _claim(self, outcome: str) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            self.outcome = outcome
            return True

    @property
    def done(self) -> bool:
        """Whether a result or an error was set."""
        return self._done

    def try_set(self, value: Any) -> bool:
        """Set the result unless one is set already; return whether this call set it."""
        if not self._claim("ok"):
            return False
        self.set(value)
        return True

    def try_set_exception(self, exc: BaseException) -> bool:
        """Set an error unless a result is set already; return whether this call set it."""
        if not self._claim(type(exc).__name__):
            return False
        self.set_exception((type(exc), exc, exc.__traceback__))
        return True

    def get(self, *, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = max(0.0, self.deadline - time.monotonic()) + DEADLINE_GRACE
            try:
                return super().get(timeout=timeout)
            except Timeout:
                msg = (
                    "the pool did not answer by the request's deadline; "
                    "check that the pool is running (pool.router.is_alive())"
                )
                raise RequestTimeout(msg) from None
        return super().get(timeout=timeout)


class UnwrappingFuture(ThreadingFuture[Any]):
    """The future behind ``router.ask``: ``get()`` follows nested futures to the plain result."""

    def get(self, *, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        value = super().get(timeout=timeout)
        while isinstance(value, Future):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = value.get(timeout=remaining)
        return value
