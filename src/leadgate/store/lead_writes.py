"""Lead writes. Each returns the written lead with its stage and advisor (one round trip)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.lead_fields import VALUE_INPUTS
from leadgate.domain.models import Lead, LeadRecord
from leadgate.store.duplicates import MAX_DUPLICATES
from leadgate.store.idempotency import CLAIM, Claim
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


def _insert(*, values: str, stage: str, advisor: str, contact: str, created_by: str) -> str:
    """A create's INSERT ... SELECT, RETURNING the row, its parameters numbered by the
    statement it is part of ($1 is always the organization; `stage` NULL: the first one)."""
    return (
        """
    INSERT INTO leads (
        organization_id, """  # noqa: S608 - joins constants only: the table's columns
        + ", ".join(_CREATED)
        + """,
        stage_id, primary_advisor_id, contact_id, created_by, event_sequence
    )
    SELECT r.organization_id, """
        + ", ".join(f"r.{c}" for c in _CREATED)
        + f""",
        coalesce({stage}, (
            SELECT id
            FROM pipeline_stages
            WHERE organization_id = $1
            ORDER BY position
            LIMIT 1)),
        {advisor}, {contact}, {created_by}, 1
    FROM jsonb_populate_record(
        NULL::leads, {values}::jsonb || jsonb_build_object('organization_id', $1::uuid)) AS r"""  # noqa: S608 - parameter numbers
    )


# The INSERT alone: a create as it was before CREATE_LEAD folded the claim and the search in,
# and what bench/floor.py still runs as the raw-SQL floor of a create.
INSERT_LEAD: Final = (
    "\nWITH l AS ("
    + _insert(values="$2", stage="$3", advisor="$4", contact="$5", created_by="$6")
    + "\n    RETURNING *\n)\n"
    + WITH_RELATIONS
)

# A create in one statement: the idempotency claim (CLAIM's $1-$4; $2 NULL: no key, or one
# claimed already), then, if claimed, the likely duplicates (normalised email $10, phone $11:
# lead_duplicates of sql/migrations/0014, which first queues this create behind the others
# of that email or phone), then, unless $12 (reject) met a duplicate, the INSERT. `admitted`
# counts the duplicates, so they are found before the INSERT runs (and never include the new
# lead). One row: whether the key was claimed, the duplicates in order, and the new lead with
# its stage and advisor (all NULL when nothing was inserted).
CREATE_LEAD: Final = (
    "\nWITH claimed AS ("  # noqa: S608 - joins constants only
    + CLAIM
    + f"""),
keyed AS (
    SELECT $1::uuid AS organization_id
    WHERE $2::text IS NULL OR EXISTS (SELECT FROM claimed)
),
found AS (
    -- Called with keyed's row: after the claim, and not at all when it was refused.
    SELECT d.id, d.reason, d.n
    FROM keyed AS k
    CROSS JOIN LATERAL lead_duplicates(k.organization_id, $10, $11, {MAX_DUPLICATES})
        WITH ORDINALITY AS d (id, reason, n)
    WHERE $10::text IS NOT NULL OR $11::text IS NOT NULL
),
admitted AS (
    SELECT
    FROM keyed, (SELECT count(*) AS duplicates FROM found) AS f
    WHERE NOT ($12::boolean AND f.duplicates > 0)
),
l AS ("""  # noqa: S608 - joins constants only
    + _insert(values="$5", stage="$6", advisor="$7", contact="$8", created_by="$9")
    + """
    WHERE EXISTS (SELECT FROM admitted)
    RETURNING *
)
SELECT
    EXISTS (SELECT FROM keyed) AS claimed,
    ARRAY(SELECT found.id FROM found ORDER BY found.n) AS duplicate_ids,
    ARRAY(SELECT found.reason FROM found ORDER BY found.n) AS duplicate_reasons,
    created.*
FROM (SELECT) AS one
LEFT JOIN ("""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
    + """) AS created ON true
"""
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


@dataclass(frozen=True, slots=True)
class Created:
    """What CREATE_LEAD did: the lead (None: refused, it had a duplicate) and the likely
    duplicates, (lead id, "email" or "phone") each."""

    record: LeadRecord | None
    duplicates: list[tuple[UUID, str]]


async def create_lead(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    claim: Claim | None,
    values: dict[str, Any],
    stage_id: UUID | None,
    advisor_id: UUID | None,
    contact_id: UUID | None,
    created_by: str | None,
    email_key: str | None,
    phone_key: str | None,
    reject_duplicates: bool,
) -> Created | None:
    """Claim the key (if any), find the likely duplicates, insert the lead unless refused;
    None: another request holds the key, and nothing was written."""
    row = await conn.fetchrow(
        CREATE_LEAD,
        organization_id,
        *_claim_args(claim),
        values,
        stage_id,
        advisor_id,
        contact_id,
        created_by,
        email_key,
        phone_key,
        reject_duplicates,
    )
    if not row["claimed"]:
        return None
    found = list(zip(row["duplicate_ids"], row["duplicate_reasons"], strict=True))
    record = record_from_row(row) if row["id"] is not None else None
    return Created(record, found)


def _claim_args(claim: Claim | None) -> tuple[str | None, bytes | None, float | None]:
    if claim is None:
        return None, None, None
    return claim.key, claim.request_hash, claim.ttl_seconds


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
