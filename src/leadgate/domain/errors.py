"""The error tree of DESIGN §4, translated once at each edge (GraphQL, REST).

AppError
 ├── BadRequest              400 BAD_REQUEST
 ├── Unauthenticated         401 UNAUTHENTICATED
 ├── Forbidden               403 FORBIDDEN
 ├── NotFound                404 NOT_FOUND
 ├── IdempotencyKeyInUse     409 IDEMPOTENCY_KEY_IN_USE
     ├── Conflict                409 CONFLICT (a row stayed locked by another write; retry)
 ├── ValidationFailed        422 VALIDATION_ERROR (with per-field messages)
 ├── IdempotencyKeyReused    422 IDEMPOTENCY_KEY_REUSED
 └── Internal                500 INTERNAL (details masked)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class AppError(Exception):
    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequest(AppError):
    code = "BAD_REQUEST"
    status = 400
    default_message = "Malformed request"


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"
    status = 401
    default_message = "A valid API key is required (Authorization: Bearer lw_live_...)"


class Forbidden(AppError):
    code = "FORBIDDEN"
    status = 403
    default_message = "This API key lacks write permission"


class NotFound(AppError):
    code = "NOT_FOUND"
    status = 404
    default_message = "Not found"


class IdempotencyKeyInUse(AppError):
    code = "IDEMPOTENCY_KEY_IN_USE"
    status = 409
    default_message = "A request with this Idempotency-Key is still being processed"


class Conflict(AppError):
    code = "CONFLICT"
    status = 409
    default_message = (
        "Another request is changing this lead (or its organization's events) right now; retry"
    )


class ValidationFailed(AppError):
    code = "VALIDATION_ERROR"
    status = 422
    default_message = "Request failed validation"

    def __init__(self, fields: list[FieldError], message: str | None = None) -> None:
        self.fields = fields
        super().__init__(message or "; ".join(f"{f.field}: {f.message}" for f in fields))

    @classmethod
    def single(cls, field: str, message: str) -> ValidationFailed:
        return cls([FieldError(field, message)])


class IdempotencyKeyReused(AppError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422
    default_message = "This Idempotency-Key was already used with a different request"


class Internal(AppError):
    pass
