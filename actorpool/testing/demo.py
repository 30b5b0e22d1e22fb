"""Demo containers for ``actorpool monitor`` on a machine with no Docker daemon.

A newcomer who runs the main job on a fresh machine gets a private sandbox
daemon (:mod:`actorpool.testing.sandbox`) and these containers in it, so real log
lines show up within seconds: a web server, a worker and a batch job that
fails and is restarted by its restart policy every ten seconds or so. They
write ``INFO`` lines to stdout and ``WARN``/``ERROR`` lines to stderr at a
few lines per second, as busybox shell loops, so they need nothing but the
sandbox's busybox image.

Every demo container carries the label ``actorpool.testing.demo=1`` (see
:data:`DEMO_LABEL`), which is how :func:`remove_demo` finds them again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import attrs
import docker.errors

from actorpool.testing.sandbox import IMAGE

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "DEMO_CONTAINERS",
    "DEMO_LABEL",
    "DemoContainer",
    "remove_demo",
    "start_demo",
    "start_demo_container",
]

#: The label (with value ``"1"``) on every demo container.
DEMO_LABEL = "actorpool.testing.demo"

# A random pick from a space-separated list: `pick "a b c"` sets $PICK.
_PICK = "pick() { set -- $1; shift $((RANDOM % $#)); PICK=$1; }; "

_WEB = (
    _PICK
    + "echo 'INFO  [http] listening on :8080 (4 workers)'; "
    + "while true; do "
    + 'pick "/api/orders /api/users /api/cart /api/search /api/items"; '
    + "r=$((RANDOM % 100)); ms=$((RANDOM % 180 + 3)); "
    + 'if [ $r -lt 78 ]; then echo "INFO  [http] GET $PICK/$((RANDOM % 9000 + 1000)) 200 ${ms}ms"; '
    + 'elif [ $r -lt 92 ]; then echo "WARN  [http] GET $PICK 429 rate limited'
    + ' client=10.0.$((RANDOM % 255)).$((RANDOM % 255))" >&2; '
    + 'else echo "ERROR [http] GET $PICK 502 upstream timed out after 3000ms" >&2; fi; '
    + "usleep $((250000 + RANDOM % 300000)); "
    + "done"
)

_WORKER = (
    _PICK
    + "echo 'INFO  [worker] connected to queue jobs (prefetch 8)'; "
    + "job=1000; "
    + "while true; do "
    + 'job=$((job + 1)); pick "resize-image send-email build-report sync-inventory"; '
    + "r=$((RANDOM % 100)); "
    + 'if [ $r -lt 80 ]; then echo "INFO  [worker] job $job $PICK done'
    + ' in $((RANDOM % 900 + 20))ms"; '
    + 'elif [ $r -lt 94 ]; then echo "WARN  [worker] job $job $PICK retrying'
    + ' (attempt $((RANDOM % 3 + 2)) of 5)" >&2; '
    + 'else echo "ERROR [worker] job $job $PICK failed: connection reset by peer" >&2; fi; '
    + "usleep $((400000 + RANDOM % 400000)); "
    + "done"
)

# Runs a bit over 10 s, then fails: dockerd restarts it after 100 ms (its restart
# backoff resets after 10 s of running), so a restart shows every ~11 s.
_BATCH = (
    "run=$(cat /tmp/run 2>/dev/null || echo 0); run=$((run + 1)); echo $run > /tmp/run; "
    + 'echo "INFO  [batch] run $run starting: 100 records from s3://exports/daily"; '
    + "n=0; while [ $n -lt 100 ]; do "
    + "usleep 1000000; n=$((n + 10)); "
    + 'echo "INFO  [batch] run $run processed $n/100 records"; '
    + 'if [ $((RANDOM % 4)) -eq 0 ]; then echo "WARN  [batch] run $run slow write to warehouse'
    + ' ($((RANDOM % 2000 + 1000))ms)" >&2; fi; '
    + "done; "
    + 'echo "ERROR [batch] run $run lost connection to warehouse; exiting with status 1" >&2; '
    + "exit 1"
)


@attrs.frozen
class DemoContainer:
    """One demo container.

    Attributes:
        name: The container's name.
        script: The busybox ``sh -c`` script it runs.
        restart: Give it the ``always`` restart policy (the failing batch job).
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    script: str = attrs.field(validator=attrs.validators.instance_of(str))
    restart: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


#: The containers :func:`start_demo` starts.
DEMO_CONTAINERS: tuple[DemoContainer, ...] = (
    DemoContainer("demo-web", _WEB),
    DemoContainer("demo-worker", _WORKER),
    DemoContainer("demo-batch", _BATCH, restart=True),
)


def start_demo_container(client: APIClient, demo: DemoContainer, *, image: str = IMAGE) -> str:
    """Create and start one demo container; return its id.

    Safe to call again (a container of the same name is replaced), so it can
    run as an ``Execute`` request that the pool may retry.

    Args:
        client: A docker-py ``APIClient`` on the daemon (a sandbox's).
        demo: Which container.
        image: A busybox image with ``sh`` and ``usleep``; the sandbox's by default.
    """
    with contextlib.suppress(docker.errors.NotFound):
        client.remove_container(demo.name, force=True)
    policy = {"Name": "always"} if demo.restart else None
    created = client.create_container(
        image,
        command=["sh", "-c", demo.script],
        name=demo.name,
        labels={DEMO_LABEL: "1"},
        host_config=client.create_host_config(network_mode="none", restart_policy=policy),
    )
    cid = str(created["Id"])
    client.start(cid)
    return cid


def start_demo(
    client: APIClient,
    *,
    image: str = IMAGE,
    containers: tuple[DemoContainer, ...] = DEMO_CONTAINERS,
) -> list[str]:
    """Create and start the demo containers one after the other; return their ids."""
    return [start_demo_container(client, demo, image=image) for demo in containers]


def remove_demo(client: APIClient) -> int:
    """Force-remove every container labelled ``actorpool.testing.demo=1``; return how many.

    A container already gone (removed meanwhile) is not an error.
    """
    removed = 0
    for container in client.containers(all=True, filters={"label": f"{DEMO_LABEL}=1"}):
        with contextlib.suppress(docker.errors.NotFound):
            client.remove_container(container["Id"], force=True)
            removed += 1
    return removed
