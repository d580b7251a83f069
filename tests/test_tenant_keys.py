"""Every key of a tenant table includes organization_id, read from the catalog.

A tenant table is one with an organization_id column. Its primary key, unique constraints,
unique indexes and foreign keys must all include organization_id (and a foreign key into
another tenant table must pair the two organization_ids), so the schema stays distributable
by organization_id and no row can point into another organization (DESIGN §2, §7).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
import pytest

# Deliberately global unique indexes, each with the reason it cannot include the organization.
ALLOWED_GLOBAL: Final = {
    # Authentication finds a bearer key by its SHA-256 before the organization is known, and
    # a hash must name one key across all organizations (a reference table once distributed).
    ("api_keys", "api_keys_key_hash"),
}

TENANT_TABLES: Final = """
SELECT c.relname
FROM pg_class AS c
JOIN pg_attribute AS a
    ON a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
WHERE c.relnamespace = $1::regnamespace
  AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""

# Primary keys, unique and exclusion constraints, and unique indexes (constraint or not) whose
# key columns (INCLUDE columns do not count) leave organization_id out.
UNSCOPED_UNIQUE: Final = """
WITH tenant AS (
    SELECT c.oid, c.relname, a.attnum AS org
    FROM pg_class AS c
    JOIN pg_attribute AS a
        ON a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
    WHERE c.relnamespace = $1::regnamespace
      AND c.relkind IN ('r', 'p')
)
SELECT t.relname AS table_name, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM tenant AS t
JOIN pg_constraint AS k ON k.conrelid = t.oid
WHERE k.contype IN ('p', 'u', 'x')
  AND NOT t.org = ANY (k.conkey)
UNION ALL
SELECT t.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM tenant AS t
JOIN pg_index AS i ON i.indrelid = t.oid
WHERE i.indisunique
  AND NOT t.org = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = i.indexrelid)
ORDER BY 1, 2
"""

# Foreign keys of tenant tables that leave organization_id out, or that point into another
# tenant table without matching organization_id to its organization_id.
UNSCOPED_FOREIGN: Final = """
WITH tenant AS (
    SELECT c.oid, c.relname, a.attnum AS org
    FROM pg_class AS c
    JOIN pg_attribute AS a
        ON a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
    WHERE c.relnamespace = $1::regnamespace
      AND c.relkind IN ('r', 'p')
)
SELECT t.relname AS table_name, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM tenant AS t
JOIN pg_constraint AS k ON k.conrelid = t.oid AND k.contype = 'f'
LEFT JOIN tenant AS target ON target.oid = k.confrelid
WHERE NOT t.org = ANY (k.conkey)
   OR (target.oid IS NOT NULL
       AND NOT EXISTS (
           SELECT 1
           FROM unnest(k.conkey, k.confkey) AS pair (from_column, to_column)
           WHERE pair.from_column = t.org
             AND pair.to_column = target.org))
ORDER BY 1, 2
"""

WITHOUT_PRIMARY_KEY: Final = """
SELECT c.relname
FROM pg_class AS c
JOIN pg_attribute AS a
    ON a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
WHERE c.relnamespace = $1::regnamespace
  AND c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conrelid = c.oid AND k.contype = 'p')
"""


async def unscoped(conn: asyncpg.Connection, schema: str) -> set[tuple[str, str, str]]:
    """(table, key, definition) of every tenant key that leaves organization_id out."""
    rows = [
        *await conn.fetch(UNSCOPED_UNIQUE, schema),
        *await conn.fetch(UNSCOPED_FOREIGN, schema),
    ]
    return {(r["table_name"], r["name"], r["definition"]) for r in rows}


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's database, migrated to the latest migration."""
    async with pool.acquire() as conn:
        yield conn


async def test_the_tenant_tables_are_found_in_the_catalog(conn: asyncpg.Connection) -> None:
    found = {r["relname"] for r in await conn.fetch(TENANT_TABLES, "public")}

    assert {
        "api_keys",
        "leads",
        "lead_events",
        "webhook_deliveries",
        "webhook_attempts",
        "idempotency_keys",
    } <= found
    assert "organizations" not in found


async def test_every_tenant_table_has_a_primary_key(conn: asyncpg.Connection) -> None:
    assert [r["relname"] for r in await conn.fetch(WITHOUT_PRIMARY_KEY, "public")] == []


async def test_every_primary_unique_and_foreign_key_of_a_tenant_table_includes_the_organization(
    conn: asyncpg.Connection,
) -> None:
    violations = {v for v in await unscoped(conn, "public") if v[:2] not in ALLOWED_GLOBAL}

    assert violations == set(), "\n".join(f"{t}.{n}: {d}" for t, n, d in sorted(violations))


async def test_each_allowed_global_index_still_exists_and_is_still_global(
    conn: asyncpg.Connection,
) -> None:
    # An entry whose index was dropped or scoped would otherwise linger as a silent exception.
    global_keys = {v[:2] for v in await unscoped(conn, "public")}

    assert global_keys == ALLOWED_GLOBAL


async def test_the_check_catches_a_global_key_and_a_foreign_key_across_organizations(
    conn: asyncpg.Connection,
) -> None:
    # The check run on a throwaway schema holding each kind of mistake it exists to catch.
    schema = f"tenant_keys_probe_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        await conn.execute(
            f"""
            CREATE TABLE "{schema}".parents (
                organization_id uuid NOT NULL,
                id bigint PRIMARY KEY,
                code text UNIQUE,
                UNIQUE (organization_id, id)
            );
            CREATE UNIQUE INDEX parents_code_ci ON "{schema}".parents (lower(code));
            CREATE TABLE "{schema}".children (
                organization_id uuid NOT NULL,
                other_org uuid NOT NULL,
                id bigint NOT NULL,
                parent_id bigint REFERENCES "{schema}".parents (id),
                PRIMARY KEY (organization_id, id),
                FOREIGN KEY (other_org, parent_id)
                    REFERENCES "{schema}".parents (organization_id, id)
            );
            """
        )

        found = {(table, name) for table, name, _ in await unscoped(conn, schema)}

        assert found == {
            ("parents", "parents_pkey"),
            ("parents", "parents_code_key"),
            ("parents", f"{schema}.parents_code_ci"),
            ("children", "children_parent_id_fkey"),
            ("children", "children_other_org_parent_id_fkey"),
        }
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
