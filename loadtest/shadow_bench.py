"""Shadow cost: the primary's p99 at c=32 with and without a shadow, in one run.

Serves the shipped mnist_dnn as versions 1 (primary, pinned by ``traffic``) and 2 (the same
SavedModel, so a mirror costs a full inference) and alternates rounds without and with
``shadow: {version: 2}`` (applied by SIGHUP reload, no restart), closed-loop gRPC Predict at
c=32 for ``--seconds`` each, after an unmeasured warm-up. Prints each round (with the
mirrors done and shed in the shadow rounds: shadow work yields to the primary,
``service.inference.side_work``), the per-round p99 ratios (shadow / the no-shadow round
before it) and their median; the issue's target is <= 1.1. Bounded: rounds x 2 x (seconds +
2 s).

    python -m loadtest.shadow_bench --rounds 3 --seconds 6 [--concurrency 4]
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
from loadtest.processes import cpu_seconds, free_port, running, samples
from loadtest.scenarios import ROOT, mnist_digit

CONFIG = """models:
  mnist_dnn:
    version_policy: all
    traffic: {"1": 1}
%s"""


def _outcomes(metrics_url: str) -> dict[str, float]:
    """Mirrors so far by outcome (ok, error, dropped), over every pair."""
    outcomes: dict[str, float] = {}
    for sample in samples(metrics_url, "primer_shadow_requests"):
        if sample.name.endswith("_total"):
            key = sample.labels["outcome"]
            outcomes[key] = outcomes.get(key, 0.0) + sample.value
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
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
        mirrors: list[dict[str, float]] = []
        cpu_per_request: dict[bool, list[float]] = {False: [], True: []}
        with running(command, port) as server:
            metrics = f"http://127.0.0.1:{port}/metrics"
            target, seconds = f"127.0.0.1:{grpc_port}", args.seconds
            run_grpc_load(target, "tfserving", body, concurrency=args.concurrency, seconds=2)
            for _ in range(args.rounds):
                for shadow in (False, True):
                    config.write_text(CONFIG % ("    shadow: {version: 2}\n" if shadow else ""))
                    server.send_signal(signal.SIGHUP)
                    time.sleep(1.0)
                    before, cpu = _outcomes(metrics), cpu_seconds(server.pid)
                    result = run_grpc_load(
                        target, "tfserving", body, concurrency=args.concurrency, seconds=seconds
                    )
                    cpu_ms = (cpu_seconds(server.pid) - cpu) * 1e3 / max(result.requests, 1)
                    done = {k: v - before.get(k, 0.0) for k, v in _outcomes(metrics).items()}
                    p99[shadow].append(result.p99_ms)
                    cpu_per_request[shadow].append(cpu_ms)
                    if shadow:
                        mirrors.append(done)
                    print(
                        f"shadow={'on ' if shadow else 'off'} {result.requests_per_s:8.1f} req/s "
                        f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms "
                        f"errors {result.errors} server CPU {cpu_ms:.3f} ms/request"
                        + (f" mirrors {done}" if shadow else ""),
                        flush=True,
                    )
        ratios = [on / off for on, off in zip(p99[True], p99[False], strict=True)]
        print(f"concurrency {args.concurrency}: p99 ratios shadow/off per round: "
              f"{[round(r, 3) for r in ratios]}, median {statistics.median(ratios):.3f} "
              "(target <= 1.1)")  # fmt: skip
        off_cpu, on_cpu = cpu_per_request[False], cpu_per_request[True]
        cpu = [on / off for on, off in zip(on_cpu, off_cpu, strict=True)]
        print(f"server CPU per request, shadow/off per round: {[round(r, 3) for r in cpu]}, "
              f"median {statistics.median(cpu):.3f}")  # fmt: skip
        ok = sum(m.get("ok", 0.0) for m in mirrors)
        offered = sum(sum(m.values()) for m in mirrors)
        print(f"mirrors in the shadow rounds: {ok:.0f} of {offered:.0f} ran "
              f"({ok / max(offered, 1):.1%}), the rest shed: {mirrors}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
