"""The one error type of the API: a canonical code, a human message, optional details.

Codes map to HTTP statuses here and nowhere else; anything that is not an `ApiError` is
logged by the HTTP layer and answered as 500 INTERNAL without its message.
"""

from __future__ import annotations

import enum
from typing import Any

from common.validation import MAX_DETAILS


class Code(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ABORTED = "ABORTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    UNPROCESSABLE_ENTITY = "UNPROCESSABLE_ENTITY"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    Code.INVALID_ARGUMENT: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.FAILED_PRECONDITION: 412,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.UNPROCESSABLE_ENTITY: 422,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
}


class ApiError(Exception):
    """An error the client is meant to see."""

    def __init__(
        self,
        code: Code,
        message: str,
        details: list[dict[str, Any]] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}  # e.g. Retry-After

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"status": self.code.name, "message": self.message}
        if self.details:
            error["details"] = self.details[:MAX_DETAILS]  # bounded, whoever raised it
        return {"error": error}


class NotFoundError(ApiError):
    """404 NOT_FOUND: nothing there, or nothing of the caller's (never told apart). Every 404 raised
    is one, so a caller that takes a missing thing in stride catches this, whatever raised it."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.NOT_FOUND, message)


class ConfigurationError(Exception):
    """A setting is missing or invalid; raised at cold start."""
