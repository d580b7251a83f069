"""create_app(settings): routes, middlewares, and every resource in a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Final

import aiohttp
from aiohttp import web
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from leadgate import health, keys
from leadgate.config import Settings
from leadgate.db.pool import create_pool, database_url
from leadgate.db.statements import StatementCounter
from leadgate.events.dispatcher import Dispatcher
from leadgate.events.listener import EventIds, EventListener
from leadgate.graphql.ide import STATIC_DIR, STATIC_PREFIX
from leadgate.graphql.schema import build_schema
from leadgate.graphql.view import LeadgateGraphQLView
from leadgate.middleware import auth_middleware, request_id_middleware
from leadgate.rest.app import create_rest_app
from leadgate.services.auth import Authenticator
from leadgate.services.event_feed import EventFeed
from leadgate.services.idempotency import purge_idempotency_keys
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader
from leadgate.services.webhooks import WebhookAdmin


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await create_pool(settings, counter=app[keys.STATEMENTS])
    app[keys.POOL] = pool
    app[keys.EVENT_FEED] = EventFeed(pool)
    app[keys.AUTHENTICATOR] = Authenticator(pool, ttl=settings.api_key_cache_seconds)
    app[keys.LEAD_READER] = LeadReader(pool)
    app[keys.LEAD_WRITER] = LeadWriter(
        pool, idempotency_ttl_seconds=settings.idempotency_ttl_seconds
    )
    yield
    await pool.close()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    settings, pool = app[keys.SETTINGS], app[keys.POOL]
    # Redirects are not followed (a redirect could lead past the SSRF checks).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        app[keys.HTTP_CLIENT] = session
        app[keys.WEBHOOKS] = WebhookAdmin(pool, session, settings)
        dispatcher = Dispatcher(pool, session, settings)
        app[keys.DISPATCHER] = dispatcher
        if settings.dispatcher_enabled:
            async with _background(dispatcher.run()):
                yield
        else:
            yield


async def _event_listener(app: web.Application) -> AsyncIterator[None]:
    feed, dispatcher = app[keys.EVENT_FEED], app[keys.DISPATCHER]

    async def on_events(ids: EventIds) -> None:
        dispatcher.wake()
        await feed.publish(ids)

    listener = EventListener(
        database_url(app[keys.SETTINGS]), on_events=on_events, on_reconnect=feed.resync
    )
    app[keys.LISTENER] = listener
    async with _background(listener.run()):
        # Serve only once listening: a subscriber must not miss what commits next.
        await asyncio.wait_for(listener.connected.wait(), timeout=30)
        yield


async def _idempotency_purge(app: web.Application) -> AsyncIterator[None]:
    ttl = app[keys.SETTINGS].idempotency_ttl_seconds
    async with _background(purge_idempotency_keys(app[keys.POOL], ttl_seconds=ttl)):
        yield


@contextlib.asynccontextmanager
async def _background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` as a task for the duration of the block; cancel it afterwards."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# Enough for any screen; a cap stops one connection from exhausting the process.
MAX_SUBSCRIPTIONS_PER_CONNECTION: Final = 20


def subscription_protocols(settings: Settings) -> tuple[str, ...]:
    # The legacy graphql-ws protocol has a history of auth bypasses: off unless asked for.
    if settings.graphql_ws_legacy:
        return (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL)
    return (GRAPHQL_TRANSPORT_WS_PROTOCOL,)


def create_app(settings: Settings) -> web.Application:
    """The gateway. The database must already be migrated (see `leadgate serve`)."""
    # Long enough request lines for a GET /v1/leads?search= of several KB.
    app = web.Application(
        middlewares=[request_id_middleware, auth_middleware],
        handler_args={"max_line_size": 32 * 1024},
    )
    app[keys.SETTINGS] = settings
    app[keys.STATEMENTS] = StatementCounter()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_event_listener)
    app.cleanup_ctx.append(_idempotency_purge)
    app.add_routes(health.routes)
    view = LeadgateGraphQLView(
        schema=build_schema(compiled=settings.compiled_queries),
        graphiql_api_key=settings.graphiql_api_key,
        subscription_protocols=subscription_protocols(settings),
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
    )
    app.router.add_route("GET", "/graphql", view)
    app.router.add_route("POST", "/graphql", view)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR)
    app.add_subapp("/v1", create_rest_app())
    return app
