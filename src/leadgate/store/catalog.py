"""Pipeline stages and advisors: the small per-organization lists leads point at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.models import Advisor, Stage

STAGES: Final = """
SELECT id, stage_key, stage_label, color, semantic_slot, position
FROM pipeline_stages
WHERE organization_id = $1
ORDER BY position
"""

STAGES_BY_ID: Final = """
SELECT id, stage_key, stage_label, color, semantic_slot, position
FROM pipeline_stages
WHERE organization_id = $1
  AND id = ANY($2::uuid[])
"""

ADVISORS: Final = """
SELECT id, name, email
FROM advisors
WHERE organization_id = $1
ORDER BY name, id
"""

ADVISORS_BY_ID: Final = """
SELECT id, name, email
FROM advisors
WHERE organization_id = $1
  AND id = ANY($2::uuid[])
"""

INSERT_ADVISORS: Final = """
INSERT INTO advisors (organization_id, name, email)
SELECT $1, a.name, a.email
FROM unnest($2::text[], $3::text[]) AS a (name, email)
RETURNING id
"""


def _stage(row: asyncpg.Record) -> Stage:
    return Stage(
        id=row["id"],
        stage_key=row["stage_key"],
        stage_label=row["stage_label"],
        color=row["color"],
        semantic_slot=row["semantic_slot"],
        position=row["position"],
    )


def _advisor(row: asyncpg.Record) -> Advisor:
    return Advisor(id=row["id"], name=row["name"], email=row["email"])


async def stages(conn: asyncpg.Connection, organization_id: UUID) -> list[Stage]:
    return [_stage(r) for r in await conn.fetch(STAGES, organization_id)]


async def stages_by_id(
    conn: asyncpg.Connection, organization_id: UUID, ids: Sequence[UUID]
) -> dict[UUID, Stage]:
    rows = await conn.fetch(STAGES_BY_ID, organization_id, list(ids))
    return {r["id"]: _stage(r) for r in rows}


async def advisors(conn: asyncpg.Connection, organization_id: UUID) -> list[Advisor]:
    return [_advisor(r) for r in await conn.fetch(ADVISORS, organization_id)]


async def advisors_by_id(
    conn: asyncpg.Connection, organization_id: UUID, ids: Sequence[UUID]
) -> dict[UUID, Advisor]:
    rows = await conn.fetch(ADVISORS_BY_ID, organization_id, list(ids))
    return {r["id"]: _advisor(r) for r in rows}


async def insert_advisors(
    conn: asyncpg.Connection, organization_id: UUID, people: Sequence[tuple[str, str | None]]
) -> list[UUID]:
    names = [name for name, _ in people]
    emails = [email for _, email in people]
    return [r["id"] for r in await conn.fetch(INSERT_ADVISORS, organization_id, names, emails)]


STAGES_BY_KEYS: Final = """
SELECT s.organization_id, s.id, s.stage_key, s.stage_label, s.color, s.semantic_slot, s.position
FROM pipeline_stages AS s
JOIN unnest($1::uuid[], $2::uuid[]) AS wanted (organization_id, id)
    USING (organization_id, id)
"""


async def stages_by_keys(
    conn: asyncpg.Connection, keys: list[tuple[UUID, UUID]]
) -> dict[UUID, Stage]:
    """Stages of any organizations by (organization, id): for routing events to subscribers."""
    rows = await conn.fetch(STAGES_BY_KEYS, [k[0] for k in keys], [k[1] for k in keys])
    return {r["id"]: _stage(r) for r in rows}
