"""GET /v1/leads and GET /v1/leads/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, TypeVar
from uuid import UUID

import orjson
from aiohttp import web

from leadgate import keys
from leadgate.domain import paging
from leadgate.domain.errors import BadRequest, FieldError, Forbidden, NotFound, ValidationFailed
from leadgate.domain.ids import parse_uuid
from leadgate.domain.models import LeadFilter, LeadPriority, LeadSource
from leadgate.domain.representation import lead_document, lead_response
from leadgate.domain.validation import is_plain_text
from leadgate.services.lead_matching import ExternalKey, OnDuplicate
from leadgate.services.lead_writes import WriteContext, WriteResult

routes = web.RouteTableDef()


def json_response(body: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


# GET /v1/leads takes the spec's paging and search, and the criteria of GraphQL's LeadFilter.
LIST_PARAMETERS: Final = (
    "page",
    "limit",
    "search",
    "stageId",
    "priority",
    "advisorId",
    "tag",
    "source",
    # Keyset paging (issue 11 #2): `cursor` is a previous page's meta.nextCursor.
    "cursor",
    "updatedSince",
    # `true`: archived leads too (issue 12 #2).
    "includeArchived",
    # `system:id`: the lead holding that external id (issue 12 #4).
    "externalId",
)
# An unknown parameter is named in the error; a long one is cut so the answer stays small.
_MAX_REPORTED_NAME: Final = 64


def _list_parameters(request: web.Request, errors: list[FieldError]) -> dict[str, str]:
    """Each known parameter's value; an unknown or repeated one is an error (not ignored, so a
    misspelt filter cannot silently widen the page)."""
    values: dict[str, str] = {}
    for name in dict.fromkeys(request.query):
        given = request.query.getall(name)
        if name not in LIST_PARAMETERS:
            errors.append(
                FieldError(
                    name[:_MAX_REPORTED_NAME],
                    f"is not a parameter of GET /v1/leads (one of {', '.join(LIST_PARAMETERS)})",
                )
            )
        elif len(given) > 1:
            errors.append(FieldError(name, "must be given at most once"))
        else:
            values[name] = given[0]
    return values


def _int_param(values: dict[str, str], name: str, default: int) -> int | None:
    """The integer parameter, its default when absent, or None when it is not an integer."""
    raw = values.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _uuid_param(values: dict[str, str], name: str, errors: list[FieldError]) -> UUID | None:
    raw = values.get(name)
    if raw is None:
        return None
    parsed = parse_uuid(raw)
    if parsed is None:
        errors.append(FieldError(name, "must be a UUID"))
    return parsed


_Enum = TypeVar("_Enum", LeadPriority, LeadSource)


def _enum_param(
    values: dict[str, str], name: str, kind: type[_Enum], errors: list[FieldError]
) -> _Enum | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        errors.append(FieldError(name, f"must be one of {', '.join(m.value for m in kind)}"))
        return None


def _tag_param(values: dict[str, str], errors: list[FieldError]) -> str | None:
    tag = values.get("tag")
    if tag is not None and not (tag and is_plain_text(tag)):
        errors.append(FieldError("tag", "must be a non-empty tag without control characters"))
        return None
    return tag


def _include_archived(values: dict[str, str], errors: list[FieldError]) -> bool:
    raw = values.get("includeArchived", "false")
    if raw not in ("true", "false"):
        errors.append(FieldError("includeArchived", "must be true or false"))
    return raw == "true"


def _lead_filter(values: dict[str, str], errors: list[FieldError]) -> LeadFilter:
    """The same criteria as GraphQL's `leads(filter:)`; REST spells the enums in lower case."""
    return LeadFilter(
        stage_id=_uuid_param(values, "stageId", errors),
        priority=_enum_param(values, "priority", LeadPriority, errors),
        advisor_id=_uuid_param(values, "advisorId", errors),
        tag=_tag_param(values, errors),
        source=_enum_param(values, "source", LeadSource, errors),
        include_archived=_include_archived(values, errors),
        external_id=_external_id_param(values, errors),
    )


def _external_id_param(values: dict[str, str], errors: list[FieldError]) -> tuple[str, str] | None:
    raw = values.get("externalId")
    if raw is None:
        return None
    try:
        key = ExternalKey.parse(raw, field="externalId")
    except ValidationFailed as invalid:
        errors.extend(invalid.fields)
        return None
    return (key.system, key.id)


