"""Error envelopes of both APIs, and the media type a GraphQL client asked for.

REST (`/v1/…`): `{"error": {"code", "message", "fields"?}, "meta": {"requestId"}}`.
GraphQL: `{"errors": [{"message", "extensions": {"code", "requestId"}}]}`, without a `data`
entry: a request refused before execution has none (GraphQL spec, "Response").
"""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from leadgate import keys
from leadgate.domain.errors import AppError, MethodNotAllowed, ValidationFailed

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
JSON: Final = "application/json"


def graphql_media_type(accept: str | None) -> str:
    """The GraphQL-over-HTTP media type to answer with: the client's most preferred one of
    the two we speak; application/json when it names neither (or nothing), for older clients."""
    best, best_q = JSON, -1.0
    for part in (accept or "").split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        if media in ("*/*", "application/*"):
            media = JSON
        elif media not in (JSON, GRAPHQL_RESPONSE_JSON):
            continue
        q = _quality(params)
        # At equal preference the newer, more precise media type wins.
        if q > best_q or (q == best_q and media == GRAPHQL_RESPONSE_JSON):
            best, best_q = media, q
    return best if best_q != 0 else JSON


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def graphql_error(error: AppError, request_id: str) -> dict[str, object]:
    extensions: dict[str, object] = {"code": error.code, "requestId": request_id}
    if isinstance(error, ValidationFailed) and error.fields:
        extensions["fields"] = [{"field": f.field, "message": f.message} for f in error.fields]
    return {"message": error.message, "extensions": extensions}


def graphql_error_body(error: AppError, request_id: str) -> bytes:
    return orjson.dumps({"errors": [graphql_error(error, request_id)]})


def rest_error_body(error: AppError, request_id: str) -> bytes:
    body: dict[str, object] = {"code": error.code, "message": error.message}
    if isinstance(error, ValidationFailed) and error.fields:
        body["fields"] = [{"field": f.field, "message": f.message} for f in error.fields]
    return orjson.dumps({"error": body, "meta": {"requestId": request_id}})


def error_headers(error: AppError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    return headers


def error_response(request: web.Request, error: AppError) -> web.Response:
    """`error` in the envelope of the API that `request` addressed."""
    rid = keys.request_id(request)
    if request.path.startswith("/v1/") or request.path == "/v1":
        body, media = rest_error_body(error, rid), JSON
    else:
        body = graphql_error_body(error, rid)
        media = graphql_media_type(request.headers.get("Accept"))
    return web.Response(
        body=body,
        status=error.status,
        content_type=media,
        charset="utf-8",
        headers=error_headers(error),
    )
