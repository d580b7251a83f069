"""The HTTP edge: request ids, bounded headers, one error envelope, authentication."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from leadgate import keys
from leadgate.db.failures import unavailable
from leadgate.domain.errors import (
    AppError,
    BadRequest,
    HeadersTooLarge,
    Internal,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)
from leadgate.envelope import error_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# An incoming id is kept only when it is short and harmless to echo into logs and headers.
_CLIENT_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{8,64}")
# Served under --demo only: the public keys of `leadgate dev-token` (app.py).
DEMO_JWKS_PATH: Final = "/.well-known/jwks.json"
# The /v1 OpenAPI document describes the API, not anyone's data (rest/openapi.py).
_PUBLIC_PATHS: Final = frozenset(
    {"/healthz", "/readyz", "/metrics", DEMO_JWKS_PATH, "/v1/openapi.json"}
)
# aiohttp's own parser limits sit above ours, so that what lies between them is answered in
# the envelope (its own refusal is a plain-text page); see README "Limits".
PARSER_FIELD_LIMIT: Final = 64 * 1024
# All headers together may use this many times the per-header limit.
_TOTAL_HEADERS_FACTOR: Final = 4


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
    request[keys.REQUEST_ID] = rid
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = rid
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Whatever fails, the client gets its API's envelope with a typed code, never a page."""
    try:
        return await handler(request)
    except AppError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, _from_http_exception(exc))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outage = unavailable(exc)
        if outage is not None:
            log.warning("database unavailable (request %s): %r", keys.request_id(request), exc)
            return error_response(request, outage)
        rid = keys.request_id(request)
        log.exception("unexpected error (request %s)", rid)
        return error_response(request, Internal(f"Internal error (request {rid})"))


def _from_http_exception(exc: web.HTTPException) -> AppError:
    """aiohttp's own refusals (routing, body size) as our typed errors."""
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("No such resource")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = tuple(sorted(exc.allowed_methods))
        return MethodNotAllowed(allowed, f"{exc.method} is not allowed here; use {allowed}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(exc.text or None)
    error = BadRequest(exc.reason)
    # Keep aiohttp's status (e.g. 415) while speaking our envelope.
    error.status = exc.status  # type: ignore[misc]
    return error


@web.middleware
async def header_limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.config_dict[keys.SETTINGS].max_header_bytes
    total = 0
    for name, value in request.raw_headers:
        size = len(name) + len(value)
        if size > limit:
            raise HeadersTooLarge(f"A header is over {limit} bytes")
        total += size
    if total > limit * _TOTAL_HEADERS_FACTOR:
        raise HeadersTooLarge(f"The headers are over {limit * _TOTAL_HEADERS_FACTOR} bytes")
    return await handler(request)


def is_graphiql_page(request: web.Request) -> bool:
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
        return not handshake and not is_graphiql_page(request)
    return True


def authorization_header(request: web.Request) -> str | None:
    """The one Authorization header; two of them are ambiguous, and refused."""
    values = request.headers.getall("Authorization", [])
    if len(values) > 1:
        raise Unauthenticated("Send exactly one Authorization header")
    return values[0] if values else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        # Checked on every request, WebSocket handshakes included (they authenticate later).
        authorization = authorization_header(request)
        if _needs_principal(request):
            authenticator = request.config_dict[keys.AUTHENTICATOR]
            request[keys.PRINCIPAL] = await authenticator.authenticate(authorization)
    except Unauthenticated as exc:
        response = error_response(request, exc)
        response.headers["WWW-Authenticate"] = 'Bearer realm="leadgate"'
        return response
    return await handler(request)
