"""Prometheus config and alert rules through promtool; the Grafana dashboard's queries."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable

import httpx
import pytest
import yaml

from tests.suites.observability.helpers import (
    DASHBOARD,
    DEPLOY,
    DEVICE_SERIES,
    EVALUATION_SERIES,
    EXPERIMENT_SERIES,
    PROMETHEUS_DIR,
    SYNTHETIC_SERIES,
    dashboard_queries,
    declared_families,
    instances_for,
    metric_names,
    require_binary,
    scrape,
    series_names,
)

ALERTS = {
    "PrimerHighErrorRatio",
    "PrimerLatencyP99High",
    "PrimerQueueSaturated",
    "PrimerRequestsShed",
    "PrimerModelVersionFailed",
    "PrimerModelUnavailable",
    "PrimerTargetDown",
    "PrimerLiveAccuracyLow",
    "PrimerInputDrift",
    "PrimerOutOfDistributionTraffic",
    "PrimerPayloadLogFailing",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROMETHEUS_DIR,
    )


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def all_queries() -> Iterable[tuple[str, str]]:
    for rule in alert_rules():
        yield f"alert {rule['alert']}", rule["expr"]
    yield from dashboard_queries(json.loads(DASHBOARD.read_text()))


def test_promtool_accepts_scrape_config_and_rules() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in rules.stdout


def test_alert_rules_fire_for_their_cases_only() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert {rule["alert"] for rule in alert_rules()} == ALERTS
    cases = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    firing = {t["alertname"] for case in cases for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert firing == ALERTS, "every alert has a case where it fires"


def test_scrape_config_targets_the_rest_port() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["localhost:8501"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (model, le) (rate(primer_x_bucket{job=~"$job", a="b(c)"}[$__rate_interval]))',
            {"primer_x_bucket"},
        ),
        (
            "histogram_quantile(0.99, sum without (instance) (rate(a_b[5m] offset 1h))) > 0.5",
            {"a_b"},
        ),
        ("a / on (model) group_left (state) b{x='1e3'} * 1e3 and bool_c", {"a", "b", "bool_c"}),
        ('label_values(primer_model_state{job=~"$job"}, model)', {"primer_model_state"}),
        ('up{job="primer-serving"} == 0', {"up"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_queried_metric_is_exported(rest: httpx.Client, traffic_model: str) -> None:
    rest.post(f"/v1/models/{traffic_model}:predict", json=instances_for(rest, traffic_model))
    text, samples = scrape(rest)
    declared = declared_families(text)
    evaluation = {
        name
        for name in EVALUATION_SERIES
        if {name, re.sub(r"_(total|count|bucket)$", "", name)} & declared
    }
    exported = (
        series_names(samples)
        | SYNTHETIC_SERIES
        | ((DEVICE_SERIES | EXPERIMENT_SERIES) & declared)
        | evaluation
    )
    missing = {}
    for where, expr in all_queries():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown = names - exported
        if unknown:
            missing[where] = sorted(unknown)
    assert not missing, f"queries name metrics the server does not export: {missing}"


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "primer-serving"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in panels).lower()
    for topic in (
        "request rate",
        "error",
        "p50 / p95 / p99",
        "stage",
        "batch size",
        "queue depth",
        "rejected",
        "state",
        "cpu",
        "memory",
    ):
        assert topic in titles, topic
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "instance", "model"}


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    grafana = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((grafana / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    providers = yaml.safe_load((grafana / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/primer-serving")
