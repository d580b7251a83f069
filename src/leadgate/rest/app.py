"""The /v1 sub-application (its errors leave in the REST envelope: see middleware.py)."""

from __future__ import annotations

from aiohttp import web

from leadgate.rest import events, imports, lead_lifecycle, leads, openapi


def create_rest_app() -> web.Application:
    app = web.Application()
    app.add_routes(leads.routes)
    app.add_routes(lead_lifecycle.routes)
    app.add_routes(events.routes)
    app.add_routes(imports.routes)
    app.add_routes(openapi.routes)
    return app
