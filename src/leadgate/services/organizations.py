"""Organizations: created with the default pipeline."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.store import organizations


async def create_organization(pool: asyncpg.Pool, name: str) -> UUID:
    name = name.strip()
    if not 1 <= len(name) <= 255:
        raise ValidationFailed([FieldError("name", "must be 1-255 characters")])
    async with pool.acquire() as conn, conn.transaction():
        return await organizations.insert_organization(conn, name)


async def find_organization(pool: asyncpg.Pool, name: str) -> UUID | None:
    async with pool.acquire() as conn:
        return await organizations.organization_by_name(conn, name)


async def any_organization(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return await organizations.any_organization(conn)
