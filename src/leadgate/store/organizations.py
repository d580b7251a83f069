"""Organizations and their default pipeline."""

from __future__ import annotations

from typing import Final
from uuid import UUID

import asyncpg

# (stage_key, stage_label, color, semantic_slot), in pipeline order (DESIGN §2).
DEFAULT_STAGES: Final = (
    ("new_lead", "New Lead", "#3b82f6", "new"),
    ("contacted", "Contacted", "#8b5cf6", "working"),
    ("qualified", "Qualified", "#f59e0b", "working"),
    ("application", "Application", "#06b6d4", "working"),
    ("funded", "Funded", "#22c55e", "won"),
    ("lost", "Lost", "#ef4444", "lost"),
)

INSERT_ORGANIZATION: Final = """
INSERT INTO organizations (name)
VALUES ($1)
RETURNING id
"""

INSERT_DEFAULT_STAGES: Final = """
INSERT INTO pipeline_stages
    (organization_id, stage_key, stage_label, color, semantic_slot, position)
SELECT $1, s.stage_key, s.stage_label, s.color, s.semantic_slot, s.position::integer
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
    WITH ORDINALITY AS s (stage_key, stage_label, color, semantic_slot, position)
"""

ANY_ORGANIZATION: Final = "SELECT EXISTS (SELECT 1 FROM organizations)"

ORGANIZATION_EXISTS: Final = "SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)"


async def insert_organization(conn: asyncpg.Connection, name: str) -> UUID:
    org_id: UUID = await conn.fetchval(INSERT_ORGANIZATION, name)
    keys, labels, colors, slots = (list(column) for column in zip(*DEFAULT_STAGES, strict=True))
    await conn.execute(INSERT_DEFAULT_STAGES, org_id, keys, labels, colors, slots)
    return org_id


async def any_organization(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(ANY_ORGANIZATION))


async def organization_exists(conn: asyncpg.Connection, organization_id: UUID) -> bool:
    return bool(await conn.fetchval(ORGANIZATION_EXISTS, organization_id))


ORGANIZATION_BY_NAME: Final = """
SELECT id
FROM organizations
WHERE name = $1
ORDER BY created_at
LIMIT 1
"""


async def organization_by_name(conn: asyncpg.Connection, name: str) -> UUID | None:
    org_id: UUID | None = await conn.fetchval(ORGANIZATION_BY_NAME, name)
    return org_id
