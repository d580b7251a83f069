"""/healthz (the process is up), /readyz (database reachable, migrations applied).

/metrics is leadgate/metrics.py."""

from __future__ import annotations

from aiohttp import web

from leadgate import keys
from leadgate.db.migrate import pending

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.config_dict[keys.POOL].acquire(timeout=2) as conn:
            missing = await pending(conn)
    except (OSError, TimeoutError) as exc:
        return web.json_response({"status": "unavailable", "reason": str(exc)}, status=503)
    if missing:
        return web.json_response({"status": "migrating", "pending": missing}, status=503)
    return web.json_response({"status": "ready"})
