"""Lead writes. Each returns the written lead with its stage and advisor (one round trip)."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.lead_fields import VALUE_INPUTS
from leadgate.domain.models import Lead, LeadRecord
from leadgate.store.leads import LEAD_COLUMNS, WITH_RELATIONS, lead_from_row, record_from_row

# The lead row, locked until the transaction ends: concurrent writes to one lead queue here,
# so each sees the previous one's result and no change is lost.
LOCK_LEAD: Final = (
    "SELECT"
    + LEAD_COLUMNS
    + """FROM leads AS l
WHERE l.organization_id = $1
  AND l.id = $2
FOR UPDATE
"""  # noqa: S608 - joins constants only
)

# The values a create or an update writes (validated, by column), from the field table; the
# references (stage, advisor, contact) are parameters of their own.
_CREATED: Final = [f.column for f in VALUE_INPUTS if f.decl.create]
_UPDATED: Final = [f.column for f in VALUE_INPUTS if f.decl.update]

INSERT_LEAD: Final = (
    """
WITH l AS (
    INSERT INTO leads (
        organization_id, """  # noqa: S608 - joins constants only: the table's columns
    + ", ".join(_CREATED)
    + """,
        stage_id, primary_advisor_id, contact_id, created_by, event_sequence
    )
    SELECT r.organization_id, """
    + ", ".join(f"r.{c}" for c in _CREATED)
    + """,
        coalesce($3, (
            SELECT id
            FROM pipeline_stages
            WHERE organization_id = $1
            ORDER BY position
            LIMIT 1)),
        $4, $5, $6, 1
    FROM jsonb_populate_record(
        NULL::leads, $2::jsonb || jsonb_build_object('organization_id', $1::uuid)) AS r
    RETURNING *
)
"""
    + WITH_RELATIONS
)

# Only the columns named in $3 change; the values come typed from jsonb_populate_record, so
# this one static statement serves every combination of fields.
UPDATE_FIELDS: Final = (
    """
WITH l AS (
    UPDATE leads AS t
    SET """  # noqa: S608 - joins constants only: the table's columns
    + "".join(
        f"{c} = CASE WHEN $3::jsonb ? '{c}' THEN r.{c} ELSE t.{c} END,\n        " for c in _UPDATED
    )
    + """updated_at = now(),
        event_sequence = t.event_sequence + 1
    FROM jsonb_populate_record(NULL::leads, $3::jsonb) AS r
    WHERE t.organization_id = $1
      AND t.id = $2
    RETURNING t.*
)
"""
    + WITH_RELATIONS
)

MOVE_LEAD: Final = (
    """
WITH l AS (
    UPDATE leads
    SET stage_id = $3,
        stage_changed_at = now(),
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

ASSIGN_LEAD: Final = (
    """
WITH l AS (
    UPDATE leads
    SET primary_advisor_id = $3,
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)


async def lock_lead(conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID) -> Lead | None:
    row = await conn.fetchrow(LOCK_LEAD, organization_id, lead_id)
    return lead_from_row(row) if row is not None else None


async def insert_lead(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    values: dict[str, Any],
    stage_id: UUID | None,
    advisor_id: UUID | None,
    contact_id: UUID | None,
    created_by: str | None,
) -> LeadRecord:
    row = await conn.fetchrow(
        INSERT_LEAD, organization_id, values, stage_id, advisor_id, contact_id, created_by
    )
    return record_from_row(row)


async def update_fields(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, values: dict[str, Any]
) -> LeadRecord:
    row = await conn.fetchrow(UPDATE_FIELDS, organization_id, lead_id, values)
    return record_from_row(row)


async def move_lead(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, stage_id: UUID
) -> LeadRecord:
    row = await conn.fetchrow(MOVE_LEAD, organization_id, lead_id, stage_id)
    return record_from_row(row)


async def assign_lead(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, advisor_id: UUID | None
) -> LeadRecord:
    row = await conn.fetchrow(ASSIGN_LEAD, organization_id, lead_id, advisor_id)
    return record_from_row(row)
