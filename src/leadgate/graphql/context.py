"""What every resolver gets: the caller, the services, this request's loaders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from strawberry.types import Info as StrawberryInfo

from leadgate.domain.errors import Unauthenticated
from leadgate.domain.models import Principal
from leadgate.graphql.loaders import Loaders, make_loaders
from leadgate.services.auth import Authenticator
from leadgate.services.event_feed import EventFeed
from leadgate.services.imports import Importer
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader
from leadgate.services.webhooks import WebhookAdmin

if TYPE_CHECKING:
    from leadgate.graphql.connections import TrackedConnection


class Context:
    """Per HTTP request, or per WebSocket connection (whose caller is known only once its
    connection_init has been authenticated).

    A WebSocket's context lives as long as the connection, but its loaders must not: each
    operation and each delivered subscription event reads afresh (`renew_loaders`)."""

    __slots__ = (
        "_loaders",
        "authenticator",
        "authorization",
        "caller",
        "connection",
        "connection_params",
        "feed",
        "idempotency_header",
        "importer",
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
        importer: Importer | None = None,
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
        self.importer = importer
        # Merged into the response's top-level `extensions` (e.g. idempotentReplayed).
        self.response_extensions: dict[str, Any] = {}
        # Set by strawberry from a WebSocket's connection_init payload.
        self.connection_params: dict[str, Any] | None = None
        # A WebSocket's: the credential that authenticated it (re-checked while it is open)
        # and the connection itself (graphql/connections.py).
        self.authorization: str | None = None
        self.connection: TrackedConnection | None = None
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

    def renew_loaders(self) -> None:
        """Forget what the loaders cached: what resolves next is read afresh.

        Safe with several operations on one connection: whatever resolves after this call
        reads through loaders made after it, so never older than the event it answers."""
        self._loaders = None


Info = StrawberryInfo[Context, None]
