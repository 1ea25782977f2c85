"""``primer-train``: train one of the primer's classifiers and export it as the next version.

Arguments and data are checked before TensorFlow starts, so a mistake costs a fraction of
a second and prints one line (``primer-train: error: ...``) with a non-zero exit status:
2 for bad arguments, 1 for bad data or a failed export, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from service.model_card import RESAMPLE_FILTERS, ImageContract
from training.datasets import FORMATS, Dataset, DatasetError, load_dataset
from training.inputs import NORMALIZATIONS, image_contract
from training.registry import ARCHITECTURES, Architecture, get_architecture
from training.repository import ExportError, check_model_name, check_version_free

PROG = "primer-train"
EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


class CliError(Exception):
    """A problem to report as one line; ``status`` is the exit code."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise CliError(f"{message} (see {PROG} --help)", EXIT_USAGE)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` for every option whose default is a value."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if (
            action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or not action.option_strings
        ):
            return help_text
        return f"{help_text} (default: %(default)s)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    try:
        return _positive_int(height), _positive_int(width if sep else height)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected HxW like 28x28, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults are shown by ``--help``)."""
    architectures = "\n".join(f"  {a.name:<10} {a.description}" for a in ARCHITECTURES.values())
    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Train a primer classifier and export it as the next version of "
        "<model-dir>/<name>/ (a TF Serving model repository).",
        epilog=f"architectures:\n{architectures}\n\nexample:\n  {PROG} mnist_dnn --data "
        f"../shared/data/mnist.npz --epochs 5 --model-dir models",
    )
    parser.add_argument("architecture", help="which classifier to train (listed below)")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default="mnist",
        help="'mnist' (download), an MNIST .npz, a Sign Language MNIST CSV, a "
        "label,location CSV, a JSON list of {label, location}, or a "
        "folder of class sub-folders",
    )
    data.add_argument(
        "--format",
        default="auto",
        choices=FORMATS,
        help="layout of --data (auto: tell from the path)",
    )
    data.add_argument("--test-data", help="test set in the same layout as --data")
    data.add_argument(
        "--test-split",
        type=float,
        default=0.1,
        help="fraction held out as the test set when there is no test set",
    )
    data.add_argument(
        "--classes",
        help="class names in output order, comma-separated or @file (one per "
        "line); default: the sorted labels found",
    )
    image = parser.add_argument_group("image contract")
    image.add_argument(
        "--image-size",
        type=_size,
        metavar="HxW",
        help="image height x width (default: the architecture's)",
    )
    image.add_argument(
        "--color-mode",
        choices=("grayscale", "rgb"),
        help="color mode (default: the architecture's)",
    )
    image.add_argument(
        "--resample", default="lanczos", choices=RESAMPLE_FILTERS, help="resize filter"
    )
    image.add_argument(
        "--normalization",
        default="unit",
        choices=NORMALIZATIONS,
        help="unit: x/255; symmetric: [-1, 1]; standardize: mean/std of the "
        "training split, recorded in model.json",
    )
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, default=5, help="maximum epochs")
    fit.add_argument("--batch-size", type=_positive_int, default=128, help="mini-batch size")
    fit.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="fraction of the training images used for validation",
    )
    fit.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's (initial) learning rate"
    )
    fit.add_argument(
        "--lr-schedule",
        default="cosine",
        choices=("cosine", "constant"),
        help="cosine: decay to 0 over --epochs; constant: fixed rate",
    )
    fit.add_argument(
        "--patience",
        type=int,
        default=3,
        help="early stopping: epochs without a better validation accuracy",
    )
    fit.add_argument("--seed", type=int, default=0, help="random seed")
    fit.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="keep ModelCheckpoint's best weights here (default: a temp folder)",
    )
    fit.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch",
    )
    export = parser.add_argument_group("export")
    export.add_argument("--name", help="model name (default: the architecture)")
    export.add_argument(
        "--model-dir", type=Path, default=Path("models"), help="model repository root"
    )
    export.add_argument(
        "--version",
        type=_positive_int,
        help="pin the version number (refused if it exists; default: next)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback for unexpected errors"
    )
    return parser


def _check(args: argparse.Namespace) -> None:
    for option, value in (
        ("--validation-split", args.validation_split),
        ("--test-split", args.test_split),
    ):
        if not 0 < value < 1:
            raise CliError(f"{option} must be between 0 and 1 (exclusive), got {value}", EXIT_USAGE)
    if not args.learning_rate > 0:  # also refuses nan
        raise CliError(f"--learning-rate must be positive, got {args.learning_rate}", EXIT_USAGE)
    if args.patience < 0:
        raise CliError(f"--patience must be 0 or more, got {args.patience}", EXIT_USAGE)


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


@dataclass(frozen=True)
class Plan:
    """A checked run: model name, architecture, input shape, base contract, data."""

    name: str
    arch: Architecture
    input_shape: tuple[int, ...]
    contract: ImageContract
    dataset: Dataset


def _prepare(args: argparse.Namespace) -> Plan:
    """Everything that can fail on bad input, before TensorFlow is imported."""
    _check(args)
    try:
        arch = get_architecture(args.architecture)
    except KeyError as exc:
        raise CliError(str(exc.args[0]), EXIT_USAGE) from None
    height, width = args.image_size or arch.image_size
    color_mode = args.color_mode or arch.color_mode
    try:
        input_shape = arch.shape_for(height, width, color_mode)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    name = check_model_name(args.name or arch.name)
    if args.version is not None:
        check_version_free(args.model_dir / name, args.version)
    contract = image_contract(color_mode, height, width, resample=args.resample)
    dataset = load_dataset(
        args.data,
        contract,
        fmt=args.format,
        test_data=args.test_data,
        test_split=args.test_split,
        class_names=_class_names(args.classes),
        seed=args.seed,
    )
    return Plan(name, arch, input_shape, contract, dataset)


def _run(args: argparse.Namespace) -> tuple[Path, float]:
    """Train and export; returns the version folder and the test accuracy."""
    plan = _prepare(args)
    arch, input_shape, dataset = plan.arch, plan.input_shape, plan.dataset
    print(
        f"{PROG}: {dataset.name}: {len(dataset.x_train)} training and "
        f"{len(dataset.x_test)} test images, {len(dataset.class_names)} classes; "
        f"{arch.name} input {list(input_shape)}",
        flush=True,
    )

    from training.export import export_model  # TensorFlow starts here
    from training.inputs import model_input
    from training.train import TrainConfig, plot_history, split_validation, train

    x_fit, y_fit, x_val, y_val = split_validation(
        dataset.x_train, dataset.y_train, args.validation_split, args.seed
    )
    contract = image_contract(
        plan.contract.color_mode,
        plan.contract.height,
        plan.contract.width,
        resample=args.resample,
        normalization=args.normalization,
        train_pixels=x_fit,
    )
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
        seed=args.seed,
        verbose=args.verbose,
        checkpoint_dir=args.checkpoint_dir,
    )
    model = arch.build(input_shape, len(dataset.class_names))
    started = time.monotonic()
    result = train(
        model,
        (model_input(x_fit, contract, input_shape), y_fit),
        (model_input(x_val, contract, input_shape), y_val),
        (model_input(dataset.x_test, contract, input_shape), dataset.y_test),
        config,
    )
    provenance = {
        "architecture": arch.name,
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
        "train_images": len(x_fit),
        "validation_images": len(x_val),
        "test_images": len(dataset.x_test),
        "training_seconds": round(time.monotonic() - started, 1),
    }
    return export_model(
        model,
        model_dir=args.model_dir,
        name=plan.name,
        image=contract,
        labels=dataset.class_names,
        provenance=provenance,
        version=args.version,
        warmup_batch=model_input(dataset.x_test[:4], contract, input_shape),
        assets={
            "history.json": result.to_json(),
            "training_curves.png": plot_history(result, f"{plan.name} on {dataset.name}"),
        },
    ), result.test_accuracy


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``primer-train``; returns the exit status."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        target, accuracy = _run(args)
    except CliError as exc:
        return _fail(str(exc), exc.status)
    except (DatasetError, ExportError) as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted; no version was exported", EXIT_INTERRUPTED)
    except Exception as exc:
        if args is not None and args.debug:
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            EXIT_FAILURE,
        )
    print(f"{PROG}: exported {target} (test accuracy {accuracy:.4f})")
    return 0


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
