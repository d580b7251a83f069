"""Every store statement on a tenant table names its organization (issue 13 #4).

Distributed by `organization_id` (Citus, docs/scale-out.md), a statement routes to one shard
only when each tenant table it touches is constrained by `organization_id`: a WHERE or JOIN
condition on it, or, for an INSERT, the column among those inserted. Tenant tables are read
from the catalog (those with an organization_id column); statements are the module-level SQL
constants of src/leadgate/store/, parsed with sqlglot's PostgreSQL dialect.

The check is deliberately syntactic: it proves each touched table has the column in a
condition, not that the condition is an equality (every store statement uses `= $n`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Final

import asyncpg
import sqlglot
from sqlglot import expressions as exp

import leadgate.store

_TENANT_TABLES: Final = """
SELECT c.table_name
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND c.column_name = 'organization_id'
  AND t.table_type = 'BASE TABLE'
"""
_VERBS: Final = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")

# Statements that cannot name one organization, each with why (module.CONSTANT). Under Citus
# each is a multi-shard statement (docs/scale-out.md says what that costs and the way out).
NOT_ROUTED: Final = {
    # Authentication: the key's hash is all a request has; its organization is the answer.
    "api_keys.TOUCH_ACTIVE_KEY": "lookup by key hash before the organization is known",
    # `leadgate revoke-key ID`: an operator names a key id only.
    "api_keys.REVOKE_API_KEY": "operator revocation by key id, organization unknown",
    # Housekeeping for every tenant at once, off the request path.
    "idempotency.PURGE_EXPIRED": "periodic purge of expired keys across all organizations",
    # The dispatcher claims due deliveries of every tenant; the rest of the statement joins
    # on organization_id (co-located).
    "webhooks.CLAIM_DUE": "cross-tenant claim of due webhook deliveries",
}


def store_statements() -> Iterator[tuple[str, str]]:
    """(module.CONSTANT, SQL) for every module-level SQL string of the store package."""
    for info in pkgutil.iter_modules(leadgate.store.__path__):
        module = importlib.import_module(f"leadgate.store.{info.name}")
        for name, value in vars(module).items():
            constant = name.lstrip("_").isupper()
            if constant and isinstance(value, str) and value.lstrip().upper().startswith(_VERBS):
                yield f"{info.name}.{name}", value


def _conditions(statement: exp.Expression) -> list[exp.Expression]:
    found: list[exp.Expression] = [where.this for where in statement.find_all(exp.Where)]
    found += [on for join in statement.find_all(exp.Join) if (on := join.args.get("on"))]
    # JOIN … USING (organization_id, id): batch lookups by (organization, id) pairs.
    found += [
        column for join in statement.find_all(exp.Join) for column in join.args.get("using") or []
    ]
    return found


def _constrained(statement: exp.Expression, table: exp.Table) -> bool:
    alias = table.alias_or_name
    insert = table.find_ancestor(exp.Insert)
    if insert is not None and insert.this is not None:
        target = insert.this
        if isinstance(target, exp.Schema) and target.this is table:
            return "organization_id" in {c.name for c in target.expressions}
    for condition in _conditions(statement):
        if isinstance(condition, exp.Identifier):  # a USING column
            if condition.name == "organization_id":
                return True
            continue
        for column in condition.find_all(exp.Column):
            if column.name == "organization_id" and column.table in ("", alias, table.name):
                return True
    return False


def unrouted(statement: exp.Expression, tenant_tables: set[str]) -> list[str]:
    """The tenant tables of `statement` that no organization_id condition constrains."""
    return sorted(
        {
            table.name
            for table in statement.find_all(exp.Table)
            if table.name in tenant_tables and not _constrained(statement, table)
        }
    )


async def test_every_store_statement_on_a_tenant_table_filters_by_organization(
    pool: asyncpg.Pool,
) -> None:
    tenant_tables = {r["table_name"] for r in await pool.fetch(_TENANT_TABLES)}
    statements = dict(store_statements())
    assert len(statements) > 20 and "leads" in tenant_tables

    whole, fragments = {}, []
    for name, sql in statements.items():
        try:
            whole[name] = sqlglot.parse_one(sql, dialect="postgres")
        except sqlglot.ParseError:
            fragments.append(name)
    gaps = {
        name: tables
        for name, statement in whole.items()
        if name not in NOT_ROUTED and (tables := unrouted(statement, tenant_tables))
    }

    assert gaps == {}
    # A constant that is no statement alone (a CTE, a clause) is checked inside the ones it
    # is part of: each must be part of one.
    composed = [sql for name, sql in statements.items() if name in whole]
    assert [f for f in fragments if not any(statements[f].strip() in sql for sql in composed)] == []


def test_the_allow_list_names_only_statements_that_exist() -> None:
    assert set(NOT_ROUTED) <= dict(store_statements()).keys()


def test_a_statement_missing_an_organization_condition_is_found() -> None:
    tables = {"leads", "pipeline_stages"}
    statement = sqlglot.parse_one(
        "SELECT l.id FROM leads AS l JOIN pipeline_stages AS s ON s.id = l.stage_id "
        "WHERE l.organization_id = $1",
        dialect="postgres",
    )

    assert unrouted(statement, tables) == ["pipeline_stages"]
