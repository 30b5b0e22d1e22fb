"""Starting and stopping a pool: the one object a user holds.

``actorpool.start(config)`` wires the actors together (router, supervisor,
connections, stream manager) around one scheduler thread and one metrics
registry, and returns a :class:`Pool`. ``Pool.stop()`` takes everything
down again, so no actor thread outlives the pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pykka

from actorpool.config import Config, load_config
from actorpool.engine.scheduler import Scheduler
from actorpool.errors import ConfigError
from actorpool.messages import PoolStatus, PoolStatusReport
from actorpool.observe.metrics import MetricsServer, PoolMetrics
from actorpool.pool.health import HealthCheck, default_checks
from actorpool.pool.protocol import Shutdown, Wire
from actorpool.pool.router import AlertTarget, RouterActor
from actorpool.pool.supervisor import Bootstrap, SupervisorActor
from actorpool.streams.manager import StreamManager
from actorpool.transport.client import tls_warning

__all__ = ["Pool", "start"]

logger = logging.getLogger(__name__)


class Pool:
    """A running pool. Use :func:`start` to make one.

    Attributes:
        config: The configuration it runs with.
        router: The router's ``ActorRef``: ``pool.router.ask(ListContainers())``
            returns the plain result; ``ask(..., block=False)`` a future whose
            ``get()`` does. Actors of your own may ``tell``/``ask`` it too.
        metrics: The pool's Prometheus metrics (its own registry).
        scheduler: The pool's timer thread (actors schedule messages on it).
    """

    def __init__(
        self,
        config: Config,
        *,
        health_checks: Sequence[HealthCheck] | None = None,
        alerts: AlertTarget | None = None,
    ) -> None:
        self.config = config
        monitoring = config.monitoring
        self.metrics = PoolMetrics(
            namespace=monitoring.namespace, detailed=monitoring.detailed_metrics
        )
        self.scheduler = Scheduler()
        self._server: MetricsServer | None = None
        self._lock = threading.Lock()
        self._stopped = False
        warning = tls_warning(config)
        if warning:
            logger.warning("%s", warning)
        checks = (
            tuple(health_checks) if health_checks is not None else default_checks(config.health)
        )
        self.router: pykka.ActorRef[Any] = RouterActor.start(
            config, self.scheduler, self.metrics, checks, alerts
        )
        try:
            self._streams: pykka.ActorRef[Any] | None = StreamManager.start(
                config, self.scheduler, self.metrics
            )
            self._supervisor: pykka.ActorRef[Any] = SupervisorActor.start(
                config, self.scheduler, self.router, self.metrics
            )
            self.router.tell(Wire(self._supervisor, self._streams))
            self._supervisor.ask(Bootstrap(), timeout=30)
            if monitoring.serves:
                assert monitoring.listen is not None
                self._server = MetricsServer(self.metrics.registry, monitoring.listen)
        except BaseException:
            self.stop()
            raise

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where the metrics endpoint listens, or ``None`` when monitoring is off."""
        return None if self._server is None else self._server.address

    def connections(self, timeout: float = 10.0) -> dict[str, pykka.ActorRef[Any]]:
        """The live connection actors by slot id, for chaos drills and tests.

        Do not send them messages of your own: a connection actor takes
        requests from the router only.
        """
        refs: dict[str, pykka.ActorRef[Any]] = (
            self._supervisor.proxy().connection_refs().get(timeout=timeout)
        )
        return refs

    def status(self, timeout: float = 10.0) -> PoolStatusReport:
        """The pool's :class:`PoolStatusReport` (shorthand for ``router.ask(PoolStatus())``)."""
        report = self.router.ask(PoolStatus(), block=True, timeout=timeout)
        assert isinstance(report, PoolStatusReport)
        return report

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the pool: fail waiting calls with ``PoolStopped``, stop every actor, close clients.

        Idempotent. Waits at most about ``timeout`` seconds in all; a connection
        stuck in a Docker call is bounded by its request's deadline.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        deadline = time.monotonic() + timeout
        refs: list[pykka.ActorRef[Any]] = []
        with contextlib.suppress(pykka.ActorDeadError):
            self.router.tell(Shutdown())
        for name in ("_streams", "_supervisor"):
            ref = getattr(self, name, None)
            if ref is None:
                continue
            if name == "_supervisor":
                with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                    refs.extend(ref.proxy().connection_refs().get(timeout=_left(deadline)).values())
            _stop_actor(ref, deadline)
        _stop_actor(self.router, deadline)
        for ref in refs:
            _stop_actor(ref, deadline)
        self.scheduler.stop()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _stop_actor(ref: pykka.ActorRef[Any], deadline: float) -> None:
    try:
        ref.stop(block=True, timeout=_left(deadline))
    except pykka.ActorDeadError:
        pass
    except pykka.Timeout:
        logger.warning("actor %s did not stop in time; it will end with its current call", ref)


def start(
    config: Config | str | os.PathLike[str] | None = None,
    *,
    health_checks: Sequence[HealthCheck] | None = None,
    alerts: AlertTarget | None = None,
) -> Pool:
    """Start a pool.

    Args:
        config: A :class:`~actorpool.config.Config`, a path to a YAML file, or
            ``None`` for the defaults (``DOCKER_HOST`` or ``/var/run/docker.sock``).
        health_checks: Checks each health round runs (default: ping, container-list
            latency and event-stream liveness, weighted as ``docker.health`` says).
        alerts: An actor ref told each :class:`~actorpool.messages.HealthAlert`, or a
            quick callable called with it (from the router's thread).

    Returns:
        The running :class:`Pool`; stop it with ``pool.stop()`` or use it as a
        context manager.
    """
    if config is None or isinstance(config, str | os.PathLike):
        config = load_config(None if config is None else Path(config))
    elif not isinstance(config, Config):
        msg = f"actorpool.start() takes a Config, a path or None, got {type(config).__name__}"
        raise ConfigError(msg)
    return Pool(config, health_checks=health_checks, alerts=alerts)
