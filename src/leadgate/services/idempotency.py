"""Housekeeping of idempotency keys: expired ones are purged in the background."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import asyncpg

from leadgate.store import idempotency

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS: Final = 600.0


async def purge_idempotency_keys(pool: asyncpg.Pool, *, ttl_seconds: float) -> None:
    """Every few minutes, delete keys older than their time to live; runs until cancelled.

    Expired keys are already ignored by claims, so a missed round only costs disk space.
    """
    while True:
        try:
            async with pool.acquire() as conn:
                purged = await idempotency.purge_expired(conn, ttl_seconds)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except (OSError, asyncpg.PostgresError):
            log.warning("idempotency key purge failed; will retry", exc_info=True)
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
