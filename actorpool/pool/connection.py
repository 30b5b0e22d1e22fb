"""The connection actor: one pooled Docker connection.

Each actor owns one docker-py ``APIClient`` and is the only code that
touches it. It runs one request at a time in its own thread (that is the
point: a slow call blocks this connection only, never the router), bounds
every call by the request's deadline, and answers the caller directly on
success so the router stays off the reply path.
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import TracebackType
from typing import Any

import docker
import pykka

from actorpool.config import Config
from actorpool.engine.actor import Actor
from actorpool.errors import RequestTimeout, UnknownMessage
from actorpool.pool.health import CheckResult
from actorpool.pool.protocol import CallDone, ConnectionGone, Probe, ProbeDone, ResetClient, Run
from actorpool.transport.classify import classify
from actorpool.transport.client import close_quietly, make_client
from actorpool.transport.endpoint import daemon_url

__all__ = ["ConnectionActor"]

logger = logging.getLogger(__name__)


class ConnectionActor(Actor):
    """One pooled connection to the daemon.

    Args:
        conn_id: Stable id of the pool slot ("c0", "c1", ...); a replacement keeps it.
        config: The pool's configuration.
        router: Where to report call outcomes and the actor's own end.
    """

    def __init__(self, conn_id: str, config: Config, router: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._config = config
        self._router = router
        self._client: docker.APIClient | None = None

    def _get_client(self, timeout: float) -> docker.APIClient:
        # Built lazily, in this thread, so a daemon that is down fails the call, not start-up.
        # With api.version "auto" building it asks the daemon: bounded by the caller's time left.
        if self._client is None:
            self._client = make_client(
                self._config, timeout=min(self._config.pool.connection_timeout, timeout)
            )
        return self._client

    def _close_client(self) -> None:
        client, self._client = self._client, None
        close_quietly(client, f"connection {self.conn_id} client")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Run):
            self._run(message)
        elif isinstance(message, Probe):
            self._probe(message)
        elif isinstance(message, ResetClient):
            self._close_client()
        else:
            msg = f"ConnectionActor {self.conn_id} does not handle {type(message).__name__}"
            raise UnknownMessage(msg)
        return None

    def _run(self, run: Run) -> None:
        start = time.monotonic()
        remaining = run.deadline - start
        if run.future.done or remaining <= 0:
            # The router already answered (deadline); nothing to do but free the slot.
            self._tell_router(CallDone(self.conn_id, run.request_id, ok=False, seconds=0.0))
            return
        what = run.request.operation
        try:
            client = self._get_client(remaining)
            client.timeout = min(self._config.api.timeout, remaining)
            value = run.request.execute(client)
        except BaseException as exc:  # even SystemExit from an Execute(fn) must not stop all actors
            verdict = classify(exc, target=daemon_url(self._config), what=what)
            seconds = time.monotonic() - start
            late = time.monotonic() >= run.deadline and isinstance(verdict.error, RequestTimeout)
            if not verdict.retryable or late:
                run.future.try_set_exception(verdict.error)
            if verdict.counts:
                # A broken transport: start over with a fresh client next time.
                self._close_client()
            self._tell_router(
                CallDone(
                    self.conn_id,
                    run.request_id,
                    ok=False,
                    seconds=seconds,
                    error=verdict.error,
                    retryable=verdict.retryable,
                    counts=verdict.counts,
                )
            )
            return
        run.future.try_set(value)
        self._tell_router(
            CallDone(self.conn_id, run.request_id, ok=True, seconds=time.monotonic() - start)
        )

    def _probe(self, probe: Probe) -> None:
        start = time.monotonic()
        results: list[CheckResult] = []
        broken = ""
        for check in probe.checks:
            if broken:
                # The connection already failed (reset, refused, or timed out): the other
                # checks would only wait out timeouts.
                results.append(CheckResult(check.name, check.weight, False, 0.0, broken))
                continue
            t = time.monotonic()
            try:
                check.run(self._get_client(probe.timeout), probe.timeout)
            except Exception as exc:
                verdict = classify(exc, target=daemon_url(self._config), what=check.name)
                if verdict.counts:
                    self._close_client()
                    broken = f"skipped: the {check.name} check failed first"
                results.append(
                    CheckResult(check.name, check.weight, False, time.monotonic() - t, str(exc))
                )
            else:
                results.append(CheckResult(check.name, check.weight, True, time.monotonic() - t))
        self._tell_router(ProbeDone(self.conn_id, tuple(results), time.monotonic() - start))

    def on_stop(self) -> None:
        self._close_client()
        self._tell_router(ConnectionGone(self.conn_id, crashed=False))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close_client()
        self._tell_router(ConnectionGone(self.conn_id, crashed=True))

    def _tell_router(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._router.tell(message)
