"""Tests of actorpool.observe.metrics: names, types and labels checked by promtool, isolation.

No Docker daemon is needed: the metrics are exercised through the methods the
core calls. The scrape of a live pool doing real work is in the pool's tests.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import threading
import time
import urllib.error
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import actorpool
from actorpool.errors import ActorPoolError, ConfigError
from actorpool.observe.metrics import (
    BREAKER_STATES,
    LATENCY_BUCKETS,
    MetricsServer,
    MetricsServerError,
    PoolMetrics,
    parse_listen,
)

from promtool import promtool_check, promtool_check_rules, scrape

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The seed's names and the Prometheus type each is exposed as.
SEED_METRICS = {
    "docker_pool_connections_active": "gauge",
    "docker_pool_connections_total": "counter",
    "docker_pool_connections_healthy": "gauge",
    "docker_pool_utilization": "gauge",
    "docker_connection_duration_seconds": "histogram",
    "docker_health_check_duration_seconds": "histogram",
    "docker_operation_latency_seconds": "histogram",
    "docker_pool_wait_duration_seconds": "histogram",
    "docker_connection_errors_total": "counter",
    "docker_health_check_failures_total": "counter",
    "docker_recovery_operations_total": "counter",
    "docker_circuit_breaker_state": "gauge",
}


def exercise(m: PoolMetrics) -> None:
    """Call every method once or more, so every metric has samples."""
    m.connection_opened("c1")
    m.connection_opened("c2")
    m.connection_opened("c3")
    m.set_pool(size=3, min_size=2, max_size=5, active=1, healthy=2, queue_length=4)
    m.observe_operation("ping", 0.0012, "ok")
    m.observe_operation("inspect_container", 0.02, "NotFound")
    m.request_finished("ping", 0.004, "ok")
    m.request_finished("inspect_container", 0.03, "NotFound")
    m.observe_wait(0.003)
    m.rate_limited_wait(0.05)
    m.retry("ping")
    m.connection_error("DockerUnavailable")
    m.health_check("c1", 0.002, True)
    m.health_check("c2", 10.0, False)
    m.recovery("restart")
    m.recovery("reconnect")
    m.recovery("recycle")
    m.breaker_transition("c2", "closed", "open")
    m.breaker_transition("c3", "closed", "open")
    m.breaker_transition("c3", "open", "half_open")
    m.scaling_event("up", "demand")
    m.scaling_event("down", "idle")
    m.stream_opened("logs")
    m.stream_opened("events")
    m.lines_delivered(100, 6100)
    m.stream_reconnect()
    m.resumed_lines(7)
    m.truncated_line()
    m.dropped_chunks("drop_oldest", 3)
    m.stream_closed("events")
    m.connection_closed("c1", 42.0)


def families(text: str) -> dict[str, str]:
    """Map each sample name to its family's type, from an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = family.type
    return out


def value(m: PoolMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {"endpoint": m.endpoint, **labels})


# --- names, types, promtool ---------------------------------------------------------------


@pytest.mark.parametrize("detailed", [True, False])
def test_exposition_of_every_metric_passes_promtool(detailed: bool) -> None:
    m = PoolMetrics(detailed=detailed)
    exercise(m)
    rc, output = promtool_check(m.render())
    assert rc == 0, output
    assert output.strip() == ""


def test_promtool_check_rejects_a_gauge_named_total() -> None:
    # The reason docker_pool_connections_total is a counter: the checker must catch the gauge.
    text = "# HELP x_total n\n# TYPE x_total gauge\nx_total 1\n"
    rc, output = promtool_check(text)
    assert rc != 0
    assert "_total" in output


def test_every_seed_metric_is_exposed_with_its_type() -> None:
    m = PoolMetrics()
    exercise(m)
    exposed = families(m.render())
    for name, kind in SEED_METRICS.items():
        sample = f"{name}_count" if kind == "histogram" else name
        assert exposed.get(sample) == kind, name


def test_build_info_carries_the_version() -> None:
    m = PoolMetrics(namespace="acme")
    assert value(m, "acme_pool_build_info", version=actorpool.__version__) == 1.0
    assert families(m.render())["acme_pool_build_info"] == "gauge"


def test_namespace_replaces_the_prefix() -> None:
    m = PoolMetrics(namespace="acme_docker")
    exercise(m)
    names = set(families(m.render()))
    assert "acme_docker_pool_connections_active" in names
    assert "acme_docker_operation_latency_seconds_count" in names
    assert not any(n.startswith("docker_") for n in names)


