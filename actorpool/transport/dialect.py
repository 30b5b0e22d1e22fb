"""What differs between the engines behind the Docker API (dockerd, Podman), known once per daemon.

Podman's Docker-compatible API answers the same requests with a few
differences that matter to a reader who must lose and repeat nothing
(measured with podman 4.3.1; docs/engines.md has the whole table):

- Log timestamps are whole seconds (``2026-12-03T07:59:15Z``), and
  ``since=S`` includes the whole second ``S``. actorpool's cursors
  (:mod:`actorpool.logs.cursors`: the last line's timestamp and how many lines
  carry it) work unchanged, but a ``tail`` that bounds a resume read may cut
  *inside* the cursor's second, and then the first lines stamped ``S`` are not
  the ones already delivered: resume reads on such an engine read from ``since``
  with ``tail=all`` (Podman scans the whole log file for ``since`` anyway).
- ``follow=1`` on a container that has already exited returns an incomplete log
  (or hangs): such a container is read without ``follow``.
- Event filters name some actions differently (``died`` for ``die``,
  ``remove`` for ``destroy``), and a removal is reported as ``remove``.

A :class:`DialectProbe` asks the daemon's ``/_ping`` once (the first time a
stream needs it; Podman's answer carries a ``Libpod-Api-Version`` header) and
remembers the answer. (Podman takes ~0.5 s for ``/version``, ~2 ms for ``/_ping``.)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from docker import APIClient

__all__ = ["DOCKER", "PODMAN", "Dialect", "DialectProbe", "dialect_of"]


@attrs.frozen
class Dialect:
    """How one engine speaks the Docker API, where it matters to actorpool.

    Attributes:
        name: ``docker`` or ``podman``.
        whole_seconds: Log timestamps are whole seconds and ``since`` includes the whole
            second: resume reads must not be bounded by ``tail``.
        follow_exited: ``follow=1`` on an exited container returns its whole log.
        event_filters: Event names in a filter, as the engine spells them.
        event_actions: Container event actions as the engine reports them -> Docker's names.
    """

    name: str
    whole_seconds: bool = False
    follow_exited: bool = True
    event_filters: Mapping[str, str] = attrs.field(factory=dict)
    event_actions: Mapping[str, str] = attrs.field(factory=dict)

    def filters(self, filters: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Docker event filters in this engine's words (``event=die`` -> ``died`` on Podman)."""
        if not filters or not self.event_filters or "event" not in filters:
            return filters
        names = filters["event"]
        listed = [names] if isinstance(names, str) else list(names)
        spelled = [self.event_filters.get(name, name) for name in listed]
        return {**filters, "event": spelled}

    def action(self, action: str) -> str:
        """An event action in Docker's words (Podman's ``remove`` is ``destroy``)."""
        return self.event_actions.get(action, action)


DOCKER: Final = Dialect("docker")
PODMAN: Final = Dialect(
    "podman",
    whole_seconds=True,
    follow_exited=False,
    event_filters={"die": "died", "destroy": "remove"},
    event_actions={"remove": "destroy"},
)


def dialect_of(headers: Mapping[str, str]) -> Dialect:
    """The dialect of the daemon whose ``GET /_ping`` answer had these (case-blind) headers."""
    if headers.get("Libpod-Api-Version") or headers.get("Server", "").startswith("Libpod/"):
        return PODMAN
    return DOCKER


class DialectProbe:
    """The dialect of one daemon, asked for once and then remembered. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dialect: Dialect | None = None

    def get(self, client: APIClient) -> Dialect:
        """The daemon's dialect; asks ``/_ping`` with ``client`` the first time.

        Raises:
            Whatever the ``/_ping`` request raises (the caller classifies it); the
            next call asks again.
        """
        dialect = self._dialect
        if dialect is None:
            with self._lock:
                if self._dialect is None:
                    response = client._get(client._url("/_ping"))
                    try:
                        client._raise_for_status(response)
                        self._dialect = dialect_of(response.headers)
                    finally:
                        response.close()
                dialect = self._dialect
        return dialect
