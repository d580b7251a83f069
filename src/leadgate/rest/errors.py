"""The /v1 error middleware: every failure leaves as the spec's error envelope."""

from __future__ import annotations

import logging

from aiohttp import web

from leadgate import keys
from leadgate.domain.errors import AppError, BadRequest, Internal, NotFound
from leadgate.middleware import Handler, error_response

log = logging.getLogger("leadgate.rest")


@web.middleware
async def rest_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        return error_response(request, exc)
    except web.HTTPNotFound:
        return error_response(request, NotFound("No such resource"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(request, BadRequest(exc.reason))
        response.set_status(exc.status)
        return response
    except Exception:
        log.exception("unexpected error (request %s)", keys.request_id(request))
        return error_response(
            request, Internal(f"Internal error (request {keys.request_id(request)})")
        )
