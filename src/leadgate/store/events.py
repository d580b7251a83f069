"""The lead_events outbox: written in the change's transaction, announced with NOTIFY."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.models import EventActor, LeadEvent

NOTIFY_CHANNEL: Final = "leadgate_events"

# One statement writes the event, its webhook deliveries and the notification.
# - The transaction-scoped advisory lock serialises event writes per organization until
#   commit, so an organization's event ids become visible in increasing order and a reader's
#   `id > cursor` never skips one still in flight (DESIGN §6: a bigserial is assigned at
#   insert, not at commit). Taken in the FROM clause, it is held before nextval assigns the id.
# - pg_current_xact_id() there too gives the transaction its xid before nextval, so an event
#   id not yet visible belongs to a transaction in every later snapshot's in-flight list: the
#   NATS relay's rule for ids across organizations (events/nats_bus.py).
# - pg_notify is transactional: listeners hear "<organization>:<id>" only once it commits.
_EVENT_WITH_DELIVERIES: Final = """
WITH e AS (
    INSERT INTO lead_events (organization_id, lead_id, sequence, type, payload, actor)
    SELECT $1, $2, $3, $4, $5, $6
    FROM (
        SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0)), pg_current_xact_id()
    ) AS serialised
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
)"""

_NOTIFIED: Final = """
SELECT id, pg_notify('leadgate_events', organization_id::text || ':' || id::text)
FROM e
"""

# With an event bus (LEADGATE_EVENT_BUS) no NOTIFY: the relay reads the table instead, and
# commits no longer queue on the database-wide notification lock (issue 13).
_UNANNOUNCED: Final = """
SELECT id
FROM e
"""

INSERT_EVENT: Final = _EVENT_WITH_DELIVERIES + _NOTIFIED
INSERT_EVENT_SILENT: Final = _EVENT_WITH_DELIVERIES + _UNANNOUNCED

# The same, also storing the write's idempotent response ($7 key, $8 status, $9 body).
_COMPLETING: Final = (
    _EVENT_WITH_DELIVERIES  # noqa: S608 - joins constants only
    + """,
completed AS (
    UPDATE idempotency_keys
    SET state = 'done',
        response_status = $8,
        response = $9
    WHERE organization_id = $1
      AND key = $7
)"""
)
INSERT_EVENT_COMPLETING: Final = _COMPLETING + _NOTIFIED
INSERT_EVENT_COMPLETING_SILENT: Final = _COMPLETING + _UNANNOUNCED

# The lead feeds read lead events only: an organization event (no lead, migration 0012) is
# for webhooks, and skipping its id leaves the `id > cursor` reading gap-free.
EVENTS_AFTER: Final = """
SELECT id, organization_id, lead_id, sequence, type, payload, created_at, actor
FROM lead_events
WHERE organization_id = $1
  AND id > $2
  AND lead_id IS NOT NULL
  AND ($3::text[] IS NULL OR type = ANY ($3))
  AND ($4::uuid IS NULL OR lead_id = $4)
  AND created_at > now() - make_interval(days => $6)
ORDER BY id
LIMIT $5
"""

# By primary key (organization_id, id): the pairs a NOTIFY announced, lead events only (as
# EVENTS_AFTER).
EVENTS_BY_KEY: Final = """
SELECT e.id, e.organization_id, e.lead_id, e.sequence, e.type, e.payload, e.created_at,
    e.actor
FROM unnest($1::uuid[], $2::bigint[]) AS wanted (organization_id, id)
JOIN lead_events AS e
    ON e.organization_id = wanted.organization_id
   AND e.id = wanted.id
WHERE e.lead_id IS NOT NULL
ORDER BY e.id
"""

LATEST_EVENT_ID: Final = """
SELECT coalesce(max(id), 0)
FROM lead_events
WHERE organization_id = $1
"""

HISTORY: Final = """
SELECT h.id, h.organization_id, h.lead_id, h.sequence, h.type, h.payload, h.created_at,
    h.actor
