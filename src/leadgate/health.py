"""/healthz (the process is up), /readyz (database reachable, migrations applied), /metrics."""

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


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; benchmarks read SQL statements per request from it."""
    statements = request.config_dict[keys.STATEMENTS].total
    lines = [
        "# HELP leadgate_sql_statements_total SQL statements sent to PostgreSQL.",
        "# TYPE leadgate_sql_statements_total counter",
        f"leadgate_sql_statements_total {statements}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
