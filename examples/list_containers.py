"""List containers through the pool, and see what a failed request looks like.

Run it against any daemon (``DOCKER_HOST`` picks it, else /var/run/docker.sock)::

    DOCKER_HOST=unix:///path/to/docker.sock python examples/list_containers.py

No daemon? ``actorpool sandbox`` starts one (see examples/README.md).
"""

from __future__ import annotations

import sys

import actorpool
from actorpool.config import Config
from actorpool.errors import ActorPoolError, NotFound
from actorpool.messages import InspectContainer, ListContainers, Ping, Version

# The daemon comes from DOCKER_HOST; a small pool (no metrics endpoint unless asked).
config = Config.from_mapping({"docker": {"pool": {"min_pool_size": 1, "initial_pool_size": 2}}})


def main() -> None:
    # The pool is a context manager: every actor it started is stopped on the way out.
    with actorpool.start(config) as pool:
        # router.ask(request) blocks until a pooled connection answers, and returns plain data
        # (the Docker API's JSON), never a docker-py object.
        # No daemon: one clear error within 5 s, not a wait through every retry.
        assert pool.router.ask(Ping(timeout=5)) is True
        version = pool.router.ask(Version())
        print(f"daemon: Docker {version['Version']} (API {version['ApiVersion']})")

        containers = pool.router.ask(ListContainers(all=True))
        print(f"{len(containers)} container(s):")
        for c in containers:
            name = c["Names"][0].lstrip("/") if c.get("Names") else "-"
            print(f"  {c['Id'][:12]}  {name:<24} {c['State']:<10} {c['Image']}")

        # Errors are typed. A container that does not exist is NotFound (HTTP 404), which
        # the pool never retries: asking again would not make it exist.
        try:
            pool.router.ask(InspectContainer("no-such-container"))
        except NotFound as error:
            print(f"NotFound (status {error.status}): {error}")

        # A malformed request fails in the caller's thread, before it reaches any actor.
        try:
            InspectContainer("not a valid name!")
        except ValueError as error:
            print(f"ValueError: {error}")

        # Every error the pool raises on purpose derives from ActorPoolError, and a
        # request's timeout bounds it however many retries it takes.
        try:
            pool.router.ask(ListContainers(filters={"status": "no-such-status"}, timeout=5))
        except ActorPoolError as error:
            print(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    try:
        main()
    except ActorPoolError as error:  # e.g. no daemon: one line, no traceback
        sys.exit(f"list_containers.py: {error}")
