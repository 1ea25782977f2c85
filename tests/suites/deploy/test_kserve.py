"""The KServe manifests under deploy/kserve, checked offline.

``kubernetes-validate`` has no schema for KServe's custom resources, so each is validated in
two parts: the KServe fields against the hand-written subset schemas in deploy/schemas
(field names, placement, enums, as read from KServe's API types; see its README), and every
embedded Kubernetes type (the custom predictor's inline PodSpec, the ServingRuntime's
containers, a ModelSpec's inline Container) by wrapping it in a Pod and running
``kubernetes-validate --strict`` on that. Then the pieces are checked against each other and
the server: the v2 protocol is declared, the runtime named exists and supports it, the ports,
probes and PRIMER_* settings match what the server reads.

Not proven: acceptance by an API server with KServe's CRDs and admission webhooks, the
storage initializer's download, or a request through KServe's ingress (no cluster here).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from service.config import Settings
from tests.suites.deploy.conftest import KSERVE, SCHEMAS
from tests.suites.deploy.kustomize import load_documents

SCHEMA_FILES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.serving.kserve.io.v1beta1",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime.serving.kserve.io.v1alpha1",
}
MANIFESTS = sorted(KSERVE.glob("*.yaml"))
K8S_VERSION = kubernetes_validate.latest_version()


def documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in MANIFESTS for doc in load_documents(path)]


def schema_for(resource: dict[str, Any]) -> dict[str, Any]:
    name = SCHEMA_FILES[(resource["apiVersion"], resource["kind"])]
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def named(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def validate_as_pod(pod_spec: dict[str, Any]) -> None:
    """Validate Kubernetes fields strictly by giving them to a Pod."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def embedded_pod_specs(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes parts of a KServe resource, each shaped as a PodSpec."""
    schema = schema_for(resource)
    if resource["kind"] == "ServingRuntime":
        spec = resource["spec"]
        k8s_keys = {
            k
            for k, v in schema["properties"]["spec"]["properties"].items()
            if "x-primer-inline" in v
        }
        return [{k: v for k, v in spec.items() if k in k8s_keys}]
    predictor = resource["spec"]["predictor"]
    kserve_keys = set(schema["$defs"]["predictor"]["properties"]) - {"containers"}
    pod_spec = {k: v for k, v in predictor.items() if k not in kserve_keys}
    specs = [pod_spec] if pod_spec else []
    if "model" in predictor:
        model_keys = set(schema["$defs"]["modelSpec"]["properties"])
        container = {k: v for k, v in predictor["model"].items() if k not in model_keys}
        specs.append({"containers": [{"name": "kserve-container", "image": "x", **container}]})
    return specs


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_manifests_exist() -> None:
    kinds = sorted(d["kind"] for _, d in documents())
    assert kinds == ["InferenceService", "InferenceService", "ServingRuntime"]
    assert (KSERVE / "inferenceservice.yaml").is_file()


@pytest.mark.parametrize(
    ("path", "resource"), documents(), ids=lambda v: v.name if isinstance(v, Path) else ""
)
def test_kserve_fields_match_the_vendored_schema(path: Path, resource: dict[str, Any]) -> None:
    schema = schema_for(resource)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(resource)


@pytest.mark.parametrize(
    ("path", "resource"), documents(), ids=lambda v: v.name if isinstance(v, Path) else ""
)
def test_embedded_kubernetes_parts_pass_kubernetes_validate_strict(
    path: Path, resource: dict[str, Any]
) -> None:
    specs = embedded_pod_specs(resource)
    for pod_spec in specs:
        validate_as_pod(pod_spec)
    if resource["kind"] == "ServingRuntime" or "containers" in resource["spec"]["predictor"]:
        assert specs and specs[0].get("containers"), "the containers were validated"


def test_schemas_reject_what_kserve_would_not_know() -> None:
    runtime_isvc = named("InferenceService", "primer-serving-runtime")
    for mutate in (
        lambda r: r["spec"]["predictor"]["model"].update(protocolVersion="v3"),
        lambda r: r["spec"]["predictor"].update(scaleMetric="qps"),
        lambda r: r["spec"].update(predictors={}),
        lambda r: r["spec"]["predictor"]["model"].pop("modelFormat"),
        lambda r: r.update(metadata={"name": "Primer_Serving"}),
    ):
        broken = copy.deepcopy(runtime_isvc)
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema_for(broken)).validate(broken)
    custom = copy.deepcopy(named("InferenceService", "primer-serving"))
    custom["spec"]["predictor"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        for pod_spec in embedded_pod_specs(custom):
            validate_as_pod(pod_spec)
    runtime = copy.deepcopy(named("ServingRuntime", "primer-serving"))
    runtime["spec"]["protocolVersions"].append("v3")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema_for(runtime)).validate(runtime)


def test_custom_predictor_runs_the_image_with_the_v2_protocol(
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    predictor = named("InferenceService", "primer-serving")["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"].split(":")[0] == "primer-serving"
    env = env_of(container)
    # KServe reads a custom predictor's protocol from PROTOCOL (v1 | v2) and its model
    # location from STORAGE_URI, downloaded into /mnt/models by the storage initializer
    assert env["PROTOCOL"] == "v2"
    assert env["STORAGE_URI"].split("://")[0] in {"gs", "s3", "pvc", "https", "hdfs", "oci"}
    settings = settings_from_env(env)
    assert settings.model_base_path == "/mnt/models"
    (port,) = container["ports"]
    assert port["containerPort"] == settings.rest_port
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/v2/health/ready",
        "port": settings.rest_port,
    }
    assert predictor["scaleMetric"] == "concurrency"


def test_runtime_inference_service_names_a_runtime_that_speaks_v2(
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    model = named("InferenceService", "primer-serving-runtime")["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2"
    runtime = named("ServingRuntime", model["runtime"])["spec"]
    assert model["protocolVersion"] in runtime["protocolVersions"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["supportedModelFormats"]}
    (container,) = runtime["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"].split(":")[0] == "primer-serving"
    settings = settings_from_env(env_of(container))
    assert settings.model_base_path == "/mnt/models"
    assert container["ports"][0]["containerPort"] == settings.rest_port
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
