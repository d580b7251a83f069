"""create_app(settings): routes, middlewares, and every resource in a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Final

from aiohttp import web

from leadgate import cors, health, keys, logs, metrics, protocol, ratelimit, tracing
from leadgate.config import Settings
from leadgate.db.pool import create_pool, direct_database_url
from leadgate.db.statements import StatementCounter
from leadgate.events.batches import EventIds
from leadgate.events.dispatcher import Dispatcher
from leadgate.events.listener import EventListener
from leadgate.events.nats_bus import Consumer, Relay
from leadgate.events.resolver import vetting_resolver, webhook_session
from leadgate.graphql.connections import ConnectionRegistry
from leadgate.graphql.gate import Limits
from leadgate.graphql.ide import STATIC_DIR, STATIC_PREFIX
from leadgate.graphql.protocols import subscription_protocols
from leadgate.graphql.schema import build_schema
from leadgate.graphql.view import LeadgateGraphQLView
from leadgate.middleware import (
    DEMO_JWKS_PATH,
    PARSER_FIELD_LIMIT,
    auth_middleware,
    error_middleware,
    header_limits_middleware,
    request_id_middleware,
)
from leadgate.rest.app import create_rest_app
from leadgate.services.auth import Authenticator
from leadgate.services.documents import PersistedDocuments
from leadgate.services.event_feed import EventFeed
from leadgate.services.idempotency import purge_idempotency_keys
from leadgate.services.imports import Importer
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader
from leadgate.services.rate_limits import RateLimiter
from leadgate.services.tokens import TokenSettings, TokenVerifier
from leadgate.services.webhooks import WebhookAdmin


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await create_pool(settings, counter=app[keys.STATEMENTS])
    app[keys.POOL] = pool
    app[keys.EVENT_FEED] = EventFeed(pool)
    tokens = TokenSettings.from_settings(settings)
    authenticator = Authenticator(
        pool,
        ttl=settings.api_key_cache_seconds,
        tokens=TokenVerifier(tokens) if tokens.enabled else None,
    )
    app[keys.AUTHENTICATOR] = authenticator
    app[keys.DOCUMENTS] = PersistedDocuments(
        pool, trusted_only=settings.trusted_documents == "only"
    )
    # A replica for top-level lead reads (issue 13 #4): the same settings, its own pool.
    read_pool = None
    if settings.read_database_url is not None:
        read_pool = await create_pool(
            settings, counter=app[keys.STATEMENTS], url=settings.read_database_url
        )
        app[keys.READ_POOL] = read_pool
    app[keys.LEAD_READER] = LeadReader(
        pool, read_pool, exact_total_limit=settings.exact_total_limit
    )
    notify = settings.writes_notify
    app[keys.LEAD_WRITER] = LeadWriter(
        pool, idempotency_ttl_seconds=settings.idempotency_ttl_seconds, notify=notify
    )
    importer = Importer(
        pool, idempotency_ttl_seconds=settings.idempotency_ttl_seconds, notify=notify
    )
    app[keys.IMPORTER] = importer
    yield
    await importer.close()
    await authenticator.close()
    if read_pool is not None:
        await read_pool.close()
    await pool.close()


async def _rate_limits(app: web.Application) -> AsyncIterator[None]:
    limiter = app[keys.RATE_LIMITER]
    await limiter.open()
    yield
    await limiter.close()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    settings, pool = app[keys.SETTINGS], app[keys.POOL]
    # Every address a webhook host resolves to is vetted as the connection is made (SSRF,
    # DNS rebinding); redirects are not followed (one could lead past that check).
    resolver = vetting_resolver(settings)
    try:
        async with webhook_session(resolver, tracing.trace_configs(app)) as session:
            app[keys.HTTP_CLIENT] = session
            app[keys.WEBHOOKS] = WebhookAdmin(pool, session, settings, resolver)
            dispatcher = Dispatcher(pool, session, settings)
            app[keys.DISPATCHER] = dispatcher
            if settings.dispatcher_enabled:
                async with _background(dispatcher.run()):
                    yield
            else:
                yield
    finally:
        await resolver.close()


async def _event_listener(app: web.Application) -> AsyncIterator[None]:
    feed, dispatcher = app[keys.EVENT_FEED], app[keys.DISPATCHER]

    async def on_events(ids: EventIds) -> None:
        dispatcher.wake()
        await feed.publish(ids)

    settings = app[keys.SETTINGS]
    if settings.event_bus is not None:
        # NATS JetStream instead of LISTEN (issue 13 #3): a relay (active in one process at a
        # time) and this process's consumer, reported to the feed the same way.
        relay = Relay(direct_database_url(settings), settings.event_bus)
        consumer = Consumer(settings.event_bus, on_events=on_events, on_reconnect=feed.resync)
        async with _background(relay.run()), _background(consumer.run()):
            yield
        return
    # LISTEN is session state: never through a transaction-mode pooler.
    listener = EventListener(
        direct_database_url(app[keys.SETTINGS]), on_events=on_events, on_reconnect=feed.resync
    )
    app[keys.LISTENER] = listener
    async with _background(listener.run()):
        # Serve only once listening: a subscriber must not miss what commits next.
        await asyncio.wait_for(listener.connected.wait(), timeout=30)
        yield


async def _connection_checks(app: web.Application) -> AsyncIterator[None]:
    """Open subscriptions whose credential is revoked or expired are closed (4401)."""
    connections, authenticator = app[keys.CONNECTIONS], app[keys.AUTHENTICATOR]
    streams = app[keys.EVENT_STREAMS]
    async with (
        _background(connections.watch(authenticator)),
        _background(streams.watch(authenticator)),
    ):
        yield


async def _close_connections(app: web.Application) -> None:
    # Runs once the listening socket is closed and before in-flight requests are awaited:
    # WebSockets would otherwise hold the shutdown for its whole timeout, then drop (1006).
    # SSE streams likewise: a final event with the cursor, then the end (graphql/sse.py).
    await asyncio.gather(app[keys.CONNECTIONS].close_all(), app[keys.EVENT_STREAMS].close_all())


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


async def _demo_jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.SETTINGS].demo_jwks)


# Enough for any screen; a cap stops one connection from exhausting the process.
MAX_SUBSCRIPTIONS_PER_CONNECTION: Final = 20


def create_app(settings: Settings) -> web.Application:
    """The gateway. The database must already be migrated (see `leadgate serve`)."""
    protocol.install()
    policy = cors.CorsPolicy.from_settings(settings)
    limiter = RateLimiter(
        credential=settings.rate_per_credential,
        organization=settings.rate_per_organization,
        redis_url=settings.redis_url,
    )
    app = web.Application(
        middlewares=[
            request_id_middleware,
            logs.request_context_middleware,
            tracing.request_span_middleware,
            metrics.request_metrics_middleware,
            # Outside the error middleware: refusals carry the RateLimit fields too.
            ratelimit.headers_middleware,
            error_middleware,
            header_limits_middleware,
            # Preflights carry no credential: answered before authentication.
            cors.middleware(policy),
            auth_middleware,
            ratelimit.debit_middleware(limiter),
        ],
        client_max_size=settings.max_body_bytes,
        handler_args={"max_line_size": PARSER_FIELD_LIMIT, "max_field_size": PARSER_FIELD_LIMIT},
    )
    app[keys.SETTINGS] = settings
    app[keys.STATEMENTS] = StatementCounter()
    app[keys.RATE_LIMITER] = limiter
    if tracing.enabled(settings.tracing):
        tracing.install(app)
    cors.install(app, policy)
    connections = app[keys.CONNECTIONS] = ConnectionRegistry()
    streams = app[keys.EVENT_STREAMS] = ConnectionRegistry()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_rate_limits)
    app.cleanup_ctx.append(_connection_checks)
    app.on_shutdown.append(_close_connections)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_event_listener)
    app.cleanup_ctx.append(_idempotency_purge)
    app.add_routes(health.routes)
    schema = build_schema(
        limits=Limits.from_settings(settings), compiled=settings.compiled_queries, rates=limiter
    )
    metrics.install(app, plans=schema)
    view = LeadgateGraphQLView(
        schema=schema,
        graphiql_api_key=settings.graphiql_api_key,
        subscription_protocols=subscription_protocols(settings),
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        connections=connections,
        streams=streams,
        cors=policy,
    )
    app.router.add_route("GET", "/graphql", view)
    app.router.add_route("POST", "/graphql", view)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR)
    if settings.demo_jwks is not None:
        # `leadgate dev-token`'s public key, for the demo's frontends (issue 10 #5).
        app.router.add_get(DEMO_JWKS_PATH, _demo_jwks)
    app.add_subapp("/v1", create_rest_app())
    return app
