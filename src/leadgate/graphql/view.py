"""The /graphql endpoint: strawberry's aiohttp view with our context, errors and GraphiQL."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from leadgate import keys
from leadgate.domain.errors import BadRequest
from leadgate.graphql.context import Context
from leadgate.graphql.errors import format_error
from leadgate.graphql.ide import render_graphiql
from leadgate.graphql.loaders import make_loaders
from leadgate.middleware import graphql_error_body


class LeadgateGraphQLView(GraphQLView[Context, None]):
    def __init__(self, *args: Any, graphiql_api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._graphiql_api_key = graphiql_api_key

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except HTTPException as exc:
            # Strawberry answers malformed requests in plain text; ours speak the envelope.
            body = graphql_error_body(BadRequest(exc.reason), keys.request_id(request))
            return web.Response(body=body, status=exc.status_code, content_type="application/json")

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        principal = keys.request_principal(request)
        reader = request.config_dict[keys.LEAD_READER]
        context = Context(
            principal=principal,
            request_id=keys.request_id(request),
            reader=reader,
            writer=request.config_dict[keys.LEAD_WRITER],
            loaders=make_loaders(reader, principal),
            idempotency_header=request.headers.get("Idempotency-Key"),
        )
        request[keys.GRAPHQL_EXTENSIONS] = context.response_extensions
        return context

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return web.Response(
            text=render_graphiql(api_key=self._graphiql_api_key), content_type="text/html"
        )

    async def process_result(
        self, request: web.Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            rid = keys.request_id(request)
            response["errors"] = [format_error(e, rid) for e in result.errors]
        extensions = {**(result.extensions or {}), **request.get(keys.GRAPHQL_EXTENSIONS, {})}
        if extensions:
            response["extensions"] = extensions
        return response

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)
