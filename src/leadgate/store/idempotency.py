"""Idempotency keys (DESIGN §5). The claim lives in the write's own transaction, so a key is
never left "in flight" by a crash: the transaction, and the claim with it, simply rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.errors import IdempotencyKeyInUse

# A fresh key is claimed; an expired one is taken over. A live key returns no row, and so
# does no key at all ($2 NULL): the statements that fold the claim in (store/lead_writes.py)
# go ahead then. While another transaction holds the same key uncommitted, this waits for
# it, bounded by the connection's lock_timeout.
CLAIM: Final = """
INSERT INTO idempotency_keys (organization_id, key, request_hash, state)
SELECT $1, $2, $3, 'in_flight'
WHERE $2::text IS NOT NULL
ON CONFLICT (organization_id, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash,
    state = 'in_flight',
    response_status = NULL,
    response = NULL,
    created_at = now()
WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
RETURNING true
"""

STORED: Final = """
SELECT request_hash, state, response_status, response
FROM idempotency_keys
WHERE organization_id = $1
  AND key = $2
"""

COMPLETE: Final = """
UPDATE idempotency_keys
SET state = 'done',
    response_status = $3,
    response = $4
WHERE organization_id = $1
  AND key = $2
"""

PURGE_EXPIRED: Final = """
DELETE FROM idempotency_keys
WHERE created_at < now() - make_interval(secs => $1)
"""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: bytes
    done: bool
    status: int | None
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A key for a write to claim, and the fingerprint of the request claiming it."""

    key: str
    request_hash: bytes
    ttl_seconds: float


def taken(exc: asyncpg.LockNotAvailableError) -> bool:
    """Whether a statement that folds a claim in timed out on the key (held by a request
    still in flight) rather than on another lock: PostgreSQL names the table it waited on."""
    return '"idempotency_keys"' in (exc.context or "")


async def claim(
    conn: asyncpg.Connection,
    organization_id: UUID,
    key: str,
    request_hash: bytes,
    *,
    ttl_seconds: float,
) -> StoredResponse | None:
    """Claim `key` for this transaction; or return what an earlier request stored under it."""
    try:
        got = await claimed(conn, organization_id, Claim(key, request_hash, ttl_seconds))
    except asyncpg.LockNotAvailableError as exc:
        raise IdempotencyKeyInUse() from exc
    return None if got else await stored(conn, organization_id, key)


async def claimed(conn: asyncpg.Connection, organization_id: UUID, claim: Claim) -> bool:
    """Claim the key for this transaction; False: another request holds it (`stored`)."""
    got = await conn.fetchval(
        CLAIM, organization_id, claim.key, claim.request_hash, claim.ttl_seconds
    )
    return bool(got)


async def stored(conn: asyncpg.Connection, organization_id: UUID, key: str) -> StoredResponse:
    """What the request that holds `key` stored (a claim just found it taken)."""
    row = await conn.fetchrow(STORED, organization_id, key)
    return StoredResponse(
        request_hash=bytes(row["request_hash"]),
        done=row["state"] == "done",
        status=row["response_status"],
        body=bytes(row["response"]) if row["response"] is not None else None,
    )


async def complete(
    conn: asyncpg.Connection, organization_id: UUID, key: str, status: int, body: bytes
) -> None:
    await conn.execute(COMPLETE, organization_id, key, status, body)


async def purge_expired(conn: asyncpg.Connection, ttl_seconds: float) -> int:
    result: str = await conn.execute(PURGE_EXPIRED, ttl_seconds)
    return int(result.rsplit(" ", 1)[-1])
