"""The contract's own errors. The service maps them to its error table at its boundary
(``service.errors.serving_error``); training reports them as data or usage errors."""

from __future__ import annotations


class ContractError(ValueError):
    """Something breaks the shared contract; the message says what was expected."""


class InvalidModelNameError(ContractError):
    """A model name that is not one plain folder name."""


class InvalidVersionError(ContractError):
    """A version that is not a positive integer of at most 18 digits."""


class ModelCardError(ContractError):
    """model.json is missing, unreadable or breaks the contract."""


class ImageError(ContractError):
    """Bytes that cannot become a model input: empty, not an accepted format, corrupt."""


class ImageTooLargeError(ImageError):
    """An image over the pixel limit (checked from its header, before decoding)."""