@pytest.mark.parametrize("bad", ["", "1docker", "docker-pool", "docker pool"])
def test_bad_namespace_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"docker\.monitoring\.namespace"):
        PoolMetrics(namespace=bad)


def test_latency_histogram_has_docker_sized_buckets_per_operation() -> None:
    m = PoolMetrics()
    m.observe_operation("ping", 0.0008, "ok")
    m.observe_operation("container_stats", 1.7, "ok")
    m.observe_operation("container_stats", 45.0, "RequestTimeout")
    bucket = "docker_operation_latency_seconds_bucket"
    assert value(m, bucket, operation="ping", le="0.001") == 1
    assert value(m, bucket, operation="container_stats", le="1.0") == 0
    assert value(m, bucket, operation="container_stats", le="2.5") == 1
    assert value(m, bucket, operation="container_stats", le="60.0") == 2
    assert value(m, "docker_operations_total", operation="container_stats", outcome="ok") == 1
    assert (
        value(m, "docker_operations_total", operation="container_stats", outcome="RequestTimeout")
        == 1
    )
    assert LATENCY_BUCKETS[0] <= 0.001
    assert LATENCY_BUCKETS[-1] >= 30.0


def test_request_finished_is_counted_once_per_request_apart_from_attempts() -> None:
    m = PoolMetrics()
    m.observe_operation("ping", 0.01, "DockerUnavailable")
    m.observe_operation("ping", 0.01, "DockerUnavailable")
    m.request_finished("ping", 1.3, "RetriesExhausted")
    m.request_finished("ping", 0.002, "NoHealthyConnections")
    assert value(m, "docker_operation_latency_seconds_count", operation="ping") == 2
    assert value(m, "docker_request_duration_seconds_count", operation="ping") == 2
    assert value(m, "docker_request_duration_seconds_bucket", operation="ping", le="1.0") == 1
    assert value(m, "docker_requests_total", operation="ping", outcome="RetriesExhausted") == 1
    assert value(m, "docker_operations_total", operation="ping", outcome="DockerUnavailable") == 2


def test_no_hot_metric_carries_an_id_label() -> None:
    m = PoolMetrics(detailed=True)
    exercise(m)
    allowed_with_connection = {
        "docker_circuit_breaker_state",
        "docker_health_check_failures_total",
        "docker_health_check_failures_created",
    }
    for family in text_string_to_metric_families(m.render()):
        for sample in family.samples:
            assert "container" not in sample.labels, sample
            assert "request" not in sample.labels, sample
            if "connection" in sample.labels:
                assert sample.name in allowed_with_connection, sample


def test_detailed_off_has_no_per_connection_series() -> None:
    m = PoolMetrics(detailed=False)
    exercise(m)
    text = m.render()
    assert "connection=" not in text
    assert value(m, "docker_health_check_failures_total") == 1
    # The breaker states are still visible, as counts.
    assert value(m, "docker_circuit_breaker_connections", state="open") == 1
    assert value(m, "docker_circuit_breaker_connections", state="half_open") == 1


# --- behaviour of each method -------------------------------------------------------------


def test_set_pool_sets_gauges_and_utilisation() -> None:
    m = PoolMetrics()
    m.set_pool(size=8, min_size=5, max_size=20, active=6, healthy=7, queue_length=3)
    assert value(m, "docker_pool_size") == 8
    assert value(m, "docker_pool_min_size") == 5
    assert value(m, "docker_pool_max_size") == 20
    assert value(m, "docker_pool_connections_active") == 6
    assert value(m, "docker_pool_connections_healthy") == 7
    assert value(m, "docker_pool_queue_length") == 3
    assert value(m, "docker_pool_utilization") == 0.75
    m.set_pool(size=0, min_size=5, max_size=20, active=0, healthy=0, queue_length=9)
    assert value(m, "docker_pool_utilization") == 0


