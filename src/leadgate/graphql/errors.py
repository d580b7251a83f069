"""Translate execution errors into DESIGN §4's `extensions.code` (the GraphQL edge).

Errors are classified by their cause, never by their shape: the gate (graphql/gate.py) has
already given every document, operation and variable error its code, so what reaches here
was raised while resolving — one of our AppErrors, a database outage, or a bug.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from leadgate.db.failures import unavailable
from leadgate.domain.errors import AppError, ValidationFailed

log = logging.getLogger("leadgate.graphql")


def cause_of(error: GraphQLError) -> BaseException | None:
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
    cause = cause_of(error)
    extensions: dict[str, Any] = {**(error.extensions or {}), "requestId": request_id}
    outage = unavailable(cause) if cause is not None else None
    if isinstance(cause, AppError):
        error.message = cause.message
        extensions["code"] = cause.code
        if isinstance(cause, ValidationFailed) and cause.fields:
            extensions["fields"] = [{"field": f.field, "message": f.message} for f in cause.fields]
    elif outage is not None:
        log.warning("database unavailable (request %s): %r", request_id, cause)
        error.message = outage.message
        extensions["code"] = outage.code
    elif isinstance(error, GraphQLSyntaxError):
        extensions["code"] = "BAD_REQUEST"
    else:
        # Details of unexpected failures stay in the log, found by the request id.
        log.error("unexpected error (request %s): %s", request_id, error.message, exc_info=cause)
        error.message = f"Internal error (request {request_id})"
        extensions["code"] = "INTERNAL"
    error.extensions = extensions
