"""What erasing a lead leaves (issue 12 #2): its past events without personal data, and the
answer an eraseLead gives (and replays under its idempotency key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from leadgate.domain.formats import iso_utc
from leadgate.domain.lead_fields import PERSONAL_ATTRIBUTES

# What replaces a string that quotes a personal value (a note holding the email).
ERASED: Final = "[erased]"


def _strings(value: Any, found: set[str]) -> None:
    """Every string inside `value` (a personal field's value, or its from/to)."""
    if isinstance(value, str) and value:
        found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, found)


def personal_values(payload: Any, found: set[str]) -> None:
    """Add to `found` the values of every personal attribute anywhere in `payload`."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in PERSONAL_ATTRIBUTES:
                _strings(value, found)
            else:
                personal_values(value, found)
    elif isinstance(payload, list):
        for item in payload:
            personal_values(item, found)


def scrubbed(payload: Any, secrets: frozenset[str]) -> Any:
    """`payload` without personal attributes, and with any other string that contains one of
    `secrets` replaced by ERASED."""
    if isinstance(payload, dict):
        return {k: scrubbed(v, secrets) for k, v in payload.items() if k not in PERSONAL_ATTRIBUTES}
    if isinstance(payload, list):
        return [scrubbed(item, secrets) for item in payload]
    if isinstance(payload, str) and any(s in payload for s in secrets):
        return ERASED
    return payload


def erased_payload(lead_id: UUID, erased_at: datetime) -> dict[str, Any]:
    """The `lead.erased` event's payload: the id, and when (webhooks show it as `data`)."""
    return {"lead": {"id": str(lead_id), "type": "lead"}, "erasedAt": iso_utc(erased_at)}


def erasure_response(lead_id: UUID, erased_at: datetime, request_id: str) -> bytes:
    """The REST answer, `{data: {id, type, erasedAt}, meta: {requestId}}`."""
    document = {"id": str(lead_id), "type": "lead", "erasedAt": iso_utc(erased_at)}
    return orjson.dumps({"data": document, "meta": {"requestId": request_id}})


def response_erasure(body: bytes) -> tuple[UUID, datetime]:
    """The lead and time a stored erasure_response shows."""
    data = orjson.loads(body)["data"]
    return UUID(data["id"]), datetime.fromisoformat(data["erasedAt"])
