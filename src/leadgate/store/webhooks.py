"""Webhook endpoints, deliveries and attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.webhooks import Attempt, ClaimedDelivery, Delivery, Endpoint

INSERT_ENDPOINT: Final = """
INSERT INTO webhook_endpoints (organization_id, url, secret, event_types)
VALUES ($1, $2, $3, $4)
RETURNING id, url, event_types, enabled, disabled_reason, created_at,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
        AS previous_secret_expires_at
"""

ENDPOINTS: Final = """
SELECT id, url, event_types, enabled, disabled_reason, created_at,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
        AS previous_secret_expires_at
FROM webhook_endpoints
WHERE organization_id = $1
ORDER BY created_at, id
"""

ENDPOINT: Final = """
SELECT id, url, event_types, enabled, disabled_reason, created_at,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
        AS previous_secret_expires_at,
    secret,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret END AS previous_secret
FROM webhook_endpoints
WHERE organization_id = $1
  AND id = $2
"""

UPDATE_ENDPOINT: Final = """
UPDATE webhook_endpoints
SET url = coalesce($3, url),
    event_types = coalesce($4, event_types),
    enabled = coalesce($5, enabled),
    disabled_reason = CASE WHEN coalesce($5, enabled) THEN NULL ELSE disabled_reason END,
    updated_at = now()
WHERE organization_id = $1
  AND id = $2
RETURNING id, url, event_types, enabled, disabled_reason, created_at,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
        AS previous_secret_expires_at
"""

# The secret being replaced keeps signing for $4 seconds (none when $4 <= 0); one rotated
# out earlier stops at once: two secrets sign at most.
ROTATE_SECRET: Final = """
UPDATE webhook_endpoints
SET previous_secret = CASE WHEN $4::float8 > 0 THEN secret END,
    previous_secret_expires_at = CASE WHEN $4::float8 > 0
        THEN now() + make_interval(secs => $4::float8) END,
    secret = $3,
    updated_at = now()
WHERE organization_id = $1
  AND id = $2
RETURNING id, url, event_types, enabled, disabled_reason, created_at,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
        AS previous_secret_expires_at
"""  # noqa: S105 - a statement, not a secret

DELETE_ENDPOINT: Final = """
DELETE FROM webhook_endpoints
WHERE organization_id = $1
  AND id = $2
RETURNING id
"""

DISABLE_ENDPOINT: Final = """
UPDATE webhook_endpoints
SET enabled = false,
    disabled_reason = $3,
    updated_at = now()
WHERE organization_id = $1
  AND id = $2
"""

DELIVERIES: Final = """
SELECT count(*) OVER () AS total,
    d.id, d.event_id, d.endpoint_id, e.type AS event_type, d.status, d.attempt,
    d.next_attempt_at, d.response_status, d.error, d.delivered_at, d.created_at
FROM webhook_deliveries AS d
JOIN lead_events AS e ON e.organization_id = d.organization_id AND e.id = d.event_id
WHERE d.organization_id = $1
  AND ($2::uuid IS NULL OR d.endpoint_id = $2)
  AND ($3::text IS NULL OR d.status = $3)
ORDER BY d.id DESC
LIMIT $4
OFFSET $5
"""

DELIVERY: Final = """
SELECT
    d.id, d.event_id, d.endpoint_id, e.type AS event_type, d.status, d.attempt,
    d.next_attempt_at, d.response_status, d.error, d.delivered_at, d.created_at
FROM webhook_deliveries AS d
JOIN lead_events AS e ON e.organization_id = d.organization_id AND e.id = d.event_id
WHERE d.organization_id = $1
  AND d.id = $2
"""

ATTEMPTS: Final = """
SELECT delivery_id, attempt, response_status, error, duration_ms, attempted_at
FROM webhook_attempts
WHERE organization_id = $1
  AND delivery_id = ANY ($2::bigint[])
ORDER BY delivery_id, id
"""

REDELIVER: Final = """
UPDATE webhook_deliveries
SET status = 'pending',
    next_attempt_at = now()
WHERE organization_id = $1
  AND id = $2
