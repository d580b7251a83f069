"""API keys: stored as SHA-256 hashes only."""

from __future__ import annotations

from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.models import Actor, Principal
from leadgate.domain.rate_limits import Rate

INSERT_API_KEY: Final = """
INSERT INTO api_keys
    (organization_id, name, prefix, key_hash, can_write, rate_per_second, rate_burst)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""

# Validating a key also records its use: one statement, at most once per cache period.
TOUCH_ACTIVE_KEY: Final = """
UPDATE api_keys
SET last_used_at = now()
WHERE key_hash = $1
  AND revoked_at IS NULL
RETURNING id, organization_id, can_write, rate_per_second, rate_burst
"""

REVOKE_API_KEY: Final = """
UPDATE api_keys
SET revoked_at = now()
WHERE id = $1
  AND revoked_at IS NULL
RETURNING id
"""


async def insert_api_key(
    conn: asyncpg.Connection,
    *,
    organization_id: UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    can_write: bool,
    rate: Rate | None = None,
) -> UUID:
    key_id: UUID = await conn.fetchval(
        INSERT_API_KEY,
        organization_id,
        name,
        prefix,
        key_hash,
        can_write,
        rate.per_second if rate is not None else None,
        rate.burst if rate is not None else None,
    )
    return key_id


async def principal_for_hash(conn: asyncpg.Connection, key_hash: bytes) -> Principal | None:
    row = await conn.fetchrow(TOUCH_ACTIVE_KEY, key_hash)
    if row is None:
        return None
    # A write key does everything a key did before roles: write leads and manage webhooks.
    return Principal(
        organization_id=row["organization_id"],
        role="admin" if row["can_write"] else "viewer",
        actor=Actor(type="api_key", id=str(row["id"])),
        rate=(
            Rate(row["rate_per_second"], row["rate_burst"])
            if row["rate_per_second"] is not None
            else None
        ),
    )


async def revoke_api_key(conn: asyncpg.Connection, key_id: UUID) -> bool:
    return await conn.fetchval(REVOKE_API_KEY, key_id) is not None
