"""GET /v1/leads and GET /v1/leads/{id}."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from leadgate import keys
from leadgate.domain import paging
from leadgate.domain.errors import BadRequest, FieldError, Forbidden, NotFound, ValidationFailed
from leadgate.domain.ids import parse_uuid
from leadgate.domain.representation import lead_document
from leadgate.services.lead_writes import WriteContext, WriteResult

routes = web.RouteTableDef()


def json_response(body: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _int_param(request: web.Request, name: str, default: int) -> int | None:
    """The integer parameter, its default when absent, or None when it is not an integer."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


@routes.get("/leads")
async def list_leads(request: web.Request) -> web.Response:
    page = _int_param(request, "page", 1)
    limit = _int_param(request, "limit", 20)
    errors = [
        FieldError(n, "must be an integer")
        for n, v in (("page", page), ("limit", limit))
        if v is None
    ]
    errors += paging.page_errors(page=page, limit=limit)
    if errors or page is None or limit is None:
        raise ValidationFailed(errors)
    query = paging.lead_query(page=page, limit=limit, search=request.query.get("search"))
    principal = keys.request_principal(request)
    reader = request.config_dict[keys.LEAD_READER]
    result = await reader.page(principal, query)
    data = [lead_document(record) for record in result.records]
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
    record = await reader.record(principal, lead_id)
    body = {
        "data": lead_document(record),
        "meta": {"requestId": keys.request_id(request)},
    }
    return json_response(body)


async def _json_body(request: web.Request) -> object:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest("Malformed JSON body") from exc


def _write_context(request: web.Request) -> WriteContext:
    return WriteContext(
        principal=keys.request_principal(request),
        request_id=keys.request_id(request),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )


def _write_response(result: WriteResult) -> web.Response:
    response = web.Response(body=result.body, status=result.status, content_type="application/json")
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.post("/leads")
async def create_lead(request: web.Request) -> web.Response:
    ctx = _write_context(request)
    if not ctx.principal.can_write:
        raise Forbidden()
    body = await _json_body(request)
    return _write_response(await request.config_dict[keys.LEAD_WRITER].create(ctx, body))


@routes.patch("/leads/{id}")
async def update_lead(request: web.Request) -> web.Response:
    ctx, lead_id, body = await _target(request)
    writer = request.config_dict[keys.LEAD_WRITER]
    return _write_response(await writer.update(ctx, lead_id, body))


def _reference(body: object, field: str) -> UUID | None:
    """The id of a single-field `{field: uuid-or-null}` body (move and assign take one)."""
    if not isinstance(body, dict) or set(body) != {field}:
        raise ValidationFailed.single(field, f'the body must be {{"{field}": ...}}')
    value = body[field]
    if value is None:
        return None
    parsed = parse_uuid(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValidationFailed.single(field, "must be a UUID")
    return parsed


async def _target(request: web.Request) -> tuple[WriteContext, UUID, object]:
    ctx = _write_context(request)
    if not ctx.principal.can_write:
        raise Forbidden()
    lead_id = parse_uuid(request.match_info["id"])
    if lead_id is None:
        raise NotFound("Lead not found")
    return ctx, lead_id, await _json_body(request)


@routes.post("/leads/{id}/move")
async def move_lead(request: web.Request) -> web.Response:
    """Not in the original API: moves a lead to a stage (GraphQL moveLead)."""
    ctx, lead_id, body = await _target(request)
    stage_id = _reference(body, "stageId")
    if stage_id is None:
        raise ValidationFailed.single("stageId", "must be a UUID")
    writer = request.config_dict[keys.LEAD_WRITER]
    return _write_response(await writer.move(ctx, lead_id, stage_id))


@routes.post("/leads/{id}/assign")
async def assign_lead(request: web.Request) -> web.Response:
    """Not in the original API: assigns a lead (`advisorId` null unassigns)."""
    ctx, lead_id, body = await _target(request)
    advisor_id = _reference(body, "advisorId")
    writer = request.config_dict[keys.LEAD_WRITER]
    return _write_response(await writer.assign(ctx, lead_id, advisor_id))
