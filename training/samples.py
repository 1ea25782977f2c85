"""Write a few MNIST test digits as image files, for demos and load tests.

``python -m training.samples ../shared/data/mnist.npz loadtest/data`` writes
``digit_<label>_<index>.png`` (``index`` is the digit's position in MNIST's test set, so
tests can compare a file with the dataset) for the first ``per_class`` digits of each
class, plus one JPEG copy of the first digit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def save_digits(mnist_npz: str | Path, out_dir: str | Path, per_class: int = 2) -> list[Path]:
    """Save ``per_class`` test digits of every class as PNG, and the first one as JPEG.

    Returns:
        The files written.
    """
    with np.load(mnist_npz) as archive:
        images, labels = archive["x_test"], archive["y_test"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = sorted(
        int(i) for label in range(10) for i in np.flatnonzero(labels == label)[:per_class]
    )
    written = []
    for index in chosen:
        path = out / f"digit_{labels[index]}_{index}.png"
        Image.fromarray(images[index], "L").save(path, optimize=True)
        written.append(path)
    first = chosen[0]
    jpeg = out / f"digit_{labels[first]}_{first}.jpg"
    Image.fromarray(images[first], "L").save(jpeg, quality=95)
    return [*written, jpeg]


def main() -> None:
    """Command line: ``python -m training.samples MNIST_NPZ OUT_DIR [--per-class N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_npz")
    parser.add_argument("out_dir")
    parser.add_argument("--per-class", type=int, default=2)
    args = parser.parse_args()
    for path in save_digits(args.mnist_npz, args.out_dir, args.per_class):
        print(path)


if __name__ == "__main__":
    main()
