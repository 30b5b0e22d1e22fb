"""The stream manager: the registry of log and event streams, their caps and restarts.

Stands above logs, events and the pool's internal protocol; only the runtime imports it.
"""

__all__: list[str] = []
