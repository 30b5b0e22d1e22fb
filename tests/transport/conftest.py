"""Fixtures for reaching daemons as users do: TLS material and a ``--tlsverify`` dockerd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actorpool.testing.pki import Pki, TlsDaemon, free_port, make_pki, tls_dockerd_args
from actorpool.testing.sandbox import Sandbox


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, server and client certificates, and an unrelated CA (actorpool.testing.pki)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_daemon(pki: Pki) -> Iterator[TlsDaemon]:
    """dockerd ``--tlsverify`` on tcp://127.0.0.1:PORT; it needs a client cert of ``pki.ca``.

    dockerd opens its TCP listener before its unix socket answers, so the sandbox's own
    readiness check (a ping on the unix socket) covers both.
    """
    port = free_port()
    sandbox = Sandbox(extra_args=tls_dockerd_args(pki, port))
    try:
        sandbox.start()
        yield TlsDaemon(sandbox, pki, port)
    finally:
        sandbox.cleanup()
