"""The protocol-neutral core: ``core`` (infer, classify, status and metadata views),
``request`` (the request types and the one scope that times and counts every outcome) and
``validate`` (inputs checked against a signature)."""