RETURNING id
"""

# Due deliveries are leased, not held: the lease is committed at once, so no transaction stays
# open during the HTTP call, other dispatchers skip them (even if a redelivery makes them due
# meanwhile), and a dispatcher that dies mid-delivery only delays them until the lease ends.
CLAIM_DUE: Final = """
WITH due AS (
    SELECT organization_id, id
    FROM webhook_deliveries
    WHERE status = 'pending'
      AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until <= now())
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries AS d
SET attempt = d.attempt + 1,
    leased_until = now() + make_interval(secs => $2)
FROM due, lead_events AS e, webhook_endpoints AS w
WHERE d.organization_id = due.organization_id
  AND d.id = due.id
  AND e.organization_id = d.organization_id
  AND e.id = d.event_id
  AND w.organization_id = d.organization_id
  AND w.id = d.endpoint_id
RETURNING d.organization_id, d.id, d.attempt, d.next_attempt_at AS due_at,
    d.event_id, e.type AS event_type,
    e.sequence AS event_sequence, e.payload AS event_payload, e.created_at AS event_created_at,
    e.actor AS event_actor,
    w.id AS endpoint_id, w.url, w.secret, w.enabled,
    CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret
"""

# A claimed delivery its dispatcher stopped before settling: due again at once, the claimed
# attempt not counted. One settled or claimed again since (another attempt) is left alone.
RELEASE_LEASES: Final = """
UPDATE webhook_deliveries AS d
SET attempt = d.attempt - 1,
    leased_until = NULL
FROM unnest($1::uuid[], $2::bigint[], $3::int[]) AS r (organization_id, id, attempt)
WHERE d.organization_id = r.organization_id
  AND d.id = r.id
  AND d.attempt = r.attempt
  AND d.leased_until IS NOT NULL
"""

RECORD_ATTEMPT: Final = """
INSERT INTO webhook_attempts
    (organization_id, delivery_id, attempt, response_status, error, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6)
"""

# $3: 'succeeded', 'failed', or 'pending' to retry at $4. A redelivery asked for while this
# attempt was in flight moved next_attempt_at off what was claimed ($7): it stays pending, as
# asked, and goes out once this lease is released.
SETTLE: Final = """
UPDATE webhook_deliveries
SET status = CASE WHEN next_attempt_at = $7 THEN $3 ELSE 'pending' END,
    next_attempt_at = CASE WHEN next_attempt_at = $7
        THEN coalesce($4, next_attempt_at) ELSE next_attempt_at END,
    leased_until = NULL,
    response_status = $5,
    error = $6,
    delivered_at = CASE WHEN $3 = 'succeeded' THEN now() ELSE delivered_at END
WHERE organization_id = $1
  AND id = $2
