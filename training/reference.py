"""Write the reference profile (drift detection) of an already exported version.

``python -m training.reference models/mnist_dnn/1 --mnist /path/mnist.npz`` runs the
version's SavedModel over the MNIST training images, preprocessed through the shared
contract as at training time, and writes ``assets.extra/reference_profile.json`` with the
same code ``export_model`` uses (``contract.reference_profile``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

from contract.layout import INPUT_NAME, OUTPUT_NAME, SIGNATURE
from contract.model_card import read_model_card
from contract.reference_profile import build_profile, write_profile
from training.data.inputs import model_input


def profile_version(version_dir: Path, pixels: np.ndarray, batch: int = 1000) -> Path:
    """Profile ``version_dir`` over uint8 ``pixels`` (N, H, W[, C]) and write the file."""
    card = read_model_card(version_dir)
    if card is None or card.image is None:
        raise SystemExit(f"{version_dir}: no model.json with an image contract")
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    shape = card.inputs[0].shape[1:]
    inputs = model_input(pixels, card.image, shape)
    serve = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    probabilities = np.concatenate(
        [
            serve(**{INPUT_NAME: tf.constant(inputs[i : i + batch])})[OUTPUT_NAME].numpy()
            for i in range(0, len(inputs), batch)
        ]
    )
    return write_profile(
        version_dir, build_profile(inputs, probabilities, card.image.normalization)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--mnist", type=Path, required=True, help="mnist.npz (x_train is used)")
    parser.add_argument("--limit", type=int, default=10_000, help="training images profiled")
    args = parser.parse_args(argv)
    pixels = np.load(args.mnist)["x_train"][: args.limit]
    print(profile_version(args.version_dir, pixels))


if __name__ == "__main__":
    main()
