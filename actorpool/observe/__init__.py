"""Observability: Prometheus metrics and structured, redacted logging.

Imports nothing of actorpool but :mod:`actorpool.errors`.
"""

__all__: list[str] = []
