"""The /v1 sub-application."""

from __future__ import annotations

from aiohttp import web

from leadgate.rest import events, leads
from leadgate.rest.errors import rest_error_middleware


def create_rest_app() -> web.Application:
    app = web.Application(middlewares=[rest_error_middleware])
    app.add_routes(leads.routes)
    app.add_routes(events.routes)
    return app
