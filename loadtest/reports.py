"""Where the benchmarks' JSON reports go."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(out: str | Path, report: dict[str, Any]) -> Path:
    """Write ``report`` as indented JSON to ``out`` (its folder made if missing); the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path


def measure_and_report(
    measure: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace
) -> int:
    """Run an A/B script's ``measure``, print its ``summary`` and write the report to
    ``args.out``; the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = measure(args)
    print(json.dumps(report["summary"], indent=1))
    print(f"report written to {write_report(args.out, report)}")
    return 0
