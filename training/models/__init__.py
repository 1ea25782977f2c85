"""The primer's architectures (``architectures``), their registry (importable without
TensorFlow) and transfer learning (``transfer``)."""
