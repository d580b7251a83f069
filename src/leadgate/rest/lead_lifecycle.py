"""The lead lifecycle over REST (issue 12 #1, #2): not in the original API; each route is the
GraphQL mutation of the same name, with the same idempotency (`Idempotency-Key`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Final
from uuid import UUID

import orjson
from aiohttp import web

from leadgate import keys
from leadgate.domain.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from leadgate.domain.ids import parse_uuid
from leadgate.rest.leads import _write_context, _write_response
from leadgate.services.lead_lifecycle import LeadLifecycle, dnc_reason
from leadgate.services.lead_writes import WriteContext

routes = web.RouteTableDef()

# What each route's body may hold (every member optional; an empty body is `{}`).
CONVERT_BODY: Final = ("accountId", "contactId")
DNC_BODY: Final = ("reason",)
CONTACT_BODY: Final = ("at",)


async def _body(request: web.Request, allowed: Collection[str]) -> dict[str, object]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("Malformed JSON body") from exc
    if not isinstance(body, dict):
        raise ValidationFailed.single("body", "must be a JSON object")
    unknown = [FieldError(k[:64], "is not accepted here") for k in body if k not in allowed]
    if unknown:
        raise ValidationFailed(unknown)
    return body


def _target(request: web.Request) -> tuple[WriteContext, LeadLifecycle, UUID]:
    lead_id = parse_uuid(request.match_info["id"])
    if lead_id is None:
        raise NotFound("Lead not found")
    ctx = _write_context(request)
    if not ctx.principal.can_write:
        raise Forbidden("Writing leads needs a write key or the editor role")
    lifecycle = LeadLifecycle.sharing(request.config_dict[keys.LEAD_WRITER])
    return ctx, lifecycle, lead_id


def _optional_uuid(body: dict[str, object], name: str) -> UUID | None:
    value = body.get(name)
    if value is None:
        return None
    parsed = parse_uuid(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValidationFailed.single(name, "must be a UUID")
    return parsed


def _optional_time(body: dict[str, object], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationFailed.single(name, "must be an ISO-8601 date and time with an offset")
    return moment


@routes.post("/leads/{id}/convert")
async def convert_lead(request: web.Request) -> web.Response:
    """GraphQL convertLead: `{"accountId", "contactId"}`, both optional UUIDs."""
    ctx, lifecycle, lead_id = _target(request)
    body = await _body(request, CONVERT_BODY)
    account = _optional_uuid(body, "accountId")
    contact = _optional_uuid(body, "contactId")
    result = await lifecycle.convert(ctx, lead_id, account_id=account, contact_id=contact)
    return _write_response(result)


@routes.post("/leads/{id}/reopen")
async def reopen_lead(request: web.Request) -> web.Response:
    ctx, lifecycle, lead_id = _target(request)
    await _body(request, ())
    return _write_response(await lifecycle.reopen(ctx, lead_id))


@routes.post("/leads/{id}/dnc")
async def mark_do_not_call(request: web.Request) -> web.Response:
    """GraphQL markDoNotCall: `{"reason"}`, optional."""
    ctx, lifecycle, lead_id = _target(request)
    reason = dnc_reason((await _body(request, DNC_BODY)).get("reason"))
    result = await lifecycle.set_do_not_call(ctx, lead_id, do_not_call=True, reason=reason)
    return _write_response(result)


@routes.delete("/leads/{id}/dnc")
async def clear_do_not_call(request: web.Request) -> web.Response:
    ctx, lifecycle, lead_id = _target(request)
    result = await lifecycle.set_do_not_call(ctx, lead_id, do_not_call=False, reason=None)
    return _write_response(result)


@routes.post("/leads/{id}/contact")
async def log_contact(request: web.Request) -> web.Response:
    """GraphQL logContact: `{"at"}`, optional (now)."""
    ctx, lifecycle, lead_id = _target(request)
    at = _optional_time(await _body(request, CONTACT_BODY), "at")
    return _write_response(await lifecycle.log_contact(ctx, lead_id, at))


@routes.post("/leads/{id}/archive")
async def archive_lead(request: web.Request) -> web.Response:
    ctx, lifecycle, lead_id = _target(request)
    await _body(request, ())
    return _write_response(await lifecycle.set_archived(ctx, lead_id, archived=True))


@routes.post("/leads/{id}/restore")
async def restore_lead(request: web.Request) -> web.Response:
    ctx, lifecycle, lead_id = _target(request)
    await _body(request, ())
    return _write_response(await lifecycle.set_archived(ctx, lead_id, archived=False))


@routes.post("/leads/{id}/erase")
async def erase_lead(request: web.Request) -> web.Response:
    """GraphQL eraseLead: answers `{"data": {"id", "type", "erasedAt"}}`."""
    ctx, lifecycle, lead_id = _target(request)
    await _body(request, ())
    erasure = await lifecycle.erase(ctx, lead_id)
    response = web.Response(
        body=erasure.body, status=erasure.status, content_type="application/json"
    )
    if erasure.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
