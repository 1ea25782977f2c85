"""KServe v2 / the Open Inference Protocol, REST ``/v2/...`` and gRPC
``inference.GRPCInferenceService``, with Triton's extensions."""
