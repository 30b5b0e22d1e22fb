"""The router actor: the pool's front door.

``router.ask(request)`` answers at once with a
:class:`~actorpool.engine.future.ReplyFuture` (the caller's ``ask`` unwraps it), so
the router never waits for Docker. Behind that future a request passes the
rate limiter, waits in a FIFO queue, and runs on the least-used idle healthy
connection whose breaker admits it. A retryable failure is retried on
another connection after an exponential, jittered backoff (a scheduled
message, never a sleep), never past the request's deadline.

The router also owns the pool's shape, because it alone sees every slot's
state: it samples the load and grows or shrinks the pool (the supervisor
starts and stops the actors), retires idle and recycles old connections
only when they are idle, tracks each connection's health from health-check
rounds and call outcomes, and sends :class:`~actorpool.messages.HealthAlert`
messages on every transition.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import attrs
import pykka

from actorpool.config import Config
from actorpool.engine.actor import Actor
from actorpool.engine.backoff import backoff_delay
from actorpool.engine.future import ReplyFuture, UnwrappingFuture
from actorpool.engine.ratelimit import TokenBucket
from actorpool.engine.scheduler import Scheduler, TimerHandle
from actorpool.errors import (
    ActorPoolError,
    DockerUnavailable,
    NoHealthyConnections,
    PoolExhausted,
    PoolStopped,
    RateLimited,
    RequestTimeout,
    RetriesExhausted,
    UnknownMessage,
)
from actorpool.messages import (
    FollowContainers,
    HealthAlert,
    PoolStatus,
    PoolStatusReport,
    Request,
    StreamStats,
    SubscribeEvents,
    SubscribeLogs,
    Unsubscribe,
)
from actorpool.observe.metrics import PoolMetrics
from actorpool.pool.breaker import BreakerState, CircuitBreaker
from actorpool.pool.health import HealthCheck, HealthTracker
from actorpool.pool.protocol import (
    Admit,
    Attach,
    CallDone,
    CheckHealth,
    ConnectionGone,
    ConnectionRecovered,
    ConnectionUnhealthy,
    DeadlinePassed,
    Degraded,
    FillPoolStatus,
    Grow,
    Probe,
    ProbeDone,
    Recover,
    Recycle,
    Replace,
    ResetClient,
    Retire,
    RetryDue,
    Run,
    ScaleTick,
    Shutdown,
    Submit,
    Wire,
)
from actorpool.pool.scaling import LoadMonitor
from actorpool.pool.slots import Slot
from actorpool.transport.endpoint import daemon_url

__all__ = ["AlertTarget", "RouterActor", "RouterRef"]

logger = logging.getLogger(__name__)

AlertTarget = pykka.ActorRef[Any] | Callable[[HealthAlert], object]
"""Where health alerts go: an actor (told each alert) or a quick callable."""

_STREAM_MESSAGES = (SubscribeLogs, Unsubscribe, SubscribeEvents, FollowContainers, StreamStats)
_STOPPED = "the pool is stopped; start a new one with actorpool.start()"


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
    conn: str | None = None


class RouterRef(pykka.ActorRef[Any]):
    """The router's ``ActorRef``: requests get deadlines, a stopped pool says so.

    ``ask(request, timeout=T)`` makes ``T`` the request's deadline when it is
    shorter than the request's own ``timeout`` (default ``api.timeout``): at
    ``T`` the pool drops the request, queued or running, and the caller gets
    :class:`~actorpool.errors.RequestTimeout`, which is also a ``pykka.Timeout``
    so code written for Pykka still catches it. (Plain Pykka would raise its
    ``Timeout`` at ``T`` and leave the request holding a queue place and a
    connection for a caller who has gone.)

    Plain Pykka would raise ``ActorDeadError`` for a stopped pool, which tells a
    user nothing about what to do (``PoolStopped`` is also an ``ActorDeadError``).
    """

    default_timeout: float = 30.0

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        if not self.is_alive():
            raise PoolStopped(_STOPPED)
        if isinstance(message, Request):
            # Fast path: the caller waits on the reply future itself (one wake-up, not two);
            # the router is told the request with that future, exactly as if it had made it.
            limit = message.timeout if message.timeout is not None else self.default_timeout
            if timeout is not None:
                limit = min(limit, max(0.0, timeout))
            asked = time.monotonic()
            future = ReplyFuture(asked + limit)
            try:
                super().tell(Submit(message, future, asked))
            except pykka.ActorDeadError:
                raise PoolStopped(_STOPPED) from None
            # No timeout of its own: the router answers by the deadline (the future gives
            # up by itself, with RequestTimeout, only if the router died).
            return future.get() if block else future
        return super().ask(message, block=block, timeout=timeout)

    def tell(self, message: Any) -> None:
        if not self.is_alive():
            raise PoolStopped(_STOPPED)
        super().tell(message)


class RouterActor(Actor):
    """Routes requests to connection actors; see the module docstring.

    Args:
        config: The pool's configuration.
        scheduler: Timers for admissions, retries, deadlines and ticks.
        metrics: Where to count what happens (optional).
        checks: The health checks each round runs.
        alerts: Where :class:`HealthAlert` messages go (optional).
        endpoint: The endpoint this pool serves (named in its alerts).
    """

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        # Callers' ask() futures unwrap the ReplyFuture that on_receive returns.
        return UnwrappingFuture()

    def __init__(
        self,
        config: Config,
        scheduler: Scheduler,
        metrics: PoolMetrics | None,
        checks: tuple[HealthCheck, ...] = (),
        alerts: AlertTarget | None = None,
        endpoint: str = "default",
    ) -> None:
        super().__init__()
        self._actor_ref = RouterRef(self)
        self._endpoint = endpoint
        self._actor_ref.default_timeout = config.api.timeout
        self._config = config
        self._scheduler = scheduler
        self._metrics = metrics
        self._checks = checks
        self._alerts = alerts
        self._slots: dict[str, Slot] = {}
        self._queue: collections.deque[_Pending] = collections.deque()
        self._pending: dict[int, _Pending] = {}
        # (deadline, request id) of every pending request, finished ones removed lazily;
        # one timer, for the earliest, instead of one timer per request.
        self._deadlines: list[tuple[float, int]] = []
        self._deadline_timer: TimerHandle | None = None
        self._deadline_at = float("inf")
        self._ids = itertools.count(1)
        self._picks = itertools.count(1)
        self._supervisor: pykka.ActorRef[Any] | None = None
        self._streams: pykka.ActorRef[Any] | None = None
        self._stopped = False
        self._restarts = 0
        self._restarts_exceeded = False
        self._pool_degraded = False
        self._growing = 0
        self._rng = random.Random()
        pool = config.pool
        self._monitor = LoadMonitor(
            threshold=pool.load_threshold,
            window=pool.load_window,
            idle_window=pool.idle_timeout,
            growth=pool.pool_growth_factor,
            min_size=pool.min_pool_size,
            max_size=pool.max_pool_size,
        )
        rate = config.rate_limit
        self._bucket = (
            TokenBucket(rate.requests_per_second, rate.burst_size) if rate.enabled else None
        )
        self._tick_every = min(1.0, max(0.05, min(pool.load_window, pool.idle_timeout) / 5))
        self._tick: TimerHandle | None = None

    def on_start(self) -> None:
        self._tick = self._scheduler.tell_later(self._tick_every, self.actor_ref, ScaleTick())

    # -- mailbox -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Submit):
            self._submit(message.request, message.future, message.asked)
            return None
        if isinstance(message, Request):
            return self._submit(message)
        if isinstance(message, CallDone):
            self._on_call_done(message)
        elif isinstance(message, Admit):
            self._on_admit(message.request_id)
        elif isinstance(message, RetryDue):
            self._on_retry_due(message.request_id)
        elif isinstance(message, DeadlinePassed):
            self._on_deadlines()
        elif isinstance(message, ProbeDone):
            self._on_probe_done(message)
        elif isinstance(message, PoolStatus):
            return self._status()
        elif isinstance(message, _STREAM_MESSAGES):
            return self._forward_to_streams(message)
        elif isinstance(message, ScaleTick):
            self._on_tick()
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
            self._restarts_exceeded = message.degraded
            self._publish()
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

    def _submit(
        self, request: Request, future: ReplyFuture | None = None, asked: float | None = None
    ) -> ReplyFuture:
        now = time.monotonic()
        timeout = request.timeout if request.timeout is not None else self._config.api.timeout
        if future is None:
            future = ReplyFuture(now + timeout)
        # The deadline counts from the caller's ask (the fast path made the future then), and
        # may be shorter than the request's timeout (ask's timeout=).
        received = now if asked is None else asked
        deadline = future.deadline if future.deadline is not None else now + timeout
        timeout = deadline - received
        left = max(0.0, deadline - now)
        pending = _Pending(next(self._ids), request, future, received, deadline)
        error = self._refusal(now)
        if error is None and self._bucket is not None:
            wait = self._bucket.reserve(now, within=left)
            if wait is None:
                error = self._rate_limited(timeout)
            elif wait > 0:
                if self._metrics is not None:
                    self._metrics.rate_limited_wait(wait)
                self._register(pending)
                self._scheduler.tell_later(wait, self.actor_ref, Admit(pending.id))
                return pending.future
        if error is not None:
            pending.future.try_set_exception(error)
            return pending.future
        self._register(pending)
        self._queue.append(pending)
        self._dispatch()
        return pending.future

    def _refusal(self, now: float) -> ActorPoolError | None:
        if self._stopped:
            return PoolStopped(_STOPPED)
        if self._none_usable(now):
            return self._no_connection_error()
        if len(self._queue) >= self._config.pool.max_queue:
            return PoolExhausted(
                f"{len(self._queue)} requests are already waiting for a connection "
                "(docker.pool.max_queue); slow down or raise max_queue / max_pool_size"
            )
        return None

    def _rate_limited(self, timeout: float) -> RateLimited:
        rate = self._config.rate_limit
        return RateLimited(
            f"the rate limit ({rate.requests_per_second:g} requests/s, burst {rate.burst_size}) "
            f"cannot admit this request within its {timeout:g}s deadline; slow down, give it a "
            "longer timeout, or raise docker.rate_limit.requests_per_second"
        )

    def _register(self, pending: _Pending) -> None:
        self._pending[pending.id] = pending
        if len(self._deadlines) > 2 * len(self._pending) + 64:
            # Mostly finished requests: rebuild so the heap stays as small as what is pending.
            self._deadlines = [(p.deadline, p.id) for p in self._pending.values()]
            heapq.heapify(self._deadlines)
        else:
            heapq.heappush(self._deadlines, (pending.deadline, pending.id))
        if pending.deadline < self._deadline_at:
            self._arm_deadline_timer(pending.deadline)

    def _arm_deadline_timer(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_at = when
        self._deadline_timer = self._scheduler.tell_later(
            when - time.monotonic(), self.actor_ref, DeadlinePassed()
        )

    def _on_deadlines(self) -> None:
        now = time.monotonic()
        heap = self._deadlines
        dropped = False
        while heap and (heap[0][0] <= now or heap[0][1] not in self._pending):
            _, request_id = heapq.heappop(heap)
            pending = self._pending.get(request_id)
            if pending is not None:
                self._finish_error(pending, self._deadline_error(pending), pending.last_error)
                dropped = True
        if dropped:
            # Dropped requests give up their queue places now, not when they reach the front.
            self._queue = collections.deque(p for p in self._queue if not p.future.done)
            self._publish()
        self._deadline_timer = None
        self._deadline_at = float("inf")
        if heap:
            self._arm_deadline_timer(heap[0][0])

    def _on_admit(self, request_id: int) -> None:
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done:
            return
        error = self._refusal(time.monotonic())
        if error is not None:
            self._finish_error(pending, error)
            return
        self._queue.append(pending)
        self._dispatch()

    def _none_usable(self, now: float) -> bool:
        """No connection can take a call now, and none is on its way.

        A connection being recycled or added is attached within moments (starting its
        actor needs no daemon), so a call waits for it rather than fail: recycling every
        connection past ``connection_lifetime`` at once must not look like an outage.
        """
        return not self._growing and not any(s.usable(now) for s in self._slots.values())

    def _no_connection_error(self) -> NoHealthyConnections:
        # Each connection is refused for one reason: failed health checks, or (healthy) an
        # open breaker. "2 of 2 healthy" alone read as if the pool were fine.
        now = time.monotonic()
        total = len(self._slots)
        unhealthy = sum(not s.healthy for s in self._slots.values())
        tripped = sum(s.healthy and not s.breaker.admits(now) for s in self._slots.values())
        why = [f"{unhealthy} of {total} unhealthy"] if unhealthy else []
        if tripped:
            wait = self._config.circuit_breaker.timeout
            why.append(
                f"{tripped} of {total} with an open circuit breaker, half-open within {wait:g}s"
            )
        return NoHealthyConnections(
            f"no connection can take the call: {', '.join(why) or f'none of {total} usable'} "
            f"(daemon at {daemon_url(self._config)}); check that the daemon is up, the "
            "pool recovers on its own"
        )

    def _pick(self, pending: _Pending, now: float) -> Slot | None:
        best: Slot | None = None
        best_key: tuple[bool, int, int] | None = None
        for slot in self._slots.values():
            if slot.running is not None or slot.probing or not slot.usable(now):
                continue
            # Untried first (retries move on), then least used, then least recently picked.
            key = (slot.id in pending.tried, slot.usage_count, slot.last_pick)
            if best_key is None or key < best_key:
                best, best_key = slot, key
        return best

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self._queue:
            pending = self._queue[0]
            if pending.future.done:
                self._queue.popleft()
                self._forget(pending)
                continue
            slot = self._pick(pending, now)
            if slot is None:
                if self._none_usable(now):
                    # Nothing can take these: fail fast rather than wait for the deadline.
                    while self._queue:
                        self._finish_error(self._queue.popleft(), self._no_connection_error())
                break
            self._queue.popleft()
            self._start(pending, slot, now)
        self._load_changed(now)

    def _start(self, pending: _Pending, slot: Slot, now: float) -> None:
        slot.running = pending.id
        slot.usage_count += 1
        slot.last_used = time.time()
        slot.last_pick = next(self._picks)
        slot.breaker.on_call(now)
        pending.conn = slot.id
        pending.tried.add(slot.id)
        if self._metrics is not None and pending.attempt == 0:
            self._metrics.observe_wait(now - pending.received)
        try:
            slot.ref.tell(
                Run(pending.id, pending.request, pending.future, pending.deadline, pending.attempt)
            )
        except pykka.ActorDeadError:
            self._lose(slot.id, crashed=True)

    def _on_call_done(self, done: CallDone) -> None:
        slot = self._slots.get(done.conn_id)
        now = time.monotonic()
        if slot is not None and slot.running == done.request_id:
            slot.running = None
            slot.idle_since = now
            if done.ok or (done.error is not None and not done.counts):
                slot.breaker.on_success(now)
                self._health_changed(slot, slot.health.call_succeeded())
            elif done.counts:
                slot.breaker.on_failure(now)
                self._health_changed(slot, slot.health.call_failed(str(done.error)))
            if slot.age(now) >= slot.hard_age:
                self._replace_old(slot, "connection_lifetime")
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
        if time.monotonic() + delay >= pending.deadline:
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
        if self._none_usable(time.monotonic()):
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

    # -- connections ---------------------------------------------------------------------------

    def _attach(self, attach: Attach) -> None:
        old = self._slots.get(attach.conn_id)
        pool = self._config.pool
        breaker = CircuitBreaker(
            attach.conn_id, self._config.circuit_breaker, listener=self._breaker_moved
        )
        health = HealthTracker(self._config.health, pool.unhealthy_threshold)
        self._slots[attach.conn_id] = Slot.new(
            attach.conn_id,
            attach.ref,
            breaker,
            health,
            max_age=pool.max_connection_age,
            lifetime=pool.connection_lifetime,
            rng=self._rng,
        )
        if old is not None and old.ref is not attach.ref:
            old.ref.stop(block=False)
        if attach.replacement:
            self._restarts += 1
        self._growing = max(0, self._growing - 1)
        if self._metrics is not None:
            self._metrics.connection_opened(attach.conn_id)
        self._publish()
        self._dispatch()

    def _on_gone(self, gone: ConnectionGone) -> None:
        slot = self._slots.get(gone.conn_id)
        if slot is None or slot.ref.is_alive():
            return  # retired, recycled or replaced already: a stale report
        self._lose(gone.conn_id, crashed=gone.crashed)

    def _lose(self, conn_id: str, *, crashed: bool) -> None:
        slot = self._slots.pop(conn_id, None)
        if slot is None:
            return
        logger.log(
            logging.DEBUG if self._stopped else logging.WARNING,
            "connection actor %s is gone (%s)",
            conn_id,
            "crashed" if crashed else "stopped",
            extra={"conn_id": conn_id},
        )
        if slot.running is not None:
            pending = self._pending.get(slot.running)
            if pending is not None and pending.conn == conn_id:
                pending.conn = None
                error = DockerUnavailable(
                    f"{pending.request.operation}: connection {conn_id} died mid-call"
                )
                self._retry(pending, error)
        self._closed(slot)
        if not self._stopped:
            self._tell_supervisor(Replace(conn_id))
        self._publish()
        self._dispatch()

    def _closed(self, slot: Slot) -> None:
        if self._metrics is not None:
            self._metrics.connection_closed(slot.id, slot.age(time.monotonic()))

    def _tell_supervisor(self, message: Any) -> None:
        # The supervisor stops before the router at shutdown; a late report is not an error.
        if self._supervisor is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._supervisor.tell(message)

    # -- shape of the pool: load, idle, age ---------------------------------------------------

    def _load_changed(self, now: float) -> None:
        busy = sum(1 for s in self._slots.values() if s.running is not None or s.probing)
        self._monitor.update(now, busy, len(self._queue), len(self._slots))

    def _on_tick(self) -> None:
        if self._stopped:
            return
        now = time.monotonic()
        size = len(self._slots) + self._growing
        decision = self._monitor.tick(now, size)
        if decision is not None:
            logger.info(
                "pool %s from %d to %d: %s",
                "grows" if decision.direction == "up" else "shrinks",
                decision.from_size,
                decision.to_size,
                decision.reason,
            )
            if self._metrics is not None:
                self._metrics.scaling_event(decision.direction, "load")
            if decision.direction == "up":
                self._growing += decision.to_size - decision.from_size
                self._tell_supervisor(Grow(decision.to_size - decision.from_size))
            else:
                self._retire_idle(decision.from_size - decision.to_size, "load")
        self._retire_long_idle(now)
        self._recycle_old(now)
        self._publish()
        self._tick = self._scheduler.tell_later(self._tick_every, self.actor_ref, ScaleTick())

    def _retire_idle(self, count: int, reason: str) -> None:
        # Only idle connections leave, so no call is ever cut short by a resize.
        idle = sorted((s for s in self._slots.values() if s.idle), key=lambda s: s.idle_since)
        for slot in idle[:count]:
            if len(self._slots) <= self._config.pool.min_pool_size:
                return
            self._slots.pop(slot.id)
            self._closed(slot)
            self._tell_supervisor(Retire(slot.id))
            logger.info("retired connection %s (%s)", slot.id, reason, extra={"conn_id": slot.id})

    def _retire_long_idle(self, now: float) -> None:
        timeout = self._config.pool.idle_timeout
        if len(self._slots) <= self._config.pool.min_pool_size:
            return
        stale = [s for s in self._slots.values() if s.idle and now - s.idle_since >= timeout]
        if stale:
            if self._metrics is not None:
                self._metrics.scaling_event("down", "idle")
            self._retire_idle(1, "idle_timeout")
            self._monitor.resized(now)

    def _recycle_old(self, now: float) -> None:
        for slot in list(self._slots.values()):
            if not slot.idle:
                continue
            if slot.age(now) >= slot.hard_age:
                self._replace_old(slot, "connection_lifetime")
            elif slot.age(now) >= slot.soft_age and not self._queue:
                self._replace_old(slot, "max_connection_age")
                return  # one soft replacement per tick: the pool is never recycled at once

    def _replace_old(self, slot: Slot, reason: str) -> None:
        self._slots.pop(slot.id, None)
        self._closed(slot)
        if self._metrics is not None:
            self._metrics.recovery("recycle")
        self._growing += 1
        self._tell_supervisor(Recycle(slot.id))
        logger.info("recycling connection %s (%s)", slot.id, reason, extra={"conn_id": slot.id})

    # -- health --------------------------------------------------------------------------------

    def _check_health(self) -> None:
        # A copy: a probe told to a connection that just died loses its slot (_send_probe).
        for slot in list(self._slots.values()):
            # A busy connection is judged by the call it is running (bounded by its deadline);
            # probing it would only queue the round behind that call.
            if slot.idle and not slot.recovering:
                self._send_probe(slot)

    def _send_probe(self, slot: Slot) -> None:
        slot.probing = True
        try:
            slot.ref.tell(Probe(self._checks, self._config.pool.health_check_timeout))
        except pykka.ActorDeadError:
            self._lose(slot.id, crashed=True)

    def _on_probe_done(self, done: ProbeDone) -> None:
        slot = self._slots.get(done.conn_id)
        if slot is None:
            return
        slot.probing = False
        slot.recovering = False
        slot.idle_since = time.monotonic()
        ok = all(r.ok for r in done.results)
        if self._metrics is not None:
            self._metrics.health_check(slot.id, done.seconds, ok)
        self._health_changed(slot, slot.health.round(done.results, done.seconds))
        self._dispatch()

    def _health_changed(self, slot: Slot, new: str) -> None:
        old = slot.reported
        if new == old:
            if new == "unhealthy":
                self._tell_supervisor(ConnectionUnhealthy(slot.id))
            return
        slot.reported = new
        shown = "recovered" if old == "unhealthy" and new == "healthy" else new
        level = logging.INFO if shown in ("healthy", "recovered") else logging.WARNING
        logger.log(
            level,
            "connection %s %s -> %s%s",
            slot.id,
            old,
            shown,
            f": {slot.health.reason}" if slot.health.reason else "",
            extra={"conn_id": slot.id},
        )
        self._alert("connection", slot.id, old, shown, slot.health.reason)
        if new == "unhealthy":
            self._tell_supervisor(ConnectionUnhealthy(slot.id))
        elif old == "unhealthy":
            if self._metrics is not None:
                self._metrics.recovery("reconnect")
            self._tell_supervisor(ConnectionRecovered(slot.id))
        self._publish()

    def _recover(self, conn_id: str) -> None:
        slot = self._slots.get(conn_id)
        if slot is None or slot.healthy or not slot.idle:
            return
        slot.recovering = True
        try:
            slot.ref.tell(ResetClient())
        except pykka.ActorDeadError:
            self._lose(conn_id, crashed=True)
            return
        self._send_probe(slot)

    def _breaker_moved(self, conn_id: str, old: BreakerState, new: BreakerState) -> None:
        if self._metrics is not None:
            self._metrics.breaker_transition(conn_id, old.value, new.value)
        names = {BreakerState.OPEN: "opened", BreakerState.CLOSED: "closed"}
        self._alert("breaker", conn_id, old.value, names.get(new, new.value))

    def _alert(self, kind: str, subject: str, old: str, new: str, detail: str = "") -> None:
        if self._alerts is None:
            return
        alert = HealthAlert(kind, subject, old, new, detail, time.time(), self._endpoint)
        try:
            if isinstance(self._alerts, pykka.ActorRef):
                self._alerts.tell(alert)
            else:
                self._alerts(alert)
        except Exception:
            logger.exception("the alert target failed on %s", alert)

    # -- status and shutdown -------------------------------------------------------------------

    def _pool_score(self) -> tuple[float, bool]:
        slots = self._slots.values()
        score = sum(s.health.score for s in slots) / len(slots) if slots else 0.0
        healthy = sum(s.healthy for s in slots)
        degraded = (
            self._restarts_exceeded or healthy == 0 or score < self._config.health.degraded_score
        )
        return score, degraded

    def _publish(self) -> None:
        score, degraded = self._pool_score()
        if degraded != self._pool_degraded and (self._slots or self._restarts_exceeded):
            self._pool_degraded = degraded
            old, new = ("healthy", "degraded") if degraded else ("degraded", "recovered")
            logger.log(
                logging.WARNING if degraded else logging.INFO,
                "pool %s (score %.2f)",
                new,
                score,
            )
            self._alert("pool", "pool", old, new, f"health score {score:.2f}")
        if self._metrics is None:
            return
        slots = self._slots.values()
        pool = self._config.pool
        self._metrics.set_pool(
            size=len(self._slots),
            min_size=pool.min_pool_size,
            max_size=pool.max_pool_size,
            active=sum(not s.idle for s in slots),
            healthy=sum(s.healthy for s in slots),
            queue_length=len(self._queue),
        )

    def _status(self) -> PoolStatusReport | ReplyFuture:
        report = self._report()
        if self._streams is None:
            return report
        # The stream manager adds its count and answers the caller; the router does not wait.
        future = ReplyFuture(time.monotonic() + self._config.api.timeout)
        try:
            self._streams.tell(FillPoolStatus(report, future))
        except pykka.ActorDeadError:
            return report
        return future

    def _report(self) -> PoolStatusReport:
        now = time.monotonic()
        slots = sorted(self._slots.values(), key=lambda s: int(s.id.lstrip("c") or 0))
        conns = tuple(s.status(now) for s in slots)
        score, degraded = self._pool_score()
        pool = self._config.pool
        return PoolStatusReport(
            connections=conns,
            size=len(conns),
            min_size=pool.min_pool_size,
            max_size=pool.max_pool_size,
            healthy=sum(c.healthy for c in conns),
            queue_length=len(self._queue),
            restarts=self._restarts,
            degraded=degraded,
            load=self._monitor.load,
            score=score,
            scaling=tuple(self._monitor.decisions),
        )

    def _forward_to_streams(self, message: Any) -> Any:
        if self._stopped:
            raise PoolStopped(_STOPPED)
        if self._streams is None:
            raise ActorPoolError("this pool has no stream manager")
        return self._streams.ask(message, block=False)

    def _shutdown(self) -> None:
        self._stopped = True
        if self._tick is not None:
            self._tick.cancel()
        error = PoolStopped("the pool was stopped before the request was answered")
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        for pending in list(self._pending.values()):
            pending.future.try_set_exception(error)
        self._queue.clear()
        self._pending.clear()
        self._deadlines.clear()

    def on_stop(self) -> None:
        self._shutdown()
