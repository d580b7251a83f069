"""GET /v1/leads and GET /v1/leads/{id}."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from leadgate import keys
from leadgate.domain import paging
from leadgate.domain.errors import FieldError, NotFound, ValidationFailed
from leadgate.domain.ids import parse_uuid
from leadgate.rest.envelope import lead_resource

routes = web.RouteTableDef()


def json_response(body: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, errors: list[FieldError]) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        errors.append(FieldError(name, "must be an integer"))
        return default


@routes.get("/leads")
async def list_leads(request: web.Request) -> web.Response:
    errors: list[FieldError] = []
    page = _int_param(request, "page", 1, errors)
    limit = _int_param(request, "limit", 20, errors)
    if errors:
        raise ValidationFailed(errors)
    query = paging.lead_query(page=page, limit=limit, search=request.query.get("search"))
    principal = keys.request_principal(request)
    reader = request.config_dict[keys.LEAD_READER]
    result = await reader.page(principal, query)
    stages, advisors = await reader.relations(principal, result.leads)
    data = [
        lead_resource(
            lead,
            stages[lead.stage_id],
            advisors.get(lead.primary_advisor_id) if lead.primary_advisor_id else None,
        )
        for lead in result.leads
    ]
    meta = {
        "total": result.total,
        "page": result.page,
        "limit": result.limit,
        "hasMore": result.has_more,
        "requestId": keys.request_id(request),
    }
    return json_response({"data": data, "meta": meta})


@routes.get("/leads/{id}")
async def get_lead(request: web.Request) -> web.Response:
    lead_id = parse_uuid(request.match_info["id"])
    if lead_id is None:
        raise NotFound("Lead not found")
    principal = keys.request_principal(request)
    reader = request.config_dict[keys.LEAD_READER]
    lead = await reader.get(principal, lead_id)
    stages, advisors = await reader.relations(principal, [lead])
    advisor = advisors.get(lead.primary_advisor_id) if lead.primary_advisor_id else None
    body = {
        "data": lead_resource(lead, stages[lead.stage_id], advisor),
        "meta": {"requestId": keys.request_id(request)},
    }
    return json_response(body)
