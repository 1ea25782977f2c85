"""A peer for ``make bench-peers``: Triton Inference Server (through PyTriton) serving the
same SavedModel signature with Triton's dynamic batcher.

Runs in its own virtualenv (``.venv-peers``: PyTriton 0.7 needs numpy < 2), so it imports
only TensorFlow, numpy and PyTriton — nothing of this project. Triton's C++ server answers
KServe v2 over HTTP and gRPC; each formed batch is handed to ``infer`` here, which calls the
signature once.

    .venv-peers/bin/python loadtest/triton_peer.py --model-dir models/mnist_dnn/1 \\
        --http-port 8601 --grpc-port 8600 --metrics-port 8602
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import tensorflow as tf
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="a SavedModel version folder")
    parser.add_argument("--model-name", default="mnist_dnn")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=500,
        help="Triton's dynamic batcher: longest a request waits for a batch to fill",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    signature = tf.saved_model.load(args.model_dir).signatures["serving_default"]
    (input_name, input_spec), *_ = signature.structured_input_signature[1].items()
    (output_name, output_spec), *_ = signature.structured_outputs.items()

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        outputs = signature(**{input_name: tf.constant(inputs[input_name])})
        return {output_name: outputs[output_name].numpy()}

    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.model_name,
            infer_func=infer,
            inputs=[
                Tensor(
                    name=input_name,
                    dtype=input_spec.dtype.as_numpy_dtype,
                    shape=tuple(input_spec.shape[1:]),
                )
            ],
            outputs=[
                Tensor(
                    name=output_name,
                    dtype=output_spec.dtype.as_numpy_dtype,
                    shape=tuple(output_spec.shape[1:]),
                )
            ],
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us),
            ),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
