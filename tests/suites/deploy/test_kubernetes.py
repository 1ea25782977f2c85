"""The Kubernetes manifests under deploy/kubernetes, checked offline.

What these prove: every object the base and the GPU overlay render passes
``kubernetes-validate --strict`` (the published OpenAPI schemas of Kubernetes 1.29 and of the
newest version the package bundles; unknown fields rejected); the ServiceMonitor matches the
schema in deploy/schemas; every kustomization lists files that exist, and every patch applies
to exactly one object (the offline renderer in kustomize.py; where ``kubectl`` is installed
its built-in kustomize must render the same objects); and the pieces agree with each other
and with the code: selectors select the pods, probes hit the health endpoints, the grace
period covers the drain, the HPA's metrics are ones the adapter rules serve and the server
exports, every PRIMER_* variable is a real setting, the pod runs as the image's user.

What they do not prove: that a cluster accepts and runs them (no cluster here), that the
Prometheus Adapter's PromQL returns data, or that the GPU overlay schedules on a GPU node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.config import Settings
from service.metrics import Metrics
from tests.suites.deploy import kustomize
from tests.suites.deploy.conftest import KUBERNETES, REPO, SCHEMAS
from tests.suites.deploy.dockerfile import Dockerfile

OVERLAYS = {"base": KUBERNETES / "base", "gpu": KUBERNETES / "overlays" / "gpu"}
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
SERVICE_MONITOR = SCHEMAS / "servicemonitor.monitoring.coreos.com.v1.json"
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR}
KUSTOMIZATIONS = sorted(p.parent for p in KUBERNETES.rglob("kustomization.yaml"))


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize.build(OVERLAYS[request.param])


def server_container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    pod = kustomize.one(resources, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "primer-serve")


def container_env(resources: list[dict[str, Any]]) -> dict[str, str]:
    """The PRIMER_* environment the server container gets: envFrom, then env on top."""
    container = server_container(resources)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(kustomize.one(resources, "ConfigMap", name)["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ----- schema validation ------------------------------------------------------------------
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_passes_kubernetes_validate_strict(
    rendered: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    _, resources = rendered
    validated = set()
    for resource in resources:
        key = (resource["apiVersion"], resource["kind"])
        if key in CRD_SCHEMAS:
            schema = json.loads(CRD_SCHEMAS[key].read_text())
            jsonschema.Draft202012Validator(schema).validate(resource)
        else:
            kubernetes_validate.validate(resource, version, strict=True)
        validated.add(resource["kind"])
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "ServiceMonitor",
    } <= validated


def test_kubernetes_validate_cli_strict_passes(tmp_path: Path) -> None:
    """The command the docs give, on the raw base files and on the rendered overlays."""
    files = [
        str(p)
        for p in sorted((KUBERNETES / "base").glob("*.yaml"))
        if p.name != "kustomization.yaml"
    ]
    for name, folder in OVERLAYS.items():
        out = tmp_path / f"{name}.yaml"
        out.write_text(yaml.safe_dump_all(kustomize.build(folder)))
        files.append(str(out))
    cli = Path(sys.executable).parent / "kubernetes-validate"
    args = [str(cli), "--strict", "--quiet"]
    for version in K8S_VERSIONS:
        args += ["-k", version]
    result = subprocess.run([*args, *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith(("ERROR", "FATAL"))]
    # it cannot know the Prometheus Operator's CRD: those are checked against deploy/schemas
    assert all("ServiceMonitor" in line for line in lines if line.startswith("WARN")), lines


def test_a_misspelt_field_is_caught() -> None:
    """The strict validation really rejects unknown fields (so passing means something)."""
    deployment = kustomize.one(kustomize.build(OVERLAYS["base"]), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    monitor = kustomize.one(kustomize.build(OVERLAYS["base"]), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    schema = json.loads(CRD_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(monitor)


# ----- kustomize structure ----------------------------------------------------------------
@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_kustomization_lists_existing_files_and_patches_apply(folder: Path) -> None:
    config = kustomize.load_kustomization(folder)
    for entry in config.get("resources", []):
        assert (folder / entry).exists(), f"{folder}: resource {entry} is missing"
    for patch in config.get("patches", []):
        assert (folder / patch["path"]).is_file(), patch["path"]
    resources = kustomize.build(folder)  # raises if a patch path or target does not exist
    names = [(r["kind"], r["metadata"]["name"]) for r in resources]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"


def test_every_manifest_file_is_used() -> None:
    listed = set()
    for folder in KUSTOMIZATIONS:
        config = kustomize.load_kustomization(folder)
        listed |= {(folder / e).resolve() for e in config.get("resources", [])}
        listed |= {(folder / p["path"]).resolve() for p in config.get("patches", [])}
    for path in KUBERNETES.rglob("*.yaml"):
        if path.name == "kustomization.yaml" or path.parent.name == "prometheus-adapter":
            continue
        assert path.resolve() in listed, f"{path} is in no kustomization"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_offline_renderer_agrees_with_kubectl_kustomize(name: str) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAYS[name])], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(result.stdout) if r}
    ours = {(r["kind"], r["metadata"]["name"]): r for r in kustomize.build(OVERLAYS[name])}
    assert theirs == ours


# ----- the pieces agree -------------------------------------------------------------------
def test_services_and_disruption_budget_select_the_pods(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, resources = rendered
    deployment = kustomize.one(resources, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    ports = {p["name"]: p["containerPort"] for p in server_container(resources)["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    for service in kustomize.by_kind(resources, "Service"):
        assert selects(service["spec"]["selector"], pod_labels)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
            assert port["port"] == ports[port["targetPort"]]
    main = kustomize.one(resources, "Service", "primer-serve")
    assert {p["name"] for p in main["spec"]["ports"]} == {"grpc", "http"}
    pdb = kustomize.one(resources, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)


def test_service_monitor_scrapes_each_pod_once_on_the_metrics_port(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, resources = rendered
    monitor = kustomize.one(resources, "ServiceMonitor")
    selected = [
        s
        for s in kustomize.by_kind(resources, "Service")
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in selected] == ["primer-serve"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
    assert endpoint["port"] == "http", "metrics are served on the REST port"


def test_probes_use_the_health_endpoints(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    container = server_container(resources)
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "time to load models"


def test_grace_period_covers_pre_stop_and_drain(
    rendered: tuple[str, list[dict[str, Any]]],
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    _, resources = rendered
    pod = kustomize.one(resources, "Deployment")["spec"]["template"]["spec"]
    command = server_container(resources)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = settings_from_env(container_env(resources)).shutdown_timeout_s
    assert pod["terminationGracePeriodSeconds"] >= int(command[1]) + drain + 5
    strategy = kustomize.one(resources, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0, "a rollout never lowers serving capacity"


def test_settings_in_manifests_are_real_settings(
    rendered: tuple[str, list[dict[str, Any]]],
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    name, resources = rendered
    settings = settings_from_env(container_env(resources))
    mounts = {m["mountPath"] for m in server_container(resources)["volumeMounts"]}
    assert settings.model_base_path in mounts
    assert settings.intra_op_threads <= int(
        server_container(resources)["resources"]["limits"].get("cpu", 1 << 10)
    )
    if name == "gpu":
        assert settings.device == "gpu:0"
        assert settings.batching.max_batch_size == 128
        assert settings.batching.allowed_batch_sizes[-1] == settings.batching.max_batch_size
    else:
        assert settings.device == "auto"
        assert settings.batching.max_batch_size == 32


def test_pod_runs_as_the_image_user(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    image_user = Dockerfile.last(Dockerfile(REPO / "Dockerfile").chain(), "USER").args
    uid = int(image_user.split(":")[0])
    pod = kustomize.one(resources, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    for container in [*pod["containers"], *pod["initContainers"]]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in server_container(resources)["volumeMounts"]}
    assert "/tmp" in mounts, "read-only root: TensorFlow and Python need a writable /tmp"


def test_models_reach_the_server_through_the_init_container(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, resources = rendered
    pod = kustomize.one(resources, "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    target = next(m for m in init["volumeMounts"] if m["name"] == "models")["mountPath"]
    assert f"/models/. {target}/" in init["command"][-1], "copies the image's /models"
    served = next(m for m in server_container(resources)["volumeMounts"] if m["name"] == "models")
    assert served["readOnly"] is True


def test_hpa_scales_the_deployment_on_metrics_the_server_exports(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, resources = rendered
    hpa = kustomize.one(resources, "HorizontalPodAutoscaler")
    deployment = kustomize.one(resources, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pods_metrics = [
        m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"
    ]
    assert pods_metrics == ["primer_inflight_requests", "primer_queue_depth"]
    assert any(
        m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]
    ), "CPU fallback"
    rules = yaml.safe_load((KUBERNETES / "prometheus-adapter" / "rules.yaml").read_text())
    served = {rule["name"]["as"] for rule in rules["rules"]}
    assert set(pods_metrics) <= served
    exported = {family.name for family in Metrics().registry.collect()}
    assert {"primer_inflight_requests", "primer_queue_depth"} <= exported


def test_adapter_rules_map_series_to_pods() -> None:
    folder = KUBERNETES / "prometheus-adapter"
    rules = yaml.safe_load((folder / "rules.yaml").read_text())["rules"]
    values = yaml.safe_load((folder / "values.yaml").read_text())
    assert values["rules"]["custom"] == rules, "values.yaml must carry rules.yaml verbatim"
    for rule in rules:
        metric = rule["name"]["as"]
        assert rule["seriesQuery"].startswith(metric + "{")
        assert 'pod!=""' in rule["seriesQuery"] and 'namespace!=""' in rule["seriesQuery"]
        assert rule["resources"]["overrides"] == {
            "namespace": {"resource": "namespace"},
            "pod": {"resource": "pod"},
        }
        for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            assert placeholder in rule["metricsQuery"]
        # summed over the pod's models, per pod: what an AverageValue Pods target needs
        assert rule["metricsQuery"].startswith("sum(")


def test_gpu_overlay_gives_each_pod_one_gpu(
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    resources = kustomize.build(OVERLAYS["gpu"])
    container = server_container(resources)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == "primer-serving:0.1.0-gpu"
    pod = kustomize.one(resources, "Deployment")["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert settings_from_env(container_env(resources)).device == "gpu:0"
    base = kustomize.build(OVERLAYS["base"])
    assert "nvidia.com/gpu" not in server_container(base)["resources"]["limits"]
    assert server_container(base)["image"] == "primer-serving:0.1.0"
    assert (
        kustomize.one(resources, "HorizontalPodAutoscaler")["spec"]["maxReplicas"]
        <= kustomize.one(base, "HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    )
