"""The lead as the spec shows it (`{id, type, attributes}`).

The one external representation: REST responses, stored idempotent responses, event payloads
and webhook bodies all carry it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from leadgate.domain.formats import iso_utc
from leadgate.domain.models import LeadRecord, Stage


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def _time(value: Any) -> str | None:
    return iso_utc(value) if value is not None else None


def stage_document(stage: Stage) -> dict[str, Any]:
    return {
        "id": str(stage.id),
        "stageKey": stage.stage_key,
        "stageLabel": stage.stage_label,
        "color": stage.color,
        "semanticSlot": stage.semantic_slot,
    }


def lead_document(record: LeadRecord) -> dict[str, Any]:
    """One lead as the spec shows it: every attribute present, null when unset."""
    lead, stage, advisor = record.lead, record.stage, record.advisor
    return {
        "id": str(lead.id),
        "type": "lead",
        "attributes": {
            "businessName": lead.business_name,
            "contactFirstName": lead.contact_first_name,
            "contactLastName": lead.contact_last_name,
            "email": lead.email,
            "phone": lead.phone,
            "industry": lead.industry,
            "monthlyRevenue": lead.monthly_revenue,
            "requestedAmount": lead.requested_amount,
            "source": lead.source.value,
            "priority": lead.priority.value,
            "isDoNotCall": lead.is_do_not_call,
            "dncReason": lead.dnc_reason,
            "dncAt": _time(lead.dnc_at),
            "tags": lead.tags,
            "customFields": lead.custom_fields,
            "externalIds": lead.external_ids,
            "leadScore": lead.lead_score,
            "stage": stage_document(stage),
            "primaryAdvisorId": _id(lead.primary_advisor_id),
            "primaryAdvisorName": advisor.name if advisor is not None else None,
            "contactId": _id(lead.contact_id),
            "lastContactedAt": _time(lead.last_contacted_at),
            "stageChangedAt": _time(lead.stage_changed_at),
            "convertedAt": _time(lead.converted_at),
            "convertedAccountId": _id(lead.converted_account_id),
            "convertedContactId": _id(lead.converted_contact_id),
            "importJobId": _id(lead.import_job_id),
            "createdBy": _id(lead.created_by),
            "createdAt": _time(lead.created_at),
            "updatedAt": _time(lead.updated_at),
        },
    }


def lead_response(document: dict[str, Any], request_id: str) -> bytes:
    """The REST answer for one lead, `{data, meta: {requestId}}`.

    Built here, not at the REST edge, because a write stores it under its idempotency key in
    its own transaction, whichever API made the write: a REST retry replays it byte for byte.
    """
    return orjson.dumps({"data": document, "meta": {"requestId": request_id}})


def response_lead_id(body: bytes) -> UUID:
    """The lead a stored `lead_response` shows."""
    return UUID(orjson.loads(body)["data"]["id"])
