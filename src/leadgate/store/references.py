"""Do the ids a write refers to exist in the caller's organization?"""

from __future__ import annotations

from typing import Final
from uuid import UUID

import asyncpg

# One round trip for all three; a NULL id counts as present (nothing to check).
MISSING_REFERENCES: Final = """
SELECT
    $2::uuid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pipeline_stages WHERE organization_id = $1 AND id = $2) AS stage,
    $3::uuid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM advisors WHERE organization_id = $1 AND id = $3) AS advisor,
    $4::uuid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM contacts WHERE organization_id = $1 AND id = $4) AS contact
"""


async def missing_references(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    stage_id: UUID | None = None,
    advisor_id: UUID | None = None,
    contact_id: UUID | None = None,
) -> set[str]:
    """The kinds ("stage", "advisor", "contact") whose given id is not in the organization."""
    row = await conn.fetchrow(MISSING_REFERENCES, organization_id, stage_id, advisor_id, contact_id)
    return {kind for kind in ("stage", "advisor", "contact") if row[kind]}
