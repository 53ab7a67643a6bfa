"""One exception tree: each error carries a sentence for a person and Courier's error type."""

from __future__ import annotations


class TidingsError(Exception):
    """Base of every error Tidings raises on purpose."""

    status_code = 500
    error_type = "api_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(TidingsError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(TidingsError):
    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(message)


class Conflict(TidingsError):
    status_code = 409
    error_type = "invalid_request_error"


class PayloadTooLarge(TidingsError):
    status_code = 413
    error_type = "invalid_request_error"


class Unauthorized(TidingsError):
    status_code = 401
    error_type = "authentication_error"


class ConfigurationError(TidingsError):
    """A setting that cannot work; raised at start or by the doctor."""
