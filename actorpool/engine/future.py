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

import queue
import sys
import threading
import time
from typing import Any

from pykka import Future, Timeout
from pykka._threading import ThreadingFuture
from pykka._types import OptExcInfo

from actorpool.errors import RequestTimeout

__all__ = ["DEADLINE_GRACE", "ReplyFuture", "UnwrappingFuture"]

# Extra time a caller waits past a request's deadline before giving up on the pool itself.
# The router fails every request at its deadline; this only matters if the router died.
DEADLINE_GRACE = 5.0


class ReplyFuture(Future[Any]):
    """A reply that may be completed by whichever party gets there first.

    The router's deadline timer and the connection actor that ran the call
    race to answer; ``try_set`` and ``try_set_exception`` make the loser a
    no-op instead of pykka's ``queue.Full``.

    Every request has one, so it is built on a bare lock that is held until
    the answer is in (``get`` waits by acquiring it) rather than on Pykka's
    ``ThreadingFuture`` and its ``Condition``: that halves what the answer
    costs the connection actor that sets it and the caller that waits.

    Args:
        deadline: ``time.monotonic()`` value after which the request is late;
            ``None`` (futures Pykka derives with ``map``, ``filter``...) for none.

    Attributes:
        deadline: As given.
        outcome: ``"ok"``, the class name of the error set, or ``""`` while pending.
    """

    def __init__(self, deadline: float | None = None) -> None:
        super().__init__()
        self.deadline = deadline
        self.outcome = ""
        self._claim_lock = threading.Lock()
        self._ready = threading.Lock()
        self._ready.acquire()  # released once, when the answer is in
        self._done = False
        self._answered = False
        self._value: Any = None
        self._exc_info: OptExcInfo | None = None

    def _claim(self, outcome: str) -> bool:
        with self._claim_lock:
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
        self._value = value
        self._answered = True
        self._ready.release()
        return True

    def try_set_exception(self, exc: BaseException) -> bool:
        """Set an error unless a result is set already; return whether this call set it."""
        if not self._claim(type(exc).__name__):
            return False
        self._exc_info = (type(exc), exc, exc.__traceback__)
        self._answered = True
        self._ready.release()
        return True

    def set(self, value: Any | None = None) -> None:
        """Pykka's ``set``: like :meth:`try_set`, but a second answer raises ``queue.Full``."""
        if not self.try_set(value):
            raise queue.Full

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        """Pykka's ``set_exception`` (default: the exception being handled)."""
        exc_type, exc, _ = exc_info or sys.exc_info()
        if exc is None and exc_type is not None:
            exc = exc_type()
        if exc is None or not self.try_set_exception(exc):
            raise queue.Full

    def set_get_hook(self, func: Any) -> None:
        """Pykka's hook for derived futures (``map``, ``filter``...): ``get`` calls ``func``."""
        if self._done:
            raise queue.Full
        super().set_get_hook(func)
        self._claim("ok")
        self._answered = True
        self._ready.release()

    def get(self, *, timeout: float | None = None) -> Any:
        if not self._answered:
            self._wait(timeout)
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._exc_info is not None:
            _, exc, traceback = self._exc_info
            assert exc is not None
            raise exc.with_traceback(traceback)
        return self._value

    def _wait(self, timeout: float | None) -> None:
        if timeout is None and self.deadline is not None:
            wait = max(0.0, self.deadline - time.monotonic()) + DEADLINE_GRACE
            if not self._ready.acquire(timeout=wait):
                msg = (
                    "the pool did not answer by the request's deadline; "
                    "check that the pool is running (pool.router.is_alive())"
                )
                raise RequestTimeout(msg)
        elif not self._ready.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise Timeout(f"{timeout} seconds")
        self._ready.release()  # let any other waiter through too


class UnwrappingFuture(ThreadingFuture[Any]):
    """The future behind ``router.ask``: ``get()`` follows nested futures to the plain result."""

    def get(self, *, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        value = super().get(timeout=timeout)
        while isinstance(value, Future):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = value.get(timeout=remaining)
        return value
