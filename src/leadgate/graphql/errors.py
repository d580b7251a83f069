"""Translate execution errors into DESIGN §4's `extensions.code` (the GraphQL edge)."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from leadgate.domain.errors import AppError, ValidationFailed

log = logging.getLogger("leadgate.graphql")


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    extensions: dict[str, Any] = {"requestId": request_id}
    if isinstance(original, AppError):
        formatted["message"] = original.message
        extensions["code"] = original.code
        if isinstance(original, ValidationFailed):
            extensions["fields"] = [
                {"field": f.field, "message": f.message} for f in original.fields
            ]
    elif isinstance(error, GraphQLSyntaxError):
        extensions["code"] = "BAD_REQUEST"
    elif original is None:
        # The document parsed but does not validate against the schema (unknown field, wrong
        # argument type, an input field update does not accept...): the request is understood
        # and refused, as REST refuses a body that fails validation.
        extensions["code"] = "VALIDATION_ERROR"
    else:
        # Details of unexpected failures stay in the log, found by the request id.
        log.error("unexpected error (request %s)", request_id, exc_info=original)
        formatted["message"] = f"Internal error (request {request_id})"
        extensions["code"] = "INTERNAL"
    formatted["extensions"] = extensions
    return formatted
