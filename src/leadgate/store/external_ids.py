"""lead_external_ids: each lead's ids in other systems, one row per (system, id).

The table mirrors `leads.external_ids` and is written in the lead's own transaction; its
primary key (organization_id, system, external_id) is both the uniqueness rule and the
lookup (sql/migrations/0011_external_ids_duplicates.sql).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from uuid import UUID

import asyncpg

# Serialises upserts of one (organization, system, id) until commit: the second of two
# concurrent upserts waits here, then finds the lead the first created. The two-int4 key
# space is apart from the one-bigint keys store/events.py and the migrations take.
LOCK_EXTERNAL_ID: Final = """
SELECT pg_advisory_xact_lock(
    hashtext('leadgate.lead_external_ids'),
    hashtext($1::uuid::text || ':' || $2::text || ':' || $3::text))
"""

FIND_LEAD: Final = """
SELECT lead_id
FROM lead_external_ids
WHERE organization_id = $1
  AND system = $2
  AND external_id = $3
"""

# The lead's rows become exactly `$3` (systems) / `$4` (ids): rows no longer named go, new
# ones come. A pair another lead holds violates the primary key (UniqueViolationError).
DELETE_OTHERS: Final = """
DELETE FROM lead_external_ids
WHERE organization_id = $1
  AND lead_id = $2
  AND (system, external_id) NOT IN (
      SELECT s, i FROM unnest($3::text[], $4::text[]) AS wanted (s, i))
"""

INSERT_MISSING: Final = """
INSERT INTO lead_external_ids (organization_id, system, external_id, lead_id)
SELECT $1, s, i, $2
FROM unnest($3::text[], $4::text[]) AS wanted (s, i)
ON CONFLICT (organization_id, system, external_id) DO UPDATE
SET lead_id = lead_external_ids.lead_id
WHERE lead_external_ids.lead_id = $2
"""

# Which lead holds each of the pairs (to name the holder when a write collides).
HOLDERS: Final = """
SELECT e.lead_id, e.system
FROM lead_external_ids AS e
JOIN unnest($3::text[], $4::text[]) AS wanted (s, i)
    ON e.system = wanted.s AND e.external_id = wanted.i
WHERE e.organization_id = $1
  AND e.lead_id <> $2
LIMIT 1
"""


async def lock(
    conn: asyncpg.Connection, organization_id: UUID, system: str, external_id: str
) -> None:
    await conn.execute(LOCK_EXTERNAL_ID, organization_id, system, external_id)


async def find_lead(
    conn: asyncpg.Connection, organization_id: UUID, system: str, external_id: str
) -> UUID | None:
    lead_id: UUID | None = await conn.fetchval(FIND_LEAD, organization_id, system, external_id)
    return lead_id


async def holder(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, ids: Mapping[str, str]
) -> tuple[UUID, str] | None:
    """Another lead holding one of `ids`, and the system: (lead id, system)."""
    row = await conn.fetchrow(HOLDERS, organization_id, lead_id, list(ids), list(ids.values()))
    return (row["lead_id"], row["system"]) if row is not None else None


async def sync(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, ids: Mapping[str, str]
) -> bool:
    """Make the lead's rows exactly `ids`. False when another lead holds one of them: the
    caller refuses the write (the ON CONFLICT ... WHERE leaves such a row alone, so nothing
    waits on a unique-violation error inside the transaction)."""
    systems, values = list(ids), list(ids.values())
    await conn.execute(DELETE_OTHERS, organization_id, lead_id, systems, values)
    status: str = await conn.execute(INSERT_MISSING, organization_id, lead_id, systems, values)
    return int(status.rsplit(" ", 1)[1]) == len(ids)
