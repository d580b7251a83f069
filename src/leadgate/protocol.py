"""What aiohttp's HTTP parser refuses (a bad header byte, a header or request line over the
parser's limit, broken framing), answered in our envelope instead of a plain-text page.

aiohttp answers those in `RequestHandler.handle_error`, before any application code (its
middlewares included) sees the request, and has no hook for it. `install()` makes the
process's aiohttp servers use a RequestHandler whose `handle_error` speaks the envelope and
logs no request bytes (they may hold a credential).
"""

from __future__ import annotations

import logging
import uuid
from typing import Final

import orjson
from aiohttp import web, web_protocol, web_server
from aiohttp.web_request import BaseRequest

from leadgate.domain.errors import AppError, BadRequest, HeadersTooLarge, Internal, PayloadTooLarge
from leadgate.envelope import JSON, graphql_error_body, rest_error_body

log = logging.getLogger(__name__)

_BY_STATUS: Final[dict[int, type[AppError]]] = {
    413: PayloadTooLarge,
    431: HeadersTooLarge,
    500: Internal,
}


class EnvelopeRequestHandler(web_protocol.RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response")
        log.warning(
            "refused a malformed HTTP request from %s: %s (HTTP %d)",
            request.remote,
            type(exc).__name__ if exc else "error",
            status,
        )
        error = _BY_STATUS.get(status, BadRequest)(
            "The HTTP request is malformed (request line, a header, or the body's framing)"
        )
        rid = str(uuid.uuid4())
        # The request line may be what failed to parse, so which API was addressed is not
        # known: the body carries both envelopes (REST's `error`/`meta`, GraphQL's `errors`).
        body = orjson.dumps(
            {
                **orjson.loads(rest_error_body(error, rid)),
                **orjson.loads(graphql_error_body(error, rid)),
            }
        )
        response = web.Response(
            status=status if status >= 400 else 400,
            body=body,
            content_type=JSON,
            charset="utf-8",
            headers={"X-Request-Id": rid},
        )
        response.force_close()
        return response


def install() -> None:
    """Make aiohttp's servers in this process answer parser errors in the envelope."""
    web_server.RequestHandler = EnvelopeRequestHandler  # type: ignore[attr-defined]
