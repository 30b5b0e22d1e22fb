"""Tests of actorpool.config: defaults, loading, normalisation and every error message.

Pure configuration: no Docker daemon is needed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from actorpool.config import (
    DEFAULT_MONITOR_LISTEN,
    ApiConfig,
    CircuitBreakerConfig,
    Config,
    EndpointConfig,
    MonitoringConfig,
    PerformanceConfig,
    PoolConfig,
    RateLimitConfig,
    StreamsConfig,
    config_to_dict,
    load_config,
    normalize_socket_path,
    parse_duration,
    parse_duration_ns,
)
from actorpool.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"

# The documented defaults (config.yaml), written out by hand on purpose.
DOCUMENTED: dict[str, dict[str, Any]] = {
    "pool": {
        "socket_path": None,
        "context": None,
        "min_pool_size": 5,
        "max_pool_size": 20,
        "initial_pool_size": 10,
        "pool_growth_factor": 1.5,
        "health_check_interval": 30.0,
        "health_check_timeout": 10.0,
        "unhealthy_threshold": 3,
        "recovery_check_interval": 60.0,
        "connection_timeout": 30.0,
        "idle_timeout": 300.0,
        "max_connection_age": 3600.0,
        "connection_lifetime": 7200.0,
        "max_retries": 5,
        "initial_retry_delay": 1.0,
        "max_retry_delay": 30.0,
        "retry_multiplier": 2.0,
        "jitter": True,
        "max_queue": 1000,
        "max_restarts": 10,
        "restart_window": 60.0,
        "load_threshold": 0.75,
        "load_window": 10.0,
    },
    "api": {
        "version": "auto",
        "timeout": 30.0,
        "tls_verify": False,
        "tls_ca_cert": None,
        "tls_client_cert": None,
        "tls_client_key": None,
    },
    "performance": {
        "max_concurrent_streams": 100,
        "buffer_size": 65536,
        "tcp_keep_alive": 7200.0,
    },
    "circuit_breaker": {
        "enabled": True,
        "failure_threshold": 5,
        "success_threshold": 3,
        "timeout": 60.0,
        "half_open_max_calls": 10,
    },
    "rate_limit": {"enabled": True, "requests_per_second": 100.0, "burst_size": 20},
    "monitoring": {
        "enabled": True,
        "detailed_metrics": True,
        "listen": None,
        "namespace": "docker",
    },
    "streams": {
        "subscriber_buffer": 64,
        "overflow_policy": "block",
        "max_line_size": 1048576,
        "batch_max_lines": 1000,
        "batch_max_delay": 0.05,
        "reconnect_initial_delay": 0.1,
        "reconnect_max_delay": 5.0,
        "give_up_after": 300.0,
        "resume_tail": 10000,
    },
    "health": {
        "ping_weight": 1.0,
        "list_latency_weight": 0.5,
        "events_weight": 0.5,
        "latency_threshold": 1.0,
        "trend_window": 8,
        "trend_ratio": 2.0,
        "trend_floor": 0.02,
        "degraded_score": 0.5,
    },
    "endpoints": {},
}
ENDPOINT_KEYS = [
    "host",
    "context",
    "version",
    "tls_verify",
    "tls_ca_cert",
    "tls_client_cert",
    "tls_client_key",
    "min_pool_size",
    "initial_pool_size",
    "max_pool_size",
]


def docker(**sections: Any) -> dict[str, Any]:
    return {"docker": sections}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_equal_the_documented_ones() -> None:
    assert config_to_dict(Config()) == {"docker": DOCUMENTED}


def test_default_types_are_exact() -> None:
    # 30.0 == 30 in Python, so the equality above cannot tell a float duration from an int.
    actual = config_to_dict(Config())["docker"]
    for name, section in DOCUMENTED.items():
        for key, value in section.items():  # endpoints: {}, nothing to check
            assert type(actual[name][key]) is type(value), f"{name}.{key}"


@pytest.mark.parametrize(
    "text", ["", "\n", "# only a comment\n", "docker:\n", "docker: {}\n", "docker:\n  pool:\n"]
)
def test_empty_documents_give_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)) == Config()


def test_no_path_gives_defaults() -> None:
    assert load_config() == Config()
    assert Config.from_mapping(None) == Config()


def test_repo_config_yaml_loads_to_the_defaults() -> None:
    assert load_config(REPO_CONFIG) == Config()


def test_repo_config_yaml_lists_every_option_with_a_comment() -> None:
    listed: dict[str, dict[str, bool]] = {}
    endpoint_keys: list[str] = []
    section = ""
    for line in REPO_CONFIG.read_text(encoding="utf-8").splitlines():
        if line.startswith("  endpoints: {}"):
            listed["endpoints"] = {}
            section = "endpoints"
        # The keys of one endpoint are listed as a commented-out example.
        elif key := re.match(r"^  #     (\w+): \S.*  # \S", line):
            endpoint_keys.append(key[1])
        elif header := re.match(r"^  (\w+):\s*$", line):
            section = header[1]
            listed[section] = {}
        # socket_path and context are listed commented out: unset, the environment decides.
        elif option := re.match(r"^    (?:# )?(\w+): \S", line):
            assert option[1] not in listed[section], f"{section}.{option[1]} listed twice"
            listed[section][option[1]] = "  # " in line or option[1] in ("socket_path", "context")
    assert {name: list(keys) for name, keys in listed.items()} == {
        name: list(keys) for name, keys in DOCUMENTED.items()
    }
    assert all(all(keys.values()) for keys in listed.values()), "an option has no comment"
    assert endpoint_keys == ENDPOINT_KEYS
    assert [a.name for a in attrs.fields(EndpointConfig)] == ["name", *ENDPOINT_KEYS]


# --- socket_path and context -----------------------------------------------------------------


def test_the_configuration_never_reads_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # DOCKER_HOST, DOCKER_CONTEXT... apply when a client is built, in the docker CLI's order
    # (tests/transport/test_endpoint.py); unset socket_path and context leave them to decide.
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert load_config().pool.socket_path is None
    assert load_config().pool.context is None


def test_socket_path_and_context_together_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^docker.pool.context: cannot be set together"):
        Config.from_mapping(docker(pool={"socket_path": "/run/d.sock", "context": "prod"}))


def test_tls_options_with_a_context_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match=r"^docker.api.tls_ca_cert: a docker context brings"):
        Config.from_mapping(docker(pool={"context": "prod"}, api={"tls_ca_cert": str(ca)}))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("/tmp/a/../b//docker.sock", "unix:///tmp/b/docker.sock"),
        ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
        ("tcp://Docker.Example:2376/", "tcp://docker.example:2376"),
        ("tcp://[::1]:2375", "tcp://[::1]:2375"),
        ("tcp://docker.example", "tcp://docker.example"),
        ("ssh://me@Host.Example", "ssh://me@host.example"),
        ("ssh://me@127.0.0.1:2222", "ssh://me@127.0.0.1:2222"),
        ("ssh://127.0.0.1", "ssh://127.0.0.1"),
        ("unix:////run//docker.sock", "unix:///run/docker.sock"),
    ],
)
def test_socket_path_is_normalised_to_a_url(given: str, expected: str) -> None:
    assert normalize_socket_path(given, "k") == expected
    assert Config.from_mapping(docker(pool={"socket_path": given})).pool.socket_path == expected


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),
        ("1h30m", 5400.0),
        ("1m30.5s", 90.5),
        ("2h5m10s500ms", 7510.5),
        ("1h 30m", 5400.0),
        ("90m1h", 9000.0),
        ("100ms", 0.1),
        ("7", 7.0),
        (3, 3.0),
        (0.05, 0.05),
        (0, 0.0),
    ],
)
def test_parse_duration(given: object, seconds: float) -> None:
    result = parse_duration(given, "k")
    assert result == seconds
    assert type(result) is float


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_units_round_trip(number: int, unit: str) -> None:
    ns = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}[unit] * number
    assert parse_duration_ns(f"{number}{unit}", "k") == ns
    assert parse_duration(f"{number}{unit}", "k") == ns / 10**9


@given(
    st.lists(
        st.tuples(st.integers(0, 10**4), st.sampled_from(["ms", "s", "m", "h"])),
        min_size=1,
        max_size=4,
    )
)
def test_compound_durations_are_the_sum_of_their_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    whole = sum(parse_duration_ns(f"{n}{unit}", "k") for n, unit in parts)
    assert parse_duration_ns(text, "k") == whole
    assert parse_duration(text, "k") == whole / 10**9


def test_duration_in_nanoseconds_is_exact() -> None:
    # Float seconds would give 5400000000000.001 or similar for long compound durations.
    assert parse_duration_ns("2h5m10s500ms", "k") == 7_510_500_000_000
    assert parse_duration_ns("0.000000001s", "k") == 1
    assert parse_duration_ns(0.25, "k") == 250_000_000


@pytest.mark.parametrize("bad", ["1h30", "h", "1.s", "1e3", "-5s", "5 parsecs", "1" * 400 + "h"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(ConfigError, match=rf"^k: {DURATION}, got"):
        parse_duration(bad, "k")


@settings(deadline=None)  # each example builds whole configs: >200 ms under load here
@given(st.floats(min_value=0.001, max_value=1e7, allow_nan=False))
def test_durations_round_trip_through_config_to_dict(seconds: float) -> None:
    cfg = attrs.evolve(Config(), pool=attrs.evolve(Config().pool, idle_timeout=seconds))
    assert cfg.pool.idle_timeout == seconds
    assert parse_duration(repr(seconds), "k") == seconds
    assert parse_duration(f"{seconds!r}s", "k") == seconds
    dumped = yaml.safe_dump(config_to_dict(cfg))
    assert Config.from_mapping(yaml.safe_load(dumped)) == cfg


def test_evolve_accepts_duration_strings() -> None:
    # The attrs mypy plugin types evolve() by the field type; the converter takes strings too.
    pool = attrs.evolve(
        Config().pool,
        idle_timeout="5m",  # type: ignore[arg-type]
        health_check_interval=2,
    )
    assert pool.idle_timeout == 300.0
    assert type(pool.health_check_interval) is float


def test_zero_batch_delay_is_allowed_but_zero_timeouts_are_not() -> None:
    streams = attrs.evolve(StreamsConfig(), batch_max_delay="0ms")  # type: ignore[arg-type]
    assert streams.batch_max_delay == 0.0
    with pytest.raises(ConfigError, match=r"^docker.api.timeout: must be a positive duration"):
        attrs.evolve(ApiConfig(), timeout=0)


# --- removed options ------------------------------------------------------------------------


def test_removed_options_are_ignored_with_a_warning_naming_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Files copied from an earlier config.yaml still hold these keys: they keep loading.
    old = docker(performance={"keep_alive": False}, monitoring={"metrics_interval": "15s"})
    with caplog.at_level("WARNING", logger="actorpool.config"):
        cfg = Config.from_mapping(old)
    assert cfg == Config()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("docker.performance.keep_alive is no longer an option")
    assert messages[1].startswith("docker.monitoring.metrics_interval is no longer an option")
    assert all("delete it from the file" in m for m in messages)


def test_removed_options_are_not_attributes_any_more() -> None:
    assert not hasattr(Config().performance, "keep_alive")
    assert not hasattr(Config().monitoring, "metrics_interval")
    with pytest.raises(TypeError):
        MonitoringConfig(metrics_interval=15.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "ok"), [("1s", True), (32767, True), (0.5, False), ("10h", False)]
)
def test_tcp_keep_alive_stays_in_the_kernels_range(given: object, ok: bool) -> None:
    data = docker(performance={"tcp_keep_alive": given})
    if ok:
        assert Config.from_mapping(data).performance.tcp_keep_alive == float(
            parse_duration(given, "k")
        )
    else:
        with pytest.raises(
            ConfigError, match=r"^docker.performance.tcp_keep_alive: must be between"
        ):
            Config.from_mapping(data)


# --- aliases ----------------------------------------------------------------------------------


def test_aliases_set_the_real_option() -> None:
    pool = Config.from_mapping(docker(pool={"pool_size": 7, "retry_delay": "500ms"})).pool
    assert (pool.initial_pool_size, pool.initial_retry_delay) == (7, 0.5)


def test_alias_and_name_may_both_be_given_when_equal() -> None:
    data = docker(
        pool={"pool_size": 7, "initial_pool_size": 7, "retry_delay": 2, "initial_retry_delay": "2s"}
    )
    pool = Config.from_mapping(data).pool
    assert (pool.initial_pool_size, pool.initial_retry_delay) == (7, 2.0)


# --- other accepted values --------------------------------------------------------------------


def test_valid_non_defaults_are_kept(tmp_path: Path) -> None:
    text = """
