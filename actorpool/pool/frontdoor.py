"""The front door of a pool of one or more endpoints: route each message, fan list-likes out.

``pool.router`` is a :class:`FrontDoor`. It is not an actor and has no
thread: ``ask`` and ``tell`` run in the caller's thread, pick the endpoint's
:class:`~actorpool.pool.router.RouterRef` and hand the message over (the
router's own fast path then puts the caller's reply future in its mailbox).
So the front door never waits for Docker, and one endpoint's stuck daemon or
full queue cannot slow a request for another: each endpoint has its own
router, connections, breakers, rate limit and stream manager.

Routing (see :mod:`actorpool.messages`): a message naming an endpoint goes
to it; with one endpoint, everything goes to it; with several, a message of
a class with ``fan_out`` set goes to every endpoint, ``SubscribeEvents`` and
``FollowContainers`` to every endpoint or the ones named, ``Unsubscribe`` to
the endpoints its id names, and a request about one object without an
endpoint fails with :class:`~actorpool.errors.EndpointRequired`.

A fan-out asks every endpoint at once (``ask(..., block=False)``, one reply
future each) and returns a :class:`FanOutFuture`, which combines the replies
in whichever thread calls ``get()``: no actor ever waits on another's
future. Every part carries the fan-out's deadline (the request's
``timeout``, or ``docker.api.timeout``, or the ``timeout`` given to
``ask`` if smaller), so each endpoint's router drops its part by then, and
``get()`` returns by then whatever the endpoints do: the combined result when
all answered, else :class:`~actorpool.errors.FanOutError` with the answers
of the live endpoints (``partial``) and each failed endpoint's error
(``failures``; ``RequestTimeout`` for one that did not answer in time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import pykka

from actorpool.errors import (
    ActorPoolError,
    EndpointRequired,
    FanOutError,
    RequestTimeout,
    UnknownEndpoint,
    UnknownMessage,
)
from actorpool.messages import FollowContainers, Request, SubscribeEvents, Subscription, Unsubscribe

__all__ = ["FanOutFuture", "FrontDoor"]

_Combine = Callable[[Mapping[str, Any]], Any]


class FanOutFuture(pykka.Future[Any]):
    """The combined reply of a fan-out; ``get()`` returns (or raises) by the deadline.

    Args:
        operation: What is asked, for error messages.
        parts: Endpoint name -> its reply future (or the error it failed with at once).
        deadline: ``time.monotonic()`` value by which ``get()`` returns.
        limit: The deadline in seconds (named in a timeout's message).
        combine: Turns the answers (endpoint -> reply, in endpoint order) into the result.
    """

    def __init__(
        self,
        operation: str,
        parts: Mapping[str, pykka.Future[Any] | BaseException],
        deadline: float,
        limit: float,
        combine: _Combine,
    ) -> None:
        super().__init__()
        self.deadline = deadline
        self._operation = operation
        self._parts = dict(parts)
        self._limit = limit
        self._combine = combine
        self._answers: dict[str, Any] = {}
        self._failures: dict[str, BaseException] = {
            name: part for name, part in self._parts.items() if isinstance(part, BaseException)
        }

    def get(self, *, timeout: float | None = None) -> Any:
        """The combined result once every endpoint answered or the deadline passed.

        Raises:
            FanOutError: Some endpoints failed or did not answer by the deadline.
            pykka.Timeout: ``timeout`` ended before the deadline (ask again later).
        """
        end = self.deadline if timeout is None else min(self.deadline, time.monotonic() + timeout)
        for name, part in self._parts.items():
            if name in self._answers or name in self._failures:
                continue
            assert not isinstance(part, BaseException)
            try:
                self._answers[name] = part.get(timeout=max(0.0, end - time.monotonic()))
            except Exception as exc:
                if not isinstance(exc, pykka.Timeout) or isinstance(exc, ActorPoolError):
                    self._failures[name] = exc
                elif end < self.deadline:
                    raise  # the caller's own wait ended, not the fan-out
                else:
                    self._failures[name] = RequestTimeout(
                        f"{self._operation} on endpoint {name!r}: no answer within the "
                        f"fan-out's {self._limit:.3g}s deadline"
                    )
        answers = {name: self._answers[name] for name in self._parts if name in self._answers}
        result = self._combine(answers)
        if not self._failures:
            return result
        failed = "; ".join(
            f"{name}: {type(exc).__name__}: {exc}" for name, exc in self._failures.items()
        )
        raise FanOutError(
            f"{self._operation}: {len(self._failures)} of {len(self._parts)} endpoints failed "
            f"({failed}); the answers of the others are in .partial",
            partial=result,
            failures=self._failures,
        )

    def set(self, value: Any | None = None) -> None:
        """Not settable: a fan-out is completed by its parts."""
        raise NotImplementedError

    def set_exception(self, exc_info: Any = None) -> None:
        """Not settable: a fan-out is completed by its parts."""
        raise NotImplementedError


class FrontDoor:
    """``pool.router``: ``ask`` and ``tell`` like a Pykka ``ActorRef``; see the module docstring.

    Args:
        routers: Endpoint name -> that endpoint's router ref, in configuration order.
        default_timeout: ``docker.api.timeout``: a fan-out's deadline when the request has none.
    """

    def __init__(self, routers: Mapping[str, pykka.ActorRef[Any]], default_timeout: float) -> None:
        if not routers:
            raise ValueError("a pool has at least one endpoint")
        self._routers = dict(routers)
        self._default_timeout = default_timeout
        self._only = next(iter(self._routers.values())) if len(self._routers) == 1 else None

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints' names, in configuration order."""
        return tuple(self._routers)

    def endpoint(self, name: str) -> pykka.ActorRef[Any]:
        """The router of endpoint ``name``.

        Raises:
            UnknownEndpoint: The pool has no such endpoint.
        """
        router = self._routers.get(name)
        if router is None:
            known = ", ".join(map(repr, self._routers))
            msg = f"no endpoint named {name!r}; this pool has {known} (docker.endpoints)"
            raise UnknownEndpoint(msg)
        return router

    def is_alive(self) -> bool:
        """Whether every endpoint's router runs (all stop together with the pool)."""
        return all(router.is_alive() for router in self._routers.values())

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Send ``message`` where it belongs; the reply, or a future of it (``block=False``).

        Raises:
            UnknownEndpoint: The message names an endpoint the pool does not have.
            EndpointRequired: Several endpoints and a request about one object without one.
            FanOutError: A fan-out in which some endpoints failed (see the module docstring).
        """
        if self._only is not None and _named(message) in (None, *self._routers):
            return self._only.ask(message, block=block, timeout=timeout)
        names = self._targets(message)
        if len(names) == 1 and not _joined(message):
            return self._routers[names[0]].ask(message, block=block, timeout=timeout)
        future = self._fan_out(message, names, timeout)
        return future.get() if block else future

    def tell(self, message: Any) -> None:
        """Send ``message`` to its endpoint(s) without waiting for any reply."""
        if self._only is not None and _named(message) in (None, *self._routers):
            self._only.tell(message)
            return
        for name in self._targets(message):
            self._routers[name].tell(self._part(message, name, None))

    # -- routing ---------------------------------------------------------------------------

    def _targets(self, message: Any) -> list[str]:
        if isinstance(message, Unsubscribe):
            return [self._owner(part) for part in message.subscription_id.split("+")]
        if isinstance(message, SubscribeEvents | FollowContainers):
            names = message.endpoints or self.endpoints
            for name in names:
                self.endpoint(name)
            return list(names)
        named = _named(message)
        if named is not None:
            self.endpoint(named)
            return [named]
        if not hasattr(message, "endpoint"):
            msg = f"the pool does not understand {type(message).__name__}; see actorpool.messages"
            raise UnknownMessage(msg)
        if getattr(message, "fan_out", ""):
            return list(self._routers)
        what = getattr(message, "operation", type(message).__name__)
        msg = (
            f"{what}: this pool has several endpoints ({', '.join(self._routers)}); "
            f"name one with endpoint=... (object ids are unique per daemon only)"
        )
        raise EndpointRequired(msg)

    def _owner(self, subscription_id: str) -> str:
        name, sep, _ = subscription_id.partition("/")
        if not sep or name not in self._routers:
            msg = f"subscription id {subscription_id!r} names no endpoint of this pool"
            raise UnknownEndpoint(msg)
        return name

    def _part(self, message: Any, name: str, limit: float | None) -> Any:
        if isinstance(message, Unsubscribe):
            ids = [i for i in message.subscription_id.split("+") if self._owner(i) == name]
            return Unsubscribe("+".join(ids))
        if isinstance(message, SubscribeEvents | FollowContainers):
            return attrs.evolve(message, endpoints=(name,))
        if isinstance(message, Request):
            return attrs.evolve(message, endpoint=name, timeout=limit or message.timeout)
        return attrs.evolve(message, endpoint=name)

    def _fan_out(self, message: Any, names: Sequence[str], timeout: float | None) -> FanOutFuture:
        limit = getattr(message, "timeout", None) or self._default_timeout
        if timeout is not None:
            limit = min(limit, timeout)
        deadline = time.monotonic() + limit
        parts: dict[str, pykka.Future[Any] | BaseException] = {}
        for name in dict.fromkeys(names):
            try:
                parts[name] = self._routers[name].ask(self._part(message, name, limit), block=False)
            except Exception as exc:
                parts[name] = exc
        operation = getattr(message, "operation", type(message).__name__)
        return FanOutFuture(operation, parts, deadline, limit, _combiner(message))


def _named(message: Any) -> str | None:
    name = getattr(message, "endpoint", None)
    return name if isinstance(name, str) else None


def _joined(message: Any) -> bool:
    # An Unsubscribe of a joined id has several parts even on one endpoint.
    return isinstance(message, Unsubscribe) and "+" in message.subscription_id


def _combiner(message: Any) -> _Combine:
    if isinstance(message, Unsubscribe):
        return lambda answers: any(answers.values())
    if isinstance(message, SubscribeEvents | FollowContainers):
        return _join_subscriptions
    if getattr(message, "fan_out", "") == "merge":
        return _merge
    return dict


def _merge(answers: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{**item, "Endpoint": name} for name, items in answers.items() for item in items]


def _join_subscriptions(answers: Mapping[str, Any]) -> Subscription | None:
    subs = [s for s in answers.values() if isinstance(s, Subscription)]
    if not subs:
        return None
    return Subscription("+".join(s.id for s in subs), subs[0].kind, subs[0].target)
