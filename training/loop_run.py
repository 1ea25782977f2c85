"""Wire ``primer-train``'s strategy, backup and stage options into the custom loop.

A run takes the custom loop (:mod:`training.loop`) when it asks for a strategy other than
``default``, a ``--backup-dir``, ``--stages`` or ``--warmup-epochs``; otherwise ``model.fit``
(:mod:`training.fit`) trains as before. :func:`plan_loop` checks TF_CONFIG, the stages and
the backup before TensorFlow starts; :func:`fit_with_loop` creates the strategy first (as
MultiWorkerMirroredStrategy requires), then the pipelines, and trains.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.backup import BackupError, check_backup, manifest, write_manifest
from training.distribute import Cluster, ClusterError, read_cluster
from training.models.registry import Architecture
from training.options import EXIT_USAGE, PROG, CliError
from training.stages import Stage, StageError, default_stages, parse_stages

if TYPE_CHECKING:
    from collections.abc import Iterator

    import keras
    import numpy as np

    from contract.model_card import ImageContract
    from training.data.augmentation import Augmenter
    from training.loop import LoopResult
    from training.models.transfer import LoadedWeights
    from training.run import Plan


@dataclass(frozen=True)
class LoopPlan:
    """The checked loop options.

    Attributes:
        cluster: this process's place in the cluster.
        stages: the stages to run.
        manifest: what identifies the run's backup.
        resume: whether the backup holds a run to resume.
    """

    cluster: Cluster
    stages: tuple[Stage, ...]
    manifest: dict[str, Any]
    resume: bool


def uses_loop(args: argparse.Namespace) -> bool:
    """Whether the options need the custom loop rather than ``model.fit``."""
    return bool(args.strategy != "default" or args.backup_dir or args.stages or args.warmup_epochs)


def plan_loop(
    args: argparse.Namespace, arch: Architecture, input_shape: tuple[int, ...], classes: int
) -> LoopPlan:
    """Check TF_CONFIG, ``--stages`` and ``--backup-dir`` without TensorFlow.

    Raises:
        CliError: a malformed TF_CONFIG, an index out of range, bad stages (status 2), or
            a backup of another run (status 1).
    """
    try:
        cluster = read_cluster(args.strategy)
        stages = (
            parse_stages(args.stages, args.learning_rate)
            if args.stages
            else default_stages(args.epochs, args.learning_rate, args.freeze_base)
        )
    except (ClusterError, StageError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if any(stage.part == "head" for stage in stages) and not arch.frontend:
        raise CliError(
            f"--stages: a head stage freezes the convolutional frontend; {arch.name} has none",
            EXIT_USAGE,
        )
    if args.warmup_epochs >= min(stage.epochs for stage in stages):
        raise CliError(
            f"--warmup-epochs {args.warmup_epochs} must be fewer than every stage's epochs",
            EXIT_USAGE,
        )
    content = manifest(arch.name, input_shape, classes, [s.to_dict() for s in stages])
    resume = False
    if args.backup_dir:
        try:
            resume = check_backup(args.backup_dir, content)
        except BackupError as exc:
            raise CliError(str(exc)) from None
    return LoopPlan(cluster, stages, content, resume)


def fit_with_loop(
    args: argparse.Namespace,
    loop_plan: LoopPlan,
    build: Callable[[], keras.Model],
    splits: tuple[np.ndarray, ...],
    contract: ImageContract,
    input_shape: tuple[int, ...],
    augmenter_for: Callable[[], Augmenter | None],
) -> tuple[keras.Model, LoopResult]:
    """Create the strategy, the pipelines (global batches), and train through the stages.

    Args:
        splits: x_fit, y_fit, x_val, y_val, x_test, y_test (uint8 pixels, int labels).
    """
    from training.distribute import make_strategy

    strategy = make_strategy(args.strategy)  # before any other TensorFlow op

    from training.data.pipeline import batches
    from training.loop import LoopConfig, train_loop

    cluster = loop_plan.cluster
    x_fit, y_fit, x_val, y_val, x_test, y_test = splits
    global_batch = args.batch_size * strategy.num_replicas_in_sync
    fit = batches(x_fit, y_fit, contract, input_shape, global_batch, shuffle_seed=args.seed,
                  augmenter=augmenter_for(), repeat=True)  # fmt: skip
    val = batches(x_val, y_val, contract, input_shape, args.batch_size)
    test = batches(x_test, y_test, contract, input_shape, args.batch_size)
    if args.backup_dir and cluster.is_chief:
        write_manifest(args.backup_dir, loop_plan.manifest)
    config = LoopConfig(
        stages=loop_plan.stages,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        warmup_epochs=args.warmup_epochs,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
        seed=args.seed,
        max_steps=args.max_steps,
        backup_dir=args.backup_dir,
        cluster=cluster,
    )

    def log(line: str) -> None:
        print(f"{PROG}: {args.strategy} {cluster.name}: {line}", flush=True)

    return train_loop(
        strategy, build, fit.dataset, len(x_fit), val.dataset, test.dataset, config, log
    )


def train_in_loop(
    args: argparse.Namespace,
    plan: Plan,
    loop_plan: LoopPlan,
    contract: ImageContract,
    splits: tuple[np.ndarray, ...],
) -> tuple[keras.Model, LoadedWeights | None, LoopResult]:
    """Build (loading ``--weights``) under the strategy, train, and copy out for export."""
    from training.data.augmentation import Augmenter
    from training.models.transfer import load_pretrained

    arch, shape, classes = plan.arch, plan.input_shape, len(plan.dataset.class_names)
    loaded: list[LoadedWeights] = []
    new_head = args.freeze_base or loop_plan.stages[0].part == "head"

    def build() -> keras.Model:
        model = arch.build(shape, classes)
        if args.weights:
            loaded.append(load_pretrained(model, args.weights, arch=arch.name, new_head=new_head))
            print(
                f"{PROG}: loaded {loaded[-1].frontend_layers} frontend layers from "
                f"{args.weights}; head {loaded[-1].head}",
                flush=True,
            )
        return model

    def augmenter() -> Augmenter | None:
        return Augmenter(plan.augmentation, args.seed) if plan.augmentation.enabled else None

    trained, result = fit_with_loop(args, loop_plan, build, splits, contract, shape, augmenter)
    model = plain_copy(trained, lambda: arch.build(shape, classes))
    return model, (loaded[0] if loaded else None), result


def plain_copy(model: keras.Model, build: Callable[[], keras.Model]) -> keras.Model:
    """The trained weights in a model made outside any strategy scope, for export."""
    plain = build()
    for target, source in zip(plain.layers, model.layers, strict=True):
        target.set_weights(source.get_weights())
        target.trainable = source.trainable  # as the last stage left it, for the provenance
    return plain


@contextmanager
def export_target(model_dir: Path, cluster: Cluster) -> Iterator[Path]:
    """The chief exports into ``model_dir``; the others into a temporary folder, removed after."""
    if cluster.is_chief:
        yield model_dir
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"primer-export-{cluster.task_index}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