docker:
  api: {version: auto}
  streams: {overflow_policy: drop_oldest}
  monitoring: {listen: "[::1]:0", namespace: my_app}
  rate_limit: {requests_per_second: 5}
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.api.version == "auto"
    assert cfg.streams.overflow_policy == "drop_oldest"
    assert cfg.monitoring.listen_address == ("::1", 0)
    assert cfg.rate_limit.requests_per_second == 5.0
    assert MonitoringConfig().listen_address is None  # an embedded pool opens no port
    assert not MonitoringConfig().serves
    assert MonitoringConfig(listen=DEFAULT_MONITOR_LISTEN).listen_address == ("127.0.0.1", 19323)


def test_tls_files_for_a_tcp_host(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not read by the config\n")
    api = {
        "tls_verify": True,
        "tls_ca_cert": str(tmp_path / "ca.pem"),
        "tls_client_cert": str(tmp_path / "cert.pem"),
        "tls_client_key": str(tmp_path / "key.pem"),
    }
    cfg = Config.from_mapping(docker(pool={"socket_path": "tcp://h:2376"}, api=api))
    assert cfg.api.uses_tls
    assert config_to_dict(cfg)["docker"]["api"] == {"version": "auto", "timeout": 30.0, **api}


def test_configs_are_frozen_and_hashable() -> None:
    cfg = Config()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.pool.min_pool_size = 1  # type: ignore[misc]
    assert hash(cfg) == hash(Config())


# --- errors -----------------------------------------------------------------------------------

DURATION = "must be a duration such as '250ms', '5s', '1h30m' or a number of seconds"
TCP = "docker.pool.socket_path: a tcp address must be exactly 'tcp://host[:port]'"
SOCKET = (
    "must be an absolute unix socket path, 'unix:///abs/path', 'tcp://host[:port]' "
    "or 'ssh://[user@]host[:port]'"
)
TLS_ON_UNIX = (
    "TLS applies only to tcp:// hosts but docker.pool.socket_path is "
    "'unix:///var/run/docker.sock'; remove the TLS options or use tcp://host[:port]"
)

BAD_MAPPINGS = [
    # unknown keys, with and without a close match
    (
        docker(pool={"max_pool_sise": 3}),
        "docker.pool.max_pool_sise: unknown key in docker.pool; did you mean 'max_pool_size'?",
    ),
    (docker(pol={}), "docker.pol: unknown key in docker; did you mean 'pool'?"),
    ({"dockr": {}}, "dockr: unknown key in the configuration root; did you mean 'docker'?"),
    (
        docker(pool={"zzz": 1}),
        "docker.pool.zzz: unknown key in docker.pool; valid keys: socket_path, context, "
        "min_pool_size",
    ),
    # structure
    ([1, 2], "the configuration root: must be a mapping of keys to values, got [1, 2] (a list)"),
    ({"docker": "yes"}, "docker: must be a mapping of keys to values, got 'yes'"),
    (docker(pool=[1]), "docker.pool: must be a mapping of keys to values, got [1] (a list)"),
    # wrong types
    (
        docker(pool={"max_retries": True}),
        "docker.pool.max_retries: must be an integer >= 0, got True (a boolean)",
    ),
    (
        docker(pool={"max_pool_size": 20.0}),
        "docker.pool.max_pool_size: must be an integer >= 1, got 20.0",
    ),
    (docker(pool={"max_queue": "10"}), "docker.pool.max_queue: must be an integer >= 0, got '10'"),
    (docker(pool={"jitter": "yes"}), "docker.pool.jitter: must be true or false, got 'yes'"),
    (
        docker(rate_limit={"requests_per_second": False}),
        "docker.rate_limit.requests_per_second: must be a number > 0.0, got False (a boolean)",
    ),
    # ranges
    (
        docker(pool={"min_pool_size": 0}),
        "docker.pool.min_pool_size: must be an integer >= 1, got 0",
    ),
    (docker(pool={"max_retries": -1}), "docker.pool.max_retries: must be an integer >= 0, got -1"),
    (
        docker(pool={"pool_growth_factor": 0.5}),
        "docker.pool.pool_growth_factor: must be a number >= 1.0, got 0.5",
    ),
    (
        docker(rate_limit={"requests_per_second": 0}),
        "docker.rate_limit.requests_per_second: must be a number > 0.0, got 0.0",
    ),
    (
        docker(pool={"min_pool_size": 30}),
        "docker.pool.min_pool_size: must be <= docker.pool.max_pool_size (20), got 30",
    ),
    (
        docker(pool={"initial_pool_size": 2}),
        "docker.pool.min_pool_size: must be <= docker.pool.initial_pool_size (2), got 5",
    ),
    (
        docker(pool={"pool_size": 50}),
        "docker.pool.initial_pool_size: must be <= docker.pool.max_pool_size (20), got 50",
    ),
    (
        docker(pool={"initial_retry_delay": "1m"}),
        "docker.pool.initial_retry_delay: must be <= docker.pool.max_retry_delay (30.0), got 60.0",
    ),
    (
        docker(streams={"reconnect_max_delay": "50ms"}),
        "docker.streams.reconnect_initial_delay: must be <= docker.streams.reconnect_max_delay"
        " (0.05), got 0.1",
    ),
    # durations
    (
        docker(pool={"idle_timeout": "5 minutes"}),
        f"docker.pool.idle_timeout: {DURATION}, got '5 minutes'",
    ),
    (docker(pool={"idle_timeout": "-5s"}), "docker.pool.idle_timeout: must be a duration such as"),
    (docker(pool={"idle_timeout": -5}), "docker.pool.idle_timeout: must not be negative, got -5"),
    (
        docker(pool={"idle_timeout": float("inf")}),
        f"docker.pool.idle_timeout: {DURATION}, got inf",
    ),
    (
        docker(circuit_breaker={"timeout": "0s"}),
        "docker.circuit_breaker.timeout: must be a positive duration, got 0.0",
    ),
    (
        docker(pool={"connection_timeout": True}),
        f"docker.pool.connection_timeout: {DURATION}, got True (a boolean)",
    ),
    # aliases
    (
        docker(pool={"pool_size": 8, "initial_pool_size": 9}),
        "docker.pool.pool_size: is an alias of docker.pool.initial_pool_size and both are set"
        " to different values (8 and 9); keep only one",
    ),
    (
        docker(pool={"retry_delay": "2s", "initial_retry_delay": 1}),
        "docker.pool.retry_delay: is an alias of docker.pool.initial_retry_delay and both are set"
        " to different values ('2s' and 1)",
    ),
    # socket_path
    (
        docker(pool={"socket_path": "var/run/docker.sock"}),
        f"docker.pool.socket_path: {SOCKET}, got 'var/run/docker.sock'",
    ),
    (
        docker(pool={"socket_path": "unix://run/docker.sock"}),
        "docker.pool.socket_path: the unix socket path must be absolute,"
        " got 'unix://run/docker.sock'",
    ),
    (
        docker(pool={"socket_path": "http://h:2375"}),
        f"docker.pool.socket_path: {SOCKET}, got 'http://h:2375'",
    ),
    (
        docker(pool={"socket_path": "tcp://h/x"}),
        f"{TCP}, got 'tcp://h/x'",
    ),
    (
        docker(pool={"socket_path": "ssh://me@h/x"}),
        "docker.pool.socket_path: a ssh address must be exactly 'ssh://[user@]host[:port]', "
        "got 'ssh://me@h/x'",
    ),
    (
        docker(pool={"context": "-x"}),
        "docker.pool.context: must be a docker context name (letters, digits, '_', '.', '+', "
        "'-'), got '-x'",
    ),
    (
        docker(pool={"socket_path": "tcp://[::1:2375"}),
        f"{TCP}, got 'tcp://[::1:2375'",
    ),
    (
        docker(pool={"socket_path": "tcp://h:99999"}),
        f"{TCP}, got 'tcp://h:99999'",
    ),
    (
        docker(pool={"socket_path": 2375}),
        f"docker.pool.socket_path: {SOCKET}, got 2375",
    ),
    # api
    (
        docker(api={"version": 1.4}),
        'docker.api.version: must be a quoted string such as "1.40" (YAML read a float), got 1.4',
    ),
    (
        docker(api={"version": "v1.40"}),
        "docker.api.version: must be 'auto' or an API version such as '1.40', got 'v1.40'",
    ),
    (
        docker(pool={"socket_path": "/var/run/docker.sock"}, api={"tls_verify": True}),
        f"docker.api.tls_verify: {TLS_ON_UNIX}, got True",
    ),
    (
        docker(pool={"socket_path": "tcp://h:2376"}, api={"tls_ca_cert": "/nonexistent/ca.pem"}),
        "docker.api.tls_ca_cert: must name an existing file (no such file),"
        " got '/nonexistent/ca.pem'",
    ),
    # streams and monitoring
    (
        docker(streams={"overflow_policy": "drop_newest"}),
        "docker.streams.overflow_policy: must be one of 'block', 'drop_oldest', got 'drop_newest'",
    ),
    (
        docker(monitoring={"listen": "127.0.0.1:70000"}),
        "docker.monitoring.listen: must be 'host:port' with a port in 0-65535,"
        " got '127.0.0.1:70000'",
    ),
    (
        docker(monitoring={"listen": 9323}),
        "docker.monitoring.listen: must be 'host:port' with a port in 0-65535, got 9323",
    ),
    (
        docker(monitoring={"listen": ":9323"}),
        "docker.monitoring.listen: must be 'host:port' with a port in 0-65535, got ':9323'",
    ),
    (
        docker(monitoring={"namespace": "my-app"}),
        "docker.monitoring.namespace: must be a Prometheus metric-name prefix"
        " (letters, digits, '_'; no leading digit), got 'my-app'",
    ),
    (
        docker(monitoring={"namespace": "9lives"}),
        "docker.monitoring.namespace: must be a Prometheus metric-name prefix",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"),
    BAD_MAPPINGS,
    ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD_MAPPINGS)],
)
def test_bad_mappings_raise_config_error_naming_key_value_and_rule(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        Config.from_mapping(data)


def test_tls_on_a_unix_socket_names_the_file_option(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(
        ConfigError, match=r"^docker.api.tls_ca_cert: TLS applies only to tcp:// hosts"
    ):
        Config.from_mapping(
            docker(pool={"socket_path": "/run/d.sock"}, api={"tls_ca_cert": str(ca)})
        )


def test_client_cert_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    data = docker(pool={"socket_path": "tcp://h:2376"}, api={"tls_client_cert": str(cert)})
    with pytest.raises(
        ConfigError, match=r"^docker.api.tls_client_cert: needs docker.api.tls_client_key too"
    ):
        Config.from_mapping(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("docker:\n  pool:\n    min_pool_size: [1\n", r": invalid YAML at line 4, column 1: "),
        (
            "docker:\n  pool: {a: 1\n  api: {}\n",
            r": invalid YAML at line 3, column 6: expected ','",
        ),
        ("docker:\n\tpool: {}\n", r": invalid YAML at line 2, column 1: "),
        (
            "docker:\n  pool:\n    max_retries: 1\n    max_retries: 2\n",
            r":4: docker.pool.max_retries: duplicate key \(also at line 3\); keep one$",
        ),
        (
            "- docker\n",
            r": the configuration root: must be a mapping of keys to values,"
            r" got \['docker'\] \(a list\)",
        ),
        (
            "docker:\n  pool:\n    max_retries: yes\n",
            r":3: docker.pool.max_retries: must be an integer >= 0, got True \(a boolean\)",
        ),
        (
            "docker:\n  api:\n    version: 1.40\n",
            r":3: docker.api.version: must be a quoted string",
        ),
    ],
)
def test_bad_files_name_the_file_and_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="^" + re.escape(str(path)) + message):
        load_config(path)