def test_breaker_state_set_and_counts_follow_transitions() -> None:
    m = PoolMetrics()
    m.connection_opened("a")
    m.connection_opened("b")
    state = "docker_circuit_breaker_state"
    assert value(m, state, connection="a", state="closed") == 1
    m.breaker_transition("a", "closed", "open")
    m.breaker_transition("a", "open", "half-open")  # the dashed spelling is accepted
    assert [value(m, state, connection="a", state=s) for s in BREAKER_STATES] == [0, 0, 1]
    counts = [value(m, "docker_circuit_breaker_connections", state=s) for s in BREAKER_STATES]
    assert counts == [1, 0, 1]
    transitions = "docker_circuit_breaker_transitions_total"
    assert value(m, transitions, from_state="closed", to_state="open") == 1
    assert value(m, transitions, from_state="open", to_state="half_open") == 1


def test_unknown_breaker_state_is_rejected() -> None:
    m = PoolMetrics()
    with pytest.raises(ValueError, match="unknown circuit breaker state 'tripped'"):
        m.breaker_transition("a", "closed", "tripped")


def test_scaling_direction_is_checked() -> None:
    m = PoolMetrics()
    m.scaling_event("up", "demand")
    assert value(m, "docker_pool_scaling_events_total", direction="up", reason="demand") == 1
    with pytest.raises(ValueError, match="scaling direction"):
        m.scaling_event("sideways", "demand")


def test_connection_closed_observes_lifetime_and_forgets_the_connection() -> None:
    m = PoolMetrics()
    m.connection_opened("a")
    m.breaker_transition("a", "closed", "open")
    m.health_check("a", 0.5, False)
    assert value(m, "docker_pool_connections_total") == 1
    m.connection_closed("a", 600.0)
    assert value(m, "docker_connection_duration_seconds_count") == 1
    assert value(m, "docker_connection_duration_seconds_bucket", le="300.0") == 0
    assert value(m, "docker_connection_duration_seconds_bucket", le="900.0") == 1
    assert 'connection="a"' not in m.render()
    assert value(m, "docker_circuit_breaker_connections", state="open") == 0
    m.forget_connection("a")  # idempotent
    m.forget_connection("never-seen")


def test_late_events_of_a_departed_connection_do_not_bring_it_back() -> None:
    m = PoolMetrics()
    m.connection_opened("gone")
    m.connection_closed("gone", 5.0)
    m.health_check("gone", 2.0, False)
    m.breaker_transition("gone", "closed", "open")
    assert 'connection="gone"' not in m.render()
    assert value(m, "docker_health_check_failures_total", connection="") == 1
    assert value(m, "docker_circuit_breaker_connections", state="open") == 0
    transitions = "docker_circuit_breaker_transitions_total"
    assert value(m, transitions, from_state="closed", to_state="open") == 1
    rc, output = promtool_check(m.render())
    assert rc == 0, output


def test_forgetting_many_connections_does_not_leak_series() -> None:
    m = PoolMetrics()
    baseline = len(m.render().splitlines())
    for i in range(200):
        conn = f"conn-{i}"
        m.connection_opened(conn)
        m.breaker_transition(conn, "closed", "open")
        m.health_check(conn, 0.01, False)
        m.connection_closed(conn, 1.0)
    text = m.render()
    assert "conn-" not in text
    # Only the aggregate series grew (the lifetime histogram, transition and opened counters).
    assert len(text.splitlines()) - baseline < 40


def test_stream_counters() -> None:
    m = PoolMetrics()
    m.stream_opened()
    m.stream_opened()
    m.stream_closed()
    m.stream_opened("events")
    m.lines_delivered(10, 610)
    m.lines_delivered(5, 5)
    m.stream_reconnect()
    m.resumed_lines(4)
    m.truncated_line()
    m.truncated_line(2)
    m.dropped_chunks("drop_oldest", 6)
    assert value(m, "docker_streams_active", kind="logs") == 1
    assert value(m, "docker_streams_active", kind="events") == 1
    assert value(m, "docker_streams_opened_total", kind="logs") == 2
    assert value(m, "docker_stream_lines_total") == 15
    assert value(m, "docker_stream_bytes_total") == 615
    assert value(m, "docker_stream_reconnects_total") == 1
    assert value(m, "docker_stream_resumed_lines_total") == 4
    assert value(m, "docker_stream_truncated_lines_total") == 3
    assert value(m, "docker_stream_dropped_chunks_total", policy="drop_oldest") == 6


