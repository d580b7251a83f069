"""What every resolver gets: the caller, the services, this request's loaders."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from strawberry.types import Info as StrawberryInfo

from leadgate.domain.errors import Unauthenticated
from leadgate.domain.models import Principal
from leadgate.graphql.loaders import Loaders, make_loaders
from leadgate.services.auth import Authenticator
from leadgate.services.event_feed import EventFeed
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader
from leadgate.services.webhooks import WebhookAdmin


class Context:
    """Per HTTP request, or per WebSocket connection (whose caller is known only once its
    connection_init has been authenticated)."""

    __slots__ = (
        "_loaders",
        "authenticator",
        "caller",
        "connection_params",
        "feed",
        "idempotency_header",
        "reader",
        "request_id",
        "response_extensions",
        "webhooks",
        "websocket",
        "writer",
    )

    def __init__(
        self,
        *,
        caller: Principal | None,
        request_id: str,
        reader: LeadReader,
        writer: LeadWriter,
        feed: EventFeed,
        authenticator: Authenticator,
        webhooks: WebhookAdmin,
        idempotency_header: str | None = None,
        websocket: web.WebSocketResponse | None = None,
    ) -> None:
        self.caller = caller
        self.request_id = request_id
        self.reader = reader
        self.writer = writer
        self.feed = feed
        self.idempotency_header = idempotency_header
        self.authenticator = authenticator
        self.webhooks = webhooks
        self.websocket = websocket
        # Merged into the response's top-level `extensions` (e.g. idempotentReplayed).
        self.response_extensions: dict[str, Any] = {}
        # Set by strawberry from a WebSocket's connection_init payload.
        self.connection_params: dict[str, Any] | None = None
        self._loaders: Loaders | None = None

    @property
    def principal(self) -> Principal:
        if self.caller is None:
            raise Unauthenticated()
        return self.caller

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = make_loaders(self.reader, self.principal)
        return self._loaders


Info = StrawberryInfo[Context, None]
