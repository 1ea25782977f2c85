"""The model lifecycle as TF Serving names its roles: ``source`` (which versions exist on
disk) → ``policy`` (a pure function: which to load and retire) → ``loader`` (load and warm
one version) → ``manager`` (routing, availability-preserving swaps, unloading). Beside them:
``runtime`` (one loaded SavedModel), ``batching``, ``storage``, ``devices``, ``memory``."""
