"""Request ids, authentication and error envelopes at the HTTP edge."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

import orjson
from aiohttp import web

from leadgate import keys
from leadgate.domain.errors import AppError, Unauthenticated

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# An incoming id is kept only when it is short and harmless to echo into logs and headers.
_CLIENT_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


def graphql_error_body(error: AppError, request_id: str) -> bytes:
    return orjson.dumps(
        {
            "data": None,
            "errors": [
                {
                    "message": error.message,
                    "extensions": {"code": error.code, "requestId": request_id},
                }
            ],
        }
    )


def rest_error_body(error: AppError, request_id: str) -> bytes:
    body: dict[str, object] = {"code": error.code, "message": error.message}
    fields = getattr(error, "fields", None)
    if fields:
        body["fields"] = [{"field": f.field, "message": f.message} for f in fields]
    return orjson.dumps({"error": body, "meta": {"requestId": request_id}})


def error_response(request: web.Request, error: AppError) -> web.Response:
    rid = keys.request_id(request)
    body = (
        rest_error_body(error, rid)
        if request.path.startswith("/v1/")
        else graphql_error_body(error, rid)
    )
    return web.Response(body=body, status=error.status, content_type="application/json")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
    request[keys.REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    if not response.prepared:
        response.headers["X-Request-Id"] = rid
    return response


def _is_graphiql_page(request: web.Request) -> bool:
    """The browser's GET of GraphiQL: a public page, the key is entered inside it."""
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("Accept", "")
        and "query" not in request.query
    )


def _needs_principal(request: web.Request) -> bool:
    path = request.path
    if path in _PUBLIC_PATHS or path.startswith("/graphql/static/"):
        return False
    if path == "/graphql":
        # Subscriptions authenticate in connection_init (or the upgrade's own header): only a
        # genuine WebSocket handshake skips the key here, not any request naming an upgrade.
        handshake = web.WebSocketResponse().can_prepare(request).ok
        return not handshake and not _is_graphiql_page(request)
    return True


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _needs_principal(request):
        authenticator = request.config_dict[keys.AUTHENTICATOR]
        try:
            request[keys.PRINCIPAL] = await authenticator.authenticate(
                request.headers.get("Authorization")
            )
        except Unauthenticated as exc:
            response = error_response(request, exc)
            response.headers["WWW-Authenticate"] = 'Bearer realm="leadgate"'
            return response
    return await handler(request)
