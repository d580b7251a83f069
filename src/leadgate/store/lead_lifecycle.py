"""The lead lifecycle's writes (issue 12 #1, #2): conversion, do-not-call, contact, archive,
and erasure. Each lead write returns the lead with its stage and advisor (one round trip)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.models import LeadRecord
from leadgate.store.leads import WITH_RELATIONS, record_from_row

# The stage a conversion moves a lead to: the first of the organization's `won` slot.
WON_STAGE: Final = """
SELECT id
FROM pipeline_stages
WHERE organization_id = $1
  AND semantic_slot = 'won'
ORDER BY position
LIMIT 1
"""

CONVERT_LEAD: Final = (
    """
WITH l AS (
    UPDATE leads
    SET converted_at = now(),
        converted_account_id = $3,
        converted_contact_id = $4,
        stage_changed_at = CASE WHEN stage_id = $5 THEN stage_changed_at ELSE now() END,
        stage_id = $5,
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

REOPEN_LEAD: Final = (
    """
WITH l AS (
    UPDATE leads
    SET converted_at = NULL,
        converted_account_id = NULL,
        converted_contact_id = NULL,
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

SET_DO_NOT_CALL: Final = (
    """
WITH l AS (
    UPDATE leads
    SET is_do_not_call = $3,
        dnc_reason = $4,
        dnc_at = CASE WHEN $3 THEN now() END,
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

# An older contact logged late does not move lastContactedAt back.
LOG_CONTACT: Final = (
    """
WITH l AS (
    UPDATE leads
    SET last_contacted_at = greatest(last_contacted_at, $3),
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

SET_ARCHIVED: Final = (
    """
WITH l AS (
    UPDATE leads
    SET archived_at = CASE WHEN $3 THEN now() END,
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

# --- erasure ------------------------------------------------------------------------------

EVENT_PAYLOADS: Final = """
SELECT id, payload
FROM lead_events
WHERE organization_id = $1
  AND lead_id = $2
"""

REWRITE_PAYLOADS: Final = """
UPDATE lead_events AS e
SET payload = w.payload
FROM unnest($2::bigint[], $3::jsonb[]) AS w (id, payload)
WHERE e.organization_id = $1
  AND e.id = w.id
"""

# Deliveries still to be sent for the lead's events: never sent now (DESIGN §6 keeps failed
# ones for the record; the error says why).
CANCEL_DELIVERIES: Final = """
WITH cancelled AS (
    UPDATE webhook_deliveries AS d
    SET status = 'failed',
        error = 'cancelled: the lead was erased',
        leased_until = NULL
    FROM lead_events AS e
    WHERE d.organization_id = $1
      AND d.status = 'pending'
      AND e.organization_id = d.organization_id
      AND e.id = d.event_id
      AND e.lead_id = $2
    RETURNING d.id
)
SELECT count(*) FROM cancelled
"""

# Stored responses that show the lead: its id appears in the body (a lead's REST document).
DELETE_RESPONSES: Final = """
WITH deleted AS (
    DELETE FROM idempotency_keys
    WHERE organization_id = $1
      AND position(convert_to($2::text, 'UTF8') IN response) > 0
    RETURNING key
)
SELECT count(*) FROM deleted
"""

DELETE_LEAD: Final = """
DELETE FROM leads
WHERE organization_id = $1
  AND id = $2
"""


async def won_stage(conn: asyncpg.Connection, organization_id: UUID) -> UUID | None:
    stage: UUID | None = await conn.fetchval(WON_STAGE, organization_id)
    return stage


async def convert_lead(
    conn: asyncpg.Connection,
    organization_id: UUID,
    lead_id: UUID,
    *,
    account_id: UUID | None,
    contact_id: UUID | None,
    stage_id: UUID,
) -> LeadRecord:
    row = await conn.fetchrow(
        CONVERT_LEAD, organization_id, lead_id, account_id, contact_id, stage_id
    )
    return record_from_row(row)


async def reopen_lead(conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID) -> LeadRecord:
    return record_from_row(await conn.fetchrow(REOPEN_LEAD, organization_id, lead_id))


async def set_do_not_call(
    conn: asyncpg.Connection,
    organization_id: UUID,
    lead_id: UUID,
    *,
    do_not_call: bool,
    reason: str | None,
) -> LeadRecord:
    row = await conn.fetchrow(SET_DO_NOT_CALL, organization_id, lead_id, do_not_call, reason)
    return record_from_row(row)


async def log_contact(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, at: datetime
) -> LeadRecord:
    return record_from_row(await conn.fetchrow(LOG_CONTACT, organization_id, lead_id, at))


async def set_archived(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, *, archived: bool
) -> LeadRecord:
    return record_from_row(await conn.fetchrow(SET_ARCHIVED, organization_id, lead_id, archived))


async def event_payloads(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID
) -> dict[int, dict[str, Any]]:
    rows = await conn.fetch(EVENT_PAYLOADS, organization_id, lead_id)
    return {r["id"]: r["payload"] for r in rows}


async def rewrite_payloads(
    conn: asyncpg.Connection, organization_id: UUID, payloads: dict[int, dict[str, Any]]
) -> None:
    ids: Sequence[int] = list(payloads)
    await conn.execute(REWRITE_PAYLOADS, organization_id, ids, [payloads[i] for i in ids])


async def cancel_deliveries(conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID) -> int:
    cancelled: int = await conn.fetchval(CANCEL_DELIVERIES, organization_id, lead_id)
    return cancelled


async def delete_responses(conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID) -> int:
    deleted: int = await conn.fetchval(DELETE_RESPONSES, organization_id, str(lead_id))
    return deleted


async def delete_lead(conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID) -> None:
    await conn.execute(DELETE_LEAD, organization_id, lead_id)
