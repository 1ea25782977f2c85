"""The ``primer-train`` command line: every option, its default, and the checks on its value.

Importable without TensorFlow. A bad value becomes :class:`CliError` with one line of text
and exit status 2 (``primer-train: error: argument --rotation: ...``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from contract.model_card import NORMALIZATIONS, RESAMPLE_FILTERS
from training.data.augmentation import FILL_MODES, FLIP_MODES
from training.data.classes import ABSENT_POLICIES
from training.data.datasets import FORMATS
from training.distribute import STRATEGIES
from training.models.registry import ARCHITECTURES

PROG = "primer-train"
EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130

EPILOG = """\
sign language (sign_cnn):
  A Sign Language MNIST CSV (label,pixel1..pixel784) has the class list A-Z: a label is its
  letter's position. J (9) and Z (25) need a motion and have no images. By default
  (--absent-classes keep) the head keeps all 26 outputs, labels A-Z, as the primer's CNN;
  J and Z are never training targets and are never predicted in practice. With
  --absent-classes drop the head has one output per class present (24). model.json's
  provenance records the absent classes and the policy. The 28x28 images are resized to
  the model's 128x128 by the shared preprocessing (--resample).

transfer learning (vgg16, resnet50, sign_cnn):
  --weights loads a .weights.h5 or .keras file saved from the same architecture: the
  convolutional frontend always, the classifier head too when it fits and --freeze-base is
  off. --freeze-base freezes the frontend (batch norm in inference mode) and trains a new
  head. --weights imagenet (vgg16 only) takes keras.applications.VGG16's ImageNet
  weights: a download on first use.

augmentation (training images only; never part of the exported model):
  Each training image is augmented with probability --augment-fraction, so a random subset
  of every batch goes through all enabled transformations and the rest are unchanged.
  --zoom Z draws a zoom factor from [1-Z, 1+Z]; shifts are fractions of the image size;
  --brightness B adds one delta from [-255B, +255B] per image, clipped to 0-255.

distributed, resumable and staged training (docs/training.md):
  --strategy multi-worker reads TF_CONFIG; worker 0 is the chief and alone exports. With
  --backup-dir a restarted run goes on after the last finished epoch. --stages runs
  PART:EPOCHS[@RATE] items in order (head: frontend frozen; all: every layer), e.g.
  {prog} resnet50 --data photos/ --weights r50.weights.h5 --stages head:3,all:5@1e-5

smoke runs:
  --limit, --steps-per-epoch and --max-steps keep a run to seconds, e.g.
  {prog} resnet50 --data images/ --input-size 64x64 --limit 64 --max-steps 5

examples:
  {prog} mnist_dnn --data ../shared/data/mnist.npz --epochs 5 --model-dir models
  {prog} sign_cnn --data sign_mnist_train.csv --test-data sign_mnist_test.csv \\
      --rotation 10 --zoom 0.1 --brightness 0.2
  {prog} vgg16 --data flowers/ --weights vgg16.weights.h5 --freeze-base --flip horizontal
