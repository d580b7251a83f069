"""The lead as the spec shows it (`{id, type, attributes}`).

The one external representation: REST responses, stored idempotent responses, event payloads
and webhook bodies all carry it.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from leadgate.domain.formats import iso_utc
from leadgate.domain.lead_fields import LEAD_FIELDS, RELATIONS, FieldSpec
from leadgate.domain.models import LeadRecord, Stage


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def _time(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def _enum(value: enum.Enum) -> Any:
    return value.value


def _encoder(f: FieldSpec) -> Callable[[Any], Any] | None:
    """JSON for one attribute's value, by its Python type (None: as it is)."""
    if f.enum is not None:
        return _enum
    if f.python_type is UUID:
        return _id
    return _time if f.python_type is datetime else None


def stage_document(stage: Stage) -> dict[str, Any]:
    return {
        "id": str(stage.id),
        "stageKey": stage.stage_key,
        "stageLabel": stage.stage_label,
        "color": stage.color,
        "semanticSlot": stage.semantic_slot,
    }


def _stage(record: LeadRecord) -> dict[str, Any]:
    return {"stage": stage_document(record.stage)}


def _primary_advisor(record: LeadRecord) -> dict[str, Any]:
    advisor = record.advisor
    return {
        "primaryAdvisorId": _id(record.lead.primary_advisor_id),
        "primaryAdvisorName": advisor.name if advisor is not None else None,
    }


# The relations of the field table (lead_fields.RELATIONS), rendered by hand, by column.
_RELATIONS: Final[dict[str, Callable[[LeadRecord], dict[str, Any]]]] = {
    "stage_id": _stage,
    "primary_advisor_id": _primary_advisor,
}
if set(_RELATIONS) != {r.column for r in RELATIONS if r.column is not None}:
    raise TypeError("domain.representation renders other relations than the field table has")

_Encode = Callable[[Any], Any]
_Render = Callable[[LeadRecord], dict[str, Any]]
# The attributes in table order, each (column, REST attribute, encoder, relation renderer): a
# relation's attributes sit where its column does. `id` sits outside the attributes.
_SHOWN: Final = tuple(f for f in LEAD_FIELDS if f.rest_name is not None and f.column != "id")
_STEPS: Final[tuple[tuple[str, _Encode | None, _Render | None], ...]] = tuple(
    (f.rest_name or "", _encoder(f), _RELATIONS.get(f.column)) for f in _SHOWN
)
_READ: Final = operator.attrgetter(*(f.column for f in _SHOWN))


def lead_document(record: LeadRecord) -> dict[str, Any]:
    """One lead as the spec shows it: every attribute present, null when unset."""
    lead = record.lead
    attributes: dict[str, Any] = {}
    for (name, encode, render), value in zip(_STEPS, _READ(lead), strict=True):
        if render is not None:
            attributes.update(render(record))
        else:
            attributes[name] = value if encode is None or value is None else encode(value)
    return {"id": str(lead.id), "type": "lead", "attributes": attributes}


def lead_response(
    document: dict[str, Any],
    request_id: str,
    *,
    duplicates: list[dict[str, str]] | None = None,
) -> bytes:
    """The REST answer for one lead, `{data, meta: {requestId}}` (a create's also
    `meta.duplicates`, issue 12 #5).

    Built here, not at the REST edge, because a write stores it under its idempotency key in
    its own transaction, whichever API made the write: a REST retry replays it byte for byte.
    """
    meta: dict[str, Any] = {"requestId": request_id}
    if duplicates is not None:
        meta["duplicates"] = duplicates
    return orjson.dumps({"data": document, "meta": meta})


def response_duplicates(body: bytes) -> list[dict[str, str]]:
    """The likely duplicates a stored create response reported ([] for other writes)."""
    found: list[dict[str, str]] = orjson.loads(body)["meta"].get("duplicates") or []
    return found


def response_lead_id(body: bytes) -> UUID:
    """The lead a stored `lead_response` shows."""
    return UUID(orjson.loads(body)["data"]["id"])
