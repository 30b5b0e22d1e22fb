"""The router actor: the pool's front door.

``router.ask(request)`` puts the request in a FIFO queue and answers at once
with a :class:`~actorpool.future.ReplyFuture` (the caller's ``ask`` unwraps
it). The router then hands queued requests to the least-used idle healthy
connection whose breaker admits the call, and decides what a failure means:
retry on another connection after a backoff (a scheduled message, never a
sleep), or fail with a typed error. It never does Docker I/O itself, so it
keeps answering while every connection is busy.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import random
import time
from typing import Any

import attrs
import pykka

from actorpool.backoff import backoff_delay
from actorpool.breaker import BreakerState, CircuitBreaker
from actorpool.config import Config
from actorpool.errors import (
    ActorPoolError,
    DockerUnavailable,
    NoHealthyConnections,
    PoolExhausted,
    PoolStopped,
    RequestTimeout,
    RetriesExhausted,
    UnknownMessage,
)
from actorpool.future import ReplyFuture, UnwrappingFuture
from actorpool.messages import (
    ConnectionStatus,
    FollowContainers,
    PoolStatus,
    PoolStatusReport,
    Request,
    SubscribeEvents,
    SubscribeLogs,
    Unsubscribe,
)
from actorpool.metrics import PoolMetrics
from actorpool.protocol import (
    Attach,
    CallDone,
    CheckHealth,
    ConnectionGone,
    ConnectionRecovered,
    ConnectionUnhealthy,
    DeadlinePassed,
    Degraded,
    Probe,
    ProbeDone,
    Recover,
    Replace,
    ResetClient,
    RetryDue,
    Run,
    Shutdown,
    Wire,
)
from actorpool.scheduler import Scheduler, TimerHandle

__all__ = ["RouterActor", "RouterRef"]

logger = logging.getLogger(__name__)

_STREAM_MESSAGES = (SubscribeLogs, Unsubscribe, SubscribeEvents, FollowContainers)


@attrs.define(eq=False)
class _Conn:
    """The router's view of one connection slot."""

    id: str
    ref: pykka.ActorRef[Any]
    breaker: CircuitBreaker
    created: float
    healthy: bool = True
    running: int | None = None  # request id in flight
    probing: bool = False
    usage_count: int = 0
    last_used: float | None = None
    last_pick: int = 0
    consecutive_failures: int = 0
    recovering: bool = False

    @property
    def idle(self) -> bool:
        return self.running is None and not self.probing


@attrs.define(eq=False)
class _Pending:
    """One request between its arrival and its answer."""

    id: int
    request: Request
    future: ReplyFuture
    received: float
    deadline: float
    attempt: int = 0
    tried: set[str] = attrs.field(factory=set)
    last_error: BaseException | None = None
    timer: TimerHandle | None = None
    conn: str | None = None
    waited: bool = False


class RouterRef(pykka.ActorRef[Any]):
    """The router's ``ActorRef``: a stopped pool answers with :class:`PoolStopped`.

    Plain Pykka would raise ``ActorDeadError``, which tells a user nothing
    about what to do; everything else is Pykka's own ``ActorRef``.
    """

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        if not self.is_alive():
            raise PoolStopped("the pool is stopped; start a new one with actorpool.start()")
        return super().ask(message, block=block, timeout=timeout)

    def tell(self, message: Any) -> None:
        if not self.is_alive():
            raise PoolStopped("the pool is stopped; start a new one with actorpool.start()")
        super().tell(message)


