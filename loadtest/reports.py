"""Where the benchmarks' JSON reports go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: str | Path, report: dict[str, Any]) -> Path:
    """Write ``report`` as indented JSON to ``out`` (its folder made if missing); the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path
