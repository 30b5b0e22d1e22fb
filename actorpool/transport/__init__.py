"""Speaking HTTP to a Docker engine: clients, direct GETs, decoding bodies, classifying errors.

May import :mod:`actorpool.config` and :mod:`actorpool.errors`, nothing above them.
"""

__all__: list[str] = []
