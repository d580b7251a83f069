"""CORS for browser apps on other origins: /graphql and /v1 only, an exact allow-list.

- A preflight (OPTIONS with `Access-Control-Request-Method`) from an allowed origin is
  answered 204 here, before authentication (a preflight carries no credential), with the
  methods the route takes and the request headers clients send; from any other origin it is
  403 FORBIDDEN in the API's envelope.
- Every other response of those routes, errors and streams included, gets its CORS headers
  as it is prepared (`on_response_prepare`), whichever middleware or handler made it: a
  browser cannot read a 401 or a 429 that lacks them. `Vary: Origin` is on all of them, so a
  cache never serves one origin's answer to another.
- No `Access-Control-Allow-Credentials`: browsers send Bearer tokens, not cookies.
WebSocket handshakes are checked against the same policy by the GraphQL view.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from leadgate.config import Settings
from leadgate.domain.errors import Forbidden, NotFound
from leadgate.domain.origins import is_loopback, normalize_origin
from leadgate.envelope import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOWED_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    # A reconnecting SSE client resumes with it (graphql/sse.py); ours is kept when sent.
    "Last-Event-ID",
    "X-Request-Id",
)
EXPOSED_HEADERS: Final = (
    "X-Request-Id",
    "Idempotent-Replayed",
    "Retry-After",
    # The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers).
    "RateLimit",
    "RateLimit-Policy",
)
# Browsers cap this themselves (Chromium: 2 hours); 10 minutes keeps a change to the list quick.
PREFLIGHT_MAX_AGE: Final = 600


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which page origins may call the APIs: the exact list, plus any loopback under --demo."""

    origins: frozenset[str] = frozenset()
    loopback: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy:
        return cls(origins=frozenset(settings.cors_origins), loopback=settings.cors_loopback)

    def allows(self, origin: str) -> bool:
        normalized = normalize_origin(origin)
        if normalized is None:
            return False
        return normalized in self.origins or (self.loopback and is_loopback(normalized))


def applies(request: web.Request) -> bool:
    path = request.path
    return path == "/graphql" or path == "/v1" or path.startswith("/v1/")


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def _route_methods(request: web.Request) -> tuple[str, ...] | None:
    """The methods the addressed route takes; None when there is no such route."""
    refusal = request.match_info.http_exception
    if isinstance(refusal, web.HTTPMethodNotAllowed):
        return tuple(sorted(refusal.allowed_methods))
    if refusal is not None:
        return None
    route = request.match_info.route
    return (route.method,) if route.method != "*" else None


def middleware(policy: CorsPolicy) -> Middleware:
    """Answers preflights; placed before authentication, inside the error middleware."""

    @web.middleware
    async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not (applies(request) and _is_preflight(request)):
            return await handler(request)
        if not policy.allows(request.headers["Origin"]):
            raise Forbidden("This origin is not allowed to call the API (LEADGATE_CORS_ORIGINS)")
        methods = _route_methods(request)
        if methods is None:
            return error_response(request, NotFound("No such resource"))
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ", ".join((*methods, "OPTIONS"))
        response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response

    return cors_middleware


def response_headers(
    policy: CorsPolicy,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: CORS headers on every response of the two APIs."""

    async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        if not applies(request):
            return
        vary = response.headers.get("Vary", "")
        if "origin" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        origin = request.headers.get("Origin")
        if origin is None or not policy.allows(origin):
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)

    return add_cors_headers


def install(app: web.Application, policy: CorsPolicy) -> None:
    app.on_response_prepare.append(response_headers(policy))
