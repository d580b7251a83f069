"""Throwaway databases on the server under test, so every run starts from an empty schema."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(server_url: str, prefix: str = "leadgate_test") -> str:
    """Create an empty database beside `server_url`'s and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def throwaway_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database beside `server_url`'s for the block (a module's own processes)."""
    url = await create_database(server_url, prefix=prefix)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


@contextlib.asynccontextmanager
async def migrated_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on `database_url`, migrated first, for the block."""
    pool = await create_pool(Settings(database_url=database_url))
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()