def test_request_counters() -> None:
    m = PoolMetrics()
    m.observe_wait(0.2)
    m.rate_limited_wait(0.01)
    m.rate_limited_wait(0.02)
    m.retry("list_containers")
    m.connection_error("DockerUnavailable")
    m.recovery("recycle")
    assert value(m, "docker_pool_wait_duration_seconds_count") == 1
    assert value(m, "docker_pool_wait_duration_seconds_bucket", le="0.1") == 0
    assert value(m, "docker_rate_limit_wait_duration_seconds_count") == 2
    assert value(m, "docker_request_retries_total", operation="list_containers") == 1
    assert value(m, "docker_connection_errors_total", kind="DockerUnavailable") == 1
    assert value(m, "docker_recovery_operations_total", kind="recycle") == 1


# --- isolation and threads ----------------------------------------------------------------


def test_two_pools_in_one_process_do_not_collide() -> None:
    a, b = PoolMetrics(), PoolMetrics()
    assert a.registry is not b.registry
    a.retry("ping")
    a.connection_opened("c1")
    b.set_pool(size=1, min_size=1, max_size=1, active=1, healthy=1, queue_length=0)
    assert value(a, "docker_request_retries_total", operation="ping") == 1
    assert value(b, "docker_request_retries_total", operation="ping") is None
    assert value(a, "docker_pool_utilization") == 0
    assert value(b, "docker_pool_utilization") == 1
    assert value(b, "docker_pool_connections_total") == 0


