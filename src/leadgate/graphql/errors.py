"""Translate execution errors into DESIGN §4's `extensions.code` (the GraphQL edge)."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from leadgate.domain.errors import AppError, ValidationFailed

log = logging.getLogger("leadgate.graphql")


def _cause(error: GraphQLError) -> BaseException | None:
    """The exception behind an error, through graphql-core's wrapping (variables, arguments)."""
    cause = error.original_error
    while isinstance(cause, GraphQLError) and cause.original_error is not None:
        cause = cause.original_error
    return cause


def annotate(error: GraphQLError, request_id: str) -> None:
    """Give the error its DESIGN §4 code (and mask what is unexpected), in place, so every
    transport that formats it (HTTP, graphql-transport-ws) shows the same thing."""
    if error.extensions and "code" in error.extensions:
        return
    cause = _cause(error)
    extensions: dict[str, Any] = {**(error.extensions or {}), "requestId": request_id}
    if isinstance(cause, AppError):
        error.message = cause.message
        extensions["code"] = cause.code
        if isinstance(cause, ValidationFailed):
            extensions["fields"] = [{"field": f.field, "message": f.message} for f in cause.fields]
    elif isinstance(error, GraphQLSyntaxError):
        extensions["code"] = "BAD_REQUEST"
    elif error.path is None:
        # Raised before execution: the document does not validate against the schema
        # (unknown field, wrong argument type, an input field update does not accept...) or a
        # variable does not fit its type. Understood and refused, as REST refuses a body that
        # fails validation.
        extensions["code"] = "VALIDATION_ERROR"
    else:
        # Details of unexpected failures stay in the log, found by the request id.
        log.error("unexpected error (request %s)", request_id, exc_info=cause)
        error.message = f"Internal error (request {request_id})"
        extensions["code"] = "INTERNAL"
    error.extensions = extensions