"""


class CliError(Exception):
    """A problem to report as one line; ``status`` is the exit code."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise CliError(f"{message} (see {PROG} --help)", EXIT_USAGE)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every option whose help does not state its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if not action.option_strings or "(default" in help_text or action.dest == "help":
            return help_text
        if action.default is False:
            return f"{help_text} (default: off)"
        return f"{help_text} (default: %(default)s)"


def _number(
    kind: Callable[[str], float], check: Callable[[float], bool], expected: str
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and check(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_fraction = _number(float, lambda v: 0 <= v <= 1, "a fraction from 0 to 1")
_degrees = _number(float, lambda v: 0 <= v <= 180, "degrees from 0 to 180")
_zoom = _number(float, lambda v: 0 <= v < 1, "a fraction from 0 to below 1")


def _size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    try:
        return int(_positive_int(height)), int(_positive_int(width if sep else height))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected HxW like 28x28, got {text!r}") from None


def _data_options(parser: argparse.ArgumentParser) -> None:
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
    data.add_argument(
        "--test-data", help="test set in the same layout as --data (default: hold out --test-split)"
    )
    data.add_argument(
        "--test-split",
        type=float,
        default=0.1,
        help="fraction held out as the test set when there is no test set",
    )
    data.add_argument(
        "--classes",
        help="class names in output order, comma-separated or @file (one per "
        "line) (default: the sorted labels found; A-Z for Sign Language MNIST)",
    )
    data.add_argument(
        "--absent-classes",
        default="keep",
        choices=ABSENT_POLICIES,
        help="classes of the class list without training images (J, Z in Sign Language "
        "MNIST): keep them as never-predicted outputs, or drop them from the head",
    )
    data.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="read a seeded random subset of at most N images from --data and N from the "
        "test set, for smoke runs (default: all)",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    image = parser.add_argument_group("image contract")
    image.add_argument(
        "--image-size",
        "--input-size",
        type=_size,
        metavar="HxW",
        help="image height x width (default: the architecture's, e.g. 224x224 for vgg16)",
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
        "--normalize",
        default="unit",
        choices=NORMALIZATIONS,
        help="unit: x/255; symmetric: [-1, 1]; standardize: per-channel mean/std of the "
        "training split only, recorded in model.json and applied by the service",
    )
    model = parser.add_argument_group("model and transfer learning")
    model.add_argument(
        "--num-classes",
        type=_positive_int,
        metavar="N",
        help="outputs of the classifier head; must equal the number of classes in the "
        "class list, one label per output (default: that number)",
    )
    model.add_argument(
        "--weights",
        metavar="PATH|imagenet",
        help="initial weights: a .weights.h5 or .keras file saved from the same "
        "architecture, or 'imagenet' for vgg16 (default: random initialization)",
    )
    model.add_argument(
        "--freeze-base",
        action="store_true",
        help="freeze the convolutional frontend and train a new classifier head",
    )


def _augmentation_options(parser: argparse.ArgumentParser) -> None:
    aug = parser.add_argument_group("augmentation (training images only)")
    aug.add_argument("--flip", default="none", choices=FLIP_MODES, help="random mirror flips")
    aug.add_argument(
        "--rotation", type=_degrees, default=0.0, metavar="DEG", help="rotate by up to ±DEG"
    )
    aug.add_argument(
        "--width-shift",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="shift horizontally by up to ±F of the width",
    )
    aug.add_argument(
        "--height-shift",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="shift vertically by up to ±F of the height",
    )
    aug.add_argument(
        "--zoom", type=_zoom, default=0.0, metavar="F", help="zoom factor drawn from [1-F, 1+F]"
    )
    aug.add_argument(
        "--brightness",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="add a brightness delta of up to ±F of the 0-255 range",
    )
    aug.add_argument(
        "--fill-mode",
        default="nearest",
        choices=FILL_MODES,
        help="how rotation, shift and zoom fill the uncovered border",
    )
    aug.add_argument(
        "--augment-fraction",
        type=_fraction,
        default=0.5,
        metavar="F",
        help="probability that a training image is augmented: a random subset of each batch",
    )


def _training_options(parser: argparse.ArgumentParser) -> None:
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, default=5, help="maximum epochs")
    fit.add_argument("--batch-size", type=_positive_int, default=128, help="mini-batch size")
    fit.add_argument(
        "--steps-per-epoch",
        type=_positive_int,
        metavar="N",
        help="batches per epoch (default: one pass over the training split)",
    )
    fit.add_argument(
        "--max-steps",
        type=_positive_int,
        metavar="N",
        help="stop after N batches in all, validating the last epoch (default: no limit)",
    )
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
        help="cosine: decay to 0 over the planned steps; constant: fixed rate",
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
        help="keep ModelCheckpoint's best weights here (default: a temporary folder)",
    )
    fit.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch",
    )


def _distribution_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distribution, fault tolerance and stages (custom loop)")
    group.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="default: one device; mirrored: the local GPUs; multi-worker: "
        "MultiWorkerMirroredStrategy configured from TF_CONFIG",
    )
    group.add_argument(
        "--backup-dir",
        type=Path,
        help="keep a tf.train.CheckpointManager backup here after every epoch and resume "
        "from it when restarted (default: none)",
    )
    group.add_argument(
        "--warmup-epochs",
        type=int,
        default=0,
        metavar="N",
        help="ramp the learning rate up linearly over the first N epochs of every stage",
    )
    group.add_argument(
        "--stages",
        metavar="PART:EPOCHS[@RATE],...",
        help="a sequence of stages, e.g. head:3,all:2@1e-5 (head: frontend frozen; all: "
        "every layer); replaces --epochs (default: one stage)",
    )


def _export_options(parser: argparse.ArgumentParser) -> None:
    export = parser.add_argument_group("export")
    export.add_argument("--name", help="model name (default: the architecture)")
    export.add_argument(
        "--model-dir", type=Path, default=Path("models"), help="model repository root"
    )
    export.add_argument(
        "--version",
        type=_positive_int,
        help="pin the version number; refused if it exists (default: the next one)",
    )
    export.add_argument(
        "--optimize",
        metavar="VARIANTS",
        help="after export, write these deployment variants behind the fidelity gate, e.g. "
        "tflite,tflite-fp16,tflite-int8,onnx (docs/variants.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--help`` shows every option with its default."""
    architectures = "\n".join(f"  {a.name:<10} {a.description}" for a in ARCHITECTURES.values())
    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Train a primer classifier and export it as the next version of "
        "<model-dir>/<name>/ (a TF Serving model repository).",
        epilog=f"architectures:\n{architectures}\n\n{EPILOG.format(prog=PROG)}",
    )
    parser.add_argument("architecture", help="which classifier to train (listed below)")
    _data_options(parser)
    _model_options(parser)
    _augmentation_options(parser)
    _training_options(parser)
    _distribution_options(parser)
    _export_options(parser)
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback for unexpected errors"
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Checks that need more than one value's type.

    Raises:
        CliError: with exit status 2.
    """
    for option, value in (
        ("--validation-split", args.validation_split),
        ("--test-split", args.test_split),
    ):
        if not 0 < value < 1:
            raise CliError(f"{option} must be between 0 and 1 (exclusive), got {value}", EXIT_USAGE)
    if not args.learning_rate > 0:  # also refuses nan
        raise CliError(f"--learning-rate must be positive, got {args.learning_rate}", EXIT_USAGE)
    if args.warmup_epochs < 0:
        raise CliError(f"--warmup-epochs must be 0 or more, got {args.warmup_epochs}", EXIT_USAGE)
    if args.patience < 0:
        raise CliError(f"--patience must be 0 or more, got {args.patience}", EXIT_USAGE)
