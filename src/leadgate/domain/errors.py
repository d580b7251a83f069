"""The error tree of DESIGN §4: every code either API answers, translated once at each edge.

AppError                          (code, HTTP status, message; `retryable` ones say when)
 ├── BadRequest                   400 BAD_REQUEST         unparseable body or document, wrong shape
 │    ├── QueryTooComplex         400 QUERY_TOO_COMPLEX   token, depth, alias or cost limit
 │    └── PersistedQueryRequired  400 PERSISTED_QUERY_REQUIRED  trusted-documents mode: not one
 ├── PersistedQueryNotFound       200 PERSISTED_QUERY_NOT_FOUND  APQ hash unknown (Apollo's
 │                                                        protocol: 404 under graphql-response+json)
 ├── Unauthenticated              401 UNAUTHENTICATED     missing, unknown, revoked credential
 ├── Forbidden                    403 FORBIDDEN           the credential may not do this
 ├── NotFound                     404 NOT_FOUND           unknown id (another organization's too)
 ├── MethodNotAllowed             405 METHOD_NOT_ALLOWED  e.g. a mutation over GET (`Allow`)
 ├── IdempotencyKeyInUse          409 IDEMPOTENCY_KEY_IN_USE  the same key is still running
 ├── Conflict                     409 CONFLICT            a row stayed locked past lock_timeout
 ├── DuplicateLead                409 DUPLICATE_LEAD      a likely duplicate or an external id
 │                                                        already held: names the existing lead
 ├── SubscriberTooSlow            409 SUBSCRIBER_TOO_SLOW a subscription fell behind (resume)
 ├── PayloadTooLarge              413 PAYLOAD_TOO_LARGE   body over the documented limit
 ├── ValidationFailed             422 VALIDATION_ERROR    input or document fails validation
 ├── IdempotencyKeyReused         422 IDEMPOTENCY_KEY_REUSED  same key, different request
 ├── RateLimited                  429 RATE_LIMITED        over the credential's or organization's
 │                                                        rate (`Retry-After`)
 ├── HeadersTooLarge              431 HEADERS_TOO_LARGE   a header or all of them over the limit
 ├── ServiceUnavailable           503 SERVICE_UNAVAILABLE database lost, shutdown, statement
 │                                                        timeout: retry (`Retry-After`)
 └── Internal                     500 INTERNAL            a bug: masked, logged with request id
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
    # Seconds a client should wait before retrying (the `Retry-After` header), when it may;
    # per instance where the wait is known only when refusing (RateLimited).
    retry_after: int | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequest(AppError):
    code = "BAD_REQUEST"
    status = 400
    default_message = "Malformed request"


class QueryTooComplex(BadRequest):
    code = "QUERY_TOO_COMPLEX"
    default_message = "The document exceeds a limit of this API"


class PersistedQueryRequired(BadRequest):
    code = "PERSISTED_QUERY_REQUIRED"
    default_message = (
        "This gateway runs only trusted documents: send the documentId (or "
        "extensions.persistedQuery) of a document loaded with `leadgate documents add`"
    )


class PersistedQueryNotFound(AppError):
    """Apollo's automatic persisted queries: the client resends the document with its hash.

    Apollo's clients match the message as well as the code, so the message is fixed, and the
    status is 200 as in Apollo's protocol (the transport answers 404 under
    application/graphql-response+json, where a response without `data` must be a 4xx).
    """

    code = "PERSISTED_QUERY_NOT_FOUND"
    status = 200
    default_message = "PersistedQueryNotFound"


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


class MethodNotAllowed(AppError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    default_message = "This method is not allowed here"

    def __init__(self, allowed: tuple[str, ...], message: str | None = None) -> None:
        self.allowed = allowed
        super().__init__(message)


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


class DuplicateLead(AppError):
    """createLead with onDuplicate REJECT met a likely duplicate, or an external id is already
    another lead's (issue 12 #4, #5); `lead_id` is the existing lead."""

    code = "DUPLICATE_LEAD"
    status = 409

    def __init__(self, lead_id: object, reason: str) -> None:
        self.lead_id = str(lead_id)
        self.reason = reason
        super().__init__(f"Lead {self.lead_id} already has this {reason}")


class SubscriberTooSlow(AppError):
    code = "SUBSCRIBER_TOO_SLOW"
    status = 409

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        super().__init__(
            f"This subscription fell too far behind and was closed; resubscribe with "
            f'after: "{cursor}" to continue without a gap'
        )


class PayloadTooLarge(AppError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    default_message = "The request body is too large"


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


class RateLimited(AppError):
    """Over a rate limit (README "Rate limits"): retry after `retry_after` seconds."""

    code = "RATE_LIMITED"
    status = 429

    def __init__(self, retry_after: int, policies: tuple[str, ...]) -> None:
        self.retry_after = retry_after
        self.policies = policies
        super().__init__(
            f"Over the {' and '.join(policies)} rate limit; retry in {retry_after} s "
            f"(RateLimit and RateLimit-Policy headers tell the budget)"
        )


class HeadersTooLarge(AppError):
    code = "HEADERS_TOO_LARGE"
    status = 431
    default_message = "The request's headers are too large"


class ServiceUnavailable(AppError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_message = "The service is briefly unavailable; retry shortly"
    retry_after = 1


class Internal(AppError):
    pass
