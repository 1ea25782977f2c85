"""Helpers of the observability tests: system binaries, scraping, PromQL names, payloads."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "primer-serving.json"
SYNTHETIC_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
"""Series Prometheus itself writes for every target (not exported by the server)."""
DEVICE_SERIES = frozenset({"primer_gpu_memory_used_bytes"})
"""Declared always, with samples only where TensorFlow sees a GPU."""
EXPERIMENT_SERIES = frozenset(
    {
        "primer_traffic_weight",
        "primer_rollout_step",
        "primer_shadow_agreement",
        "primer_shadow_mean_abs_diff",
        "primer_shadow_requests_total",
    }
)
"""Declared always, with samples only for models with a split, a shadow or a rollout."""
EVALUATION_SERIES = frozenset(
    {
        "primer_live_accuracy",
        "primer_live_accuracy_threshold",
        "primer_feedback_labelled_total",
        "primer_drift_psi",
        "primer_ood_score_count",
        "primer_ood_score_bucket",
        "primer_payload_log_records_total",
        "primer_payload_log_dropped_total",
    }
)
"""Declared always, with samples once feedback, a reference profile or the payload log
gives them some (tests/service/evaluation shows each)."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def require_binary(name: str) -> str:
    """The path of a system binary; missing fails under CI (``CI=true``), else skips."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed: run `make deps-system` (Debian's prometheus "
            "package provides promtool and prometheus)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def scrape(client: httpx.Client) -> tuple[str, Samples]:
    """The /metrics text and its samples keyed by (sample name, label set)."""
    text = client.get("/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series_names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def declared_families(text: str) -> set[str]:
    """Metric families named by ``# TYPE`` lines (declared, with or without samples)."""
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


# ----- PromQL ------------------------------------------------------------------------------
_GRAFANA_VARS = re.compile(r"\$__(?:rate_interval|interval|range)|\$\{[^}]*\}|\$\w+")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_IDENT = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
        "Inf",
        "NaN",
        "atan2",
    }
)
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values`` query) selects.

    Grafana variables are replaced first; then strings, label matchers, range selectors,
    grouping clauses and offsets are cut away, and the identifiers left that are neither
    keywords nor function calls are metric names.
    """
    label_values = _LABEL_VALUES.match(expr)
    if label_values:
        return {label_values.group(1)}
    text = _GRAFANA_VARS.sub("5m", expr)
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    text = _OFFSET.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        if match.group() in _KEYWORDS or rest.startswith("("):
            continue
        names.add(match.group())
    return names


def dashboard_queries(dashboard: dict) -> Iterable[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of a dashboard."""

    def panels(items: list[dict]) -> Iterable[dict]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                query.get("query", query) if isinstance(query, dict) else query,
            )


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables set for a plain Prometheus query."""
    expr = re.sub(r"\$__(?:rate_interval|interval|range)", "30s", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


# ----- payloads ----------------------------------------------------------------------------
def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def instances_for(client: httpx.Client, model: str, rows: int = 1) -> dict:
    """A TF Serving ``instances`` body of zeros matching the model's single input."""
    metadata = client.get(f"/v1/models/{model}/metadata").json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (spec,) = signature["inputs"].values()
    dims = [int(d["size"]) for d in spec["tensor_shape"]["dim"]][1:]
    return {"instances": np.zeros([rows, *dims], dtype=np.float32).tolist()}