"""


def _endpoint(row: asyncpg.Record) -> Endpoint:
    return Endpoint(
        id=row["id"],
        url=row["url"],
        event_types=list(row["event_types"]),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
    )


def _secrets(row: asyncpg.Record) -> tuple[str, ...]:
    previous: str | None = row["previous_secret"]
    return (row["secret"],) if previous is None else (row["secret"], previous)


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        status=row["status"],
        attempt=row["attempt"],
        next_attempt_at=row["next_attempt_at"],
        response_status=row["response_status"],
        error=row["error"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
    )


async def insert_endpoint(
    conn: asyncpg.Connection, org: UUID, *, url: str, secret: str, event_types: list[str]
) -> Endpoint:
    return _endpoint(await conn.fetchrow(INSERT_ENDPOINT, org, url, secret, event_types))


async def endpoints(conn: asyncpg.Connection, org: UUID) -> list[Endpoint]:
    return [_endpoint(r) for r in await conn.fetch(ENDPOINTS, org)]


async def endpoint_with_secrets(
    conn: asyncpg.Connection, org: UUID, endpoint_id: UUID
) -> tuple[Endpoint, tuple[str, ...]] | None:
    """The endpoint and the secrets that sign for it now, current first."""
    row = await conn.fetchrow(ENDPOINT, org, endpoint_id)
    return (_endpoint(row), _secrets(row)) if row is not None else None


async def update_endpoint(
    conn: asyncpg.Connection,
    org: UUID,
    endpoint_id: UUID,
    *,
    url: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
) -> Endpoint | None:
    row = await conn.fetchrow(UPDATE_ENDPOINT, org, endpoint_id, url, event_types, enabled)
    return _endpoint(row) if row is not None else None


async def rotate_secret(
    conn: asyncpg.Connection, org: UUID, endpoint_id: UUID, secret: str, *, overlap_seconds: float
) -> Endpoint | None:
    row = await conn.fetchrow(ROTATE_SECRET, org, endpoint_id, secret, overlap_seconds)
    return _endpoint(row) if row is not None else None


async def delete_endpoint(conn: asyncpg.Connection, org: UUID, endpoint_id: UUID) -> bool:
    return await conn.fetchval(DELETE_ENDPOINT, org, endpoint_id) is not None


async def disable_endpoint(
    conn: asyncpg.Connection, org: UUID, endpoint_id: UUID, reason: str
) -> None:
    await conn.execute(DISABLE_ENDPOINT, org, endpoint_id, reason)


async def deliveries(
    conn: asyncpg.Connection,
    org: UUID,
    *,
    endpoint_id: UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Delivery], int]:
    rows = await conn.fetch(DELIVERIES, org, endpoint_id, status, limit, offset)
    total = rows[0]["total"] if rows else 0
    return [_delivery(r) for r in rows], total


async def delivery(conn: asyncpg.Connection, org: UUID, delivery_id: int) -> Delivery | None:
    row = await conn.fetchrow(DELIVERY, org, delivery_id)
    return _delivery(row) if row is not None else None


async def attempts(
    conn: asyncpg.Connection, org: UUID, delivery_ids: list[int]
) -> dict[int, list[Attempt]]:
    found: dict[int, list[Attempt]] = {i: [] for i in delivery_ids}
    for r in await conn.fetch(ATTEMPTS, org, delivery_ids):
        found[r["delivery_id"]].append(
            Attempt(
                attempt=r["attempt"],
                response_status=r["response_status"],
                error=r["error"],
                duration_ms=r["duration_ms"],
                attempted_at=r["attempted_at"],
            )
        )
    return found


async def redeliver(conn: asyncpg.Connection, org: UUID, delivery_id: int) -> bool:
    return await conn.fetchval(REDELIVER, org, delivery_id) is not None


async def claim_due(
    conn: asyncpg.Connection, *, limit: int, lease_seconds: float
) -> list[ClaimedDelivery]:
    rows = await conn.fetch(CLAIM_DUE, limit, lease_seconds)
    return [
        ClaimedDelivery(
            organization_id=r["organization_id"],
            id=r["id"],
            attempt=r["attempt"],
            event_id=r["event_id"],
            event_type=r["event_type"],
            event_sequence=r["event_sequence"],
            event_payload=r["event_payload"],
            event_created_at=r["event_created_at"],
            event_actor=r["event_actor"],
            endpoint_id=r["endpoint_id"],
            url=r["url"],
            secrets=_secrets(r),
            enabled=r["enabled"],
            due_at=r["due_at"],
        )
        for r in rows
    ]


async def release_leases(conn: asyncpg.Connection, claimed: list[ClaimedDelivery]) -> int:
    """How many of these claims were released (made due again)."""
    status: str = await conn.execute(
        RELEASE_LEASES,
        [c.organization_id for c in claimed],
        [c.id for c in claimed],
        [c.attempt for c in claimed],
    )
    return int(status.rsplit(" ", 1)[-1])


async def record_attempt(
    conn: asyncpg.Connection,
    claimed: ClaimedDelivery,
    *,
    response_status: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    await conn.execute(
        RECORD_ATTEMPT,
        claimed.organization_id,
        claimed.id,
        claimed.attempt,
        response_status,
        error,
        duration_ms,
    )


async def settle(
    conn: asyncpg.Connection,
    claimed: ClaimedDelivery,
    *,
    status: str,
    retry_at: datetime | None,
    response_status: int | None,
    error: str | None,
) -> None:
    await conn.execute(
        SETTLE,
        claimed.organization_id,
        claimed.id,
        status,
        retry_at,
        response_status,
        error,
        claimed.due_at,
    )
