"""GET /v1/events: backfill of the organization's events (last 30 days)."""

from __future__ import annotations

from aiohttp import web

from leadgate import keys
from leadgate.domain import paging
from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.formats import iso_utc
from leadgate.rest.leads import json_response

routes = web.RouteTableDef()


@routes.get("/events")
async def list_events(request: web.Request) -> web.Response:
    types = request.query.get("types")
    raw_limit = request.query.get("limit", "100")
    # ASCII digits only: str.isdigit() also takes "¹", which int() refuses (was a 500).
    if not (raw_limit.isascii() and raw_limit.isdigit()):
        raise ValidationFailed([FieldError("limit", "must be an integer")])
    query = paging.event_query(
        after=request.query.get("after"),
        # Every comma-separated item must be an event type: `types=` or `a,,b` is refused,
        # not read as "every type" (a typo must not widen the feed).
        types=types.split(",") if types is not None else None,
        limit=int(raw_limit),
    )
    principal = keys.request_principal(request)
    found = await request.config_dict[keys.LEAD_READER].events(principal, query)
    data = [
        {
            "id": str(e.id),
            "type": e.type,
            "leadId": str(e.lead_id),
            "sequence": e.sequence,
            "occurredAt": iso_utc(e.created_at),
            "data": e.payload,
            "actor": e.actor.document() if e.actor is not None else None,
        }
        for e in found
    ]
    meta = {
        # Where the next page starts: pass it back as `after`.
        "nextAfter": data[-1]["id"] if data else str(query.after),
        "requestId": keys.request_id(request),
    }
    return json_response({"data": data, "meta": meta})
