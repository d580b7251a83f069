"""Migrations: each file applied once, in order, recorded with its checksum, under an advisory
lock so that processes starting at the same moment queue up instead of racing.

Every test works on its own empty database on the server under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from leadgate.db.migrate import MIGRATION_LOCK_ID, Migration, MigrationError, migrate
from tests.databases import create_database, drop_database

LEADGATE = Path(sys.executable).with_name("leadgate")
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "sql" / "migrations"
MIGRATION_FILES = sorted(MIGRATIONS_DIR.glob("*.sql"))
MIGRATION_NAMES = [path.stem for path in MIGRATION_FILES]

RECORDED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
WAITING_FOR_MIGRATION_LOCK = """
SELECT count(*)
FROM pg_locks
WHERE locktype = 'advisory'
  AND NOT granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@pytest.fixture
async def fresh_url(server_url: str) -> AsyncIterator[str]:
    """An empty database: no schema_migrations, no tables."""
    url = await create_database(server_url, prefix="leadgate_migrations")
    yield url
    await drop_database(server_url, url)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


def test_the_repository_has_migrations_to_apply() -> None:
    assert MIGRATION_NAMES, f"no migration files in {MIGRATIONS_DIR}"


async def test_a_fresh_database_gets_every_migration_once_with_its_checksum(
    fresh_url: str,
) -> None:
    async with connected(fresh_url) as conn:
        applied = await migrate(conn)
        recorded = await conn.fetch(RECORDED)

    assert applied == MIGRATION_NAMES
    assert [(r["version"], r["name"], r["checksum"]) for r in recorded] == [
        (int(path.name[:4]), path.stem, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in MIGRATION_FILES
    ]


async def test_migrating_an_up_to_date_database_applies_nothing(fresh_url: str) -> None:
    async with connected(fresh_url) as conn:
        await migrate(conn)
        before = await conn.fetch(RECORDED)

        applied_again = await migrate(conn)

        assert applied_again == []
        assert await conn.fetch(RECORDED) == before


async def test_two_migrate_processes_started_at_once_apply_each_migration_exactly_once(
    fresh_url: str,
) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_url}
    processes = [
        await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "migrate",
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), timeout=60
    )

    for process, (_stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    applied = [name for stdout, _ in outputs for name in json.loads(stdout)["applied"]]
    assert Counter(applied) == Counter(MIGRATION_NAMES)
    async with connected(fresh_url) as conn:
        recorded = await conn.fetch(RECORDED)
    assert [r["name"] for r in recorded] == MIGRATION_NAMES


async def test_migrate_waits_for_the_advisory_lock_and_then_applies_everything(
    fresh_url: str,
) -> None:
    async with connected(fresh_url) as holder, connected(fresh_url) as migrator:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        task = asyncio.create_task(migrate(migrator))
        try:
            await asyncio.sleep(0.5)

            assert not task.done(), "migrate() ran while another session held the lock"
            assert await holder.fetchval(WAITING_FOR_MIGRATION_LOCK) == 1
            assert await holder.fetchval("SELECT to_regclass('schema_migrations')") is None

            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
            applied = await asyncio.wait_for(task, timeout=30)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, asyncpg.PostgresError):
                    await task

        assert applied == MIGRATION_NAMES
        assert [r["name"] for r in await holder.fetch(RECORDED)] == MIGRATION_NAMES


async def test_a_migration_changed_after_it_was_applied_is_refused(fresh_url: str) -> None:
    original = Migration(1, "0001_widgets", "CREATE TABLE widgets (id integer)")
    edited = Migration(1, "0001_widgets", "CREATE TABLE widgets (id bigint)")
    async with connected(fresh_url) as conn:
        assert await migrate(conn, [original]) == ["0001_widgets"]

        with pytest.raises(MigrationError, match="0001_widgets was changed"):
            await migrate(conn, [edited])

        recorded = await conn.fetch(RECORDED)
    assert [(r["name"], r["checksum"]) for r in recorded] == [("0001_widgets", original.checksum)]


async def test_a_failing_migration_records_nothing_and_releases_the_lock(fresh_url: str) -> None:
    good = Migration(1, "0001_widgets", "CREATE TABLE widgets (id integer)")
    broken = Migration(2, "0002_broken", "CREATE TABLE gadgets (id integer); SELECT nonsense")
    async with connected(fresh_url) as conn, connected(fresh_url) as other:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(conn, [good, broken])

        assert [r["name"] for r in await conn.fetch(RECORDED)] == ["0001_widgets"]
        assert await conn.fetchval("SELECT to_regclass('gadgets')") is None
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_ID)
