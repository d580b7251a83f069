"""Rate limits at the HTTP edge: REST requests cost 1 point each, and every response whose
caller has a limit carries the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-
headers-10, Structured Fields lists):

    RateLimit-Policy: "credential";q=100;w=1, "organization";q=1000;w=2
    RateLimit: "credential";r=42;t=1, "organization";r=958;t=1

A token bucket of RATE points a second and BURST points is the policy q=BURST, w=the seconds
an empty bucket takes to fill; r is what is left (floor), t the seconds until the bucket is
full again. GraphQL operations are debited by the schema once admitted (their cost, before any
SQL); this module only reads those buckets for a GraphQL response without an operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from leadgate import keys
from leadgate.services.rate_limits import RateLimiter, Verdict, tally, tallying

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def header_fields(verdict: Verdict) -> dict[str, str]:
    policies = ", ".join(
        f'"{level.policy.name}";q={int(level.policy.rate.burst)};w={level.policy.rate.window}'
        for level in verdict.levels
    )
    limits = ", ".join(
        f'"{level.policy.name}";r={level.remaining};t={level.reset}' for level in verdict.levels
    )
    return {"RateLimit-Policy": policies, "RateLimit": limits}


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside the error middleware, so that refusals (429s, 4xx) carry the fields too."""
    with tallying() as current:
        response = await handler(request)
    if current.verdict is not None and not response.prepared:
        response.headers.update(header_fields(current.verdict))
    return response


def debit_middleware(limiter: RateLimiter) -> Middleware:
    """After authentication: a REST request debits 1 point before its handler runs."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        principal = request.get(keys.PRINCIPAL)
        if principal is None:
            return await handler(request)
        if request.path == "/v1" or request.path.startswith("/v1/"):
            verdict = await limiter.debit(principal, 1)
            if verdict is not None and not verdict.allowed:
                raise verdict.refusal()
            return await handler(request)
        response = await handler(request)
        current = tally()
        if current is not None and current.verdict is None:
            # No operation was debited (a refused document, an unknown APQ hash): the
            # response still tells the client where its buckets stand.
            await limiter.debit(principal, 0)
        return response

    return middleware
