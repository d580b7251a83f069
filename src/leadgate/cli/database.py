"""The database a command works on: a small pool, migrations, the operator's principal."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool, direct_database_url, init_connection
from leadgate.domain.models import Principal


async def with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    pool = await create_pool(dataclasses.replace(settings, pool_min_size=1, pool_max_size=4))
    try:
        return await work(pool)
    finally:
        await pool.close()


async def migrate_database(settings: Settings) -> list[str]:
    # The migration lock is a session advisory lock: never through a transaction-mode pooler.
    conn = await asyncpg.connect(direct_database_url(settings))
    try:
        await init_connection(conn)
        return await migrate(conn)
    finally:
        await conn.close()


def operator(org: UUID) -> Principal:
    """The command line acts for an organization with full rights (it has the database)."""
    return Principal(organization_id=org, role="admin", actor=None)