FROM unnest($2::uuid[]) AS wanted (lead_id)
CROSS JOIN LATERAL (
    SELECT e.id, e.organization_id, e.lead_id, e.sequence, e.type, e.payload, e.created_at,
        e.actor
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
    actor: EventActor | None,
    completion: tuple[str, int, bytes] | None = None,
    notify: bool = True,
) -> int:
    """Record the event and who made it happen; with `completion` (key, status, body),
    complete that idempotency key in the same statement. `notify=False` when an event bus
    relays the table (no NOTIFY)."""
    args = [organization_id, lead_id, sequence, type, payload, _actor_document(actor)]
    if completion is None:
        event_id: int = await conn.fetchval(INSERT_EVENT if notify else INSERT_EVENT_SILENT, *args)
    else:
        statement = INSERT_EVENT_COMPLETING if notify else INSERT_EVENT_COMPLETING_SILENT
        event_id = await conn.fetchval(statement, *args, *completion)
    return event_id


async def insert_organization_event(
    conn: asyncpg.Connection,
    organization_id: UUID,
    *,
    type: str,  # noqa: A002 - the event's own vocabulary
    payload: dict[str, Any],
    actor: EventActor | None,
    notify: bool = True,
) -> int:
    """Record an event of the organization itself (ORGANIZATION_EVENT_TYPES: no lead, no
    sequence) exactly as a lead's: under the event lock, with its webhook deliveries and,
    unless an event bus relays the table, its NOTIFY."""
    args = [organization_id, None, None, type, payload, _actor_document(actor)]
    event_id: int = await conn.fetchval(INSERT_EVENT if notify else INSERT_EVENT_SILENT, *args)
    return event_id


def _actor_document(actor: EventActor | None) -> dict[str, Any] | None:
    return actor.document() if actor is not None else None


async def history(
    conn: asyncpg.Connection, organization_id: UUID, lead_ids: list[UUID], limit: int
) -> dict[UUID, list[LeadEvent]]:
    """The newest `limit` events of each lead, newest first (one query for many leads)."""
    found: dict[UUID, list[LeadEvent]] = {lead_id: [] for lead_id in lead_ids}
    for r in await conn.fetch(HISTORY, organization_id, lead_ids, limit):
        found[r["lead_id"]].append(event_from_row(r))
    return found


def event_from_row(r: asyncpg.Record) -> LeadEvent:
    return LeadEvent(
        id=r["id"],
        organization_id=r["organization_id"],
        lead_id=r["lead_id"],
        sequence=r["sequence"],
        type=r["type"],
        payload=r["payload"],
        created_at=r["created_at"],
        actor=EventActor.from_document(r["actor"]),
    )


async def events_after(
    conn: asyncpg.Connection,
    organization_id: UUID,
    after: int,
    *,
    types: list[str] | None = None,
    lead_id: UUID | None = None,
    limit: int = 1000,
    max_age_days: int = 30,
) -> list[LeadEvent]:
    """The organization's events after `after`, oldest first (gap-free: see INSERT_EVENT)."""
    rows = await conn.fetch(
        EVENTS_AFTER, organization_id, after, types, lead_id, limit, max_age_days
    )
    return [event_from_row(r) for r in rows]


async def events_by_key(conn: asyncpg.Connection, keys: list[tuple[UUID, int]]) -> list[LeadEvent]:
    """Events of any organization by (organization, id), oldest first: only for routing them
    to their own subscribers."""
    orgs = [org for org, _ in keys]
    ids = [event_id for _, event_id in keys]
    return [event_from_row(r) for r in await conn.fetch(EVENTS_BY_KEY, orgs, ids)]


async def latest_event_id(conn: asyncpg.Connection, organization_id: UUID) -> int:
    latest: int = await conn.fetchval(LATEST_EVENT_ID, organization_id)
    return latest
