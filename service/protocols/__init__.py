"""Thin adapters, grouped by protocol: ``tfserving`` (TF Serving REST and gRPC), ``kserve_v2``
(the Open Inference Protocol, REST and gRPC) and ``ops`` (health and metrics). Each
translates its wire format to the inference core's public API and back; none reaches into
``service.models``."""
