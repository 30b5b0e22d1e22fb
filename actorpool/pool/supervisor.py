"""The supervisor actor: keeps the pool alive and at its size.

Pykka has no supervision, so this actor provides it: it starts the
connection actors, replaces any that die (OTP style, bounded by a restart
intensity of ``max_restarts`` within ``restart_window``), drives the health
checks every ``health_check_interval`` and schedules the recovery of
unhealthy connections with backoff. It never does Docker I/O and never
sleeps: every wait is a message scheduled on the pool's :class:`Scheduler`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from typing import Any

import pykka

from actorpool.config import Config
from actorpool.engine.actor import Actor
from actorpool.engine.backoff import backoff_delay
from actorpool.engine.scheduler import Scheduler, TimerHandle
from actorpool.errors import UnknownMessage
from actorpool.observe.metrics import PoolMetrics
from actorpool.pool.connection import ConnectionActor
from actorpool.pool.protocol import (
    Attach,
    CheckHealth,
    ConnectionRecovered,
    ConnectionUnhealthy,
    Degraded,
    Grow,
    Recover,
    RecoverDue,
    Recycle,
    Replace,
    Retire,
    Tick,
)

__all__ = ["Bootstrap", "SupervisorActor"]

logger = logging.getLogger(__name__)


class Bootstrap:
    """Start the initial connections; answered once they are attached to the router."""


class SupervisorActor(Actor):
    """See the module docstring.

    Args:
        config: The pool's configuration.
        scheduler: The pool's timer thread.
        router: The router actor, told about every connection it should use.
        metrics: Where to count restarts and recoveries (optional).
    """

    def __init__(
        self,
        config: Config,
        scheduler: Scheduler,
        router: pykka.ActorRef[Any],
        metrics: PoolMetrics | None,
    ) -> None:
        super().__init__()
        self._config = config
        self._scheduler = scheduler
        self._router = router
        self._metrics = metrics
        self._conns: dict[str, pykka.ActorRef[Any]] = {}
        self._restarts: collections.deque[float] = collections.deque()
        self._recovery_attempts: dict[str, int] = {}
        self._recovery_timers: dict[str, TimerHandle] = {}
        self._waiting_replacement: set[str] = set()
        self._degraded = False
        self._tick: TimerHandle | None = None
        self._next_id = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self._tell_router(CheckHealth())
            self._schedule_tick()
        elif isinstance(message, Replace):
            self._replace(message.conn_id)
        elif isinstance(message, ConnectionUnhealthy):
            self._schedule_recovery(message.conn_id)
        elif isinstance(message, RecoverDue):
            self._recovery_timers.pop(message.conn_id, None)
            self._tell_router(Recover(message.conn_id))
        elif isinstance(message, ConnectionRecovered):
            self._recovery_attempts.pop(message.conn_id, None)
            timer = self._recovery_timers.pop(message.conn_id, None)
            if timer is not None:
                timer.cancel()
        elif isinstance(message, Grow):
            for _ in range(message.count):
                self._start_connection(self._new_id(), replacement=False)
        elif isinstance(message, Retire):
            self._stop_connection(message.conn_id)
        elif isinstance(message, Recycle):
            self._stop_connection(message.conn_id)
            self._start_connection(message.conn_id, replacement=False)
        elif isinstance(message, Bootstrap):
            for _ in range(self._config.pool.initial_pool_size):
                self._start_connection(self._new_id(), replacement=False)
            self._schedule_tick()
            return len(self._conns)
        else:
            msg = f"the supervisor does not handle {type(message).__name__}"
            raise UnknownMessage(msg)
        return None

    def _tell_router(self, message: Any) -> None:
        # The router stops last; a report racing the shutdown is not an error.
        with contextlib.suppress(pykka.ActorDeadError):
            self._router.tell(message)

    def _schedule_tick(self) -> None:
        self._tick = self._scheduler.tell_later(
            self._config.pool.health_check_interval, self.actor_ref, Tick()
        )

    def _new_id(self) -> str:
        conn_id = f"c{self._next_id}"
        self._next_id += 1
        return conn_id

    def _stop_connection(self, conn_id: str) -> None:
        # The router handed the slot back idle, so stopping cannot cut a call short.
        ref = self._conns.pop(conn_id, None)
        self._recovery_attempts.pop(conn_id, None)
        timer = self._recovery_timers.pop(conn_id, None)
        if timer is not None:
            timer.cancel()
        if ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(block=False)

    def _start_connection(self, conn_id: str, *, replacement: bool) -> None:
        ref = ConnectionActor.start(conn_id, self._config, self._router)
        self._conns[conn_id] = ref
        self._tell_router(Attach(conn_id, ref, replacement=replacement))

    def _replace(self, conn_id: str) -> None:
        old = self._conns.get(conn_id)
        if old is None or old.is_alive():
            return  # retired since, or already replaced
        now = time.monotonic()
        window = self._config.pool.restart_window
        while self._restarts and now - self._restarts[0] > window:
            self._restarts.popleft()
        if len(self._restarts) >= self._config.pool.max_restarts:
            # Past the restart intensity: stop spinning, report degraded, try again later.
            if not self._degraded:
                self._degraded = True
                self._tell_router(Degraded(True))
                logger.error(
                    "%d connection restarts within %.0fs: pool degraded; retrying in %.0fs",
                    len(self._restarts),
                    window,
                    window,
                )
            self._scheduler.tell_later(window, self.actor_ref, Replace(conn_id))
            return
        if self._degraded:
            self._degraded = False
            self._tell_router(Degraded(False))
        self._restarts.append(now)
        if self._metrics is not None:
            self._metrics.recovery("restart")
        logger.warning("restarting connection %s", conn_id, extra={"conn_id": conn_id})
        self._start_connection(conn_id, replacement=True)

    def _schedule_recovery(self, conn_id: str) -> None:
        if conn_id in self._recovery_timers:
            return
        attempt = self._recovery_attempts.get(conn_id, 0)
        self._recovery_attempts[conn_id] = attempt + 1
        # Checks start quick and back off, but never further apart than recovery_check_interval,
        # so a daemon that comes back is noticed within that interval.
        interval = self._config.pool.recovery_check_interval
        delay = backoff_delay(
            attempt, initial=interval / 8, multiplier=2.0, maximum=interval, jitter=False
        )
        self._recovery_timers[conn_id] = self._scheduler.tell_later(
            delay, self.actor_ref, RecoverDue(conn_id)
        )

    def on_stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        for timer in self._recovery_timers.values():
            timer.cancel()
        for ref in self._conns.values():
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(block=False)

    def connection_refs(self) -> dict[str, pykka.ActorRef[Any]]:
        """The live connection actors by id (for the pool's shutdown and for tests)."""
        return dict(self._conns)
