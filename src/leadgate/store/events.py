"""The lead_events outbox: written in the change's transaction, announced with NOTIFY."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.models import LeadEvent

NOTIFY_CHANNEL: Final = "leadgate_events"

# pg_notify is transactional: listeners hear the id only once the change commits.
INSERT_EVENT: Final = """
WITH e AS (
    INSERT INTO lead_events (organization_id, lead_id, sequence, type, payload)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING id
)
SELECT id, pg_notify('leadgate_events', id::text)
FROM e
"""

HISTORY: Final = """
SELECT h.id, h.lead_id, h.sequence, h.type, h.payload, h.created_at
FROM unnest($2::uuid[]) AS wanted (lead_id)
CROSS JOIN LATERAL (
    SELECT e.id, e.lead_id, e.sequence, e.type, e.payload, e.created_at
    FROM lead_events AS e
    WHERE e.organization_id = $1
      AND e.lead_id = wanted.lead_id
    ORDER BY e.sequence DESC
    LIMIT $3
) AS h
"""


async def insert_event(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    lead_id: UUID,
    sequence: int,
    type: str,  # noqa: A002 - the event's own vocabulary
    payload: dict[str, Any],
) -> int:
    event_id: int = await conn.fetchval(
        INSERT_EVENT, organization_id, lead_id, sequence, type, payload
    )
    return event_id


async def history(
    conn: asyncpg.Connection, organization_id: UUID, lead_ids: list[UUID], limit: int
) -> dict[UUID, list[LeadEvent]]:
    """The newest `limit` events of each lead, newest first (one query for many leads)."""
    found: dict[UUID, list[LeadEvent]] = {lead_id: [] for lead_id in lead_ids}
    for r in await conn.fetch(HISTORY, organization_id, lead_ids, limit):
        found[r["lead_id"]].append(
            LeadEvent(
                id=r["id"],
                lead_id=r["lead_id"],
                sequence=r["sequence"],
                type=r["type"],
                payload=r["payload"],
                created_at=r["created_at"],
            )
        )
    return found