@routes.get("/leads")
async def list_leads(request: web.Request) -> web.Response:
    errors: list[FieldError] = []
    values = _list_parameters(request, errors)
    page = _int_param(values, "page", 1)
    limit = _int_param(values, "limit", 20)
    errors += [
        FieldError(n, "must be an integer")
        for n, v in (("page", page), ("limit", limit))
        if v is None
    ]
    errors += paging.page_errors(page=page, limit=limit)
    lead_filter = _lead_filter(values, errors)
    keyset = "cursor" in values or "updatedSince" in values
    if keyset and "page" in values:
        errors.append(FieldError("page", "cannot be given with cursor or updatedSince"))
    updated_since = _datetime_param(values, "updatedSince", errors)
    if errors or page is None or limit is None:
        raise ValidationFailed(errors)
    if keyset:
        return await _list_by_cursor(request, values, limit, lead_filter, updated_since)
    query = paging.lead_query(
        page=page, limit=limit, search=values.get("search"), lead_filter=lead_filter
    )
    principal = keys.request_principal(request)
    reader = request.config_dict[keys.LEAD_READER]
    result = await reader.page(principal, query)
    data = [lead_document(record) for record in result.records]
    # An offset page's last lead is a keyset position too: page 1, then cursors from there.
    next_cursor = (
        paging.record_cursor(result.records[-1], paging.KeysetOrder.NEWEST)
        if result.has_more and result.records
        else None
    )
    meta = {
        "total": result.total,
        "totalIsExact": result.total_is_exact,
        "page": result.page,
        "limit": result.limit,
        "hasMore": result.has_more,
        "nextCursor": next_cursor,
        "requestId": keys.request_id(request),
    }
    return json_response({"data": data, "meta": meta})


def _datetime_param(values: dict[str, str], name: str, errors: list[FieldError]) -> datetime | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        errors.append(FieldError(name, "must be an ISO-8601 date and time with an offset"))
        return None
    return moment


async def _list_by_cursor(
    request: web.Request,
    values: dict[str, str],
    limit: int,
    lead_filter: LeadFilter,
    updated_since: datetime | None,
) -> web.Response:
    """The keyset page after `cursor` (none: the first), in the order updatedSince picks."""
    query = paging.keyset_query(
        first=limit,
        after=values.get("cursor"),
        search=values.get("search"),
        lead_filter=lead_filter,
        updated_since=updated_since,
        after_argument="cursor",
    )
    principal = keys.request_principal(request)
    result = await request.config_dict[keys.LEAD_READER].slice(principal, query)
    meta = {
        "total": result.total,
        "totalIsExact": result.total_is_exact,
        # A cursor, not a page number, says where this page starts.
        "page": None,
        "limit": limit,
        "hasMore": result.has_next,
        "nextCursor": result.end_cursor if result.has_next else None,
        "requestId": keys.request_id(request),
    }
    data = [lead_document(record) for record in result.records]
    return json_response({"data": data, "meta": meta})


@routes.get("/leads/{id}")
async def get_lead(request: web.Request) -> web.Response:
    lead_id = parse_uuid(request.match_info["id"])
    if lead_id is None:
        raise NotFound("Lead not found")
    principal = keys.request_principal(request)
    reader = request.config_dict[keys.LEAD_READER]
    record = await reader.record(principal, lead_id)
    body = lead_response(lead_document(record), keys.request_id(request))
    return web.Response(body=body, content_type="application/json")


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


# POST /v1/leads?onDuplicate=reject|report (the body is the lead, so the choice is apart).
_ON_DUPLICATE: Final = {m.value: m for m in OnDuplicate}


@routes.post("/leads")
async def create_lead(request: web.Request) -> web.Response:
    ctx = _write_context(request)
    if not ctx.principal.can_write:
        raise Forbidden("Writing leads needs a write key or the editor role")
    choice = request.query.getall("onDuplicate", ["report"])
    if len(choice) != 1 or choice[0] not in _ON_DUPLICATE:
        raise ValidationFailed.single("onDuplicate", "must be report or reject, given once")
    body = await _json_body(request)
    writer = request.config_dict[keys.LEAD_WRITER]
    result = await writer.create(ctx, body, on_duplicate=_ON_DUPLICATE[choice[0]])
    return _write_response(result)


@routes.put("/leads/by-external-id/{system}/{external_id}")
async def upsert_lead(request: web.Request) -> web.Response:
    """Not in the original API (GraphQL upsertLead): creates (201) or updates (200) the lead
    holding this external id, in one step."""
    ctx = _write_context(request)
    if not ctx.principal.can_write:
        raise Forbidden("Writing leads needs a write key or the editor role")
    key = ExternalKey.checked(
        request.match_info["system"], request.match_info["external_id"], field="externalId"
    )
    body = await _json_body(request)
    return _write_response(await request.config_dict[keys.LEAD_WRITER].upsert(ctx, key, body))


@routes.post("/leads/{id}/merge")
async def merge_lead(request: web.Request) -> web.Response:
    """Not in the original API (GraphQL mergeLeads): merges `duplicateId` into this lead."""
    ctx, lead_id, body = await _target(request)
    duplicate_id = _reference(body, "duplicateId")
    if duplicate_id is None:
        raise ValidationFailed.single("duplicateId", "must be a UUID")
    writer = request.config_dict[keys.LEAD_WRITER]
    return _write_response(await writer.merge(ctx, lead_id, duplicate_id))


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
        raise Forbidden("Writing leads needs a write key or the editor role")
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
