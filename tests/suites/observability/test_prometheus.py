"""A real Prometheus (Debian's binary) scrapes a live server and answers PromQL about it."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from loadtest.processes import stop
from tests.conftest import ServerThread
from tests.suites.observability.helpers import (
    DASHBOARD,
    PROMETHEUS_DIR,
    dashboard_queries,
    grafana_to_promql,
    instances_for,
    require_binary,
)
from tests.suites.observability.test_rules_and_dashboard import ALERTS

READY_TIMEOUT_S = 60
QUERY_TIMEOUT_S = 45


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_config_for(rest_port: int, workdir: Path) -> Path:
    """The shipped scrape config, pointed at the test server and scraping every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{rest_port}"]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(server: ServerThread, tmp_path: Path) -> Iterator[httpx.Client]:
    """Prometheus on a free loopback port with temporary storage; stopped afterwards."""
    binary = require_binary("prometheus")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={scrape_config_for(server.server.rest_port, tmp_path)}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                if client.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        stop(process, timeout=20)
        log.close()


def query(prometheus: httpx.Client, expr: str, where: str = "") -> list[dict]:
    response = prometheus.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (where, expr, body)
    return body["data"]["result"]


@pytest.mark.timeout(240)
def test_prometheus_sees_request_rate(
    prometheus: httpx.Client, rest: httpx.Client, traffic_model: str
) -> None:
    body = instances_for(rest, traffic_model)
    stop = threading.Event()

    def traffic() -> None:  # ~50 requests/s until the test has its answer (at most 90 s)
        with httpx.Client(base_url=str(rest.base_url), timeout=30) as client:
            end = time.monotonic() + 90
            while not stop.is_set() and time.monotonic() < end:
                client.post(f"/v1/models/{traffic_model}:predict", json=body)
                stop.wait(0.02)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        expr = f'sum(rate(primer_requests_total{{model="{traffic_model}",code="OK"}}[10s]))'
        deadline = time.monotonic() + QUERY_TIMEOUT_S
        rate = 0.0
        while rate <= 0:
            assert time.monotonic() < deadline, f"no request rate for {traffic_model} in time"
            result = query(prometheus, expr)
            rate = float(result[0]["value"][1]) if result else 0.0
            if rate <= 0:
                time.sleep(0.5)
        print(f"\nPrometheus: {expr} = {rate:.1f} req/s")
        assert rate > 0
        check_targets_rules_and_dashboard(prometheus)
    finally:
        stop.set()
        sender.join(timeout=35)


def check_targets_rules_and_dashboard(prometheus: httpx.Client) -> None:
    targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], json.dumps(targets)[:2000]
    groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == ALERTS
    assert all(rule["health"] != "err" for rule in rules.values()), rules
    assert rules["PrimerModelUnavailable"]["state"] == "inactive"
    for where, expr in dashboard_queries(json.loads(DASHBOARD.read_text())):
        if not expr.lstrip().startswith("label_values("):
            query(prometheus, grafana_to_promql(expr), where)
    assert query(prometheus, 'primer_model_state{state="AVAILABLE"} == 1')
