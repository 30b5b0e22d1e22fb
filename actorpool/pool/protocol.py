"""Internal messages between actorpool's own actors.

Users never send these; they are here, not in :mod:`actorpool.messages`, so
the public message set stays small. All are frozen attrs classes; the only
mutable things they carry are futures and actor refs, which are meant to be
shared.
"""

from __future__ import annotations

from typing import Any

import attrs
from pykka import ActorRef

from actorpool.engine.future import ReplyFuture
from actorpool.messages import PoolStatusReport, Request
from actorpool.pool.health import CheckResult, HealthCheck

__all__ = [
    "Admit",
    "Attach",
    "CallDone",
    "CheckHealth",
    "ConnectionGone",
    "ConnectionRecovered",
    "ConnectionUnhealthy",
    "DeadlinePassed",
    "Degraded",
    "FillPoolStatus",
    "Grow",
    "Probe",
    "ProbeDone",
    "Recover",
    "RecoverDue",
    "Recycle",
    "Replace",
    "ResetClient",
    "Retire",
    "RetryDue",
    "Run",
    "ScaleTick",
    "Shutdown",
    "Submit",
    "Tick",
    "Wire",
]


# caller -> router ----------------------------------------------------------------------


@attrs.frozen
class Submit:
    """A request and the future its caller already waits on (``RouterRef.ask``'s fast path).

    The request's deadline is ``future.deadline``: the smaller of the request's own
    timeout and the ``timeout`` the caller gave ``ask``, both counted from ``asked``
    (``time.monotonic()`` when the caller asked).
    """

    request: Request
    future: ReplyFuture
    asked: float


# router -> connection -------------------------------------------------------------------


@attrs.frozen
class Run:
    """Run ``request`` now; set ``future`` on success or on a final error, else report."""

    request_id: int
    request: Request
    future: ReplyFuture
    deadline: float
    attempt: int


@attrs.frozen
class Probe:
    """Run a health-check round: each check within ``timeout`` seconds."""

    checks: tuple[HealthCheck, ...]
    timeout: float


@attrs.frozen
class ResetClient:
    """Drop the client and build a fresh one on the next call (recovery)."""


# connection -> router -------------------------------------------------------------------


@attrs.frozen
class CallDone:
    """A :class:`Run` ended. On success the connection already set the future."""

    conn_id: str
    request_id: int
    ok: bool
    seconds: float
    error: BaseException | None = None
    retryable: bool = False
    counts: bool = False


@attrs.frozen
class ProbeDone:
    """A :class:`Probe` ended; ``seconds`` is the whole round."""

    conn_id: str
    results: tuple[CheckResult, ...]
    seconds: float


@attrs.frozen
class ConnectionGone:
    """A connection actor stopped (``crashed`` when by an unexpected failure)."""

    conn_id: str
    crashed: bool


# router <-> supervisor ------------------------------------------------------------------


@attrs.frozen
class Wire:
    """Tell the router who its supervisor and stream manager are (sent once, first)."""

    supervisor: ActorRef[Any]
    streams: ActorRef[Any] | None


@attrs.frozen
class Attach:
    """Add (or put back) a connection actor under ``conn_id``."""

    conn_id: str
    ref: ActorRef[Any]
    replacement: bool = False


@attrs.frozen
class Replace:
    """The router dropped ``conn_id`` (its actor died): start a new one."""

    conn_id: str


@attrs.frozen
class ConnectionUnhealthy:
    """``conn_id`` failed ``unhealthy_threshold`` checks in a row: schedule its recovery."""

    conn_id: str


@attrs.frozen
class ConnectionRecovered:
    """An unhealthy ``conn_id`` passed a check: the supervisor resets its backoff."""

    conn_id: str


@attrs.frozen
class Degraded:
    """Supervisor -> router: restarts exceeded their intensity limit (or are back under it)."""

    degraded: bool


@attrs.frozen
class Recover:
    """Router: give ``conn_id`` a fresh client and probe it now."""

    conn_id: str


@attrs.frozen
class RecoverDue:
    """Supervisor: time to try recovering ``conn_id`` again."""

    conn_id: str


@attrs.frozen
class CheckHealth:
    """Router: probe every idle connection now."""


@attrs.frozen
class Tick:
    """Supervisor: the health-check interval elapsed."""


# router -> router (timers) ---------------------------------------------------------------


@attrs.frozen
class RetryDue:
    """A retry's backoff elapsed."""

    request_id: int


@attrs.frozen
class DeadlinePassed:
    """The earliest deadline the router armed a timer for has come: fail what is late."""


@attrs.frozen
class Admit:
    """A rate-limited request's reserved token is due: queue it."""

    request_id: int


@attrs.frozen
class ScaleTick:
    """Router: time to sample the load, resize, retire idle and recycle old connections."""


@attrs.frozen
class Grow:
    """Router -> supervisor: start ``count`` more connections."""

    count: int


@attrs.frozen
class Retire:
    """Router -> supervisor: ``conn_id`` left the pool (idle); stop it for good."""

    conn_id: str


@attrs.frozen
class Recycle:
    """Router -> supervisor: ``conn_id`` is too old; stop it and start a fresh one."""

    conn_id: str


@attrs.frozen
class FillPoolStatus:
    """Router -> stream manager: add the stream count to ``report`` and set ``future``."""

    report: PoolStatusReport
    future: ReplyFuture


@attrs.frozen
class Shutdown:
    """Fail every waiting request with ``PoolStopped`` and refuse new ones."""
