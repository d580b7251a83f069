"""GraphQL over HTTP (the GraphQL-over-HTTP spec): GET and POST, media types, status codes.

- `application/graphql-response+json` when the client accepts it: a request refused before
  execution (parse, validation, variables, limits) is a 4xx without a `data` entry;
- `application/json` otherwise, for older clients: such refusals are 200 with `errors`;
- queries by GET or POST, mutations by POST only (405 with `Allow: POST`), subscriptions
  over the WebSocket only (400);
- persisted documents (APQ hashes, `documentId`) resolved by graphql/persisted.py;
- a database outage anywhere in a response makes it one retryable SERVICE_UNAVAILABLE (503,
  `Retry-After`): partial data from a failing database is not worth showing, and both
  executors then answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from graphql import GraphQLError
from strawberry.schema.base import BaseSchema
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from leadgate import keys
from leadgate.domain.errors import AppError, BadRequest, PersistedQueryNotFound, ServiceUnavailable
from leadgate.envelope import (
    GRAPHQL_RESPONSE_JSON,
    error_headers,
    error_response,
    graphql_error,
    graphql_media_type,
)
from leadgate.graphql import persisted
from leadgate.graphql.context import Context
from leadgate.graphql.encoding import encode
from leadgate.graphql.errors import annotate
from leadgate.graphql.schema import RefusedResult

_GET: Final = (OperationType.QUERY,)
_POST: Final = (OperationType.QUERY, OperationType.MUTATION)

ContextFactory = Callable[[web.Request, web.Response], Awaitable[Context]]


async def respond(
    request: web.Request, schema: BaseSchema, make_context: ContextFactory
) -> web.Response:
    media = graphql_media_type(request.headers.get("Accept"))
    documents = request.config_dict[keys.DOCUMENTS]
    params = await _read(request)
    try:
        document = await persisted.resolve(params, documents)
    except PersistedQueryNotFound as missing:
        refusal = error_response(request, missing)
        if media == GRAPHQL_RESPONSE_JSON:
            # No `data`: a 4xx under the newer media type (Apollo's clients accept either).
            refusal.set_status(404)
        return refusal
    response = web.Response()
    context = await make_context(request, response)
    result = await schema.execute(
        document.query,
        variable_values=params.get("variables"),
        context_value=context,
        operation_name=params.get("operationName"),
        allowed_operation_types=_GET if request.method == "GET" else _POST,
    )
    if document.register is not None and not isinstance(result, RefusedResult):
        await documents.register(document.register, document.query)
    body, status, headers = _answer(result, context, media)
    response.body = encoded = encode(body)
    response.set_status(status)
    response.content_type = media
    response.charset = "utf-8"
    response.headers.update(headers)
    if request.method == "GET" and document.by_hash and status == 200 and "errors" not in body:
        max_age = request.config_dict[keys.SETTINGS].persisted_get_max_age
        persisted.cache(request, response, encoded, max_age=max_age)
    return response


async def _params(request: web.Request) -> dict[str, Any]:
    """The request's params, `query` being the text it runs (a persisted document resolved,
    trusted-documents mode enforced). For streams (graphql/sse.py): they register nothing."""
    params = await _read(request)
    document = await persisted.resolve(params, request.config_dict[keys.DOCUMENTS])
    return {**params, "query": document.query}


async def _read(request: web.Request) -> dict[str, Any]:
    """The request's {query, documentId, operationName, variables, extensions}, each of the
    right type (graphql/persisted.py then decides which document runs)."""
    if request.method == "GET":
        raw: dict[str, Any] = dict(request.query)
        for name in ("variables", "extensions"):
            if raw.get(name):
                raw[name] = _json(raw[name], name)
    else:
        if request.content_type != "application/json":
            raise BadRequest("POST a JSON body with Content-Type: application/json")
        raw_body = _json(await request.read(), "body")
        if not isinstance(raw_body, dict):
            raise BadRequest("The request body must be a JSON object")
        raw = raw_body
    for name, kinds in (
        ("query", (str,)),
        ("documentId", (str,)),
        ("operationName", (str,)),
        ("variables", (dict,)),
        ("extensions", (dict,)),
    ):
        value = raw.get(name)
        if value is not None and not isinstance(value, kinds):
            expected = "a string" if kinds == (str,) else "an object"
            raise BadRequest(f"`{name}` must be {expected} or null")
    return raw


def _json(data: bytes | str, what: str) -> Any:
    # The standard library's parser: unlike orjson it keeps integers of any size and lone
    # surrogates (validation then refuses them with their field); what it cannot read is a
    # typed 400, whatever the reason (not UTF-8, too deep, too many digits).
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        reason = "is not valid JSON" if what == "body" else f"`{what}` is not valid JSON"
        raise BadRequest(f"The request {reason}: {type(exc).__name__}") from exc


def _answer(
    result: ExecutionResult, context: Context, media: str
) -> tuple[dict[str, Any], int, dict[str, str]]:
    extensions = context.response_extensions
    errors = result.errors or []
    for error in errors:
        annotate(error, context.request_id)
    outage = next((e for e in errors if _code(e) == ServiceUnavailable.code), None)
    if outage is not None:
        failure = ServiceUnavailable()
        return (
            _with({"errors": [graphql_error(failure, context.request_id)]}, extensions),
            failure.status,
            error_headers(failure),
        )
    if isinstance(result, RefusedResult):
        cause: AppError = result.refused.cause
        body = _with({"errors": _formatted(errors, context.request_id)}, extensions)
        status = cause.status
        if result.refused.of_document:
            # Document errors: 200 to application/json clients, 400 to the newer media type.
            status = 400 if media == GRAPHQL_RESPONSE_JSON else 200
        return body, status, error_headers(cause)
    body = {"data": result.data}
    if errors:
        body["errors"] = _formatted(errors, context.request_id)
    return _with(body, extensions), 200, {}


def _code(error: GraphQLError) -> object:
    return (error.extensions or {}).get("code")


def _formatted(errors: list[GraphQLError], request_id: str) -> list[dict[str, Any]]:
    formatted = []
    for error in errors:
        entry: dict[str, Any] = dict(error.formatted)
        # Refusals are remembered per document and shared between requests: this request's id.
        entry["extensions"] = {**entry.get("extensions", {}), "requestId": request_id}
        formatted.append(entry)
    return formatted


def _with(body: dict[str, Any], extensions: dict[str, Any]) -> dict[str, Any]:
    if extensions:
        body["extensions"] = extensions
    return body
