"""Throwaway TLS material for tests against a ``--tlsverify`` dockerd, made with the openssl CLI.

``make_pki(directory)`` writes a CA, a server certificate for 127.0.0.1 (and ``::1``,
``localhost``), a client certificate, an unrelated CA and a client certificate of that
other CA, plus two ``DOCKER_CERT_PATH``-style directories (``ca.pem``, ``cert.pem``,
``key.pem``): one right, one whose ``ca.pem`` is the unrelated CA. EC P-256 keys keep it
at about 0.1 s; certificates live two days. Only the ``openssl`` binary is needed.

``tls_dockerd_args(pki, port)`` gives the dockerd flags for a verifying TCP listener on
127.0.0.1, for :class:`actorpool.testing.sandbox.Sandbox`'s ``extra_args``;
:class:`TlsDaemon` names such a sandbox with its material and port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import attrs

from actorpool.testing.sandbox import Sandbox

__all__ = ["Pki", "TlsDaemon", "free_port", "make_pki", "tls_dockerd_args"]

_DAYS = "2"


@attrs.frozen
class Pki:
    """Paths of the files :func:`make_pki` made.

    Attributes:
        ca: The CA that signed the server and client certificates.
        server_cert: The daemon's certificate (SAN 127.0.0.1, ::1, localhost; serverAuth).
        server_key: Its key.
        client_cert: A client certificate of ``ca`` (clientAuth).
        client_key: Its key.
        other_ca: An unrelated CA ("wrong CA").
        other_client_cert: A client certificate of ``other_ca`` (the daemon refuses it).
        other_client_key: Its key.
        cert_dir: ``DOCKER_CERT_PATH`` layout with ``ca``, ``client_cert``, ``client_key``.
        wrong_cert_dir: The same layout, but ``ca.pem`` is ``other_ca``.
    """

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path
    cert_dir: Path
    wrong_cert_dir: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


def _key(directory: Path, name: str) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", f"{name}-key.pem", cwd=directory,
    )  # fmt: skip
    (directory / f"{name}-key.pem").chmod(0o600)


def _ca(directory: Path, name: str) -> None:
    _key(directory, name)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}-key.pem", "-sha256", "-days", _DAYS,
        "-subj", f"/CN=actorpool test {name}", "-out", f"{name}.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory,
    )  # fmt: skip


def _leaf(directory: Path, name: str, ca: str, extensions: str) -> None:
    _key(directory, name)
    _openssl(
        "req", "-new", "-key", f"{name}-key.pem", "-subj", f"/CN=actorpool test {name}",
        "-out", f"{name}.csr", cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
        "-CAcreateserial", "-days", _DAYS, "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}-cert.pem", cwd=directory,
    )  # fmt: skip


def make_pki(directory: Path | str) -> Pki:
    """Make the CAs, certificates and cert directories under ``directory`` (created)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    _ca(root, "ca")
    _ca(root, "other-ca")
    _leaf(
        root,
        "server",
        "ca",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n",
    )
    # Go's verifier (dockerd) insists on clientAuth in a client certificate.
    client = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    client += "extendedKeyUsage=clientAuth\n"
    _leaf(root, "client", "ca", client)
    _leaf(root, "other-client", "other-ca", client)
    for name, ca in (("certs", "ca.pem"), ("wrong-ca-certs", "other-ca.pem")):
        (root / name).mkdir(exist_ok=True)
        shutil.copyfile(root / ca, root / name / "ca.pem")
        shutil.copyfile(root / "client-cert.pem", root / name / "cert.pem")
        shutil.copyfile(root / "client-key.pem", root / name / "key.pem")
        os.chmod(root / name / "key.pem", 0o600)
    return Pki(
        ca=root / "ca.pem",
        server_cert=root / "server-cert.pem",
        server_key=root / "server-key.pem",
        client_cert=root / "client-cert.pem",
        client_key=root / "client-key.pem",
        other_ca=root / "other-ca.pem",
        other_client_cert=root / "other-client-cert.pem",
        other_client_key=root / "other-client-key.pem",
        cert_dir=root / "certs",
        wrong_cert_dir=root / "wrong-ca-certs",
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_dockerd_args(pki: Pki, port: int) -> list[str]:
    """dockerd flags for a TCP listener on 127.0.0.1:``port`` that verifies both sides."""
    return [
        "--tlsverify",
        "--tlscacert", str(pki.ca),
        "--tlscert", str(pki.server_cert),
        "--tlskey", str(pki.server_key),
        "--host", f"tcp://127.0.0.1:{port}",
    ]  # fmt: skip


@attrs.frozen
class TlsDaemon:
    """A sandbox dockerd started with :func:`tls_dockerd_args`.

    Attributes:
        sandbox: The daemon (its unix socket answers without TLS).
        pki: The material its listener verifies clients with.
        port: Its TLS port on 127.0.0.1.
    """

    sandbox: Sandbox
    pki: Pki
    port: int

    @property
    def url(self) -> str:
        """``tcp://127.0.0.1:PORT``."""
        return f"tcp://127.0.0.1:{self.port}"