def test_sharing_one_registry_between_pools_fails_loudly() -> None:
    registry = CollectorRegistry()
    PoolMetrics(registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PoolMetrics(registry=registry)


def test_concurrent_updates_are_not_lost() -> None:
    m = PoolMetrics()
    threads_n, per_thread = 8, 2000

    def work(t: int) -> None:
        conn = f"c{t}"
        m.connection_opened(conn)
        for i in range(per_thread):
            m.observe_operation("ping", 0.001, "ok")
            m.lines_delivered(1, 10)
            old, new = ("closed", "open") if i % 2 == 0 else ("open", "closed")
            m.breaker_transition(conn, old, new)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    total = threads_n * per_thread
    assert value(m, "docker_operation_latency_seconds_count", operation="ping") == total
    assert value(m, "docker_stream_bytes_total") == total * 10
    counts = {s: value(m, "docker_circuit_breaker_connections", state=s) for s in BREAKER_STATES}
    assert counts == {"closed": threads_n, "open": 0, "half_open": 0}


# --- the HTTP endpoint --------------------------------------------------------------------


def test_server_serves_its_registry_on_a_free_port() -> None:
    m = PoolMetrics()
    exercise(m)
    with MetricsServer(m.registry, "127.0.0.1:0") as server:
        host, port = server.address
        assert host == "127.0.0.1"
        assert port > 0
        assert server.url == f"http://127.0.0.1:{port}/metrics"
        text = scrape(server.address)
        assert 'docker_pool_connections_active{endpoint="default"} 1.0' in text
        rc, output = promtool_check(text)
        assert rc == 0, output
        assert scrape(f"127.0.0.1:{port}") == scrape(server.url)


def test_two_servers_serve_their_own_pools() -> None:
    a, b = PoolMetrics(), PoolMetrics()
    a.set_pool(size=2, min_size=1, max_size=2, active=0, healthy=2, queue_length=0)
    b.set_pool(size=9, min_size=1, max_size=9, active=0, healthy=9, queue_length=0)
    with (
        MetricsServer(a.registry, "127.0.0.1:0") as sa,
        MetricsServer(b.registry, "127.0.0.1:0") as sb,
    ):
        assert 'docker_pool_size{endpoint="default"} 2.0' in scrape(sa.address)
        assert 'docker_pool_size{endpoint="default"} 9.0' in scrape(sb.address)


def test_stop_closes_the_port_and_ends_the_thread_quickly() -> None:
    server = MetricsServer(PoolMetrics().registry, "127.0.0.1:0")
    address = server.address
    scrape(address)
    assert server.running
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 0.5
    assert not server.running
    assert not any(t.name == f"actorpool-metrics-{address[1]}" for t in threading.enumerate())
    with pytest.raises(urllib.error.URLError):
        scrape(address, timeout=2)
    server.stop()  # idempotent


def test_port_in_use_is_a_clear_typed_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen = f"127.0.0.1:{port}"
        with pytest.raises(MetricsServerError) as caught:
            MetricsServer(PoolMetrics().registry, listen)
    assert isinstance(caught.value, ActorPoolError)
    assert str(caught.value) == (
        f"cannot serve metrics on {listen}: address in use — "
        "set docker.monitoring.listen or disable monitoring"
    )
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.EADDRINUSE


def test_address_not_on_this_host_is_a_typed_error() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface.
    with pytest.raises(MetricsServerError, match=r"192\.0\.2\.1:0: address not available"):
        MetricsServer(PoolMetrics().registry, "192.0.2.1:0")


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9323", ("127.0.0.1", 9323)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9323", ("::1", 9323)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("bad", ["9323", ":9323", "127.0.0.1:", "127.0.0.1:http", "h:70000"])
def test_parse_listen_rejects_bad_values(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^docker\.monitoring\.listen: must be 'host:port'"):
        parse_listen(bad)


def test_parse_listen_names_the_option_or_flag_it_parses() -> None:
    with pytest.raises(ConfigError, match=r"^--metrics: must be 'host:port' .*, got 9323 "):
        parse_listen(9323, key_path="--metrics")


# --- the example dashboard ----------------------------------------------------------------


def _dashboard() -> dict[str, object]:
    data: dict[str, object] = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    return data


def _dashboard_exprs(dashboard: dict[str, object]) -> list[str]:
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    dashboard = _dashboard()
    variables = dashboard["templating"]["list"]  # type: ignore[index]
    datasource = next(v for v in variables if v["type"] == "datasource")
    assert datasource["query"] == "prometheus"
    ref = "${" + datasource["name"] + "}"
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert {"type", "title", "gridPos"} <= panel.keys()
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": ref}
            assert panel["targets"], panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("pool size", "utilisation", "latency", "errors", "breaker", "streams"):
        assert topic in titles


def test_dashboard_queries_use_only_exposed_metrics() -> None:
    m = PoolMetrics()
    exercise(m)
    exposed = set(families(m.render()))
    exprs = _dashboard_exprs(_dashboard())
    used = {name for e in exprs for name in re.findall(r"\bdocker_[a-z_]+\b", e)}
    assert used - exposed == set()
    assert "histogram_quantile" in " ".join(exprs)
    # Every seed metric has a panel.
    for name, kind in SEED_METRICS.items():
        assert any(u == name or (kind == "histogram" and u.startswith(name)) for u in used), name


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses every expression when it checks rules: wrap each one as a recording rule.
    exprs = [
        e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$endpoint", ".*")
        for e in _dashboard_exprs(_dashboard())
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.json"  # JSON is YAML
    path.write_text(json.dumps(rules))
    rc, output = promtool_check_rules(path)
    assert rc == 0, output
    assert f"SUCCESS: {len(exprs)} rules found" in output


# --- endpoints ------------------------------------------------------------------------------


def test_dashboard_has_an_endpoint_variable_and_every_query_keeps_the_endpoint() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}  # type: ignore[index]
    assert "endpoint" in variables["endpoint"]["query"]["query"]
    assert variables["endpoint"]["multi"]
    for expr in _dashboard_exprs(dashboard):
        for selector in re.findall(r"docker_[a-z_]+(\{[^}]*\})", expr):
            assert 'endpoint=~"$endpoint"' in selector, expr
        for grouping in re.findall(r"by \(([^)]*)\)", expr):
            assert "endpoint" in grouping, expr
    assert any("docker_endpoint_up" in e for e in _dashboard_exprs(dashboard))


def test_every_series_carries_the_endpoint_label() -> None:
    m = PoolMetrics()
    exercise(m)
    for family in text_string_to_metric_families(m.render()):
        for sample in family.samples:
            assert sample.labels.get("endpoint") == "default", sample


def test_endpoint_views_share_one_registry_and_keep_their_own_series() -> None:
    a = PoolMetrics(endpoint="a")
    b = a.for_endpoint("b")
    assert b.registry is a.registry
    a.connection_opened("c1")
    b.connection_opened("c1")
    b.breaker_transition("c1", "closed", "open")
    a.set_pool(size=1, min_size=1, max_size=2, active=0, healthy=1, queue_length=0)
    b.set_pool(size=1, min_size=1, max_size=2, active=0, healthy=0, queue_length=0)
    counts = "docker_circuit_breaker_connections"
    assert value(a, counts, state="closed") == 1
    assert value(a, counts, state="open") == 0
    assert value(b, counts, state="open") == 1
    assert value(a, "docker_endpoint_up") == 1
    assert value(b, "docker_endpoint_up") == 0
    rc, output = promtool_check(a.render())
    assert rc == 0, output
