"""How many CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota.

The gRPC front process pays off only with a core to spare beside the event loop
(docs/performance.md, session 9). A container's ``cpu.max`` quota (Kubernetes CPU limits)
can give less than the CPUs the process sees, so both are read.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
FRONT_MIN_CPUS = 2.0
"""Fewest CPUs at which ``grpc_front_process: auto`` runs the gRPC front."""


def cgroup_cpu_limit(cpu_max: Path | None = None) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``;
    ``CGROUP_CPU_MAX`` when not given); None when there is no quota or no such file."""
    try:
        quota, period = (cpu_max or CGROUP_CPU_MAX).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus(cpu_max: Path | None = None) -> float:
    """CPUs this process may run on, capped by its cgroup's quota."""
    cpus = float(len(os.sched_getaffinity(0)))
    limit = cgroup_cpu_limit(cpu_max)
    return cpus if limit is None else min(cpus, limit)


def front_pays_off(cpu_max: Path | None = None) -> bool:
    """Whether ``grpc_front_process: auto`` should run the gRPC front."""
    return available_cpus(cpu_max) >= FRONT_MIN_CPUS
