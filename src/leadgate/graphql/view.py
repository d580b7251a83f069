"""The /graphql endpoint: strawberry's aiohttp view with our context, errors and GraphiQL."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from leadgate import keys
from leadgate.domain.errors import BadRequest, Unauthenticated
from leadgate.domain.models import Principal
from leadgate.graphql.context import Context
from leadgate.graphql.errors import annotate
from leadgate.graphql.ide import render_graphiql
from leadgate.middleware import graphql_error_body
from leadgate.services.auth import Authenticator

# graphql-transport-ws close code for a connection whose key is missing or invalid.
CLOSE_UNAUTHORIZED = 4401


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

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        app = request.config_dict
        authenticator = app[keys.AUTHENTICATOR]
        if isinstance(response, web.WebSocketResponse):
            # A subscription connection: authenticated by its upgrade request's header when
            # it has one, otherwise by its connection_init payload (on_ws_connect).
            caller = await _authenticate(authenticator, request.headers.get("Authorization"))
        else:
            # None only for the public GraphiQL page, which runs nothing.
            caller = request.get(keys.PRINCIPAL)
        context = Context(
            caller=caller,
            request_id=keys.request_id(request),
            reader=app[keys.LEAD_READER],
            writer=app[keys.LEAD_WRITER],
            feed=app[keys.EVENT_FEED],
            idempotency_header=request.headers.get("Idempotency-Key"),
            authenticator=authenticator,
            webhooks=app[keys.WEBHOOKS],
            websocket=response if isinstance(response, web.WebSocketResponse) else None,
        )
        request[keys.GRAPHQL_EXTENSIONS] = context.response_extensions
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is not None:
            context.caller = await _authenticate(context.authenticator, authorization)
        if context.caller is None:
            if context.websocket is not None:
                await context.websocket.close(
                    code=CLOSE_UNAUTHORIZED, message=b"Unauthorized: a valid API key is required"
                )
            raise ConnectionRejectionError()
        acknowledged: UnsetType = UNSET
        return acknowledged

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
            errors: list[object] = []
            for error in result.errors:
                annotate(error, rid)
                formatted: dict[str, Any] = dict(error.formatted)
                # Cached validation errors are shared between requests: this request's id.
                formatted["extensions"] = {**formatted.get("extensions", {}), "requestId": rid}
                errors.append(formatted)
            response["errors"] = errors
        extensions = {**(result.extensions or {}), **request.get(keys.GRAPHQL_EXTENSIONS, {})}
        if extensions:
            response["extensions"] = extensions
        return response

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws frames must be text frames.
        try:
            return orjson.dumps(data).decode()
        except orjson.JSONEncodeError:
            # A client's lone surrogate echoed in an error message: json escapes it.
            return json.dumps(data)


async def _authenticate(authenticator: Authenticator, authorization: object) -> Principal | None:
    if not isinstance(authorization, str):
        return None
    try:
        return await authenticator.authenticate(authorization)
    except Unauthenticated:
        return None
