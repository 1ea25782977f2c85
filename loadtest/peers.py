"""``make bench-peers``: primer-serve against Triton (through PyTriton) and the naive FastAPI
baseline, side by side, on the shipped mnist_dnn.

Every server runs at once; interleaved rounds at the same concurrency drive each body form
for a few seconds in turn, each round starting one scenario further along, so all of them
see the same drift of this machine. Reported: each scenario's median req/s and p99, and per
round its ratio to Triton with the same body form (TF Serving JSON and v2 JSON against
Triton's v2 JSON; v2 binary against Triton's v2 binary), with the median of those ratios.
Triton runs in its own virtualenv (``--peer-python``; PyTriton 0.7 needs numpy < 2), set
up by ``make bench-peers`` from ``loadtest/peers-requirements.txt``.

``--baseline-tree DIR`` also serves primer-serve from another checkout (e.g. ``main``) beside
this one, and its three body forms join the rounds as ``before_*``: each of this tree's
scenarios then also has per-round ratios to its ``before_*`` twin (after ÷ before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.charts import peers_chart
from loadtest.processes import free_port, running
from loadtest.reports import write_report
from loadtest.scenarios import (
    ROOT,
    mnist_digit,
    naive_command,
    serve_command,
    v2_binary_body,
    write_payloads,
)
from loadtest.stages import head_to_head
from loadtest.wrk import run_wrk

BASELINE_OF = {
    "primer_tfserving_json": "triton_v2_json",
    "primer_v2_json": "triton_v2_json",
    "primer_v2_binary": "triton_v2_binary",
    "naive_tfserving_json": "triton_v2_json",
}
"""Each scenario → the Triton scenario with the same body form that it is compared with."""


@dataclass(frozen=True)
class Peer:
    """One server's endpoint for one body form."""

    name: str
    url: str
    body: Path
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def run(self, concurrency: int, seconds: float) -> dict[str, Any]:
        result = run_wrk(
            self.url,
            self.body,
            concurrency=concurrency,
            seconds=seconds,
            content_type=self.content_type,
            headers=dict(self.headers),
        )
        return result.to_dict()


def v2_json_body(path: Path) -> Path:
    """The mnist digit as a KServe v2 JSON request (the same values as the TF Serving JSON)."""
    digit = np.round(mnist_digit(), 4)
    body = {
        "inputs": [
            {
                "name": "image",
                "shape": list(digit.shape),
                "datatype": "FP32",
                "data": digit.reshape(-1).tolist(),
            }
        ]
    }
    path.write_text(json.dumps(body))
    return path