def test_every_problem_of_a_file_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
docker:
  monitoring:
    namespace: "1bad"
  pool:
    min_pool_size: 0
    bogus: 1
    min_pool_size: 2
  api:
    timeout: soon
  streams: []
  health:
    trend_window: 2
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    where = str(path)
    assert [p.split(": ", 2)[:2] for p in caught.value.problems] == [
        [f"{where}:3", "docker.monitoring.namespace"],
        [f"{where}:6", "docker.pool.bogus"],
        [f"{where}:7", "docker.pool.min_pool_size"],
        [f"{where}:9", "docker.api.timeout"],
        [f"{where}:10", "docker.streams"],
        [f"{where}:12", "docker.health.trend_window"],
    ]
    assert str(caught.value).startswith(f"{where}: 6 problems:\n  {where}:3: ")
    assert str(caught.value).splitlines()[1:] == [f"  {p}" for p in caught.value.problems]
    assert caught.value.key_path == "docker.monitoring.namespace"


def test_a_check_across_fields_names_the_line_of_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "docker:\n  pool:\n    max_pool_size: 3\n    min_pool_size: 4\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith(
        f"{path}:4: docker.pool.min_pool_size: must be <= docker.pool.max_pool_size (3), got 4"
    )


def test_from_mapping_reports_every_problem_too() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(docker(pool={"max_queue": -1}, api={"timeout": "x"}))
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "docker.pool.max_queue",
        "docker.api.timeout",
    ]
    assert str(caught.value).startswith("the configuration: 2 problems:\n  docker.pool.max_queue")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: configuration file not found")):
        load_config(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="^" + re.escape(f"{tmp_path}: cannot read the configuration file")
    ):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        (
            PoolConfig(),
            {"min_pool_size": 0},
            "docker.pool.min_pool_size: must be an integer >= 1, got 0",
        ),
        (
            PoolConfig(),
            {"socket_path": "relative.sock"},
            "docker.pool.socket_path: must be an absolute",
        ),
        (ApiConfig(), {"timeout": "soon"}, "docker.api.timeout: must be a duration"),
        (
            PerformanceConfig(),
            {"buffer_size": 0},
            "docker.performance.buffer_size: must be an integer >= 1, got 0",
        ),
        (
            CircuitBreakerConfig(),
            {"enabled": 1},
            "docker.circuit_breaker.enabled: must be true or false, got 1",
        ),
        (
            RateLimitConfig(),
            {"burst_size": 0},
            "docker.rate_limit.burst_size: must be an integer >= 1, got 0",
        ),
        (
            MonitoringConfig(),
            {"namespace": ""},
            "docker.monitoring.namespace: must be a Prometheus",
        ),
        (
            StreamsConfig(),
            {"subscriber_buffer": 0},
            "docker.streams.subscriber_buffer: must be an integer >= 1",
        ),
        (
            Config(),
            {"pool": {"min_pool_size": 1}},
            "docker.pool: must be a PoolConfig, got {'min_pool_size': 1} (a dict)",
        ),
    ],
)
def test_evolve_validates_with_the_key_path(
    section: Any, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        attrs.evolve(section, **changes)


def test_config_error_is_a_value_error_so_callers_can_catch_either() -> None:
    with pytest.raises(ValueError, match=r"^docker\.pool\.max_queue: "):
        attrs.evolve(PoolConfig(), max_queue=-1)


# --- config_to_dict ---------------------------------------------------------------------------


def test_config_to_dict_is_yaml_dumpable_and_round_trips() -> None:
    cfg = Config.from_mapping(
        docker(
            pool={"socket_path": "tcp://h:2375", "pool_size": 12, "idle_timeout": "90s"},
            streams={"overflow_policy": "drop_oldest", "batch_max_delay": "10ms"},
        ),
    )
    dumped = yaml.safe_dump(config_to_dict(cfg))
    data = yaml.safe_load(dumped)
    assert data["docker"]["pool"]["idle_timeout"] == 90.0
    assert data["docker"]["pool"]["initial_pool_size"] == 12
    assert "pool_size" not in data["docker"]["pool"]
    assert Config.from_mapping(data) == cfg


# --- endpoints --------------------------------------------------------------------------------


def test_without_endpoints_there_is_one_named_default() -> None:
    cfg = Config()
    assert cfg.endpoint_names == ("default",)
    assert cfg.for_endpoint("default") is cfg


def test_endpoints_keep_their_order_and_fall_back_to_pool_and_api(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    text = f"""
docker:
  api: {{version: "1.41", timeout: 7s}}
  pool: {{min_pool_size: 1, initial_pool_size: 2, max_pool_size: 6}}
  endpoints:
    zeta: {{host: /run/z.sock}}
    alpha:
      host: tcp://127.0.0.1:2376
      version: "1.43"
      tls_ca_cert: {ca}
      max_pool_size: 3
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.endpoint_names == ("zeta", "alpha")
    zeta, alpha = cfg.for_endpoint("zeta"), cfg.for_endpoint("alpha")
    assert zeta.pool.socket_path == "unix:///run/z.sock"
    assert (zeta.api.version, zeta.api.timeout, zeta.pool.max_pool_size) == ("1.41", 7.0, 6)
    assert alpha.pool.socket_path == "tcp://127.0.0.1:2376"
    assert (alpha.api.version, alpha.api.tls_ca_cert) == ("1.43", str(ca))
    assert (alpha.pool.min_pool_size, alpha.pool.max_pool_size) == (1, 3)
    assert alpha.endpoints == ()
    assert alpha.api.timeout == 7.0
    assert cfg.pool.socket_path is None
    assert Config.from_mapping(config_to_dict(cfg)) == cfg
    assert hash(cfg) == hash(Config.from_mapping(config_to_dict(cfg)))


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ({"a": {}}, "docker.endpoints.a.host: is required, or context"),
        ({"a": None}, "docker.endpoints.a.host: is required, or context"),
        ({"a": {"host": "/x", "context": "c"}}, "needs exactly one of host and context"),
        ({"a/b": {"host": "/x"}}, "docker.endpoints: must be an endpoint name"),
        ({"a": {"host": "/x", "hots": 1}}, "docker.endpoints.a.hots: unknown key"),
        ({"a": {"host": "x.sock"}}, "docker.endpoints.a.host: must be an absolute unix socket"),
        ({"a": {"host": "/x", "version": 1.4}}, "docker.endpoints.a.version: must be a quoted"),
        ({"a": {"host": "/x", "max_pool_size": 0}}, "docker.endpoints.a.max_pool_size: must be"),
        (
            {"a": {"host": "/x", "max_pool_size": 2}},
            "docker.endpoints.a: docker.pool.min_pool_size: must be <= docker.pool.max_pool_size",
        ),
        (
            {"a": {"host": "/x", "tls_verify": True}},
            "docker.endpoints.a: docker.api.tls_verify: TLS applies only to tcp:// hosts",
        ),
        ([{"host": "/x"}], "docker.endpoints: must be a mapping"),
    ],
)
def test_bad_endpoints_name_the_endpoint_and_key(endpoints: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(docker(endpoints=endpoints))
    assert message in str(info.value)


def test_socket_path_and_endpoints_do_not_mix() -> None:
    data = docker(pool={"socket_path": "/a.sock"}, endpoints={"b": {"host": "/b.sock"}})
    with pytest.raises(ConfigError, match=r"docker\.pool\.socket_path: cannot be set with"):
        Config.from_mapping(data)


def test_endpoint_names_are_distinct_and_known() -> None:
    one = EndpointConfig(name="a", host="/a.sock")
    with pytest.raises(ConfigError, match="names must be distinct"):
        Config(endpoints=(one, one))
    with pytest.raises(ConfigError, match="no endpoint named 'b'; known: 'a'"):
        Config(endpoints=(one,)).for_endpoint("b")


def test_an_endpoint_may_name_a_docker_context_instead_of_a_host() -> None:
    cfg = Config.from_mapping(docker(endpoints={"p": {"context": "prod"}}))
    one = cfg.for_endpoint("p")
    assert (one.pool.context, one.pool.socket_path) == ("prod", None)
