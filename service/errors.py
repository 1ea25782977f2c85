"""One typed error family and the one table that maps it to HTTP and gRPC status codes.

Every protocol adapter translates these and nothing else; the core never speaks HTTP or gRPC.
"""

from __future__ import annotations

import grpc

from contract.errors import (
    ContractError,
    ImageTooLargeError,
    InvalidModelNameError,
    InvalidVersionError,
)


class ServingError(Exception):
    """Base of every error a client can be told about.

    Attributes:
        http_status: the HTTP status code for REST adapters.
        grpc_code: the gRPC status code for gRPC adapters.
        reason: a short machine-readable label (used as a metrics label).
    """

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    reason = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelNotFoundError(ServingError):
    """Unknown model or version."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "not_found"


class ModelUnavailableError(ServingError):
    """The version exists but is still loading, failed to load, or is unloading.

    Attributes:
        retry_after_s: when a version is expected to be AVAILABLE again (REST sends it as
            ``Retry-After``); None when nothing is on its way.
    """

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "unavailable"

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidInputError(ServingError, ValueError):
    """Malformed input: shape, dtype, bad image, bad JSON, bad base64."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "invalid_input"


class PayloadTooLargeError(ServingError):
    """The request is over a configured size limit (bytes, pixels, rows)."""

    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "too_large"


class QueueFullError(ServingError):
    """The model's batch queue is full: the request is shed rather than queued."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "queue_full"


class DeadlineExceededError(ServingError):
    """The request's deadline passed before or during execution."""

    http_status = 504
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "deadline"


class UnauthenticatedError(ServingError):
    """Missing or wrong credentials."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    reason = "unauthenticated"


class ClientClosedRequestError(ServingError):
    """The client went away before its answer was ready (nginx's 499; gRPC CANCELLED)."""

    http_status = 499
    grpc_code = grpc.StatusCode.CANCELLED
    reason = "client_closed"


class RequestTimeoutError(ServingError):
    """The client did not send its request headers or body within the edge's read timeout."""

    http_status = 408
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "request_timeout"


class HeaderTooLargeError(ServingError):
    """The request line and headers are over the edge's size limit."""

    http_status = 431
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "header_too_large"


class ConnectionLimitError(ServingError):
    """The server holds its maximum of connections: a new one is refused at once."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "connection_limit"


class InternalError(ServingError):
    """Anything unexpected; the adapter logs it with the request id."""


class UnimplementedError(ServingError):
    """A method or option the server does not implement (TF Serving's UNIMPLEMENTED)."""

    http_status = 501
    grpc_code = grpc.StatusCode.UNIMPLEMENTED
    reason = "unimplemented"


class UnknownRequestIdError(ServingError):
    """Feedback names a request id the server never answered (or no longer remembers)."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "unknown_request"


class FeedbackExpiredError(ServingError):
    """Feedback came after the feedback window of the request it names."""

    http_status = 410
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "expired"


class DuplicateFeedbackError(ServingError):
    """Feedback names a request that already has its label."""

    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    reason = "duplicate"


ERROR_TABLE: tuple[type[ServingError], ...] = (
    ModelNotFoundError,
    ModelUnavailableError,
    InvalidInputError,
    PayloadTooLargeError,
    QueueFullError,
    DeadlineExceededError,
    UnauthenticatedError,
    ClientClosedRequestError,
    RequestTimeoutError,
    HeaderTooLargeError,
    ConnectionLimitError,
    InternalError,
    UnimplementedError,
    UnknownRequestIdError,
    FeedbackExpiredError,
    DuplicateFeedbackError,
)


_FROM_CONTRACT: tuple[tuple[type[ContractError], type[ServingError]], ...] = (
    (ImageTooLargeError, PayloadTooLargeError),
    (InvalidModelNameError, ModelNotFoundError),
    (InvalidVersionError, ModelNotFoundError),
    (ContractError, InvalidInputError),  # a bad image, anything else the contract refuses
)
"""How the shared contract's errors enter the table: the service's boundary for them."""


def serving_error(error: ContractError) -> ServingError:
    """The error-table entry for a contract error, with the same message."""
    for source, target in _FROM_CONTRACT:
        if isinstance(error, source):
            return target(str(error))
    raise AssertionError(f"unmapped contract error {type(error).__name__}")  # pragma: no cover
