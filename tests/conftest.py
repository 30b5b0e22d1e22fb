"""Fixtures: real private Docker daemons, containers and configs for the tests.

The suite never mocks docker-py. One private ``dockerd`` (``sandbox``) serves
the whole session; tests that pause, kill or restart a daemon take their own
(``private_sandbox``). A machine that cannot run them (not root, packages
missing) fails the session with a message saying what to install: a test
suite that silently skips its daemon tests would prove nothing.

Every daemon started here is cleaned up by its fixture, again at session end
(also after Ctrl-C or SIGTERM, which are turned into an orderly stop), and
at interpreter exit; the session fails if any of their processes survive.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import docker.errors
import pykka
import pytest
import requests

from actorpool.testing.podman import (
    PodmanService,
    missing_podman_requirements,
    sweep_stale_podman,
)
from actorpool.testing.sandbox import (
    IMAGE,
    Sandbox,
    SandboxError,
    import_busybox_image,
    missing_requirements,
    sweep_stale_sandboxes,
)
from actorpool.testing.versiongate import VersionGate

if TYPE_CHECKING:
    from actorpool.config import Config

# Every sandbox this session started, shared or private, for the final check.
_STARTED: list[Sandbox] = []
_SHARED: dict[str, Sandbox] = {}
_PODMAN: list[PodmanService] = []

# Test defaults for make_config: a small pool, fast health checks and retries.
_POOL_DEFAULTS: dict[str, Any] = {
    "min_pool_size": 2,
    "initial_pool_size": 4,
    "max_pool_size": 8,
    "health_check_interval": 0.5,
    "health_check_timeout": 2.0,
    "recovery_check_interval": 0.5,
    "initial_retry_delay": 0.05,
    "max_retry_delay": 0.5,
}
# Keys that must be ordered (each <= the next); a default is clamped to fit the
# values a test gives, so make_config(pool={"max_pool_size": 3}) just works.
_ORDERED = (
    ("min_pool_size", "initial_pool_size", "max_pool_size"),
    ("initial_retry_delay", "max_retry_delay"),
)
_ALIASES = {"pool_size": "initial_pool_size", "retry_delay": "initial_retry_delay"}


# ----------------------------------------------------------------- session plumbing


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI cancel, a `timeout` wrapper) would end the process without
    # running fixture finalizers or atexit; make it behave like Ctrl-C.
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # Daemons of earlier sessions that were killed (SIGKILL, OOM) are removed
    # here; sandboxes of live processes are left alone.
    try:
        sweep_stale_sandboxes()
        sweep_stale_podman()
    except OSError as error:
        print(f"conftest: could not sweep stale sandboxes: {error}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Runs after every fixture was torn down: clean up whatever a failed
    # teardown left, then prove that no daemon process survived.
    leftovers: list[str] = []
    for sandbox in _STARTED:
        try:
            sandbox.cleanup()
        except (OSError, SandboxError) as error:
            leftovers.append(f"{sandbox.root}: cleanup failed: {error}")
        remaining = sandbox.leftover_processes()
        if remaining:
            leftovers.append(f"{sandbox.root}: processes still running: {remaining}")
    for service in _PODMAN:
        service.cleanup()
        remaining = service.leftover_processes()
        if remaining or service.root.exists():
            leftovers.append(f"{service.root}: not cleaned up (processes {remaining})")
    leftovers.extend(_stop_leaked_threads())
    if leftovers:
        print("\nconftest: leftovers at session end:\n  " + "\n  ".join(leftovers))
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _stop_leaked_threads() -> list[str]:
    # A non-daemon thread still running (an actor nobody stopped) would keep the
    # interpreter from exiting: CI would hang until its time limit. Name them,
    # stop leaked actors, and fail the session.
    def leaked() -> list[threading.Thread]:
        main = threading.main_thread()
        return [t for t in threading.enumerate() if t is not main and not t.daemon]

    deadline = time.monotonic() + 2.0
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.05)
    threads = leaked()
    if not threads:
        return []
    names = ", ".join(sorted(t.name for t in threads))
    with contextlib.suppress(pykka.Timeout):
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
    return [f"non-daemon threads still running (stop every actor/pool you start): {names}"]


def _new_sandbox(*, live_restore: bool, shared: bool) -> Sandbox:
    missing = missing_requirements()
    if missing:
        pytest.exit(
            "the tests run against a private dockerd and this machine lacks:\n  - "
            + "\n  - ".join(missing)
            + "\n(on Debian, `bash scripts/test.sh` installs everything as root)",
            returncode=3,
        )
    sandbox = Sandbox(live_restore=live_restore)
    _STARTED.append(sandbox)
    try:
        sandbox.start()
        sandbox.ensure_image()
    except (SandboxError, requests.RequestException, docker.errors.DockerException) as error:
        sandbox.cleanup()
        if shared:
            pytest.exit(f"cannot start the shared private dockerd: {error}", returncode=3)
        raise
    return sandbox


# ----------------------------------------------------------------- daemons


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The session's shared private dockerd (never pause, kill or restart it)."""
    shared = _new_sandbox(live_restore=False, shared=True)
    _SHARED["sandbox"] = shared
    try:
        yield shared
    finally:
        _SHARED.pop("sandbox", None)
        shared.cleanup()


