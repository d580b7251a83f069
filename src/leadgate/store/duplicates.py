"""Likely duplicates (same normalised email or phone) and merges (issue 12 #5).

The normalisations here match the expression indexes of
sql/migrations/0014_duplicate_indexes.sql, so each probe is an index scan (the probes are
part of a create's statement: store/lead_writes.py CREATE_LEAD).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.models import Lead, LeadRecord
from leadgate.store.leads import LEAD_COLUMNS, WITH_RELATIONS, lead_from_row, record_from_row

# Reported duplicates are capped: a list a client can show, not an export.
MAX_DUPLICATES: Final = 10

# Both leads of a merge, locked in id order (two merges of one pair cannot deadlock).
LOCK_PAIR: Final = (
    "SELECT"
    + LEAD_COLUMNS
    + """FROM leads AS l
WHERE l.organization_id = $1
  AND l.id = ANY ($2::uuid[])
ORDER BY l.id
FOR UPDATE
"""  # noqa: S608 - joins constants only
)

MARK_MERGED: Final = (
    """
WITH l AS (
    UPDATE leads
    SET merged_into = $3,
        external_ids = '{}',
        -- Archived as archiveLead does (hidden from lists, counted out of the total).
        archived_at = coalesce(archived_at, now()),
        updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)

BUMP_SEQUENCE: Final = (
    """
WITH l AS (
    UPDATE leads
    SET updated_at = now(),
        event_sequence = event_sequence + 1
    WHERE organization_id = $1
      AND id = $2
    RETURNING *
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)


def email_key(email: str | None) -> str | None:
    """The email as duplicates compare it: trimmed, lower case."""
    key = email.strip().lower() if email else ""
    return key or None


# Fewer digits than this is an extension or a typo, not a number two leads could share.
MIN_PHONE_DIGITS: Final = 7


def phone_key(phone: str | None) -> str | None:
    """The phone as duplicates compare it: its digits (`+1 (555) 010-0199` → 15550100199)."""
    digits = "".join(ch for ch in phone or "" if "0" <= ch <= "9")
    return digits if len(digits) >= MIN_PHONE_DIGITS else None


async def lock_pair(
    conn: asyncpg.Connection, organization_id: UUID, ids: Sequence[UUID]
) -> dict[UUID, Lead]:
    rows = await conn.fetch(LOCK_PAIR, organization_id, list(ids))
    return {r["id"]: lead_from_row(r) for r in rows}


async def mark_merged(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID, primary_id: UUID
) -> LeadRecord:
    row = await conn.fetchrow(MARK_MERGED, organization_id, lead_id, primary_id)
    return record_from_row(row)


async def bump_sequence(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID
) -> LeadRecord:
    """The next event number of a lead whose fields do not change (a merge that fills none)."""
    row = await conn.fetchrow(BUMP_SEQUENCE, organization_id, lead_id)
    return record_from_row(row)