class RouterActor(pykka.ThreadingActor):
    """Routes requests to connection actors; see the module docstring.

    Args:
        config: The pool's configuration.
        scheduler: Timers for retries and deadlines.
        metrics: Where to count what happens (optional).
    """

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        # Callers' ask() futures unwrap the ReplyFuture that on_receive returns.
        return UnwrappingFuture()

    def __init__(self, config: Config, scheduler: Scheduler, metrics: PoolMetrics | None) -> None:
        super().__init__()
        self._actor_ref = RouterRef(self)
        self._config = config
        self._scheduler = scheduler
        self._metrics = metrics
        self._conns: dict[str, _Conn] = {}
        self._queue: collections.deque[_Pending] = collections.deque()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._picks = itertools.count(1)
        self._supervisor: pykka.ActorRef[Any] | None = None
        self._streams: pykka.ActorRef[Any] | None = None
        self._stopped = False
        self._restarts = 0
        self._degraded = False
        self._rng = random.Random()

    # -- mailbox -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Request):
            return self._submit(message)
        if isinstance(message, CallDone):
            self._on_call_done(message)
        elif isinstance(message, RetryDue):
            self._on_retry_due(message.request_id)
        elif isinstance(message, DeadlinePassed):
            self._on_deadline(message.request_id)
        elif isinstance(message, ProbeDone):
            self._on_probe_done(message)
        elif isinstance(message, PoolStatus):
            return self._status()
        elif isinstance(message, _STREAM_MESSAGES):
            return self._forward_to_streams(message)
        elif isinstance(message, CheckHealth):
            self._check_health()
        elif isinstance(message, Attach):
            self._attach(message)
        elif isinstance(message, ConnectionGone):
            self._on_gone(message)
        elif isinstance(message, Recover):
            self._recover(message.conn_id)
        elif isinstance(message, Wire):
            self._supervisor, self._streams = message.supervisor, message.streams
        elif isinstance(message, Shutdown):
            self._shutdown()
        elif isinstance(message, Degraded):
            self._degraded = message.degraded
        else:
            return self._unknown(message)
        return None

    def _unknown(self, message: Any) -> ReplyFuture:
        # Raising here would kill the router when the message came by tell(); answer instead.
        error = UnknownMessage(
            f"the router does not handle {type(message).__name__!s}; send a request from "
            "actorpool.messages (e.g. ListContainers()) or PoolStatus()"
        )
        logger.warning("%s", error)
        future = ReplyFuture(time.monotonic())
        future.try_set_exception(error)
        return future

    # -- requests ------------------------------------------------------------------------------

    def _submit(self, request: Request) -> ReplyFuture:
        now = time.monotonic()
        timeout = request.timeout if request.timeout is not None else self._config.api.timeout
        pending = _Pending(next(self._ids), request, ReplyFuture(now + timeout), now, now + timeout)
        if self._stopped:
            pending.future.try_set_exception(
                PoolStopped("the pool is stopped; start a new one with actorpool.start()")
            )
            return pending.future
        if not any(self._usable(c, now) for c in self._conns.values()):
            pending.future.try_set_exception(self._no_connection_error())
            return pending.future
        if len(self._queue) >= self._config.pool.max_queue:
            pending.future.try_set_exception(
                PoolExhausted(
                    f"{len(self._queue)} requests are already waiting for a connection "
                    f"(docker.pool.max_queue); slow down or raise max_queue / max_pool_size"
                )
            )
            return pending.future
        self._pending[pending.id] = pending
        pending.timer = self._scheduler.tell_later(
            timeout, self.actor_ref, DeadlinePassed(pending.id)
        )
        self._queue.append(pending)
        self._dispatch()
        return pending.future

    def _usable(self, conn: _Conn, now: float) -> bool:
        return conn.healthy and conn.breaker.admits(now)

    def _no_connection_error(self) -> NoHealthyConnections:
        total = len(self._conns)
        healthy = sum(c.healthy for c in self._conns.values())
        return NoHealthyConnections(
            f"no connection can take the call: {healthy} of {total} healthy, the rest unhealthy "
            f"or with an open circuit breaker (daemon at {self._config.pool.socket_path}); "
            "check that the daemon is up, the pool recovers on its own"
        )

    def _pick(self, pending: _Pending, now: float) -> _Conn | None:
        best: _Conn | None = None
        best_key: tuple[int, int, int] | None = None
        for conn in self._conns.values():
            if not conn.idle or not self._usable(conn, now):
                continue
            key = (conn.id in pending.tried, conn.usage_count, conn.last_pick)
            if best_key is None or key < best_key:
                best, best_key = conn, key
        return best

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self._queue:
            pending = self._queue[0]
            if pending.future.done:
                self._queue.popleft()
                continue
            conn = self._pick(pending, now)
            if conn is None:
                if not pending.waited:
                    pending.waited = True
                if not any(self._usable(c, now) for c in self._conns.values()):
                    # Nothing can ever take these: fail fast rather than wait for the deadline.
                    while self._queue:
                        self._finish_error(self._queue.popleft(), self._no_connection_error())
                return
            self._queue.popleft()
            self._start(pending, conn, now)

    def _start(self, pending: _Pending, conn: _Conn, now: float) -> None:
        conn.running = pending.id
        conn.usage_count += 1
        conn.last_used = time.time()
        conn.last_pick = next(self._picks)
        conn.breaker.on_call(now)
        pending.conn = conn.id
        pending.tried.add(conn.id)
        if self._metrics is not None and pending.attempt == 0:
            self._metrics.observe_wait(now - pending.received)
        try:
            conn.ref.tell(
                Run(pending.id, pending.request, pending.future, pending.deadline, pending.attempt)
            )
        except pykka.ActorDeadError:
            self._lose_connection(conn.id, crashed=True)

    def _on_call_done(self, done: CallDone) -> None:
        conn = self._conns.get(done.conn_id)
        now = time.monotonic()
        if conn is not None and conn.running == done.request_id:
            conn.running = None
            if done.ok or (done.error is not None and not done.counts):
                conn.breaker.on_success(now)
                conn.consecutive_failures = 0
            elif done.counts:
                conn.breaker.on_failure(now)
                self._count_failure(conn)
        pending = self._pending.get(done.request_id)
        if pending is not None and pending.conn == done.conn_id:
            pending.conn = None
            if self._metrics is not None and (done.ok or done.error is not None):
                outcome = "ok" if done.error is None else type(done.error).__name__
                self._metrics.observe_operation(pending.request.operation, done.seconds, outcome)
                if done.counts:
                    self._metrics.connection_error(outcome)
            if done.ok:
                self._forget(pending)
            elif done.error is None:
                # The connection got the call after its deadline and skipped it.
                self._finish_error(pending, self._deadline_error(pending))
            elif done.retryable and not pending.future.done:
                self._retry(pending, done.error)
            else:
                # Final: the connection already answered the caller; this records it.
                self._finish_error(pending, done.error)
        self._dispatch()

    def _retry(self, pending: _Pending, error: BaseException) -> None:
        pending.last_error = error
        pool = self._config.pool
        now = time.monotonic()
        if pending.attempt >= pool.max_retries:
            self._finish_error(
                pending,
                RetriesExhausted(
                    f"{pending.request.operation}: failed {pending.attempt + 1} times "
                    f"(docker.pool.max_retries={pool.max_retries}); last error: {error}"
                ),
                cause=error,
            )
            return
        delay = backoff_delay(
            pending.attempt,
            initial=pool.initial_retry_delay,
            multiplier=pool.retry_multiplier,
            maximum=pool.max_retry_delay,
            jitter=pool.jitter,
            rng=self._rng,
        )
        if now + delay >= pending.deadline:
            self._finish_error(pending, self._deadline_error(pending), cause=error)
            return
        pending.attempt += 1
        if self._metrics is not None:
            self._metrics.retry(pending.request.operation)
        logger.info(
            "retrying %s in %.3fs after %s",
            pending.request.operation,
            delay,
            error,
            extra={"request_id": pending.id, "attempt": pending.attempt},
        )
        self._scheduler.tell_later(delay, self.actor_ref, RetryDue(pending.id))

    def _on_retry_due(self, request_id: int) -> None:
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done:
            return
        now = time.monotonic()
        if not any(self._usable(c, now) for c in self._conns.values()):
            self._finish_error(pending, self._no_connection_error(), cause=pending.last_error)
            return
        # A retry has waited its turn already: it goes to the head of the queue.
        self._queue.appendleft(pending)
        self._dispatch()

    def _deadline_error(self, pending: _Pending) -> RequestTimeout:
        timeout = pending.deadline - pending.received
        last = f"; last error: {pending.last_error}" if pending.last_error else ""
        return RequestTimeout(
            f"{pending.request.operation}: no answer within its {timeout:.3g}s deadline "
            f"after {pending.attempt + 1} attempt(s){last}; raise the request's timeout or "
            "check the daemon"
        )

    def _on_deadline(self, request_id: int) -> None:
        pending = self._pending.get(request_id)
        if pending is None:
            return
        pending.timer = None
        self._finish_error(pending, self._deadline_error(pending), cause=pending.last_error)

    def _finish_error(
        self, pending: _Pending, error: BaseException, cause: BaseException | None = None
    ) -> None:
        if cause is not None and error.__cause__ is None:
            error.__cause__ = cause
        pending.future.try_set_exception(error)
        self._forget(pending)

    def _forget(self, pending: _Pending) -> None:
        if pending.conn is not None:
            return  # still running somewhere; forgotten when its CallDone arrives
        if self._pending.pop(pending.id, None) is not None and self._metrics is not None:
            # Observed once, when the request leaves the pool, with what its caller got.
            self._metrics.request_finished(
                pending.request.operation,
                time.monotonic() - pending.received,
                pending.future.outcome or "abandoned",
            )
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    # -- connections and health ---------------------------------------------------------------

    def _attach(self, attach: Attach) -> None:
        old = self._conns.get(attach.conn_id)
        breaker = CircuitBreaker(
            attach.conn_id, self._config.circuit_breaker, listener=self._breaker_moved
        )
        self._conns[attach.conn_id] = _Conn(attach.conn_id, attach.ref, breaker, time.monotonic())
        if old is not None and old.ref is not attach.ref:
            old.ref.stop(block=False)
        if attach.replacement:
            self._restarts += 1
        if self._metrics is not None:
            self._metrics.connection_opened(attach.conn_id)
        self._publish()
        self._dispatch()

    def _breaker_moved(self, conn_id: str, old: BreakerState, new: BreakerState) -> None:
        if self._metrics is not None:
            self._metrics.breaker_transition(conn_id, old.value, new.value)

    def _on_gone(self, gone: ConnectionGone) -> None:
        conn = self._conns.get(gone.conn_id)
        if conn is None or conn.ref.is_alive():
            return  # an old actor we already replaced, or a stale report
        self._lose_connection(gone.conn_id, crashed=gone.crashed)

    def _lose_connection(self, conn_id: str, *, crashed: bool) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        logger.log(
            logging.DEBUG if self._stopped else logging.WARNING,
            "connection actor %s is gone (%s)",
            conn_id,
            "crashed" if crashed else "stopped",
            extra={"conn_id": conn_id},
        )
        if conn.running is not None:
            pending = self._pending.get(conn.running)
            if pending is not None and pending.conn == conn_id:
                pending.conn = None
                self._retry(
                    pending,
                    DockerUnavailable(
                        f"{pending.request.operation}: connection {conn_id} died mid-call"
                    ),
                )
        if self._metrics is not None:
            self._metrics.connection_closed(conn_id, time.monotonic() - conn.created)
        if not self._stopped and self._supervisor is not None:
            self._tell_supervisor(Replace(conn_id))
        self._publish()
        self._dispatch()

    def _tell_supervisor(self, message: Any) -> None:
        # The supervisor stops before the router at shutdown; a late report is not an error.
        if self._supervisor is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._supervisor.tell(message)

    def _check_health(self) -> None:
        timeout = self._config.pool.health_check_timeout
        for conn in self._conns.values():
            # A busy connection is judged by the call it is running (bounded by its deadline);
            # probing it would only queue the ping behind that call.
            if conn.idle and not conn.recovering:
                self._send_probe(conn, timeout)

    def _send_probe(self, conn: _Conn, timeout: float) -> None:
        conn.probing = True
        try:
            conn.ref.tell(Probe(timeout))
        except pykka.ActorDeadError:
            self._lose_connection(conn.id, crashed=True)

    def _on_probe_done(self, done: ProbeDone) -> None:
        conn = self._conns.get(done.conn_id)
        if conn is None:
            return
        conn.probing = False
        if self._metrics is not None:
            self._metrics.health_check(conn.id, done.seconds, done.ok)
        if done.ok:
            conn.consecutive_failures = 0
            if not conn.healthy:
                conn.healthy = True
                conn.recovering = False
                if self._metrics is not None:
                    self._metrics.recovery("reconnect")
                logger.warning("connection %s recovered", conn.id, extra={"conn_id": conn.id})
                if self._supervisor is not None:
                    self._tell_supervisor(ConnectionRecovered(conn.id))
                self._publish()
        else:
            conn.recovering = False
            self._count_failure(conn, reason=done.error)
        self._dispatch()

    def _count_failure(self, conn: _Conn, reason: str = "") -> None:
        conn.consecutive_failures += 1
        if conn.healthy and conn.consecutive_failures >= self._config.pool.unhealthy_threshold:
            conn.healthy = False
            logger.warning(
                "connection %s unhealthy after %d failed checks%s",
                conn.id,
                conn.consecutive_failures,
                f": {reason}" if reason else "",
                extra={"conn_id": conn.id},
            )
            self._publish()
        if not conn.healthy and self._supervisor is not None:
            self._tell_supervisor(ConnectionUnhealthy(conn.id))

    def _recover(self, conn_id: str) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.healthy or not conn.idle:
            return
        conn.recovering = True
        try:
            conn.ref.tell(ResetClient())
        except pykka.ActorDeadError:
            self._lose_connection(conn_id, crashed=True)
            return
        self._send_probe(conn, self._config.pool.health_check_timeout)

    # -- status and shutdown -------------------------------------------------------------------

    def _publish(self) -> None:
        if self._metrics is None:
            return
        conns = self._conns.values()
        pool = self._config.pool
        self._metrics.set_pool(
            size=len(self._conns),
            min_size=pool.min_pool_size,
            max_size=pool.max_pool_size,
            active=sum(not c.idle for c in conns),
            healthy=sum(c.healthy for c in conns),
            queue_length=len(self._queue),
        )

    def _status(self) -> PoolStatusReport | ReplyFuture:
        now = time.monotonic()
        conns = tuple(
            ConnectionStatus(
                id=c.id,
                healthy=c.healthy,
                breaker=c.breaker.current(now).value,
                in_use=not c.idle,
                usage_count=c.usage_count,
                age=now - c.created,
                last_used=c.last_used,
                consecutive_failures=c.consecutive_failures,
            )
            for c in sorted(self._conns.values(), key=lambda c: int(c.id.lstrip("c") or 0))
        )
        healthy = sum(c.healthy for c in conns)
        pool = self._config.pool
        report = PoolStatusReport(
            connections=conns,
            size=len(conns),
            min_size=pool.min_pool_size,
            max_size=pool.max_pool_size,
            healthy=healthy,
            queue_length=len(self._queue),
            restarts=self._restarts,
            degraded=self._degraded or healthy < min(pool.min_pool_size, max(1, len(conns))),
        )
        self._publish()
        return report

    def _forward_to_streams(self, message: Any) -> Any:
        if self._stopped:
            raise PoolStopped("the pool is stopped; start a new one with actorpool.start()")
        if self._streams is None:
            raise ActorPoolError("this pool has no stream manager")
        return self._streams.ask(message, block=False)

    def _shutdown(self) -> None:
        self._stopped = True
        error = PoolStopped("the pool was stopped before the request was answered")
        for pending in list(self._pending.values()):
            pending.future.try_set_exception(error)
            if pending.timer is not None:
                pending.timer.cancel()
        self._queue.clear()
        self._pending.clear()

    def on_stop(self) -> None:
        self._shutdown()
