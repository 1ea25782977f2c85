"""``--strategy``: which ``tf.distribute`` strategy trains, and this process's place in the cluster.

* ``default``: one device (``tf.distribute.get_strategy()``).
* ``mirrored``: ``MirroredStrategy`` over the local GPUs (the CPU when there are none).
* ``multi-worker``: ``MultiWorkerMirroredStrategy``, configured from ``TF_CONFIG`` as
  Kubernetes Jobs and Kubeflow's TFJob set it::

      {"cluster": {"worker": ["host0:port", "host1:port"]},
       "task": {"type": "worker", "index": 0}}

  Worker 0 is the chief (unless the cluster has a ``chief`` task): it alone exports and
  writes the backup; the others write to temporary paths and remove them.

:func:`read_cluster` checks ``TF_CONFIG`` without TensorFlow, so a malformed one, an index
out of range or an unknown task type is one clear line before anything starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")
TASK_TYPES = ("chief", "worker")
EXAMPLE = (
    '{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


class ClusterError(ValueError):
    """``TF_CONFIG`` is missing or does not describe this task."""


class PeerLostError(RuntimeError):
    """A collective failed because another worker died or restarted."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a training cluster.

    Attributes:
        task_type: ``chief`` or ``worker``.
        task_index: index of this task in its type's address list.
        workers: number of training processes (chief included).
        has_chief_task: whether the cluster has a ``chief`` task (else worker 0 is the chief).
    """

    task_type: str = "worker"
    task_index: int = 0
    workers: int = 1
    has_chief_task: bool = False

    @property
    def is_chief(self) -> bool:
        """Whether this task exports and writes the real backup."""
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.has_chief_task

    @property
    def name(self) -> str:
        """``worker 1`` etc., for log lines."""
        return f"{self.task_type} {self.task_index}"


def read_cluster(strategy: str, environ: Mapping[str, str] | None = None) -> Cluster:
    """This process's cluster for ``strategy``, from ``TF_CONFIG`` for ``multi-worker``.

    Raises:
        ClusterError: ``TF_CONFIG`` is missing, malformed, or its task is not in its cluster.
    """
    if strategy != "multi-worker":
        return Cluster()
    text = (environ if environ is not None else os.environ).get("TF_CONFIG", "")
    if not text.strip():
        raise ClusterError(f"--strategy multi-worker needs TF_CONFIG, e.g. {EXAMPLE}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterError(
            f"TF_CONFIG is not JSON ({exc.msg} at character {exc.pos}); expected e.g. {EXAMPLE}"
        ) from None
    if not isinstance(config, dict):
        raise ClusterError(f"TF_CONFIG must be a JSON object; expected e.g. {EXAMPLE}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterError(
            f"TF_CONFIG has no 'cluster' object of address lists; expected {EXAMPLE}"
        )
    for kind, addresses in cluster.items():
        if kind not in (*TASK_TYPES, "ps", "evaluator"):
            raise ClusterError(f"TF_CONFIG cluster has unknown task type {kind!r}")
        if kind in ("ps", "evaluator"):
            raise ClusterError(
                f"TF_CONFIG cluster has {kind!r} tasks; MultiWorkerMirroredStrategy takes "
                f"only 'chief' and 'worker'"
            )
        if not isinstance(addresses, list) or not addresses:
            raise ClusterError(f"TF_CONFIG cluster {kind!r} must be a non-empty list of host:port")
        for address in addresses:
            host, sep, port = str(address).rpartition(":")
            if not (isinstance(address, str) and sep and host and port.isdigit()):
                raise ClusterError(f"TF_CONFIG cluster {kind!r}: {address!r} is not host:port")
    if "chief" in cluster and len(cluster["chief"]) != 1:
        raise ClusterError("TF_CONFIG cluster may have one 'chief' address, no more")
    if not isinstance(task, dict):
        raise ClusterError(f"TF_CONFIG has no 'task' object; expected e.g. {EXAMPLE}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise ClusterError(
            f"TF_CONFIG task type {task_type!r} is not in the cluster ({', '.join(cluster)})"
        )
    size = len(cluster[task_type])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ClusterError(
            f"TF_CONFIG task index {index!r} is out of range: the cluster has {size} "
            f"{task_type} address(es), so expected 0 to {size - 1}"
        )
    workers = sum(len(addresses) for addresses in cluster.values())
    return Cluster(task_type, index, workers, has_chief_task="chief" in cluster)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named by ``--strategy`` (TensorFlow starts here)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def shard_policy() -> tf.data.experimental.AutoShardPolicy:
    """DATA: every worker reads the in-memory arrays and keeps its share of each batch.

    FILE sharding needs one input file per worker; the primer's loaders decode into memory.
    """
    import tensorflow as tf

    return tf.data.experimental.AutoShardPolicy.DATA
