"""One ``primer-train`` run: check everything, load the data, train, export.

:func:`prepare` does everything that can fail on bad input before TensorFlow is imported;
:func:`train_and_export` builds, optionally loads pretrained weights and freezes the
frontend, fits on ``tf.data`` pipelines and exports the next version. It returns the
trained model and the data it saw, so tests can compare training with serving.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.model_card import ImageContract
from training.data.augmentation import Augmentation
from training.data.classes import absent_classes, apply_absent_policy
from training.data.datasets import Dataset, load_dataset
from training.data.inputs import image_contract
from training.distribute import Cluster
from training.loop_run import LoopPlan, export_target, plan_loop, uses_loop
from training.models.registry import IMAGENET, WEIGHT_SUFFIXES, Architecture, get_architecture
from training.options import EXIT_USAGE, PROG, CliError, check_args
from training.repository import check_model_name, check_version_free

if TYPE_CHECKING:
    import keras
    import numpy as np

    from training.fit import TrainResult
    from training.models.transfer import LoadedWeights


@dataclass(frozen=True)
class Plan:
    """A checked run: model name, architecture, input shape, base contract, data.

    Attributes:
        name: the model name (folder under the model repository).
        arch: the architecture.
        input_shape: the model's input shape without the batch axis.
        contract: the image contract without normalization statistics.
        dataset: the loaded data, after the absent-class policy.
        absent: classes of the original class list without training images.
        augmentation: the training-time augmentation.
        loop: the checked strategy, stages and backup when the custom loop trains.
    """

    name: str
    arch: Architecture
    input_shape: tuple[int, ...]
    contract: ImageContract
    dataset: Dataset
    absent: tuple[str, ...]
    augmentation: Augmentation
    loop: LoopPlan | None = None


@dataclass
class Outcome:
    """What a run produced.

    Attributes:
        version_dir: the exported version folder.
        model: the trained Keras model (best validation weights).
        contract: the image contract, with standardization statistics if any.
        plan: the checked plan.
        result: history and test results.
        x_fit: the uint8 training split (without the validation images).
    """

    version_dir: Path
    model: keras.Model
    contract: ImageContract
    plan: Plan
    result: TrainResult
    x_fit: np.ndarray


def _class_names(spec: str | None) -> list[str] | None:
    if not spec:
        return None
    if spec.startswith("@"):
        try:
            lines = Path(spec[1:]).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CliError(f"cannot read class list {spec[1:]}: {exc.strerror or exc}") from exc
        names = [line.strip() for line in lines if line.strip()]
    else:
        names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise CliError(f"--classes must list distinct class names, got {spec!r}", EXIT_USAGE)
    return names


def _check_model_options(args: argparse.Namespace, arch: Architecture, color_mode: str) -> None:
    if (args.freeze_base or args.weights) and not arch.frontend:
        option = "--freeze-base" if args.freeze_base else "--weights"
        raise CliError(f"{option}: {arch.name} has no convolutional frontend", EXIT_USAGE)
    if args.weights == IMAGENET:
        if not arch.imagenet:
            raise CliError(
                f"--weights imagenet: keras.applications has no weights that fit the primer's "
                f"{arch.name}; expected vgg16, or a .weights.h5/.keras file",
                EXIT_USAGE,
            )
        if color_mode != "rgb":
            raise CliError("--weights imagenet needs --color-mode rgb (3 channels)", EXIT_USAGE)
    elif args.weights is not None:
        path = Path(args.weights).expanduser()
        if not path.name.endswith(WEIGHT_SUFFIXES):
            raise CliError(
                f"--weights {args.weights}: expected a .weights.h5 or .keras file or 'imagenet'",
                EXIT_USAGE,
            )
        if not path.is_file():
            raise CliError(f"weights file not found: {args.weights}")


def _augmentation(args: argparse.Namespace) -> Augmentation:
    return Augmentation(
        flip=args.flip,
        rotation=args.rotation,
        width_shift=args.width_shift,
        height_shift=args.height_shift,
        zoom=args.zoom,
        brightness=args.brightness,
        fraction=args.augment_fraction,
        fill_mode=args.fill_mode,
    )


def prepare(args: argparse.Namespace) -> Plan:
    """Everything that can fail on bad input, before TensorFlow is imported.

    Raises:
        CliError: a bad option (status 2) or file.
        DatasetError: bad data.
        ExportError: a bad model name or a taken version.
    """
    check_args(args)
    try:
        arch = get_architecture(args.architecture)
    except KeyError as exc:
        raise CliError(str(exc.args[0]), EXIT_USAGE) from None
    height, width = args.image_size or arch.image_size
    if min(height, width) < arch.min_side:
        raise CliError(
            f"--image-size {height}x{width} is too small for {arch.name}; expected at least "
            f"{arch.min_side}x{arch.min_side}",
            EXIT_USAGE,
        )
    color_mode = args.color_mode or arch.color_mode
    try:
        input_shape = arch.shape_for(height, width, color_mode)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    _check_model_options(args, arch, color_mode)
    augmentation = _augmentation(args)
    name = check_model_name(args.name or arch.name)
    if args.version is not None:
        check_version_free(args.model_dir / name, args.version)
    contract = image_contract(color_mode, height, width, resample=args.resample)
    loaded = load_dataset(
        args.data,
        contract,
        fmt=args.format,
        test_data=args.test_data,
        test_split=args.test_split,
        class_names=_class_names(args.classes),
        seed=args.seed,
        limit=args.limit,
    )
    n_train = len(loaded.x_train)
    if not 0 < round(n_train * args.validation_split) < n_train:
        raise CliError(
            f"--validation-split {args.validation_split} of {n_train} training images leaves "
            f"no images on one side; give more images (or a larger --limit) or another split"
        )
    absent = absent_classes(loaded)
    dataset = apply_absent_policy(loaded, args.absent_classes)
    classes = len(dataset.class_names)
    if args.num_classes is not None and args.num_classes != classes:
        raise CliError(
            f"--num-classes {args.num_classes} does not match the {classes} classes of the "
            f"class list; every output needs a label: give --classes with "
            f"{args.num_classes} names, or omit --num-classes",
            EXIT_USAGE,
        )
    loop = plan_loop(args, arch, input_shape, classes) if uses_loop(args) else None
    return Plan(name, arch, input_shape, contract, dataset, absent, augmentation, loop)


def _absent_note(absent: tuple[str, ...], policy: str) -> str | None:
    if not absent:
        return None
    names = ", ".join(absent)
    if policy == "keep":
        return (
            f"{names} had no training images; kept as outputs that were never a training "
            f"target, so they are not predicted in practice"
        )
    return f"{names} had no training images; dropped: the head has one output per class present"


def _provenance(
    args: argparse.Namespace, plan: Plan, model: keras.Model, result: TrainResult, **extra: Any
) -> dict[str, Any]:
    dataset = plan.dataset
    return {
        "architecture": plan.arch.name,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "epochs": result.epochs_run,
        "epochs_requested": args.epochs,
        "best_epoch": result.best_epoch,
        "test_accuracy": round(result.test_accuracy, 6),
        "test_loss": round(result.test_loss, 6),
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "lr_schedule": args.lr_schedule,
        "validation_split": args.validation_split,
        "patience": args.patience,
        "seed": args.seed,
        "parameters": model.count_params(),
        "trainable_parameters": sum(int(w.numpy().size) for w in model.trainable_weights),
        "absent_classes": list(plan.absent),
        "absent_class_policy": args.absent_classes,
        "absent_class_note": _absent_note(plan.absent, args.absent_classes),
        "augmentation": plan.augmentation.to_dict() if plan.augmentation.enabled else None,
        "limit": args.limit,
        "steps_per_epoch": result.config.steps_per_epoch,
        "steps_run": result.steps_run,
        "max_steps": args.max_steps,
        "test_images": len(dataset.x_test),
        **extra,
    }


def _fit(
    args: argparse.Namespace, plan: Plan, contract: ImageContract, splits: tuple[np.ndarray, ...]
) -> tuple[keras.Model, LoadedWeights | None, TrainResult]:
    """Build, load weights, freeze, and train with ``model.fit`` (one device)."""
    from training.data.augmentation import Augmenter
    from training.data.pipeline import batches
    from training.fit import TrainConfig, train
    from training.models.transfer import freeze_frontend, load_pretrained

    x_fit, y_fit, x_val, y_val = splits
    model = plan.arch.build(plan.input_shape, len(plan.dataset.class_names))
    weights = None
    if args.weights:
        weights = load_pretrained(
            model, args.weights, arch=plan.arch.name, new_head=args.freeze_base
        )
        print(
            f"{PROG}: loaded {weights.frontend_layers} frontend layers from {args.weights}; "
            f"head {weights.head}",
            flush=True,
        )
    if args.freeze_base:
        if not args.weights:
            print(
                f"{PROG}: note: --freeze-base without --weights freezes a randomly "
                f"initialized frontend",
                flush=True,
            )
        freeze_frontend(model)
    augmenter = Augmenter(plan.augmentation, args.seed) if plan.augmentation.enabled else None
    size = args.batch_size
    fit = batches(x_fit, y_fit, contract, plan.input_shape, size, shuffle_seed=args.seed,
                  augmenter=augmenter, repeat=True)  # fmt: skip
    val = batches(x_val, y_val, contract, plan.input_shape, size)
    test = batches(plan.dataset.x_test, plan.dataset.y_test, contract, plan.input_shape, size)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=size,
        validation_split=args.validation_split,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
        seed=args.seed,
        verbose=args.verbose,
        checkpoint_dir=args.checkpoint_dir,
        steps_per_epoch=args.steps_per_epoch or fit.steps,
        max_steps=args.max_steps,
    )
    return model, weights, train(model, fit.dataset, val.dataset, test.dataset, config)


def _loop_provenance(args: argparse.Namespace, result: TrainResult) -> dict[str, Any]:
    """Strategy, workers, global batch, stages and resume point of a custom-loop run."""
    if not hasattr(result, "stages"):
        return {"strategy": "default (model.fit)"}
    return {
        "strategy": args.strategy,
        "replicas": result.replicas,
        "global_batch": result.global_batch,
        "warmup_epochs": args.warmup_epochs,
        "stages": [
            {k: v for k, v in s.items() if not k.startswith("changed")} for s in result.stages
        ],
        "resumed_at_epoch": result.resumed_at,
    }


def train_and_export(args: argparse.Namespace, plan: Plan | None = None) -> Outcome:
    """Train the planned model and export it as the next version."""
    plan = plan or prepare(args)
    arch, input_shape, dataset = plan.arch, plan.input_shape, plan.dataset
    print(
        f"{PROG}: {dataset.name}: {len(dataset.x_train)} training and "
        f"{len(dataset.x_test)} test images, {len(dataset.class_names)} classes; "
        f"{arch.name} input {list(input_shape)}",
        flush=True,
    )

    from training.data.inputs import model_input  # TensorFlow starts here
    from training.export import export_model
    from training.fit import plot_history, split_validation

    x_fit, y_fit, x_val, y_val = split_validation(
        dataset.x_train, dataset.y_train, args.validation_split, args.seed
    )
    base = plan.contract
    contract = image_contract(
        base.color_mode,
        base.height,
        base.width,
        resample=base.resample,
        normalization=args.normalization,
        train_pixels=x_fit,
    )
    started = time.monotonic()
    if plan.loop is None:
        model, weights, result = _fit(args, plan, contract, (x_fit, y_fit, x_val, y_val))
    else:
        from training.loop_run import train_in_loop

        splits = (x_fit, y_fit, x_val, y_val, dataset.x_test, dataset.y_test)
        model, weights, result = train_in_loop(args, plan, plan.loop, contract, splits)
    provenance = _provenance(
        args,
        plan,
        model,
        result,
        weights=args.weights,
        pretrained_head=weights.head if weights else None,
        freeze_base=args.freeze_base,
        train_images=len(x_fit),
        validation_images=len(x_val),
        training_seconds=round(time.monotonic() - started, 1),
        **_loop_provenance(args, result),
    )
    cluster = plan.loop.cluster if plan.loop else Cluster()
    with export_target(args.model_dir, cluster) as model_dir:
        version_dir = export_model(
            model,
            model_dir=model_dir,
            name=plan.name,
            image=contract,
            labels=dataset.class_names,
            provenance=provenance,
            version=args.version,
            warmup_batch=model_input(dataset.x_test[:4], contract, input_shape),
            reference_inputs=model_input(x_fit[:10_000], contract, input_shape),
            assets={
                "history.json": result.to_json(),
                "training_curves.png": plot_history(result, f"{plan.name} on {dataset.name}"),
            },
        )
    return Outcome(version_dir, model, contract, plan, result, x_fit)