def triton_command(
    peer_python: str, version_dir: Path, ports: tuple[int, int, int], max_queue_delay_us: int
) -> tuple[list[str], dict[str, str]]:
    http, grpc, metrics = ports
    command = [
        peer_python,
        str(ROOT / "loadtest" / "triton_peer.py"),
        "--model-dir",
        str(version_dir),
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        "--max-queue-delay-us",
        str(max_queue_delay_us),
    ]
    libdir = subprocess.run(
        [peer_python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip() or sysconfig.get_config_var("LIBDIR")
    return command, {"LD_LIBRARY_PATH": libdir, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _ratios(rates: list[float], base: list[float]) -> list[float]:
    return [round(r / b, 3) if b else 0.0 for r, b in zip(rates, base, strict=True)]


def compare(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median req/s and p99 per scenario, and per-round ratios to its Triton baseline (and,
    with a ``before_*`` twin, to that)."""
    comparison = {}
    for name, runs in rows.items():
        rates = [row["requests_per_s"] for row in runs]
        entry: dict[str, Any] = {
            "requests_per_s": rates,
            "median_requests_per_s": round(statistics.median(rates), 1),
            "median_p99_ms": round(statistics.median(row["p99_ms"] for row in runs), 2),
            "errors": sum(row["errors"] for row in runs),
        }
        baseline = BASELINE_OF.get(name.replace("before_", "primer_", 1))
        if baseline:
            ratios = _ratios(rates, [row["requests_per_s"] for row in rows[baseline]])
            entry.update(
                {
                    "baseline": baseline,
                    "ratios": ratios,
                    "median_ratio": round(statistics.median(ratios), 3),
                }
            )
        before = name.replace("primer_", "before_", 1)
        if name.startswith("primer_") and before in rows:
            ratios = _ratios(rates, [row["requests_per_s"] for row in rows[before]])
            entry.update(
                {"ratios_to_before": ratios, "median_ratio_to_before": statistics.median(ratios)}
            )
        comparison[name] = entry
    return comparison


@dataclass(frozen=True)
class Server:
    """A server process of the comparison."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str]
    health_path: str = "/v2/health/ready"


def _peers(work: Path, primer: int, triton: int, naive: int, before: int | None) -> list[Peer]:
    """Every scenario: the three body forms against the servers that take them."""
    binary, header_length = v2_binary_body("image", mnist_digit())
    (work / "v2.bin").write_bytes(binary)
    tfs_json, v2_json = write_payloads(work)["mnist_json"], v2_json_body(work / "v2.json")
    headers = (("Inference-Header-Content-Length", str(header_length)),)
    octets = "application/octet-stream"
    predict = "/v1/models/mnist_dnn:predict"
    infer = "/v2/models/mnist_dnn/infer"
    base = "http://127.0.0.1"
    servers = [("primer", primer)] + ([("before", before)] if before is not None else [])
    binary_body = work / "v2.bin"
    return [
        *(
            peer
            for prefix, port in servers
            for peer in (
                Peer(f"{prefix}_tfserving_json", f"{base}:{port}{predict}", tfs_json),
                Peer(f"{prefix}_v2_json", f"{base}:{port}{infer}", v2_json),
                Peer(f"{prefix}_v2_binary", f"{base}:{port}{infer}", binary_body, octets, headers),
            )
        ),
        Peer("triton_v2_json", f"{base}:{triton}{infer}", v2_json),
        Peer("triton_v2_binary", f"{base}:{triton}{infer}", work / "v2.bin", octets, headers),
        Peer("naive_tfserving_json", f"{base}:{naive}{predict}", tfs_json),
    ]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start every server, run the interleaved rounds, return the comparison."""
    model = Path(args.mnist_model)
    version_dir = max((p for p in model.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    with tempfile.TemporaryDirectory(prefix="primer-peers-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        (work / "models").mkdir()
        shutil.copytree(model, work / "models" / "mnist_dnn")  # a link would lead outside
        config = work / "server.yaml"
        config.write_text("batching: {max_queue_size: 1024}\n")
        primer, naive = (free_port(), free_port()), free_port()
        before = (free_port(), free_port()) if args.baseline_tree else None
        triton = (free_port(), free_port(), free_port())
        triton_cmd, triton_env = triton_command(
            args.peer_python, version_dir, triton, args.triton_queue_delay_us
        )
        naive_cmd, naive_env = naive_command(version_dir, naive)
        servers = [
            # this checkout's code, whatever the venv's editable install points at
            Server(
                "primer-serve",
                serve_command(work / "models", *primer, config),
                primer[0],
                {"PYTHONPATH": str(ROOT)},
            ),
            Server("triton (pytriton)", triton_cmd, triton[0], triton_env),
            Server("naive FastAPI", naive_cmd, naive, naive_env, "/docs"),
        ]
        if before is not None:
            servers.append(
                Server(
                    f"primer-serve from {args.baseline_tree}",
                    serve_command(work / "models", *before, config),
                    before[0],
                    {"PYTHONPATH": str(Path(args.baseline_tree).resolve())},
                )
            )
        for server in servers:
            print(f"starting {server.name} ...", flush=True)
            stack.enter_context(
                running(
                    server.command,
                    server.port,
                    env=server.env,
                    health_path=server.health_path,
                    timeout=300,
                )
            )
        peers = _peers(work, primer[0], triton[0], naive, before and before[0])
        for peer in peers:  # warm every path once
            peer.run(args.concurrency, 1)
        print(
            f"{args.rounds} interleaved rounds of {args.seconds:g} s per scenario at "
            f"c={args.concurrency} ...",
            flush=True,
        )
        loads = {p.name: (lambda p=p: p.run(args.concurrency, args.seconds)) for p in peers}
        return compare(head_to_head(loads, args.rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario per round")
    parser.add_argument("--triton-queue-delay-us", type=int, default=500)
    parser.add_argument("--mnist-model", default=str(ROOT / "models" / "mnist_dnn"))
    parser.add_argument("--out", default=str(ROOT / "reports" / "peers.json"))
    parser.add_argument(
        "--baseline-tree",
        default=None,
        help="also serve primer-serve from this checkout's code (before_* scenarios)",
    )
    args = parser.parse_args(argv)
    if not Path(args.peer_python).exists():
        sys.exit(f"{args.peer_python} not found: run `make bench-peers` (it sets up the peer)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    comparison = measure(args)
    for name, entry in comparison.items():
        ratio = (
            f"ratio to {entry['baseline']} {entry['median_ratio']:.3f} (rounds {entry['ratios']})"
            if "baseline" in entry
            else ""
        )
        if "ratios_to_before" in entry:
            ratio += (
                f"; to before {entry['median_ratio_to_before']:.3f} "
                f"(rounds {entry['ratios_to_before']})"
            )
        print(
            f"  {name:22s} median {entry['median_requests_per_s']:8.1f} req/s  p99 "
            f"{entry['median_p99_ms']:7.2f} ms  errors {entry['errors']}  {ratio}",
            flush=True,
        )
    report = {
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "triton_max_queue_delay_us": args.triton_queue_delay_us,
        "baseline_tree": args.baseline_tree,
        "scenarios": comparison,
    }
    out = write_report(args.out, report)
    peers_chart(report, out.with_suffix(".png"))
    print(f"report written to {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
