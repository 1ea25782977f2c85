"""PNG charts of the bench reports, because people would rather look than read.

Drawn with matplotlib's object API (no pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def bench_chart(report: dict[str, Any], path: Path) -> Path:
    """``make bench``: req/s and p99 against concurrency, one line per served scenario."""
    figure = _figure(11, 4.5)
    rate, tail = figure.subplots(1, 2)
    for name, runs in report["served"].items():
        concurrency = [run["concurrency"] for run in runs]
        rate.plot(concurrency, [run["requests_per_s"] for run in runs], marker="o", label=name)
        tail.plot(concurrency, [run["p99_ms"] for run in runs], marker="o", label=name)
    for axes, label in ((rate, "requests/s"), (tail, "p99 latency (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrency (closed-loop clients)")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
    tail.set_yscale("log")
    rate.legend(fontsize=7)
    figure.suptitle("make bench: each protocol and payload by concurrency")
    figure.savefig(path, dpi=110)
    return path


def peers_chart(report: dict[str, Any], path: Path) -> Path:
    """``make bench-peers``: each server's median req/s, with every round's figure as a dot."""
    figure = _figure(10, 4.5)
    axes = figure.subplots()
    names = list(report["scenarios"])
    for index, name in enumerate(names):
        entry = report["scenarios"][name]
        prefix = name.split("_", 1)[0]
        color = {"primer": "tab:blue", "before": "tab:orange", "triton": "tab:green"}.get(
            prefix, "tab:gray"
        )
        axes.bar(index, entry["median_requests_per_s"], color=color, alpha=0.6)
        axes.plot([index] * len(entry["requests_per_s"]), entry["requests_per_s"], "k.")
        if "median_ratio" in entry:
            axes.annotate(
                f"{entry['median_ratio']:.2f}x {entry['baseline']}",
                (index, entry["median_requests_per_s"]),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    axes.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("requests/s (bar: median; dots: rounds)")
    axes.set_title(
        f"mnist_dnn at c={report['concurrency']}, {report['rounds']} interleaved "
        f"rounds of {report['seconds']:g} s"
    )
    axes.grid(True, axis="y", alpha=0.3)
    figure.savefig(path, dpi=110)
    return path
