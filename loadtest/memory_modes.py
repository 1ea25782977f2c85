"""Served ResNet50 throughput under several memory settings, measured in interleaved rounds.

Each variant is a ``primer-serve`` of its own (its environment and settings), all started
first and idle while another is measured. Every round drives each variant in turn with wrk
(JPEG as b64, closed loop), starting one variant later than the round before, so a load
that other processes put on the machine spreads over all variants alike. Reported:
requests/s per round, each variant's per-round ratio to the first variant and the median
ratio, the minor page faults per request of each round, and each server's RSS after its
last round.

    python -m loadtest.memory_modes --rounds 4 \\
        --variant 'throughput={}' \\
        --variant 'system-malloc={"env": {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1"}}' \\
        --variant 'frugal={"config": {"memory_mode": "frugal"}}'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtest.processes import free_port, running
from loadtest.reports import write_report
from loadtest.scenarios import write_payloads
from loadtest.wrk import run_wrk

MODEL = "resnet50"
BATCHING = {"max_batch_size": 8, "batch_timeout_ms": 20.0, "max_queue_size": 256}


def export_resnet50(repo: Path) -> None:
    """A random-init ResNet50 as ``repo/resnet50/1``."""
    import keras

    from contract.model_card import ImageContract
    from training.export import export_model
    from training.models.architectures import resnet50

    keras.utils.set_random_seed(0)
    export_model(
        resnet50((224, 224, 3), 1000),
        model_dir=repo,
        name=MODEL,
        image=ImageContract(color_mode="rgb", height=224, width=224, resample="bilinear"),
        labels=[f"class_{i}" for i in range(1000)],
        provenance={"architecture": MODEL, "dataset": "random-init"},
    )


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name={"env": {...}, "config": {...}}``: a variant's name, environment and settings."""
    name, _, spec = text.partition("=")
    value = json.loads(spec or "{}")
    if not name or not isinstance(value, dict) or set(value) - {"env", "config"}:
        raise argparse.ArgumentTypeError(f'expected name={{"env": ..., "config": ...}}: {text}')
    return name, value


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) >> 10
    return 0


def minor_faults(pid: int) -> int:
    """The process's minor page faults so far (``/proc/<pid>/stat``, field 10)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def serve(
    stack: contextlib.ExitStack, repo: Path, work: Path, name: str, spec: dict[str, Any]
) -> tuple[str, int]:
    """Start one variant's server; its predict URL and pid."""
    config = work / f"{name}.json"
    config.write_text(
        json.dumps({**spec.get("config", {}), "models": {MODEL: {"batching": BATCHING}}})
    )
    rest = free_port()
    command = [
        str(Path(sys.executable).parent / "primer-serve"),
        *("--model-base-path", str(repo), "--host", "127.0.0.1"),
        *("--rest-port", str(rest), "--grpc-port", str(free_port())),
        *("--config", str(config), "--log-level", "WARNING"),
    ]
    process = stack.enter_context(running(command, rest, env=spec.get("env", {}), timeout=600))
    return f"http://127.0.0.1:{rest}/v1/models/{MODEL}:predict", process.pid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=parse_variant, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repo", type=Path, help="a repository holding resnet50 (else exported)")
    parser.add_argument("--out", type=Path, default=Path("reports/memory_modes.json"))
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="primer-modes-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        work = Path(scratch)
        repo = args.repo
        if repo is None:
            repo = work / "models"
            export_resnet50(repo)
        body = write_payloads(work)["resnet_jpeg"]
        servers = {name: serve(stack, repo, work, name, spec) for name, spec in args.variant}
        for url, _ in servers.values():  # one short warm round, not counted
            run_wrk(url, body, concurrency=args.concurrency, seconds=3)
        rates: dict[str, list[float]] = {name: [] for name in servers}
        faults: dict[str, list[int]] = {name: [] for name in servers}
        names = list(servers)
        for round_ in range(args.rounds):  # each round starts one variant later
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                url, pid = servers[name]
                before = minor_faults(pid)
                result = run_wrk(url, body, concurrency=args.concurrency, seconds=args.seconds)
                rates[name].append(round(result.requests_per_s, 2))
                faults[name].append(round((minor_faults(pid) - before) / max(result.requests, 1)))
                print(
                    f"round {round_ + 1} {name}: {rates[name][-1]} req/s, {faults[name][-1]} page"
                    f" faults per request ({result.errors} errors)",
                    flush=True,
                )
        rss = {name: rss_mib(pid) for name, (_, pid) in servers.items()}
    base = next(iter(rates))
    report = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "variants": dict(args.variant),
        "requests_per_s": rates,
        "ratio_to_first": {
            name: [round(a / b, 3) for a, b in zip(values, rates[base], strict=True)]
            for name, values in rates.items()
        },
        "rss_mib": rss,
        "page_faults_per_request": faults,
    }
    report["median_ratio"] = {n: statistics.median(r) for n, r in report["ratio_to_first"].items()}
    write_report(args.out, report)
    print(
        json.dumps(
            {
                k: report[k]
                for k in ("ratio_to_first", "median_ratio", "rss_mib", "page_faults_per_request")
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    shutil.which("wrk") or sys.exit("wrk is not installed: run `make deps-system`")
    main()