@pytest.fixture
def private_sandbox() -> Iterator[Sandbox]:
    """A dockerd of the test's own, with ``live_restore`` on, free to pause/kill/restart."""
    own = _new_sandbox(live_restore=True, shared=False)
    try:
        yield own
    finally:
        own.cleanup()


StartSandboxes = Callable[[int], list[Sandbox]]


@pytest.fixture
def private_sandboxes() -> Iterator[StartSandboxes]:
    """Factory: ``private_sandboxes(n)`` starts ``n`` private dockerds at once and returns them.

    Each is like ``private_sandbox`` (``live_restore`` on, free to pause, kill
    or restart); they start in parallel, so n daemons cost about one start.
    All are cleaned up at teardown, also those of a failed start.
    """
    started: list[Sandbox] = []
    lock = threading.Lock()

    def one() -> Sandbox:
        sandbox = _new_sandbox(live_restore=True, shared=False)
        with lock:
            started.append(sandbox)
        return sandbox

    def start(n: int) -> list[Sandbox]:
        with ThreadPoolExecutor(n, thread_name_prefix="sandbox-start") as pool:
            futures = [pool.submit(one) for _ in range(n)]
            return [future.result() for future in futures]

    try:
        yield start
    finally:
        for sandbox in started:
            sandbox.cleanup()


@pytest.fixture(scope="session")
def podman() -> Iterator[PodmanService]:
    """The session's private Podman API service (``podman system service``), the second engine.

    Tests may restart it (containers survive, as with a live-restore dockerd);
    each must leave it running. A machine without podman fails the session.
    """
    missing = missing_podman_requirements()
    if missing:
        pytest.exit(
            "the Podman tests need:\n  - "
            + "\n  - ".join(missing)
            + "\n(on Debian, `bash scripts/test.sh` installs everything as root)",
            returncode=3,
        )
    service = PodmanService()
    _PODMAN.append(service)
    try:
        service.start()
    except Exception as error:
        service.cleanup()
        pytest.exit(f"cannot start the private podman service: {error}", returncode=3)
    try:
        yield service
    finally:
        service.cleanup()


@pytest.fixture(scope="session")
def podman_api(podman: PodmanService) -> Iterator[Any]:
    """A docker-py APIClient on the session's podman service, for test setup and checks only."""
    client = podman.client(timeout=30)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _shared_sandbox_guard() -> Iterator[None]:
    # A test that pauses or kills the shared daemon would fail every later test
    # in confusing ways: repair it and blame the test that broke it.
    yield
    shared = _SHARED.get("sandbox")
    if shared is None or shared.ping(timeout=2.0):
        return
    state = "paused" if shared.paused else "not answering"
    shared.resume()
    if not shared.ping(timeout=2.0):
        shared.restart()
    pytest.fail(
        f"this test left the shared sandbox {state}; use the private_sandbox fixture "
        "to pause, kill or restart a daemon"
    )


@pytest.fixture(autouse=True)
def _no_leaked_log_handlers() -> Iterator[None]:
    # A handler that outlives its test writes, from some later actor thread, to a
    # stream pytest has closed by then: undo it and blame the test that left it.
    from helpers import restored_logging

    with restored_logging() as removed:
        yield
    if removed:
        pytest.fail(
            "this test left logging handlers installed (use helpers.restored_logging): "
            + "; ".join(removed)
        )


@pytest.fixture
def version_gate(sandbox: Sandbox) -> Iterator[VersionGate]:
    """The shared sandbox behind an Engine-29-style API floor (1.44..1.52): see versiongate.

    It stands in for Docker Engine 29, which cannot be installed here.
    """
    directory = tempfile.mkdtemp(prefix="apvg-", dir="/tmp")  # short: a unix socket path
    gate = VersionGate(sandbox.socket_path, f"{directory}/gate.sock")
    try:
        yield gate.start()
    finally:
        gate.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_api(sandbox: Sandbox) -> Iterator[Any]:
    """A docker-py APIClient on the shared sandbox, for test setup and checks only."""
    client = sandbox.client(timeout=30)
    try:
        yield client
    finally:
        client.close()


# ----------------------------------------------------------------- factories


MakeContainer = Callable[..., str]


