"""Endpoint resolution by the docker CLI's rules (no daemon needed: nothing connects here).

Contexts are made by the real ``docker context create`` (actorpool.testing.contexts) in a
private DOCKER_CONFIG; connecting through each kind of endpoint is tested against real
daemons in tests/transport/test_reach.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorpool.config import Config
from actorpool.errors import ConfigError
from actorpool.testing.contexts import docker_context_create, docker_context_use
from actorpool.testing.pki import Pki, make_pki
from actorpool.transport.endpoint import (
    DEFAULT_SOURCE,
    DEFAULT_TCP_PORT,
    DEFAULT_TLS_PORT,
    endpoint_for,
    resolve_endpoint,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Path:
    """A DOCKER_CONFIG with contexts made by the docker CLI; ``tls`` is the current one."""
    cfg = tmp_path_factory.mktemp("dockercfg")
    docker_context_create(cfg, "tls", "tcp://127.0.0.1:4000", ca=pki.ca, cert=pki.client_cert,
                          key=pki.client_key)  # fmt: skip
    docker_context_create(cfg, "caonly", "tcp://127.0.0.1:4001", ca=pki.ca)
    docker_context_create(
        cfg, "skip", "tcp://127.0.0.1:4002", cert=pki.client_cert, key=pki.client_key,
        skip_tls_verify=True,
    )  # fmt: skip
    docker_context_create(cfg, "sock", "unix:///run/ctx.sock")
    docker_context_create(cfg, "noport", "tcp://127.0.0.1", ca=pki.ca)
    docker_context_use(cfg, "tls")
    return cfg


def env(home: Path, **variables: str) -> dict[str, str]:
    # A private HOME: ~/.docker of the machine must never leak into a test.
    return {"HOME": str(home), **variables}


# --------------------------------------------------------------------------- precedence


def test_nothing_set_means_the_default_socket(tmp_path: Path) -> None:
    ep = resolve_endpoint(environ=env(tmp_path))
    assert (ep.url, ep.source, ep.context, ep.tls) == (
        "unix:///var/run/docker.sock",
        DEFAULT_SOURCE,
        "default",
        False,
    )


def test_the_docker_cli_order_first_match_wins(tmp_path: Path, store: Path) -> None:
    full = env(tmp_path, DOCKER_HOST="unix:///run/host.sock", DOCKER_CONTEXT="sock",
               DOCKER_CONFIG=str(store))  # fmt: skip
    explicit = resolve_endpoint("unix:///run/flag.sock", environ=full)
    assert (explicit.url, explicit.source) == ("unix:///run/flag.sock", "from -H")
    flag = resolve_endpoint(context="sock", environ=full)  # --context beats DOCKER_HOST
    assert (flag.url, flag.source, flag.context) == (
        "unix:///run/ctx.sock",
        "from --context=sock",
        "sock",
    )
    host = resolve_endpoint(environ=full)
    assert (host.url, host.source) == ("unix:///run/host.sock", "from DOCKER_HOST")
    del full["DOCKER_HOST"]
    by_env = resolve_endpoint(environ=full)
    assert (by_env.url, by_env.source) == ("unix:///run/ctx.sock", "from DOCKER_CONTEXT=sock")
    del full["DOCKER_CONTEXT"]
    current = resolve_endpoint(environ=full)
    assert current.url == "tcp://127.0.0.1:4000"
    assert current.source == f"from the current context 'tls' in {store}/config.json"


def test_empty_variables_count_as_unset(tmp_path: Path, store: Path) -> None:
    ep = resolve_endpoint(
        environ=env(tmp_path, DOCKER_HOST="", DOCKER_CONTEXT="", DOCKER_CONFIG=str(store))
    )
    assert ep.context == "tls"


def test_the_default_context_is_docker_host_else_the_socket(tmp_path: Path, store: Path) -> None:
    with_host = env(tmp_path, DOCKER_HOST="unix:///run/host.sock", DOCKER_CONFIG=str(store))
    ep = resolve_endpoint(context="default", environ=with_host)
    assert (ep.url, ep.source) == (
        "unix:///run/host.sock",
        "from DOCKER_HOST (--context=default is the default context)",
    )
    ep = resolve_endpoint(environ=env(tmp_path, DOCKER_CONTEXT="default"))
    assert (ep.url, ep.source) == ("unix:///var/run/docker.sock", "from DOCKER_CONTEXT=default")


def test_host_and_context_together_are_an_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^conflicting options: cannot specify both -H and "):
        resolve_endpoint("/run/x.sock", "prod", environ=env(tmp_path))


def test_an_unknown_context_is_an_error_not_the_default_socket(tmp_path: Path, store: Path) -> None:
    with pytest.raises(ConfigError, match=r"^context 'nope' \(from DOCKER_CONTEXT=nope\) not"):
        resolve_endpoint(environ=env(tmp_path, DOCKER_CONTEXT="nope", DOCKER_CONFIG=str(store)))


def test_docker_config_defaults_to_home_dot_docker(tmp_path: Path, store: Path) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"currentContext": "sock"}')
    (home / ".docker" / "contexts").symlink_to(store / "contexts")
    assert resolve_endpoint(environ={"HOME": str(home)}).url == "unix:///run/ctx.sock"


def test_config_keys_stand_where_the_flags_stand(tmp_path: Path, store: Path) -> None:
    environ = env(tmp_path, DOCKER_HOST="unix:///run/host.sock", DOCKER_CONFIG=str(store))
    ep = endpoint_for(Config.from_mapping({"docker": {"pool": {"socket_path": "/run/f.sock"}}}),
                      environ=environ)  # fmt: skip
    assert (ep.url, ep.source) == ("unix:///run/f.sock", "from docker.pool.socket_path")
    ep = endpoint_for(Config.from_mapping({"docker": {"pool": {"context": "sock"}}}),
                      environ=environ)  # fmt: skip
    assert (ep.url, ep.source) == ("unix:///run/ctx.sock", "from docker.pool.context=sock")
    assert endpoint_for(Config(), environ=environ).source == "from DOCKER_HOST"


# --------------------------------------------------------------------------- tcp ports


@pytest.mark.parametrize(
    ("tls", "port"), [({}, DEFAULT_TCP_PORT), ({"DOCKER_TLS_VERIFY": "1"}, DEFAULT_TLS_PORT)]
)
def test_tcp_without_a_port_is_2376_with_tls_and_2375_without(
    tmp_path: Path, pki: Pki, tls: dict[str, str], port: int
) -> None:
    environ = env(tmp_path, DOCKER_HOST="tcp://127.0.0.1", DOCKER_CERT_PATH=str(pki.cert_dir))
    ep = resolve_endpoint(environ={**environ, **tls})
    assert ep.url == f"tcp://127.0.0.1:{port}"
    assert ep.base_url == f"{'https' if tls else 'tcp'}://127.0.0.1:{port}"


def test_a_context_without_a_port_follows_the_same_rule(tmp_path: Path, store: Path) -> None:
    ep = resolve_endpoint(context="noport", environ=env(tmp_path, DOCKER_CONFIG=str(store)))
    assert (ep.url, ep.tls) == (f"tcp://127.0.0.1:{DEFAULT_TLS_PORT}", True)


def test_an_explicit_port_is_kept(tmp_path: Path) -> None:
    ep = resolve_endpoint("tcp://127.0.0.1:1234", environ=env(tmp_path, DOCKER_TLS="1"))
    assert ep.url == "tcp://127.0.0.1:1234"


# --------------------------------------------------------------------------- TLS


def test_tls_from_the_environment(tmp_path: Path, pki: Pki) -> None:
    certs = pki.cert_dir
    environ = env(tmp_path, DOCKER_HOST="tcp://127.0.0.1:1", DOCKER_CERT_PATH=str(certs))
    assert resolve_endpoint(environ=environ).tls is False  # DOCKER_CERT_PATH alone: no TLS
    for verify in ("1", "0", "false"):  # any non-empty value, as in the docker CLI
        ep = resolve_endpoint(environ={**environ, "DOCKER_TLS_VERIFY": verify})
        assert (ep.tls, ep.tls_verify, ep.ca_cert) == (True, True, str(certs / "ca.pem"))
        assert (ep.client_cert, ep.client_key) == (str(certs / "cert.pem"), str(certs / "key.pem"))
    ep = resolve_endpoint(environ={**environ, "DOCKER_TLS": "1"})
    assert (ep.tls, ep.tls_verify, ep.ca_cert) == (True, False, None)


def test_the_cert_dir_defaults_to_the_docker_config_dir(tmp_path: Path, pki: Pki) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".docker").symlink_to(pki.cert_dir)
    ep = resolve_endpoint(
        "tcp://127.0.0.1:1", environ={"HOME": str(home), "DOCKER_TLS_VERIFY": "1"}
    )
    assert ep.ca_cert == str(home / ".docker" / "ca.pem")
    ep = resolve_endpoint(
        "tcp://127.0.0.1:1",
        environ=env(tmp_path, DOCKER_TLS_VERIFY="1", DOCKER_CONFIG=str(pki.wrong_cert_dir)),
    )
    assert ep.ca_cert == str(pki.wrong_cert_dir / "ca.pem")


def test_verification_without_a_ca_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^DOCKER_TLS_VERIFY is set but .*/ca.pem does not"):
        resolve_endpoint(
            "tcp://127.0.0.1:1", environ=env(tmp_path, DOCKER_TLS_VERIFY="1",
                                            DOCKER_CERT_PATH=str(tmp_path))
        )  # fmt: skip


def test_the_client_certificate_is_optional(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "ca.pem").write_bytes(pki.ca.read_bytes())
    environ = env(tmp_path, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(tmp_path))
    ep = resolve_endpoint("tcp://127.0.0.1:1", environ=environ)
    assert (ep.tls_verify, ep.client_cert, ep.client_key) == (True, None, None)


def test_explicit_tls_options_replace_the_environment(tmp_path: Path, pki: Pki) -> None:
    environ = env(tmp_path, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(pki.wrong_cert_dir))
    ep = resolve_endpoint("tcp://127.0.0.1:1", ca_cert=str(pki.ca), environ=environ)
    assert (ep.ca_cert, ep.client_cert, ep.tls_source) == (
        str(pki.ca),
        None,
        "from docker.api.tls_*",
    )


def test_contexts_bring_their_own_tls_and_ignore_the_environment(
    tmp_path: Path, pki: Pki, store: Path
) -> None:
    wrong = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(pki.wrong_cert_dir)}
    environ = env(tmp_path, DOCKER_CONFIG=str(store), **wrong)
    tls = resolve_endpoint(context="tls", environ=environ)
    assert (tls.tls, tls.tls_verify) == (True, True)
    assert tls.ca_cert is not None
    assert tls.ca_cert.startswith(f"{store}/contexts/tls/")
    assert tls.ca_cert.endswith("/docker/ca.pem")
    assert Path(tls.ca_cert).read_bytes() == pki.ca.read_bytes()
    assert tls.client_cert is not None
    assert tls.client_key is not None
    # docker-py would speak plain HTTP to these two; the docker CLI (and actorpool) use TLS.
    caonly = resolve_endpoint(context="caonly", environ=environ)
    assert (caonly.tls, caonly.tls_verify, caonly.client_cert) == (True, True, None)
    skip = resolve_endpoint(context="skip", environ=environ)
    assert (skip.tls, skip.tls_verify, skip.ca_cert) == (True, False, None)
    assert skip.client_cert is not None
    sock = resolve_endpoint(context="sock", environ=environ)
    assert (sock.url, sock.tls) == ("unix:///run/ctx.sock", False)


def test_explicit_tls_options_do_not_apply_to_a_context(
    tmp_path: Path, pki: Pki, store: Path
) -> None:
    with pytest.raises(ConfigError, match=r"TLS options do not apply to docker context 'tls'"):
        resolve_endpoint(context="tls", ca_cert=str(pki.ca),
                         environ=env(tmp_path, DOCKER_CONFIG=str(store)))  # fmt: skip


# --------------------------------------------------------------------------- API version


def test_auto_lets_docker_api_version_pin_and_a_pinned_config_wins(tmp_path: Path) -> None:
    assert resolve_endpoint(environ=env(tmp_path)).api_version == "auto"
    pinned = resolve_endpoint(environ=env(tmp_path, DOCKER_API_VERSION="1.44"))
    assert (pinned.api_version, pinned.api_version_source) == ("1.44", "from DOCKER_API_VERSION")
    config = Config.from_mapping({"docker": {"api": {"version": "1.45"}}})
    ep = endpoint_for(config, environ=env(tmp_path, DOCKER_API_VERSION="1.44"))
    assert (ep.api_version, ep.api_version_source) == ("1.45", "from docker.api.version")


def test_a_malformed_docker_api_version_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^DOCKER_API_VERSION: must be an API version"):
        resolve_endpoint(environ=env(tmp_path, DOCKER_API_VERSION="v1.44"))


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("/run/d.sock", "unix:///run/d.sock"),
        ("ssh://me@127.0.0.1:2222", "ssh://me@127.0.0.1:2222"),
        ("ssh://me@127.0.0.1", "ssh://me@127.0.0.1"),
        ("tcp://[::1]", f"tcp://[::1]:{DEFAULT_TCP_PORT}"),
    ],
)
def test_addresses_as_the_docker_cli_takes_them(tmp_path: Path, given: str, url: str) -> None:
    ep = resolve_endpoint(given, environ=env(tmp_path))
    assert ep.url == url
    assert ep.is_ssh == url.startswith("ssh://")


def test_a_bad_docker_host_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^DOCKER_HOST: must be an absolute unix socket"):
        resolve_endpoint(environ=env(tmp_path, DOCKER_HOST="http://h:1"))


def test_describe_says_where_how_and_why(tmp_path: Path, pki: Pki) -> None:
    environ = env(tmp_path, DOCKER_HOST="tcp://127.0.0.1", DOCKER_TLS_VERIFY="1",
                  DOCKER_CERT_PATH=str(pki.cert_dir))  # fmt: skip
    text = resolve_endpoint(environ=environ).describe()
    assert text.startswith(f"tcp://127.0.0.1:{DEFAULT_TLS_PORT} from DOCKER_HOST; TLS (verified")
    assert f"files in DOCKER_CERT_PATH {pki.cert_dir}" in text
    assert text.endswith("API negotiated (negotiated: docker.api.version is auto and "
                         "DOCKER_API_VERSION is unset)")  # fmt: skip
