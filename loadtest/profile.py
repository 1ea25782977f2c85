"""The server CPU one small request costs, by stage: primer-serve under wrk, sampled by py-spy.

    .venv/bin/python -m loadtest.profile --body tfserving_json --seconds 15
    .venv/bin/python -m loadtest.profile --tree ../other-checkout   # the same for another tree

Serves the shipped mnist_dnn (from ``--tree``'s code, so two checkouts compare), drives one
body form at c=32 with wrk, and meanwhile samples every busy thread of the server with
py-spy (``--format raw``: collapsed stacks). The process's CPU time over the run (from
``/proc``) divided by the requests answered is the per-request budget; the stacks split it
into stages, each stack going to the first stage in ``STAGES`` whose pattern one of its
frames matches. Writes the table and the stacks to ``reports/``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from loadtest.peers import v2_json_body
from loadtest.processes import free_port, running
from loadtest.scenarios import ROOT, mnist_digit, serve_command, v2_binary_body, write_payloads
from loadtest.wrk import run_wrk

STAGES: tuple[tuple[str, str], ...] = (
    ("TF call (model, in the worker thread)", r"runtime\.py|tensorflow/|keras/"),
    ("logging", r"log_access|logging/__init__|logging_setup"),
    ("listeners (drift, feedback, shadow, payload log)", r"service/evaluation/|_tell"),
    ("metrics", r"prometheus_client|service/metrics\.py"),
    ("encoding (response)", r"encode|tensor_to_json|json_response|array_to_|orjson.*dumps"),
    ("JSON parsing", r"strict_json|parse_json|split_body"),
    (
        "validation and decoding (JSON → arrays, checks)",
        r"validate\.py|tensor_from_json|parse_predict_body|decode_rest_inputs|tensors\.py"
        r"|arrays\.py|requested_outputs|core_request",
    ),
    ("admission", r"\badmit\b"),
    ("batching (queue, concatenate, slice, futures)", r"batching\.py"),
    ("core and request scope", r"inference/core\.py|inference/request\.py|manager\.py"),
    (
        "HTTP (uvicorn, httptools, Starlette, middleware, adapter)",
        r"uvicorn|httptools|starlette|h11|transport/|protocols/",
    ),
    ("event loop, threads, other", r"."),
)
BODIES = ("tfserving_json", "v2_json", "v2_binary")


def _bodies(work: Path) -> dict[str, tuple[str, Path, str, dict[str, str]]]:
    """Body form → (path, body file, content type, headers)."""
    binary, header_length = v2_binary_body("image", mnist_digit())
    (work / "v2.bin").write_bytes(binary)
    infer = "/v2/models/mnist_dnn/infer"
    return {
        "tfserving_json": (
            "/v1/models/mnist_dnn:predict",
            write_payloads(work)["mnist_json"],
            "application/json",
            {},
        ),
        "v2_json": (infer, v2_json_body(work / "v2.json"), "application/json", {}),
        "v2_binary": (
            infer,
            work / "v2.bin",
            "application/octet-stream",
            {"Inference-Header-Content-Length": str(header_length)},
        ),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_of(stack: str) -> str:
    for stage, pattern in STAGES:
        if re.search(pattern, stack):
            return stage
    return STAGES[-1][0]


IDLE_LEAF = re.compile(r"_worker \(.*concurrent/futures/thread\.py:\d+\)$")
"""A model or preprocessing thread waiting for work: py-spy may count it busy; it is not."""


def split_stacks(raw: str) -> Counter[str]:
    """Samples per stage of py-spy's collapsed stacks (``frame;frame;... count`` lines);
    an idle worker thread's samples are left out."""
    stages: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and not IDLE_LEAF.search(stack):
            stages[stage_of(stack)] += int(count)
    return stages


def profile(args: argparse.Namespace) -> str:
    """Run the server under load and py-spy; the stage table as Markdown."""
    tree = Path(args.tree).resolve()
    with tempfile.TemporaryDirectory(prefix="primer-profile-") as tmp:
        work = Path(tmp)
        (work / "models").symlink_to(ROOT / "models")
        config = work / "server.yaml"
        config.write_text("batching: {max_queue_size: 1024}\n")
        rest, grpc = free_port(), free_port()
        command = serve_command(work / "models", rest, grpc, config)
        env = {"PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
        path, body, content_type, headers = _bodies(work)[args.body]
        url = f"http://127.0.0.1:{rest}{path}"
        with running(command, rest, env=env) as server:
            run_wrk(
                url,
                body,
                concurrency=args.concurrency,
                seconds=2,
                content_type=content_type,
                headers=headers,
            )  # warm
            stacks = work / "stacks.txt"
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                 str(server.pid), "--format", "raw", "--rate", str(args.rate), "--nonblocking",
                 "--threads", "--duration", str(int(args.seconds)), "--output", str(stacks)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            started = cpu_seconds(server.pid)
            result = run_wrk(url, body, concurrency=args.concurrency, seconds=args.seconds,
                             content_type=content_type, headers=headers)  # fmt: skip
            used = cpu_seconds(server.pid) - started
            spy.wait(timeout=120)
            raw = stacks.read_text() if stacks.exists() else ""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".stacks.txt").write_text(raw)
    stages = split_stacks(raw)
    total = sum(stages.values()) or 1
    per_request_us = used / max(1, result.requests) * 1e6
    lines = [
        f"{args.body} at c={args.concurrency}, {result.requests_per_s:.0f} req/s, "
        f"{result.errors} errors, server CPU {used:.2f} s for {result.requests} requests = "
        f"**{per_request_us:.0f} µs per request** ({total} samples)",
        "",
        "| stage | share of samples | µs per request |",
        "| --- | --- | --- |",
    ]
    for stage, _ in STAGES:
        share = stages.get(stage, 0) / total
        lines.append(f"| {stage} | {share:.1%} | {share * per_request_us:.0f} |")
    table = "\n".join(lines)
    out.write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(ROOT), help="the checkout whose code serves")
    parser.add_argument("--body", choices=BODIES, default="tfserving_json")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", default=str(ROOT / "reports" / "profile.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(profile(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
