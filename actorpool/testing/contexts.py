"""Docker CLI contexts made by the real ``docker context create`` in a private ``DOCKER_CONFIG``.

Tests of endpoint resolution must read what the docker CLI writes, not a hand-made
imitation of its store. The CLI used is the one ``scripts/_setup.sh`` guarantees on a
fresh Debian machine: ``/usr/bin/docker`` from the ``docker.io`` package (the one that
provides dockerd), else whatever ``docker`` is on ``PATH``.

    docker_context_create(cfg, "prod", "tcp://127.0.0.1:2376", ca=..., cert=..., key=...)
    docker_context_use(cfg, "prod")  # only this writes cfg/config.json's currentContext
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["docker_cli", "docker_context_create", "docker_context_use", "run_docker_cli"]

_PACKAGED_CLI = Path("/usr/bin/docker")


def docker_cli() -> str:
    """The docker CLI binary: the ``docker.io`` package's, else ``docker`` on ``PATH``."""
    if _PACKAGED_CLI.is_file():
        return str(_PACKAGED_CLI)
    found = shutil.which("docker")
    if found is None:
        msg = "no docker CLI: install the docker.io package (scripts/_setup.sh does)"
        raise FileNotFoundError(msg)
    return found


def run_docker_cli(
    config_dir: Path | str, *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` with ``DOCKER_CONFIG=config_dir`` and no other ``DOCKER_*`` variable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    clean["DOCKER_CONFIG"] = str(config_dir)
    clean.update(env or {})
    return subprocess.run(
        [docker_cli(), *args],
        env=clean,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _checked(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        msg = f"{' '.join(result.args)} failed ({result.returncode}): {result.stderr.strip()}"
        raise RuntimeError(msg)


def docker_context_create(
    config_dir: Path | str,
    name: str,
    host: str,
    *,
    ca: Path | str | None = None,
    cert: Path | str | None = None,
    key: Path | str | None = None,
    skip_tls_verify: bool = False,
) -> None:
    """``docker context create NAME --docker host=…[,ca=…,cert=…,key=…]`` in ``config_dir``."""
    spec = [f"host={host}"]
    spec += [f"{k}={v}" for k, v in (("ca", ca), ("cert", cert), ("key", key)) if v]
    if skip_tls_verify:
        spec.append("skip-tls-verify=true")
    _checked(run_docker_cli(config_dir, "context", "create", name, "--docker", ",".join(spec)))


def docker_context_use(config_dir: Path | str, name: str) -> None:
    """``docker context use NAME``: writes ``currentContext`` into ``config_dir/config.json``."""
    _checked(run_docker_cli(config_dir, "context", "use", name))
