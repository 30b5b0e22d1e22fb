"""actorpool: a pool of Docker Engine API connections, each one a Pykka actor.

Start a pool, then talk to its router::

    import actorpool
    from actorpool.messages import ListContainers

    with actorpool.start() as pool:
        containers = pool.router.ask(ListContainers(all=True))

See ``docs/architecture.md`` for the actors and the messages between them.
"""

from __future__ import annotations

from actorpool._version import __version__
from actorpool.config import Config, load_config
from actorpool.runtime import Pool, start

__all__ = ["Config", "Pool", "__version__", "load_config", "start"]
