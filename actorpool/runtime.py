"""Starting and stopping a pool: the one object a user holds.

``actorpool.start(config)`` wires the actors of each endpoint together
(router, supervisor, connections, stream manager) around one scheduler
thread and one metrics registry, puts a front door before the endpoints'
routers, and returns a :class:`Pool`. ``Pool.stop()`` takes everything
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
from actorpool.errors import ConfigError, EndpointRequired
from actorpool.messages import PoolStatus, PoolStatusReport
from actorpool.observe.metrics import MetricsServer, PoolMetrics
from actorpool.pool.frontdoor import FrontDoor
from actorpool.pool.health import HealthCheck, default_checks
from actorpool.pool.protocol import Shutdown, Wire
from actorpool.pool.router import AlertTarget, RouterActor
from actorpool.pool.supervisor import Bootstrap, SupervisorActor
from actorpool.streams.manager import StreamManager
from actorpool.transport.client import tls_warning
from actorpool.transport.endpoint import endpoint_for

__all__ = ["Pool", "start"]

logger = logging.getLogger(__name__)


class _Endpoint:
    """One endpoint's own pool: router, supervisor (and its connections), stream manager.

    Nothing is shared with another endpoint but the scheduler thread (whose
    timers only ``tell``) and the metrics registry, so a dead daemon cannot
    slow another endpoint's requests.
    """

    def __init__(
        self,
        name: str,
        config: Config,
        scheduler: Scheduler,
        metrics: PoolMetrics,
        checks: tuple[HealthCheck, ...],
        alerts: AlertTarget | None,
    ) -> None:
        self.name = name
        self.config = config
        self.streams: pykka.ActorRef[Any] | None = None
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.router: pykka.ActorRef[Any] = RouterActor.start(
            config, scheduler, metrics, checks, alerts, name
        )
        self.streams = StreamManager.start(config, scheduler, metrics, name)
        self.supervisor = SupervisorActor.start(config, scheduler, self.router, metrics)
        self.router.tell(Wire(self.supervisor, self.streams))
        # Answered once the connections are attached (no Docker I/O: clients connect lazily).
        self.booted = self.supervisor.ask(Bootstrap(), block=False)

    def connection_refs(self, timeout: float) -> dict[str, pykka.ActorRef[Any]]:
        if self.supervisor is None:
            return {}
        refs: dict[str, pykka.ActorRef[Any]] = (
            self.supervisor.proxy().connection_refs().get(timeout=timeout)
        )
        return refs

    def stop(self, deadline: float) -> None:
        refs: list[pykka.ActorRef[Any]] = []
        if self.streams is not None:
            _stop_actor(self.streams, deadline)
        if self.supervisor is not None:
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                refs.extend(self.connection_refs(_left(deadline)).values())
            _stop_actor(self.supervisor, deadline)
        _stop_actor(self.router, deadline)
        for ref in refs:
            _stop_actor(ref, deadline)


class Pool:
    """A running pool. Use :func:`start` to make one.

    A pool has one endpoint (the daemon of ``docker.pool.socket_path``, named
    ``default``) or several (``docker.endpoints``), each with a pool of its own.

    Attributes:
        config: The configuration it runs with.
        router: The front door (:class:`~actorpool.pool.frontdoor.FrontDoor`), used like a
            Pykka ``ActorRef``: ``pool.router.ask(ListContainers())`` returns the plain
            result; ``ask(..., block=False)`` a future whose ``get()`` does. It sends each
            message to its endpoint's router, or to every endpoint (a fan-out). Actors of
            your own may ``tell``/``ask`` it too.
        metrics: The pool's Prometheus metrics (one registry; every series has an
            ``endpoint`` label).
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
        names = config.endpoint_names
        self.metrics = PoolMetrics(
            namespace=monitoring.namespace, detailed=monitoring.detailed_metrics, endpoint=names[0]
        )
        self.scheduler = Scheduler()
        self._server: MetricsServer | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._endpoints: dict[str, _Endpoint] = {}
        try:
            for name in names:
                endpoint_config = config.for_endpoint(name)
                # Resolved here first: an unknown context or a missing TLS file fails start().
                warning = tls_warning(endpoint_for(endpoint_config))
                if warning:
                    logger.warning("endpoint %s: %s", name, warning)
                checks = (
                    tuple(health_checks)
                    if health_checks is not None
                    else default_checks(endpoint_config.health)
                )
                metrics = self.metrics if name == names[0] else self.metrics.for_endpoint(name)
                self._endpoints[name] = _Endpoint(
                    name, endpoint_config, self.scheduler, metrics, checks, alerts
                )
            boot_deadline = time.monotonic() + 30
            for endpoint in self._endpoints.values():
                endpoint.booted.get(timeout=_left(boot_deadline))
            self.router = FrontDoor(
                {name: e.router for name, e in self._endpoints.items()}, config.api.timeout
            )
            if monitoring.serves:
                assert monitoring.listen is not None
                self._server = MetricsServer(self.metrics.registry, monitoring.listen)
        except BaseException:
            self.stop()
            raise

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints' names, in configuration order."""
        return tuple(self._endpoints)

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where the metrics endpoint listens, or ``None`` when monitoring is off."""
        return None if self._server is None else self._server.address

    def _endpoint(self, name: str | None) -> _Endpoint:
        if name is None:
            if len(self._endpoints) > 1:
                msg = f"this pool has several endpoints ({', '.join(self._endpoints)}); name one"
                raise EndpointRequired(msg)
            return next(iter(self._endpoints.values()))
        self.router.endpoint(name)  # UnknownEndpoint, with the names
        return self._endpoints[name]

    def connections(
        self, timeout: float = 10.0, *, endpoint: str | None = None
    ) -> dict[str, pykka.ActorRef[Any]]:
        """The live connection actors of one endpoint by slot id, for chaos drills and tests.

        Do not send them messages of your own: a connection actor takes
        requests from the router only.
        """
        return self._endpoint(endpoint).connection_refs(timeout)

    def status(self, timeout: float = 10.0, *, endpoint: str | None = None) -> PoolStatusReport:
        """One endpoint's :class:`PoolStatusReport` (``router.ask(PoolStatus(endpoint=...))``)."""
        name = self._endpoint(endpoint).name
        report = self.router.ask(PoolStatus(endpoint=name), block=True, timeout=timeout)
        assert isinstance(report, PoolStatusReport)
        return report

    def statuses(self, timeout: float = 10.0) -> dict[str, PoolStatusReport]:
        """Every endpoint's :class:`PoolStatusReport`, by endpoint name."""
        return {name: self.status(timeout, endpoint=name) for name in self._endpoints}

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
        endpoints = list(getattr(self, "_endpoints", {}).values())
        for endpoint in endpoints:
            # Every endpoint fails its waiting calls at once, before any is waited for.
            with contextlib.suppress(pykka.ActorDeadError):
                endpoint.router.tell(Shutdown())
        for endpoint in endpoints:
            endpoint.stop(deadline)
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
            ``None`` for the defaults (the daemon the docker CLI would use: ``DOCKER_HOST``,
            ``DOCKER_CONTEXT``, the current context, else ``/var/run/docker.sock``).
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
