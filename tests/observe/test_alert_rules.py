"""Tests of examples/prometheus-alerts.yml with the real promtool (check rules, unit tests)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from actorpool.observe.metrics import PoolMetrics

from promtool import promtool_check_rules, promtool_test_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "prometheus-alerts.yml"
UNIT_TESTS = ROOT / "tests" / "data" / "alerts_test.yml"
REQUIRED_ALERTS = {
    "DockerPoolDegraded",
    "DockerPoolNoHealthyConnections",
    "DockerCircuitBreakerOpenTooLong",
    "DockerPoolHighWaitTime",
    "DockerStreamReconnectStorm",
    "DockerEndpointDown",
}


def _alerts(path: Path = RULES) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    return {rule["alert"]: rule for group in data["groups"] for rule in group["rules"]}


def _unit_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    return tests


def test_rules_pass_promtool_check() -> None:
    rc, output = promtool_check_rules(RULES)
    assert rc == 0, output
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in output


def test_rules_cover_the_required_alerts_with_severity_and_summary() -> None:
    alerts = _alerts()
    assert set(alerts) == REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name


def test_rules_use_only_metrics_a_pool_exposes() -> None:
    m = PoolMetrics()
    m.observe_wait(0.1)
    m.stream_reconnect()
    exposed = {
        sample.name
        for family in text_string_to_metric_families(m.render())
        for sample in family.samples
    }
    used = {
        n for rule in _alerts().values() for n in re.findall(r"\bdocker_[a-z_]+\b", rule["expr"])
    }
    assert used
    assert used - exposed == set()


def test_unit_tests_pass() -> None:
    rc, output = promtool_test_rules(UNIT_TESTS)
    assert rc == 0, output
    assert "SUCCESS" in output


def test_every_alert_fires_in_a_scenario_and_stays_quiet_before() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in _unit_tests():
        for case in test["alert_rule_test"]:
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert fired == REQUIRED_ALERTS
    assert quiet == REQUIRED_ALERTS


def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    # The same tests against rules with one threshold loosened must fail: they are not vacuous.
    examples = tmp_path / "examples"
    data = tmp_path / "tests" / "data"
    examples.mkdir()
    data.mkdir(parents=True)
    broken = RULES.read_text().replace("docker_endpoint_up == 0", "docker_endpoint_up <= 1")
    assert broken != RULES.read_text()
    (examples / RULES.name).write_text(broken)
    shutil.copy(UNIT_TESTS, data / UNIT_TESTS.name)
    rc, output = promtool_test_rules(data / UNIT_TESTS.name)
    assert rc != 0
    assert "DockerEndpointDown" in output
