"""Forward-only migrations: sql/migrations/NNNN_name.sql, each applied once, in order.

Every migration runs in its own transaction and is recorded in `schema_migrations` in that
same transaction. The whole run holds a session advisory lock, so processes starting at once
queue up instead of applying one migration twice. A session lock needs a session of its own:
`conn` must be PostgreSQL itself, never a transaction-mode pooler's (LEADGATE_DIRECT_DATABASE_URL).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

log = logging.getLogger(__name__)

# Any fixed 64-bit number, unique among this database's advisory locks ("leadgate" in ASCII).
MIGRATION_LOCK_ID: Final = 0x6C65616467617465
_FILENAME: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED: Final = "SELECT version, checksum FROM schema_migrations"
_RECORD: Final = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """sql/migrations of the source tree, or the copy installed inside the package."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "sql" / "migrations", here.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("sql/migrations not found")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"bad migration file name: {path.name}")
        found.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {r["version"]: r["checksum"] for r in await conn.fetch(_APPLIED)}
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was changed after it was applied; "
                        "migrations are forward-only: add a new one instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(_RECORD, migration.version, migration.name, migration.checksum)
            log.info("applied migration %s", migration.name)
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def pending(conn: asyncpg.Connection) -> list[str]:
    """Names of migrations not yet applied (for readiness checks)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied: set[int] = set()
    if exists:
        applied = {r["version"] for r in await conn.fetch(_APPLIED)}
    return [m.name for m in load_migrations() if m.version not in applied]
