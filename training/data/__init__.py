"""Datasets into uint8 pixels (``datasets``, ``layouts``, ``sign_mnist``), their splits and
classes, and the pipeline into model inputs (``inputs``, ``augmentation``, ``pipeline``)."""
