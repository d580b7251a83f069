"""What the gateway refused, as exceptions: one class per error code of the gateway's API.

LeadgateError                      (code, message, fields, request_id, status, retry_after)
 ├── BadRequest                    400 BAD_REQUEST, QUERY_TOO_COMPLEX, PERSISTED_QUERY_REQUIRED
 ├── PersistedQueryNotFound        PERSISTED_QUERY_NOT_FOUND
 ├── Unauthenticated               401 UNAUTHENTICATED (and a WebSocket closed with 4401)
 ├── Forbidden                     403 FORBIDDEN
 ├── NotFound                      404 NOT_FOUND
 ├── MethodNotAllowed              405 METHOD_NOT_ALLOWED
 ├── Conflict                      409 CONFLICT, IDEMPOTENCY_KEY_IN_USE, SUBSCRIBER_TOO_SLOW,
 │                                     DUPLICATE_LEAD
 ├── PayloadTooLarge               413 PAYLOAD_TOO_LARGE
 ├── ValidationError               422 VALIDATION_ERROR, IDEMPOTENCY_KEY_REUSED
 ├── RateLimited                   429 RATE_LIMITED
 ├── HeadersTooLarge               431 HEADERS_TOO_LARGE
 ├── ServiceUnavailable            503 SERVICE_UNAVAILABLE
 ├── InternalError                 500 INTERNAL (and any code this SDK does not know)
 └── TransportError                no answer: connection refused or lost, a timeout

The codes mirror the gateway's own tree (README "Errors"); this package does not import the
server's code, so that it can be used (and later shipped) without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing input of a VALIDATION_ERROR."""

    field: str
    message: str


class LeadgateError(Exception):
    """An error answer of the gateway (or no answer at all, for TransportError)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        fields: Sequence[FieldError] = (),
        retry_after: float | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        data: Any = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.fields = tuple(fields)
        self.retry_after = retry_after
        # GraphQL: every error of the response, and its partial `data` (None when refused).
        self.errors = tuple(errors)
        self.data = data


class BadRequest(LeadgateError):
    pass


class PersistedQueryNotFound(LeadgateError):
    pass


class Unauthenticated(LeadgateError):
    pass


class Forbidden(LeadgateError):
    pass


class NotFound(LeadgateError):
    pass


class MethodNotAllowed(LeadgateError):
    pass


class Conflict(LeadgateError):
    pass


class PayloadTooLarge(LeadgateError):
    pass


class ValidationError(LeadgateError):
    pass


class RateLimited(LeadgateError):
    pass


class HeadersTooLarge(LeadgateError):
    pass


class ServiceUnavailable(LeadgateError):
    pass


class InternalError(LeadgateError):
    pass


class TransportError(LeadgateError):
    """No usable answer: the connection failed, was lost, or timed out."""


ERROR_CLASSES: Final[Mapping[str, type[LeadgateError]]] = {
    "BAD_REQUEST": BadRequest,
    "QUERY_TOO_COMPLEX": BadRequest,
    "PERSISTED_QUERY_REQUIRED": BadRequest,
    "PERSISTED_QUERY_NOT_FOUND": PersistedQueryNotFound,
    "UNAUTHENTICATED": Unauthenticated,
    "FORBIDDEN": Forbidden,
    "NOT_FOUND": NotFound,
    "METHOD_NOT_ALLOWED": MethodNotAllowed,
    "IDEMPOTENCY_KEY_IN_USE": Conflict,
    "CONFLICT": Conflict,
    "SUBSCRIBER_TOO_SLOW": Conflict,
    "DUPLICATE_LEAD": Conflict,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
    "VALIDATION_ERROR": ValidationError,
    "IDEMPOTENCY_KEY_REUSED": ValidationError,
    "RATE_LIMITED": RateLimited,
    "HEADERS_TOO_LARGE": HeadersTooLarge,
    "SERVICE_UNAVAILABLE": ServiceUnavailable,
    "INTERNAL": InternalError,
}
# An answer without a recognisable envelope (a proxy's page, say) is classified by status.
_STATUS_CODES: Final[Mapping[int, str]] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
    502: "SERVICE_UNAVAILABLE",
    503: "SERVICE_UNAVAILABLE",
    504: "SERVICE_UNAVAILABLE",
}


def make_error(code: str, message: str, **details: Any) -> LeadgateError:
    """The exception of `code`'s class (InternalError for a code this SDK does not know)."""
    return ERROR_CLASSES.get(code, InternalError)(code, message, **details)


def _fields(raw: object) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    return [
        FieldError(str(f.get("field", "")), str(f.get("message", "")))
        for f in raw
        if isinstance(f, Mapping)
    ]


def rest_error(
    status: int, body: object, *, request_id: str | None, retry_after: float | None
) -> LeadgateError:
    """The exception a REST error envelope `{"error": {code, message, fields?}, "meta"}` says."""
    error = body.get("error") if isinstance(body, Mapping) else None
    meta = body.get("meta") if isinstance(body, Mapping) else None
    if isinstance(meta, Mapping) and isinstance(meta.get("requestId"), str):
        request_id = meta["requestId"]
    if not isinstance(error, Mapping) or not isinstance(error.get("code"), str):
        code = _STATUS_CODES.get(status, "INTERNAL")
        return make_error(
            code,
            f"HTTP {status} without an error envelope",
            status=status,
            request_id=request_id,
            retry_after=retry_after,
        )
    return make_error(
        error["code"],
        str(error.get("message", "")),
        status=status,
        request_id=request_id,
        fields=_fields(error.get("fields")),
        retry_after=retry_after,
    )


def graphql_error(
    status: int,
    errors: Sequence[Mapping[str, Any]],
    data: Any,
    *,
    request_id: str | None,
    retry_after: float | None,
) -> LeadgateError:
    """The exception for a GraphQL response's errors: the first error's code and message; all
    of them (and any partial data) ride along on `.errors` and `.data`."""
    first = errors[0] if errors else {}
    extensions = first.get("extensions")
    extensions = extensions if isinstance(extensions, Mapping) else {}
    code = extensions.get("code")
    if not isinstance(code, str):
        code = _STATUS_CODES.get(status, "INTERNAL")
    rid = extensions.get("requestId")
    return make_error(
        code,
        str(first.get("message", f"HTTP {status}")),
        status=status,
        request_id=rid if isinstance(rid, str) else request_id,
        fields=_fields(extensions.get("fields")),
        retry_after=retry_after,
        errors=errors,
        data=data,
    )