@pytest.fixture
def make_container(request: pytest.FixtureRequest) -> Iterator[MakeContainer]:
    """Factory creating busybox containers (``network_mode="none"``), removed at teardown.

    ``make_container(cmd, *, labels=None, tty=False, name=None, start=True,
    api=None, log_labels=None) -> container id``; ``log_labels`` names labels the
    json-file log driver records (``--log-opt labels=…``); ``api`` defaults to the shared sandbox's
    client. Containers are force-removed even when the test fails; a daemon
    that is already gone (a cleaned-up private sandbox) took them with it.
    """
    created: list[tuple[Any, str]] = []

    def make(
        cmd: str | list[str],
        *,
        labels: Mapping[str, str] | None = None,
        tty: bool = False,
        name: str | None = None,
        start: bool = True,
        api: Any = None,
        log_labels: str | None = None,
    ) -> str:
        client = api if api is not None else request.getfixturevalue("docker_api")

        def create() -> str:
            container = client.create_container(
                IMAGE,
                command=cmd,
                labels=dict(labels) if labels else None,
                tty=tty,
                name=name,
                host_config=client.create_host_config(
                    network_mode="none",
                    log_config=(
                        {"Type": "json-file", "Config": {"labels": log_labels}}
                        if log_labels
                        else None
                    ),
                ),
            )
            return str(container["Id"])

        try:
            cid = create()
        except docker.errors.ImageNotFound:
            import_busybox_image(client)
            cid = create()
        created.append((client, cid))
        if start:
            client.start(cid)
        return cid

    yield make
    for client, cid in reversed(created):
        try:
            client.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except (requests.ConnectionError, requests.Timeout):
            pass  # the daemon is gone, and its containers with it
        except docker.errors.APIError as error:
            if "already in progress" not in str(error):
                raise


MakeConfig = Callable[..., "Config"]


@pytest.fixture
def make_config(request: pytest.FixtureRequest) -> MakeConfig:
    """Factory building an ``actorpool.config.Config`` aimed at a sandbox.

    ``make_config(sandbox=None, **sections)``: ``sandbox`` is a
    :class:`Sandbox` or a daemon URL (default: the shared sandbox); each
    keyword is a section mapping (``pool={"min_pool_size": 1}``). Defaults
    differ from production for speed: pool sizes 2/4/8, health checks every
    0.5 s, retries from 0.05 s to 0.5 s, monitoring and rate limiting disabled
    unless a test passes ``monitoring={"enabled": True, ...}`` (likewise
    ``rate_limit``). ``DOCKER_HOST`` is ignored. ``endpoints={name: sandbox or URL}``
    makes a pool of several endpoints (``docker.endpoints``) instead of ``sandbox``'s one.
    """

    def make(
        sandbox: Sandbox | str | None = None,
        *,
        endpoints: Mapping[str, Sandbox | str] | None = None,
        **sections: Mapping[str, Any],
    ) -> Config:
        from actorpool.config import Config, parse_duration

        data: dict[str, Any] = {name: dict(values) for name, values in sections.items()}
        pool = data.setdefault("pool", {})
        given = {_ALIASES.get(key, key): value for key, value in pool.items()}
        if endpoints:
            data["endpoints"] = {
                name: {"host": where if isinstance(where, str) else where.url}
                for name, where in endpoints.items()
            }
        else:
            if sandbox is None:
                sandbox = request.getfixturevalue("sandbox")
            pool.setdefault("socket_path", sandbox if isinstance(sandbox, str) else sandbox.url)
        for key, value in _fit_defaults(given, parse_duration).items():
            pool[key] = value
        data.setdefault("monitoring", {}).setdefault("enabled", False)
        # The production default (100 requests/s) would throttle load tests; rate-limit tests ask.
        data.setdefault("rate_limit", {}).setdefault("enabled", False)
        return Config.from_mapping({"docker": data})

    return make


def _fit_defaults(
    given: Mapping[str, Any], parse: Callable[[object, str], float]
) -> dict[str, Any]:
    """The pool defaults not in ``given``, clamped to stay ordered with what is given."""

    def number(key: str) -> float:
        value = given[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return parse(value, f"docker.pool.{key}")

    result: dict[str, Any] = {}
    for chain in _ORDERED:
        for index, key in enumerate(chain):
            if key in given:
                continue
            value = _POOL_DEFAULTS[key]
            for lower in chain[:index]:
                if lower in given:
                    value = max(value, number(lower))
            for upper in chain[index + 1 :]:
                if upper in given:
                    value = min(value, number(upper))
            result[key] = type(_POOL_DEFAULTS[key])(value)
    for key, value in _POOL_DEFAULTS.items():
        if key not in given and key not in result:
            result[key] = value
    return result


@pytest.fixture
def harness(make_config: MakeConfig) -> Iterator[Any]:
    """A :class:`streamkit.StreamHarness`: stream managers and subscribers, all stopped after."""
    from streamkit import StreamHarness

    h = StreamHarness(make_config)
    try:
        yield h
    finally:
        h.close()
