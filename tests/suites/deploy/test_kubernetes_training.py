"""deploy/kubernetes/training: the Indexed Job, its headless Service and the shared volumes.

Checked offline like the rest of deploy/: every rendered object passes
``kubernetes-validate --strict``; each pod's TF_CONFIG, with its completion index put in,
is one ``primer-train`` accepts and names the pods the headless Service resolves; the Job's
arguments parse; the GPU variant gives each worker one GPU; the serving variant reads its
model repository from the volume the chief exports into. Not proven: that a cluster runs it.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from tests.suites.deploy import kustomize
from tests.suites.deploy.conftest import KUBERNETES
from training.distribute import read_cluster
from training.options import build_parser

TRAINING = KUBERNETES / "training"
VARIANTS = {"cpu": TRAINING, "gpu": TRAINING / "gpu", "serving": TRAINING / "serving"}
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def _pod(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return kustomize.one(resources, "Job")["spec"]["template"]["spec"]


def _container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in _pod(resources)["containers"] if c["name"] == "primer-train")


def _tf_config(container: dict[str, Any], index: int) -> str:
    """TF_CONFIG as the kubelet expands it: $(TASK_INDEX) from the completion index."""
    env = {e["name"]: e for e in container["env"]}
    annotation = env["TASK_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert annotation == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    return env["TF_CONFIG"]["value"].replace("$(TASK_INDEX)", str(index))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_passes_kubernetes_validate_strict(variant: str, version: str) -> None:
    resources = kustomize.build(VARIANTS[variant])
    for resource in resources:
        if resource["kind"] == "ServiceMonitor":
            continue  # a CRD: test_kubernetes.py checks it against its own schema
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_each_pod_gets_a_tf_config_naming_the_headless_service_pods(variant: str) -> None:
    resources = kustomize.build(VARIANTS[variant])
    job = kustomize.one(resources, "Job")
    service = kustomize.one(resources, "Service", "primer-train")
    spec, pod = job["spec"], _pod(resources)
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == "primer-train"
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    port = service["spec"]["ports"][0]["port"]
    container = _container(resources)
    assert port in [p["containerPort"] for p in container["ports"]]
    expected = [f"primer-train-{i}.primer-train:{port}" for i in range(spec["completions"])]
    for index in range(spec["completions"]):
        config = json.loads(_tf_config(container, index))
        assert config["cluster"]["worker"] == expected  # hostname <job>-<index>.<subdomain>
        cluster = read_cluster("multi-worker", {"TF_CONFIG": json.dumps(config)})
        assert (cluster.task_index, cluster.workers) == (index, spec["completions"])
        assert cluster.is_chief == (index == 0)
    assert pod["restartPolicy"] == "OnFailure" and spec["backoffLimit"] > 0


def test_the_job_arguments_are_primer_train_options() -> None:
    container = _container(kustomize.build(TRAINING))
    assert container["command"] == ["primer-train"]
    args = build_parser().parse_args(container["args"])
    assert args.strategy == "multi-worker" and str(args.model_dir) == "/models"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert str(args.backup_dir).startswith("/backup") and args.data.startswith("/data")
    assert not mounts["/models"].get("readOnly") and mounts["/data"]["readOnly"]


def test_resources_for_cpu_and_gpu_workers() -> None:
    cpu = _container(kustomize.build(TRAINING))["resources"]
    gpu = _container(kustomize.build(TRAINING / "gpu"))["resources"]
    assert "nvidia.com/gpu" not in cpu["limits"] and cpu["requests"]["cpu"] == cpu["limits"]["cpu"]
    assert gpu["limits"]["nvidia.com/gpu"] == gpu["requests"]["nvidia.com/gpu"] == "1"
    assert kustomize.build(TRAINING / "gpu") != kustomize.build(TRAINING)


def test_the_server_reads_the_repository_the_chief_exports_into() -> None:
    training = kustomize.build(TRAINING)
    serving = kustomize.build(TRAINING / "serving")
    job_volumes = {v["name"]: v for v in _pod(training)["volumes"]}
    job_mount = next(m for m in _container(training)["volumeMounts"] if m["mountPath"] == "/models")
    claim = job_volumes[job_mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert kustomize.one(training, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    pod = kustomize.one(serving, "Deployment")["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "primer-serve")
    base_path = next(e["value"] for e in server["env"] if e["name"] == "PRIMER_MODEL_BASE_PATH")
    mount = next(m for m in server["volumeMounts"] if m["mountPath"] == base_path)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == claim
    assert kustomize.one(serving, "ConfigMap")["data"]["PRIMER_POLL_INTERVAL_S"] != "0"
