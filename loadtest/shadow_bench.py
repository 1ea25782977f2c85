"""Shadow cost: the primary's p99 at c=32 with and without a shadow, in one run.

Serves the shipped mnist_dnn as versions 1 (primary, pinned by ``traffic``) and 2 (the same
SavedModel, so a mirror costs a full inference) and alternates rounds without and with
``shadow: {version: 2}`` (applied by SIGHUP reload, no restart), closed-loop gRPC Predict at
c=32 for ``--seconds`` each. Prints each round and the p99 ratio (shadow / no shadow, medians
over rounds); the issue's target is <= 1.1. Bounded: rounds x 2 x (seconds + warm-up).

    python -m loadtest.shadow_bench --rounds 2 --seconds 8
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loadtest.grpc_clients import predict_request_bytes, run_grpc_load
from loadtest.processes import free_port, running, samples
from loadtest.scenarios import ROOT, mnist_digit

CONFIG = """models:
  mnist_dnn:
    version_policy: all
    traffic: {"1": 1}
%s"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        repo = Path(workdir) / "models" / "mnist_dnn"
        source = next((ROOT / "models" / "mnist_dnn").iterdir())
        for version in ("1", "2"):
            shutil.copytree(source, repo / version)
        config = Path(workdir) / "primer.yaml"
        config.write_text(CONFIG % "")
        port, grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "service", "--model-base-path", str(repo.parent)]
        command += ["--rest-port", str(port), "--grpc-port", str(grpc_port), "--host"]
        command += ["127.0.0.1", "--config", str(config), "--poll-interval-s", "0"]
        command += ["--log-level", "WARNING"]
        body = predict_request_bytes("mnist_dnn", "image", mnist_digit())
        p99: dict[bool, list[float]] = {False: [], True: []}
        with running(command, port) as server:
            for _ in range(args.rounds):
                for shadow in (False, True):
                    config.write_text(CONFIG % ("    shadow: {version: 2}\n" if shadow else ""))
                    server.send_signal(signal.SIGHUP)
                    time.sleep(1.0)
                    result = run_grpc_load(
                        f"127.0.0.1:{grpc_port}",
                        "tfserving",
                        body,
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                    )
                    p99[shadow].append(result.p99_ms)
                    print(
                        f"shadow={'on ' if shadow else 'off'} {result.requests_per_s:8.1f} req/s "
                        f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms "
                        f"errors {result.errors}",
                        flush=True,
                    )
            metrics = f"http://127.0.0.1:{port}/metrics"
            outcomes = {
                s.labels["outcome"]: s.value
                for s in samples(metrics, "primer_shadow_requests")
                if s.name.endswith("_total")
            }
        ratio = statistics.median(p99[True]) / statistics.median(p99[False])
        print(f"shadow mirrors by outcome: {outcomes}")
        print(f"p99 with shadow / without: {ratio:.2f} (target <= 1.1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
