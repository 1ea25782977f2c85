"""docker-compose.yml: the stack is wired so that one ``docker compose up`` works.

No Docker engine runs on this machine and the compose plugin is not installed, so the stack
has never been started here. ``docker compose config`` runs when the plugin exists, and
``docker-compose config`` (v1, Debian's package) when that exists; always, the YAML is
checked structurally: the services exist, bind-mounted files exist,
the server is built from this Dockerfile, and the shipped Prometheus and Grafana files point
at addresses that resolve inside the stack (every service shares one network namespace, so
``localhost`` in them means the stack) with ports the servers actually listen on. Not
proven: that the images pull, that the containers start, or that the dashboard renders.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from service.config import Settings
from tests.suites.deploy.conftest import DEPLOY, REPO
from tests.suites.deploy.dockerfile import Dockerfile

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "PRIVATE_KEY")
LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path of a service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[target] = (REPO / source).resolve()
    return mounts


def host_file(service: dict[str, Any], container_path: str) -> Path | None:
    """The host file a container path of a service comes from, through its bind mounts."""
    for target, source in sorted(bind_mounts(service).items(), key=lambda kv: -len(kv[0])):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1 :]
    return None


def network_holder(name: str) -> str:
    """The service whose network namespace ``name`` runs in (itself if it has its own)."""
    mode = SERVICES[name].get("network_mode", "")
    return mode.split(":", 1)[1] if mode.startswith("service:") else name


def reachable(client: str, host: str, port: int, listeners: dict[str, set[int]]) -> bool:
    """Does ``host:port`` from ``client`` reach a service listening on that port?"""
    if host in LOOPBACK:
        holder = network_holder(client)
        return any(network_holder(s) == holder and port in ports for s, ports in listeners.items())
    return (
        host in SERVICES
        and "network_mode" not in SERVICES[host]
        and port in listeners.get(host, set())
    )


def server_env() -> dict[str, str]:
    image = Dockerfile.environment(Dockerfile(REPO / "Dockerfile").chain(), {})
    return {**image, **{k: str(v) for k, v in SERVICES["primer-serve"]["environment"].items()}}


def listeners() -> dict[str, set[int]]:
    env = server_env()
    return {
        "primer-serve": {int(env["PRIMER_REST_PORT"]), int(env["PRIMER_GRPC_PORT"])},
        "prometheus": {9090},
        "grafana": {int(SERVICES["grafana"]["environment"]["GF_SERVER_HTTP_PORT"])},
        "locust": {8089},
    }


def compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return result.returncode == 0


@pytest.mark.skipif(not compose_plugin(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(REPO / "docker-compose.yml"),
            "--profile",
            "load",
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose (v1, Debian's package) is not installed",
)
def test_docker_compose_v1_config_accepts_the_file() -> None:
    """Compose v1 knows an older schema: the file sticks to what both versions accept."""
    result = subprocess.run(
        [
            "docker-compose",
            "-f",
            str(REPO / "docker-compose.yml"),
            "--profile",
            "load",
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_services_of_the_stack() -> None:
    assert {"primer-serve", "prometheus", "grafana", "locust"} <= set(SERVICES)
    always_on = {name for name, s in SERVICES.items() if not s.get("profiles")}
    assert {"primer-serve", "prometheus", "grafana"} <= always_on
    assert SERVICES["locust"]["profiles"] == ["load"], "Locust only when asked"
    for name, service in SERVICES.items():
        assert ("image" in service) or ("build" in service), name
        for dependency in service.get("depends_on", []):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"


def test_server_is_built_from_this_dockerfile(
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    server = SERVICES["primer-serve"]
    assert server["build"]["context"] == "."
    assert server["build"]["args"]["VARIANT"] in {"cpu", "gpu"}
    settings = settings_from_env(server_env())
    assert bind_mounts(server)[settings.model_base_path] == (REPO / "models").resolve()
    assert server["volumes"][0].endswith(":ro")
    grace = int(server["stop_grace_period"].rstrip("s"))
    assert grace > settings.shutdown_timeout_s, "docker stop must let the server drain"
    stages = {s.name for s in Dockerfile(REPO / "Dockerfile").stages}
    assert SERVICES["locust"]["build"]["target"] in stages


def test_published_ports() -> None:
    published = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, _, container = str(mapping).rpartition(":")
            published[int(container)] = (name, int(host))
    for name, ports in listeners().items():
        for port in ports:
            assert port in published, f"{name}'s port {port} is not published"
            assert published[port] == (network_holder(name), port), (
                f"{name}:{port} must be published, unchanged, on its network namespace"
            )
    for name, service in SERVICES.items():
        if "network_mode" in service:
            assert "ports" not in service, f"{name} shares a namespace: publish on its holder"


def test_bind_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert REPO in source.parents, f"{name}: mounts from outside the repo"


def test_prometheus_uses_the_shipped_config_and_reaches_the_server() -> None:
    prometheus = SERVICES["prometheus"]
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    config_path = flags["--config.file"]
    config_file = host_file(prometheus, config_path)
    assert config_file == (DEPLOY / "prometheus" / "prometheus.yml").resolve()
    config = yaml.safe_load(config_file.read_text())
    for rule_file in config.get("rule_files", []):
        in_container = str(Path(config_path).parent / rule_file)
        mounted = host_file(prometheus, in_container)
        assert mounted is not None and mounted.is_file(), f"rule file {rule_file} not mounted"
    assert flags.get("--web.listen-address", ":9090").endswith(":9090")
    targets = [
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    ]
    server_jobs = [
        job for job in config["scrape_configs"] if job.get("metrics_path", "/metrics") == "/metrics"
    ]
    assert targets and server_jobs
    for target in targets:
        host, _, port = target.rpartition(":")
        assert reachable("prometheus", host, int(port), listeners()), (
            f"prometheus cannot reach {target} inside the stack"
        )


def test_grafana_is_provisioned_with_the_datasource_and_dashboard() -> None:
    grafana = SERVICES["grafana"]
    provisioning = "/etc/grafana/provisioning"
    sources = host_file(grafana, f"{provisioning}/datasources")
    providers = host_file(grafana, f"{provisioning}/dashboards")
    assert sources == (DEPLOY / "grafana" / "provisioning" / "datasources").resolve()
    assert providers == (DEPLOY / "grafana" / "provisioning" / "dashboards").resolve()
    for path in sources.glob("*.y*ml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            url = urlsplit(source["url"])
            assert reachable("grafana", url.hostname, url.port or 80, listeners()), source["url"]
    dashboards = []
    for path in providers.glob("*.y*ml"):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            folder = host_file(grafana, provider["options"]["path"])
            assert folder is not None and folder.is_dir(), provider["options"]["path"]
            dashboards += list(folder.glob("*.json"))
    assert (DEPLOY / "grafana" / "dashboards" / "primer-serving.json").resolve() in [
        d.resolve() for d in dashboards
    ]


def test_locust_targets_the_server() -> None:
    locust = SERVICES["locust"]
    command = locust["command"]
    host = urlsplit(command[command.index("--host") + 1])
    assert reachable("locust", host.hostname, host.port, listeners())
    locustfile = command[command.index("-f") + 1]
    mounted = host_file(locust, locustfile)
    assert mounted is not None and mounted.parent == (REPO / "loadtest").resolve()
    assert locust["depends_on"]["primer-serve"]["condition"] == "service_healthy"


def test_no_secrets_in_the_compose_file() -> None:
    for name, service in SERVICES.items():
        for key in service.get("environment", {}):
            assert not any(word in key.upper() for word in SECRET_WORDS), f"{name}: {key}"
        assert "env_file" not in service
