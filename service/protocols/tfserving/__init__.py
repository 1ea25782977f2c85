"""TensorFlow Serving's APIs: REST ``/v1/models/...`` and gRPC ``tensorflow.serving.*``."""
