"""What Pykka lacks: a fast-mailbox actor base, reply futures, one timer thread, pacing.

Imports nothing of actorpool but :mod:`actorpool.errors`.
"""

__all__: list[str] = []
