"""The default connection caps, derived from the process's file-descriptor limit.

Every connection costs a descriptor. Once descriptors run out, ``accept`` fails and the
server can no longer take any connection, nor open a model file. The default caps keep
``RESERVED_DESCRIPTORS`` for the process itself (model files, TensorFlow, logs, pipes) and
split the rest evenly between the REST and the gRPC port, so together they can never exhaust
the limit: with this machine's soft limit of 20,000 each port holds at most 9,872.
"""

from __future__ import annotations

import resource

RESERVED_DESCRIPTORS = 256
"""Descriptors kept for the process's own files, whatever the connections take."""
MIN_CAP = 16
"""The cap is never below this, even under a tiny descriptor limit."""


def derived_connection_cap(soft_limit: int | None = None) -> int:
    """Connections one port may hold: half of the descriptors left after the reserve.

    Args:
        soft_limit: the descriptor limit to derive from; ``RLIMIT_NOFILE``'s soft limit when
            None (an unlimited limit counts as 1,048,576).
    """
    if soft_limit is None:
        soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        soft_limit = 1 << 20
    return max(MIN_CAP, (soft_limit - RESERVED_DESCRIPTORS) // 2)


def connection_cap(configured: int | None) -> int:
    """The configured cap, or the derived one when unset."""
    return configured if configured is not None else derived_connection_cap()
