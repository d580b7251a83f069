"""create_app(settings): routes, middlewares, and every resource in a cleanup context."""

from __future__ import annotations

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
from leadgate.services.leads import LeadReader


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await create_pool(settings, counter=app[keys.STATEMENTS])
    app[keys.POOL] = pool
    app[keys.AUTHENTICATOR] = Authenticator(pool, ttl=settings.api_key_cache_seconds)
    app[keys.LEAD_READER] = LeadReader(pool)
    yield
    await pool.close()


def create_app(settings: Settings) -> web.Application:
    """The gateway. The database must already be migrated (see `leadgate serve`)."""
    app = web.Application(middlewares=[request_id_middleware, auth_middleware])
    app[keys.SETTINGS] = settings
    app[keys.STATEMENTS] = StatementCounter()
    app.cleanup_ctx.append(_database)
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
