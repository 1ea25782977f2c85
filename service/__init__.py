"""primer-serving: the inference service."""
