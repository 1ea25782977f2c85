"""A small, strict stand-in for ``kustomize build`` over the features our layout uses.

Supported: ``resources`` (files and folders), ``patches`` with a ``target`` and a JSON 6902
patch file (add / replace / remove), ``images`` (newName / newTag) and ``namespace``. Any
other kustomization field fails loudly instead of being ignored, so the renderer can never
silently disagree with the real kustomize; where ``kubectl`` is installed a test compares
the two outputs object by object.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "patches", "images", "namespace"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
Resource = dict[str, Any]


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization_file(folder: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no kustomization file in {folder}")


def load_kustomization(folder: Path) -> dict[str, Any]:
    kustomization = yaml.safe_load(kustomization_file(folder).read_text())
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise ValueError(f"{folder}: fields this renderer does not implement: {unsupported}")
    return kustomization


def matches_target(resource: Resource, target: dict[str, str]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    wanted = {
        "group": group,
        "version": version,
        "kind": resource["kind"],
        "name": resource["metadata"]["name"],
        "namespace": resource["metadata"].get("namespace", ""),
    }
    return all(wanted[key] == value for key, value in target.items())


def _decode_pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(document: Any, parts: list[str], path: str) -> Any:
    node = document
    for part in parts:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"patch path {path} does not exist (at {part!r})")
    return node


def apply_json6902(document: Resource, operations: list[dict[str, Any]]) -> None:
    """Apply a JSON 6902 patch in place (add, replace, remove), failing on missing paths."""
    for operation in operations:
        op, path = operation["op"], operation["path"]
        parts = _decode_pointer(path)
        parent = _walk(document, parts[:-1], path)
        key = parts[-1]
        if op == "add":
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, list):
                parent.insert(len(parent) if key == "-" else int(key), value)
            else:
                parent[key] = value
        elif op == "replace":
            if isinstance(parent, list):
                parent[int(key)] = copy.deepcopy(operation["value"])
            else:
                if key not in parent:
                    raise KeyError(f"replace of missing path {path}")
                parent[key] = copy.deepcopy(operation["value"])
        elif op == "remove":
            if isinstance(parent, list):
                del parent[int(key)]
            else:
                del parent[key]
        else:
            raise ValueError(f"unsupported JSON 6902 op {op!r}")


def _split_image(image: str) -> tuple[str, str | None]:
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None
    return name, tag


def apply_images(resources: list[Resource], images: list[dict[str, str]]) -> None:
    for resource in resources:
        if resource["kind"] not in POD_TEMPLATE_KINDS:
            continue
        pod = resource["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            name, tag = _split_image(container["image"])
            for image in images:
                if image["name"] == name:
                    new_name = image.get("newName", name)
                    new_tag = image.get("newTag", tag)
                    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def build(folder: Path) -> list[Resource]:
    """Render a kustomization folder to its list of objects."""
    kustomization = load_kustomization(folder)
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = folder / entry
        if path.is_dir():
            resources.extend(build(path))
        else:
            resources.extend(load_documents(path))
    for patch in kustomization.get("patches", []):
        targets = [r for r in resources if matches_target(r, patch["target"])]
        if len(targets) != 1:
            raise ValueError(f"{folder}: patch {patch['path']} targets {len(targets)} objects")
        operations = yaml.safe_load((folder / patch["path"]).read_text())
        if not isinstance(operations, list):
            raise ValueError(f"{patch['path']}: only JSON 6902 patches (a list) are supported")
        apply_json6902(targets[0], operations)
    apply_images(resources, kustomization.get("images", []))
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def by_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = [r for r in by_kind(resources, kind) if name in (None, r["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
