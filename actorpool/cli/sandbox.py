"""``actorpool sandbox`` and ``monitor --sandbox``: a private dockerd with demo containers.

For trying actorpool out on a machine without Docker. The one module outside
:mod:`actorpool.testing` that imports it, and only inside these functions,
when the user asked for a sandbox.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any

from docker import APIClient

import actorpool
from actorpool.cli.args import EXIT_UNREACHABLE, CliError
from actorpool.cli.printer import Output
from actorpool.messages import Execute

__all__ = ["cleanup_sandbox", "start_demo", "start_demo_containers", "start_sandbox"]


def start_sandbox(output: Output, cleanup: contextlib.ExitStack) -> str:
    """Start a private dockerd with busybox imported; return its URL. Needs root."""
    from actorpool.testing.sandbox import Sandbox, SandboxError, missing_requirements

    missing = missing_requirements()
    if missing:
        msg = "cannot start a private sandbox daemon: " + "; ".join(missing)
        raise CliError(msg, EXIT_UNREACHABLE)
    output.status("actorpool: starting a private sandbox daemon with demo containers ...")
    began = time.monotonic()
    sandbox = Sandbox()
    cleanup.callback(cleanup_sandbox, sandbox, output)
    try:
        sandbox.start()
        sandbox.ensure_image()
    except SandboxError as error:
        raise CliError(str(error).splitlines()[0], EXIT_UNREACHABLE) from error
    output.status(
        f"actorpool: sandbox daemon up in {time.monotonic() - began:.1f}s at {sandbox.url} "
        "(removed on exit)"
    )
    return sandbox.url


def cleanup_sandbox(sandbox: Any, output: Output) -> None:
    began = time.monotonic()
    sandbox.cleanup()  # kills the demo containers, stops dockerd, removes its directory
    output.status(
        f"actorpool: sandbox daemon stopped and removed in {time.monotonic() - began:.1f}s"
    )


def start_demo(pool: actorpool.Pool) -> dict[str, str]:
    """Start the demo containers, in parallel, each on a pooled connection; id -> name.

    They start after following began, so they show up as containers that start
    later do.
    """
    from actorpool.testing.demo import DEMO_CONTAINERS, start_demo_container

    futures = [
        pool.router.ask(
            Execute(functools.partial(start_demo_container, demo=demo), timeout=60), block=False
        )
        for demo in DEMO_CONTAINERS
    ]
    return {future.get(): demo.name for future, demo in zip(futures, DEMO_CONTAINERS, strict=True)}


def start_demo_containers(url: str) -> list[str]:
    """Start the demo containers on the sandbox at ``url`` directly (no pool); their names."""
    from actorpool.testing.demo import DEMO_CONTAINERS, start_demo
    from actorpool.testing.sandbox import API_VERSION

    client = APIClient(base_url=url, version=API_VERSION, timeout=60)
    try:
        start_demo(client)
    finally:
        client.close()
    return [demo.name for demo in DEMO_CONTAINERS]
