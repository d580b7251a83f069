"""Every typed key of application and request state, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import aiohttp
import asyncpg
from aiohttp import web

from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from leadgate.domain.models import Principal
from leadgate.events.dispatcher import Dispatcher
from leadgate.events.listener import EventListener
from leadgate.services.auth import Authenticator
from leadgate.services.documents import PersistedDocuments
from leadgate.services.event_feed import EventFeed
from leadgate.services.imports import Importer
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader
from leadgate.services.rate_limits import RateLimiter
from leadgate.services.webhooks import WebhookAdmin

if TYPE_CHECKING:
    # Typing only: importing graphql here would pull strawberry into the REST layer.
    from leadgate.graphql.connections import ConnectionRegistry
    from leadgate.metrics import Metrics

SETTINGS: Final = web.AppKey("settings", Settings)
POOL: Final = web.AppKey("pool", asyncpg.Pool)
# Set only with LEADGATE_READ_DATABASE_URL: the replica's pool (services/leads.py).
READ_POOL: Final = web.AppKey("read_pool", asyncpg.Pool)
STATEMENTS: Final = web.AppKey("statements", StatementCounter)
AUTHENTICATOR: Final = web.AppKey("authenticator", Authenticator)
DOCUMENTS: Final = web.AppKey("documents", PersistedDocuments)
LEAD_READER: Final = web.AppKey("lead_reader", LeadReader)
LEAD_WRITER: Final = web.AppKey("lead_writer", LeadWriter)
IMPORTER: Final = web.AppKey("importer", Importer)
EVENT_FEED: Final = web.AppKey("event_feed", EventFeed)
LISTENER: Final = web.AppKey("listener", EventListener)
WEBHOOKS: Final = web.AppKey("webhooks", WebhookAdmin)
DISPATCHER: Final = web.AppKey("dispatcher", Dispatcher)
HTTP_CLIENT: Final = web.AppKey("http_client", aiohttp.ClientSession)
RATE_LIMITER: Final = web.AppKey("rate_limiter", RateLimiter)
CONNECTIONS: Final[web.AppKey[ConnectionRegistry]] = web.AppKey("connections")
# Open graphql-sse streams (graphql/sse.py): re-checked and closed at shutdown like WebSockets.
EVENT_STREAMS: Final[web.AppKey[ConnectionRegistry]] = web.AppKey("event_streams")
METRICS: Final[web.AppKey[Metrics]] = web.AppKey("metrics")

REQUEST_ID: Final = web.RequestKey("request_id", str)
PRINCIPAL: Final = web.RequestKey("principal", Principal)
GRAPHQL_EXTENSIONS: Final = web.RequestKey("graphql_extensions", dict)


def request_principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def request_id(request: web.Request) -> str:
    rid: str = request.get(REQUEST_ID, "")
    return rid
