"""The direct GET path answers exactly what docker-py answers, errors included."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
import urllib3.exceptions
from conftest import MakeConfig, MakeContainer

from actorpool.errors import DockerUnavailable, RequestTimeout
from actorpool.messages import (
    Info,
    InspectContainer,
    ListContainers,
    ListImages,
    Ping,
    Version,
)
from actorpool.testing.sandbox import Sandbox
from actorpool.transport import direct
from actorpool.transport.classify import classify
from actorpool.transport.client import make_client


@pytest.fixture
def client(make_config: MakeConfig) -> Iterator[Any]:
    api = make_client(make_config())
    try:
        yield api
    finally:
        api.close()


def _ids(containers: list[dict[str, Any]]) -> list[str]:
    return [c["Id"] for c in containers]


def test_each_request_answers_what_docker_py_answers(
    client: Any, docker_api: Any, make_container: MakeContainer
) -> None:
    labelled = make_container(["sleep", "60"], labels={"direct-test": "yes"})
    stopped = make_container(["true"], start=False)

    assert Ping().execute(client) is True
    assert Version().execute(client) == docker_api.version()
    assert Info().execute(client)["ID"] == docker_api.info()["ID"]
    assert ListImages().execute(client) == docker_api.images()
    assert ListImages(all=True).execute(client) == docker_api.images(all=True)
    assert InspectContainer(labelled).execute(client) == docker_api.inspect_container(labelled)

    running = ListContainers().execute(client)
    everything = ListContainers(all=True).execute(client)
    assert _ids(running) == _ids(docker_api.containers())
    assert _ids(everything) == _ids(docker_api.containers(all=True))
    assert stopped in _ids(everything)
    assert stopped not in _ids(running)
    assert _ids(ListContainers(filters={"label": ["direct-test=yes"]}).execute(client)) == [
        labelled
    ]
    assert len(ListContainers(all=True, limit=1).execute(client)) == 1


def test_an_http_error_is_docker_pys_own_error(client: Any, docker_api: Any) -> None:
    with pytest.raises(docker.errors.NotFound) as ours:
        InspectContainer("no-such-container").execute(client)
    with pytest.raises(docker.errors.NotFound) as theirs:
        docker_api.inspect_container("no-such-container")
    assert ours.value.status_code == theirs.value.status_code == 404
    assert ours.value.explanation == theirs.value.explanation


def test_all_paths_share_one_socket(client: Any, make_container: MakeContainer) -> None:
    # docker-py's adapter keeps one pool (and socket) per distinct URL; the direct path one in all.
    cids = [make_container(["sleep", "60"]) for _ in range(3)]
    for cid in cids:
        InspectContainer(cid).execute(client)
    ListContainers().execute(client)
    Ping().execute(client)
    wire = client.__dict__[direct._WIRE]
    first = wire.sock
    assert first is not None
    assert first.fileno() >= 0
    Info().execute(client)
    assert wire.sock is first  # the same socket kept for the next call
    assert len(client.get_adapter(client.base_url).pools) == 0  # docker-py opened none


def test_a_missing_socket_is_docker_unavailable(tmp_path: Any, make_config: MakeConfig) -> None:
    api = make_client(make_config(f"unix://{tmp_path}/absent.sock", api={"version": "1.41"}))
    try:
        with pytest.raises(urllib3.exceptions.ProtocolError) as info:
            Ping().execute(api)
    finally:
        api.close()
    verdict = classify(info.value, target="absent.sock", what="ping")
    assert isinstance(verdict.error, DockerUnavailable)
    assert "no such socket" in str(verdict.error)
    assert verdict.retryable
    assert verdict.counts


def test_a_paused_daemon_times_out_by_the_client_timeout(
    private_sandbox: Sandbox, make_config: MakeConfig
) -> None:
    api = make_client(make_config(private_sandbox))
    try:
        assert Ping().execute(api) is True
        api.timeout = 0.3
        private_sandbox.pause()
        try:
            with pytest.raises(urllib3.exceptions.ReadTimeoutError) as info:
                ListContainers().execute(api)
        finally:
            private_sandbox.resume()
    finally:
        api.close()
    verdict = classify(info.value, target=private_sandbox.url, what="list_containers")
    assert isinstance(verdict.error, RequestTimeout)
    assert verdict.retryable


@contextlib.contextmanager
def _tcp_to_unix(socket_path: str) -> Iterator[int]:
    """A plain TCP listener forwarding every connection to the daemon's unix socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        with a, b, sel:
            while not stop.is_set():
                for key, _ in sel.select(0.1):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(socket_path)
            threading.Thread(target=pump, args=(conn, upstream), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_other_transports_fall_back_to_docker_py(
    sandbox: Sandbox, client: Any, make_config: MakeConfig, make_container: MakeContainer
) -> None:
    cid = make_container(["sleep", "60"])
    with _tcp_to_unix(str(sandbox.socket_path)) as port:
        api = make_client(make_config(f"tcp://127.0.0.1:{port}"))
        try:
            assert Ping().execute(api) is True
            assert _ids(ListContainers().execute(api)) == _ids(ListContainers().execute(client))
            assert InspectContainer(cid).execute(api)["Id"] == cid
            with pytest.raises(docker.errors.NotFound):
                InspectContainer("no-such-container").execute(api)
        finally:
            api.close()


def test_a_kept_socket_the_daemon_closed_is_replaced_once(
    private_sandbox: Sandbox, make_config: MakeConfig
) -> None:
    api = make_client(make_config(private_sandbox))
    try:
        assert Ping().execute(api) is True
        stale = api.__dict__[direct._WIRE].sock
        private_sandbox.restart()  # the daemon's end of the kept socket is gone
        assert ListContainers(all=True).execute(api) == private_sandbox.client().containers(
            all=True
        )
        assert api.__dict__[direct._WIRE].sock is not stale
    finally:
        api.close()
    assert direct._WIRE not in api.__dict__  # closing the client closed its socket


def test_a_daemon_that_dies_mid_answer_is_a_protocol_error(
    private_sandbox: Sandbox, make_config: MakeConfig
) -> None:
    api = make_client(make_config(private_sandbox))
    try:
        assert Ping().execute(api) is True
        api.timeout = 30
        private_sandbox.pause()
        errors: list[BaseException] = []

        def call() -> None:
            try:
                ListContainers().execute(api)
            except BaseException as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        private_sandbox.kill()  # the socket closes under the waiting GET, before any answer
        caller.join(10)
        assert not caller.is_alive()
    finally:
        api.close()
    assert len(errors) == 1
    assert isinstance(errors[0], urllib3.exceptions.ProtocolError)
    verdict = classify(errors[0], target=private_sandbox.url, what="list_containers")
    assert isinstance(verdict.error, DockerUnavailable)
    assert verdict.retryable
