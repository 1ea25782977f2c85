"""p99 with the payload log on against off, at the default sample rate and at 1.0, in one run.

Three servers on the shipped models (log off; log at the documented default rate; log at
``--rate``, 1.0 unless told) take interleaved wrk rounds at the same concurrency (off,
default, full, off, ...), after one unmeasured warm-up round each. The report: each round's
p99, the per-round ratios on/off and their medians (the issue's bar: <= 1.1), and, per
logging server, the records written and dropped and the side work done and shed (the log
yields to the primary under load: ``service.inference.side_work``). Bounded: ``--rounds``
x 3 x ``--seconds`` of load plus the warm-ups.

    python -m loadtest.payload_log_bench --rounds 3 --seconds 6 --concurrency 32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from loadtest.processes import cpu_seconds, free_port, running, samples
from loadtest.wrk import run_wrk
from service.config import EvaluationSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_NPZ = REPO_ROOT.parent / "shared" / "data" / "mnist.npz"
DEFAULT_RATE = EvaluationSettings().payload_log_rate
ARMS = ("off", "default", "full")
"""Log off; on at the documented default rate; on at ``--rate``."""


def _server(port: int) -> list[str]:
    return [
        sys.executable, "-m", "service", "--model-base-path", str(REPO_ROOT / "models"),
        "--rest-port", str(port), "--grpc-port", str(free_port()), "--host", "127.0.0.1",
        "--log-level", "WARNING",
    ]  # fmt: skip


def _log_env(folder: Path, rate: float | None) -> dict[str, str]:
    env = {"PRIMER_EVALUATION__PAYLOAD_LOG_DIR": str(folder)}
    if rate is not None:
        env["PRIMER_EVALUATION__PAYLOAD_LOG_RATE"] = str(rate)
    return env


def side_counts(port: int) -> dict[str, float]:
    """Payload-log records written and dropped, and side work done and shed, by kind."""
    url = f"http://127.0.0.1:{port}/metrics"
    counts: dict[str, float] = {}
    for family, key in (
        ("primer_payload_log_records", lambda labels: "written"),
        ("primer_payload_log_dropped", lambda labels: f"dropped_{labels['reason']}"),
        ("primer_side_work_items", lambda labels: f"{labels['kind']}_{labels['outcome']}"),
    ):
        for sample in samples(url, family):
            if sample.name.endswith("_total"):
                name = key(sample.labels)
                counts[name] = counts.get(name, 0.0) + sample.value
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1.0, help="the full arm's sample rate")
    args = parser.parse_args(argv)
    digit = np.load(MNIST_NPZ)["x_test"][:1].astype(np.float32) / 255.0
    with tempfile.TemporaryDirectory() as scratch:
        body = Path(scratch) / "body.json"
        body.write_text(json.dumps({"instances": digit.tolist()}))
        ports = {name: free_port() for name in ARMS}
        envs = {
            "off": {},
            "default": _log_env(Path(scratch) / "log-default", None),
            "full": _log_env(Path(scratch) / "log-full", args.rate),
        }
        p99: dict[str, list[float]] = {name: [] for name in ARMS}
        cpu_ms: dict[str, list[float]] = {name: [] for name in ARMS}
        with contextlib.ExitStack() as servers:
            pids = {
                name: servers.enter_context(
                    running(_server(ports[name]), ports[name], env=envs[name])
                ).pid
                for name in ARMS
            }
            urls = {
                n: f"http://127.0.0.1:{p}/v1/models/mnist_dnn:predict" for n, p in ports.items()
            }
            for url in urls.values():  # warm-up, not measured
                run_wrk(url, body, concurrency=args.concurrency, seconds=2)
            before = {name: side_counts(ports[name]) for name in ARMS[1:]}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    cpu = cpu_seconds(pids[name])
                    result = run_wrk(url, body, concurrency=args.concurrency, seconds=args.seconds)
                    cpu_ms[name].append((cpu_seconds(pids[name]) - cpu) * 1e3 / result.requests)
                    p99[name].append(result.p99_ms)
                    print(
                        f"{name:>7}: p99 {result.p99_ms:7.2f} ms, {result.requests_per_s:6.0f} "
                        f"req/s, errors {result.errors}, "
                        f"server CPU {cpu_ms[name][-1]:.3f} ms/request",
                        flush=True,
                    )
            after = {name: side_counts(ports[name]) for name in ARMS[1:]}
    report: dict[str, object] = {"concurrency": args.concurrency, "p99_ms": p99}
    for name in ARMS[1:]:
        ratios = [on / off for on, off in zip(p99[name], p99["off"], strict=True)]
        report[name] = {
            "rate": DEFAULT_RATE if name == "default" else args.rate,
            "ratios_on_off": [round(r, 3) for r in ratios],
            "median_ratio": round(statistics.median(ratios), 3),
            "cpu_per_request_on_off": [
                round(on / off, 3) for on, off in zip(cpu_ms[name], cpu_ms["off"], strict=True)
            ],
            "measured_rounds": {
                key: after[name].get(key, 0) - before[name].get(key, 0) for key in after[name]
            },
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
