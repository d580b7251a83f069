"""create_app(settings): routes, middlewares, and every resource in a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from leadgate import health, keys
from leadgate.config import Settings
from leadgate.db.pool import create_pool
from leadgate.db.statements import StatementCounter
from leadgate.graphql.ide import STATIC_DIR, STATIC_PREFIX
from leadgate.graphql.schema import build_schema
from leadgate.graphql.view import LeadgateGraphQLView
from leadgate.middleware import auth_middleware, request_id_middleware
from leadgate.rest.app import create_rest_app
from leadgate.services.auth import Authenticator
from leadgate.services.idempotency import purge_idempotency_keys
from leadgate.services.lead_writes import LeadWriter
from leadgate.services.leads import LeadReader


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await create_pool(settings, counter=app[keys.STATEMENTS])
    app[keys.POOL] = pool
    app[keys.AUTHENTICATOR] = Authenticator(pool, ttl=settings.api_key_cache_seconds)
    app[keys.LEAD_READER] = LeadReader(pool)
    app[keys.LEAD_WRITER] = LeadWriter(
        pool, idempotency_ttl_seconds=settings.idempotency_ttl_seconds
    )
    yield
    await pool.close()


async def _idempotency_purge(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(
        purge_idempotency_keys(
            app[keys.POOL], ttl_seconds=app[keys.SETTINGS].idempotency_ttl_seconds
        )
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    """The gateway. The database must already be migrated (see `leadgate serve`)."""
    app = web.Application(middlewares=[request_id_middleware, auth_middleware])
    app[keys.SETTINGS] = settings
    app[keys.STATEMENTS] = StatementCounter()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_idempotency_purge)
    app.add_routes(health.routes)
    view = LeadgateGraphQLView(
        schema=build_schema(),
        graphiql_api_key=settings.graphiql_api_key,
        subscription_protocols=(),
    )
    app.router.add_route("GET", "/graphql", view)
    app.router.add_route("POST", "/graphql", view)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR)
    app.add_subapp("/v1", create_rest_app())
    return app
