"""Helpers for tests against real engines: a private dockerd, a private podman, a fault proxy.

Public, for your own tests as for ours. No runtime module imports this package
(a test enforces it); the CLI's ``--sandbox`` reaches it only when asked.
"""

__all__: list[str] = []
