"""Two checkouts' primer-serve side by side with the REST floor, in interleaved rounds.

    .venv/bin/python -m loadtest.ab_trees --before ../main --rounds 5

Serves the shipped mnist_dnn from this checkout's code ("after") and from ``--before``'s,
beside the protocol floor (``loadtest.floor_server``: the same uvicorn stack answering at
once), and drives TF Serving REST JSON at each concurrency in interleaved rounds. Per round:
each tree's req/s as a fraction of the floor's (the figure ``make bench`` reports at the top
concurrency, here measured within seconds of the floor) and, at c=1, p50 latency, with
after ÷ before. Writes ``reports/ab_trees.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from loadtest.peers import Peer
from loadtest.processes import free_port, running
from loadtest.reports import measure_and_report
from loadtest.scenarios import ROOT, serve_command, write_payloads
from loadtest.stages import head_to_head


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per round: fraction of the floor for each tree, p50s, and after ÷ before."""
    summary: dict[str, Any] = {}
    for tree in ("before", "after"):
        fractions = [
            round(r["requests_per_s"] / f["requests_per_s"], 4) if f["requests_per_s"] else 0.0
            for r, f in zip(rows[f"{tree}_c32"], rows["floor_c32"], strict=True)
        ]
        summary[tree] = {
            "fraction_of_floor_c32": fractions,
            "median_fraction_of_floor_c32": _median(fractions),
            "requests_per_s_c32": [r["requests_per_s"] for r in rows[f"{tree}_c32"]],
            "p50_ms_c1": [r["p50_ms"] for r in rows[f"{tree}_c1"]],
            "median_p50_ms_c1": _median([r["p50_ms"] for r in rows[f"{tree}_c1"]]),
        }
    summary["floor_requests_per_s_c32"] = [r["requests_per_s"] for r in rows["floor_c32"]]
    throughput = [
        round(a["requests_per_s"] / b["requests_per_s"], 3)
        for a, b in zip(rows["after_c32"], rows["before_c32"], strict=True)
    ]
    p50 = [
        round(a["p50_ms"] / b["p50_ms"], 3)
        for a, b in zip(rows["after_c1"], rows["before_c1"], strict=True)
    ]
    summary["after_over_before"] = {
        "requests_per_s_c32": throughput,
        "median_requests_per_s_c32": _median(throughput),
        "p50_c1": p50,
        "median_p50_c1": _median(p50),
    }
    return summary


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="primer-ab-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        config = work / "server.yaml"
        config.write_text("batching: {max_queue_size: 1024}\n")
        body = write_payloads(work)["mnist_json"]
        ports = {}
        for tree, code in (("after", ROOT), ("before", Path(args.before).resolve())):
            rest, grpc = free_port(), free_port()
            command = serve_command(Path(args.models).resolve(), rest, grpc, config)
            print(f"starting primer-serve ({tree}: {code}) ...", flush=True)
            stack.enter_context(running(command, rest, env={"PYTHONPATH": str(code)}))
            ports[tree] = rest
        rest, grpc = free_port(), free_port()
        floor = [sys.executable, "-m", "loadtest.floor_server", "--rest-port", str(rest)]
        stack.enter_context(
            running([*floor, "--grpc-port", str(grpc)], rest, health_path="/", timeout=60)
        )
        predict = "/v1/models/mnist_dnn:predict"
        peers = {
            f"{tree}_c{c}": Peer(f"{tree}_c{c}", f"http://127.0.0.1:{port}{predict}", body)
            for c in (32, 1)
            for tree, port in (*ports.items(), ("floor", rest))
            if not (tree == "floor" and c == 1)
        }
        for peer in peers.values():  # warm every path once
            peer.run(1, 1)
        concurrency = {name: int(name.rsplit("c", 1)[1]) for name in peers}
        loads = {
            name: (lambda p=peer, c=concurrency[name]: p.run(c, args.seconds))
            for name, peer in peers.items()
        }
        print(f"{args.rounds} interleaved rounds of {args.seconds:g} s ...", flush=True)
        rows = head_to_head(loads, args.rounds)
    return {"rows": rows, "summary": summarize(rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the other checkout (e.g. main's)")
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", default=str(ROOT / "reports" / "ab_trees.json"))
    return measure_and_report(measure, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
