"""The /graphql endpoint: strawberry's aiohttp view with our context, errors and GraphiQL."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from leadgate import keys
from leadgate.cors import CorsPolicy
from leadgate.domain.errors import Forbidden, Unauthenticated
from leadgate.domain.models import Principal
from leadgate.graphql import http, sse
from leadgate.graphql.connections import (
    ConnectionRegistry,
    LegacyWSConnection,
    TransportWSConnection,
)
from leadgate.graphql.context import Context
from leadgate.graphql.encoding import encode
from leadgate.graphql.ide import render_graphiql
from leadgate.graphql.schema import LeadgateSchema
from leadgate.middleware import is_graphiql_page as _is_graphiql_page
from leadgate.services.auth import Authenticator

# graphql-transport-ws close code for a connection whose key is missing or invalid.
CLOSE_UNAUTHORIZED = 4401


class LeadgateGraphQLView(GraphQLView[Context, None]):
    # Connections the registry tracks: re-authenticated while open, closed at shutdown.
    graphql_transport_ws_handler_class = TransportWSConnection
    graphql_ws_handler_class = LegacyWSConnection

    def __init__(
        self,
        *args: Any,
        graphiql_api_key: str | None = None,
        connections: ConnectionRegistry | None = None,
        streams: ConnectionRegistry | None = None,
        cors: CorsPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._graphiql_api_key = graphiql_api_key
        self.connections = ConnectionRegistry() if connections is None else connections
        # Open graphql-sse streams (graphql/sse.py), tracked apart from the WebSockets.
        self.streams = ConnectionRegistry() if streams is None else streams
        self.cors = CorsPolicy() if cors is None else cors

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if self.is_websocket_request(request):
            return await self.run(request=request)
        if sse.wants_event_stream(request):
            schema = cast("LeadgateSchema", self.schema)
            return await sse.respond(request, schema, self.get_context, self.streams)
        if _is_graphiql_page(request):
            return await self.render_graphql_ide(request)
        # Plain HTTP is ours (graphql/http.py): media types, status codes, bounded bodies.
        return await http.respond(request, self.schema, self.get_context)

    def is_websocket_origin_allowed(self, request: web.Request, origin: str) -> bool:
        # Cross-site WebSocket hijacking: a page on another origin opens a socket only when
        # CORS would let it call the API (strawberry still admits no Origin and same origin).
        return self.cors.allows(origin)

    async def reject_websocket(self, request: web.Request) -> web.Response:
        raise Forbidden("This origin may not open a WebSocket here (LEADGATE_CORS_ORIGINS)")

    async def get_context(self, request: web.Request, response: web.StreamResponse) -> Context:
        app = request.config_dict
        authenticator = app[keys.AUTHENTICATOR]
        authorization = None
        if isinstance(response, web.WebSocketResponse):
            # A subscription connection: authenticated by its upgrade request's header when
            # it has one, otherwise by its connection_init payload (on_ws_connect).
            authorization = request.headers.get("Authorization")
            caller = await _authenticate(authenticator, authorization)
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
            importer=app[keys.IMPORTER],
            websocket=response if isinstance(response, web.WebSocketResponse) else None,
        )
        if caller is not None:
            context.authorization = authorization
        request[keys.GRAPHQL_EXTENSIONS] = context.response_extensions
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is not None:
            context.caller = await _authenticate(context.authenticator, authorization)
            # Re-checked while the connection is open (graphql/connections.py).
            context.authorization = authorization if context.caller is not None else None
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

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws frames must be text frames.
        return encode(data).decode()


async def _authenticate(authenticator: Authenticator, authorization: object) -> Principal | None:
    if not isinstance(authorization, str):
        return None
    try:
        return await authenticator.authenticate(authorization)
    except Unauthenticated:
        return None
