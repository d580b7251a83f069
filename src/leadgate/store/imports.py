"""Import jobs, their refused rows, and the batch write of the leads they create."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.import_files import ImportJob, RowError
from leadgate.domain.lead_fields import VALUE_INPUTS
from leadgate.domain.models import EventActor, LeadRecord
from leadgate.store.events import NOTIFY_CHANNEL
from leadgate.store.leads import WITH_RELATIONS, record_from_row

_CREATED: Final = [f.column for f in VALUE_INPUTS if f.decl.create]

_JOB_COLUMNS: Final = """
    id, status, format, filename, dry_run, total_rows, created_count, updated_count,
    failed_count, failure, created_by, created_at, started_at, completed_at
"""

INSERT_JOB: Final = (
    """
INSERT INTO import_jobs (organization_id, format, filename, total_rows, created_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING"""  # noqa: S608 - joins constants only
    + _JOB_COLUMNS
)

JOB: Final = (
    "SELECT"  # noqa: S608 - joins constants only
    + _JOB_COLUMNS
    + """FROM import_jobs
WHERE organization_id = $1
  AND id = $2
"""
)

START_JOB: Final = """
UPDATE import_jobs
SET status = 'running',
    started_at = now()
WHERE organization_id = $1
  AND id = $2
"""

# One batch's outcome, counted in the batch's own transaction: the counts always match what
# committed.
COUNT_BATCH: Final = """
UPDATE import_jobs
SET created_count = created_count + $3,
    failed_count = failed_count + $4,
    updated_count = updated_count + $5
WHERE organization_id = $1
  AND id = $2
"""

FINISH_JOB: Final = (
    """
UPDATE import_jobs
SET status = $3,
    failure = $4,
    completed_at = now()
WHERE organization_id = $1
  AND id = $2
RETURNING"""  # noqa: S608 - joins constants only
    + _JOB_COLUMNS
)

INSERT_ERRORS: Final = """
INSERT INTO import_job_errors (organization_id, job_id, row_number, field, message)
SELECT $1, $2, e.row_number, e.field, e.message
FROM unnest($3::int[], $4::text[], $5::text[]) WITH ORDINALITY AS e (row_number, field, message, n)
ORDER BY e.n
"""

# In row order (batches commit in any order), after the cursor's (row, id).
ERRORS_PAGE: Final = """
SELECT id, row_number, field, message
FROM import_job_errors
WHERE organization_id = $1
  AND job_id = $2
  AND (row_number, id) > ($3, $4)
ORDER BY row_number, id
LIMIT $5
"""

# The ids among those given that name a row of the organization, per kind: one round trip
# for a whole batch's references.
KNOWN_REFERENCES: Final = """
SELECT
    ARRAY(SELECT id FROM pipeline_stages WHERE organization_id = $1 AND id = ANY ($2::uuid[]))
        AS stages,
    ARRAY(SELECT id FROM advisors WHERE organization_id = $1 AND id = ANY ($3::uuid[]))
        AS advisors,
    ARRAY(SELECT id FROM contacts WHERE organization_id = $1 AND id = ANY ($4::uuid[]))
        AS contacts
"""

# The organization's event lock (store/events.py), taken first by a batch that upserts by
# external id: its rows lock external ids and values, then write events one by one, so two
# such batches taking them in opposite orders would deadlock. The job's end takes it before
# the job's row too, the order of every batch.
LOCK_EVENTS: Final = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))"

# A lead an upsert created becomes the job's, and so does its lead.created event (recorded
# a statement earlier in the same transaction, before the lead had its job id).
CLAIM_CREATED: Final = """
WITH l AS (
    UPDATE leads
    SET import_job_id = $3
    WHERE organization_id = $1
      AND id = $2
)
UPDATE lead_events
SET payload = jsonb_set(payload, '{lead,attributes,importJobId}', to_jsonb($3::uuid::text))
WHERE organization_id = $1
  AND id = $4
"""

# A whole batch of validated rows in one statement: jsonb_populate_recordset types each value
# as its column, exactly as a single create does (store/lead_writes.py INSERT_LEAD).
INSERT_LEADS: Final = (
    """
WITH first_stage AS (
    SELECT id
    FROM pipeline_stages
    WHERE organization_id = $1
    ORDER BY position
    LIMIT 1
),
l AS (
    INSERT INTO leads (
        organization_id, """  # noqa: S608 - joins constants only: the table's columns
    + ", ".join(_CREATED)
    + """,
        stage_id, primary_advisor_id, contact_id, created_by, import_job_id, event_sequence
    )
    SELECT $1, """
    + ", ".join(f"r.{c}" for c in _CREATED)
    + """,
        coalesce(r.stage_id, (SELECT id FROM first_stage)), r.primary_advisor_id, r.contact_id,
        $3, $4, 1
    FROM jsonb_populate_recordset(NULL::leads, $2::jsonb) AS r
    RETURNING *
)
"""
    + WITH_RELATIONS
)

# Every lead.created of a batch, their webhook deliveries and notifications in one statement,
# under the organization's event lock (store/events.py says why) taken once for the batch.
_CREATED_EVENTS: Final = """
WITH e AS (
    INSERT INTO lead_events (organization_id, lead_id, sequence, type, payload, actor)
    SELECT $1, (p.doc ->> 'id')::uuid, 1, 'lead.created', jsonb_build_object('lead', p.doc), $3
    FROM (
            SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0)),
                pg_current_xact_id()
        ) AS serialised,
        jsonb_array_elements($2::jsonb) WITH ORDINALITY AS p (doc, n)
    ORDER BY p.n
    RETURNING id, organization_id, type
),
deliveries AS (
    INSERT INTO webhook_deliveries (organization_id, event_id, endpoint_id)
    SELECT e.organization_id, e.id, w.id
    FROM e
    JOIN webhook_endpoints AS w
        ON w.organization_id = e.organization_id
       AND w.enabled
       AND e.type = ANY (w.event_types)
)
"""
INSERT_CREATED_EVENTS: Final = (
    _CREATED_EVENTS  # noqa: S608 - joins constants only
    + """SELECT count(pg_notify('"""
    + NOTIFY_CHANNEL
    + """', organization_id::text || ':' || id::text))
FROM e
"""
)
# The same without NOTIFY, when an event bus relays the table (store/events.py).
INSERT_CREATED_EVENTS_SILENT: Final = _CREATED_EVENTS + "SELECT count(*)\nFROM e\n"


@dataclass(frozen=True, slots=True)
class KnownReferences:
    stages: frozenset[UUID]
    advisors: frozenset[UUID]
    contacts: frozenset[UUID]


def _job(row: asyncpg.Record) -> ImportJob:
    return ImportJob(
        id=row["id"],
        status=row["status"],
        format=row["format"],
        filename=row["filename"],
        total_rows=row["total_rows"],
        created_count=row["created_count"],
        updated_count=row["updated_count"],
        failed_count=row["failed_count"],
        failure=row["failure"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


async def insert_job(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    file_format: str,
    filename: str | None,
    total_rows: int,
    created_by: str | None,
) -> ImportJob:
    row = await conn.fetchrow(
        INSERT_JOB, organization_id, file_format, filename, total_rows, created_by
    )
    return _job(row)


async def job(conn: asyncpg.Connection, organization_id: UUID, job_id: UUID) -> ImportJob | None:
    row = await conn.fetchrow(JOB, organization_id, job_id)
    return _job(row) if row is not None else None


async def start_job(conn: asyncpg.Connection, organization_id: UUID, job_id: UUID) -> None:
    await conn.execute(START_JOB, organization_id, job_id)


async def finish_job(
    conn: asyncpg.Connection,
    organization_id: UUID,
    job_id: UUID,
    *,
    status: str,
    failure: str | None = None,
) -> ImportJob:
    return _job(await conn.fetchrow(FINISH_JOB, organization_id, job_id, status, failure))


async def count_batch(
    conn: asyncpg.Connection,
    organization_id: UUID,
    job_id: UUID,
    *,
    created: int,
    failed: int,
    updated: int = 0,
) -> None:
    await conn.execute(COUNT_BATCH, organization_id, job_id, created, failed, updated)


async def lock_events(conn: asyncpg.Connection, organization_id: UUID) -> None:
    await conn.execute(LOCK_EVENTS, organization_id)


async def claim_created(
    conn: asyncpg.Connection,
    organization_id: UUID,
    lead_id: UUID,
    job_id: UUID,
    event_id: int | None,
) -> None:
    await conn.execute(CLAIM_CREATED, organization_id, lead_id, job_id, event_id)


async def insert_errors(
    conn: asyncpg.Connection,
    organization_id: UUID,
    job_id: UUID,
    errors: Sequence[tuple[int, str | None, str]],
) -> None:
    if not errors:
        return
    rows, fields, messages = zip(*errors, strict=True)
    await conn.execute(
        INSERT_ERRORS, organization_id, job_id, list(rows), list(fields), list(messages)
    )


async def errors_page(
    conn: asyncpg.Connection,
    organization_id: UUID,
    job_id: UUID,
    *,
    after: tuple[int, int],
    limit: int,
) -> list[RowError]:
    found = await conn.fetch(ERRORS_PAGE, organization_id, job_id, *after, limit)
    return [RowError(r["id"], r["row_number"], r["field"], r["message"]) for r in found]


async def known_references(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    stages: list[UUID],
    advisors: list[UUID],
    contacts: list[UUID],
) -> KnownReferences:
    row = await conn.fetchrow(KNOWN_REFERENCES, organization_id, stages, advisors, contacts)
    return KnownReferences(
        stages=frozenset(row["stages"]),
        advisors=frozenset(row["advisors"]),
        contacts=frozenset(row["contacts"]),
    )


async def insert_leads(
    conn: asyncpg.Connection,
    organization_id: UUID,
    values: list[dict[str, Any]],
    *,
    created_by: str | None,
    job_id: UUID,
) -> list[LeadRecord]:
    rows = await conn.fetch(INSERT_LEADS, organization_id, values, created_by, job_id)
    return [record_from_row(r) for r in rows]


async def insert_created_events(
    conn: asyncpg.Connection,
    organization_id: UUID,
    documents: list[dict[str, Any]],
    actor: EventActor | None,
    *,
    notify: bool = True,
) -> None:
    actor_document = actor.document() if actor is not None else None
    statement = INSERT_CREATED_EVENTS if notify else INSERT_CREATED_EVENTS_SILENT
    await conn.fetchval(statement, organization_id, documents, actor_document)
