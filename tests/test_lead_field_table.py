"""The lead field table (domain/lead_fields.py) matches the migrated `leads` table and the
committed schema.graphql: a column or a GraphQL field no declaration accounts for fails here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import asyncpg
from graphql import (
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    print_type,
)

from leadgate.domain.lead_fields import (
    CREATE_INPUTS,
    LEAD_FIELDS,
    RELATIONS,
    UPDATE_INPUTS,
    FieldSpec,
)

COMMITTED_SCHEMA: Final = Path(__file__).resolve().parents[1] / "schema.graphql"
# Columns no API shows and no declaration needs: the generated search vector and the per-lead
# event counter (read by the store's own statements).
UNDECLARED_COLUMNS: Final = frozenset({"search", "event_sequence"})

COLUMNS: Final = """
SELECT column_name, udt_name, is_nullable = 'YES' AS nullable
FROM information_schema.columns
WHERE table_schema = current_schema()
  AND table_name = 'leads'
"""


def _schema() -> GraphQLSchema:
    return build_schema(COMMITTED_SCHEMA.read_text())


def _object(schema: GraphQLSchema, name: str) -> GraphQLObjectType:
    named: GraphQLNamedType | None = schema.get_type(name)
    assert isinstance(named, GraphQLObjectType), name
    return named


def _input(schema: GraphQLSchema, name: str) -> GraphQLInputObjectType:
    named: GraphQLNamedType | None = schema.get_type(name)
    assert isinstance(named, GraphQLInputObjectType), name
    return named


def _expected_graphql_type(f: FieldSpec, *, nullable: bool) -> str:
    """The SDL type a declaration implies: by its Python type, `!` unless nullable."""
    scalars: dict[Any, str] = {
        str: "String",
        datetime: "DateTime",
        int: "Int",
        bool: "Boolean",
        UUID: "ID",
        list[str]: "[String!]",
        dict[str, Any]: "JSON",
    }
    enum = f.enum
    if enum is not None:
        base = enum.__name__
    else:
        base = "ID" if f.decl.identifier else scalars[f.python_type]
    return base if nullable else f"{base}!"


async def test_every_leads_column_is_declared_with_its_type_and_nullability_and_vice_versa(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        rows = await conn.fetch(COLUMNS)
    in_database = {
        r["column_name"]: (r["udt_name"], r["nullable"])
        for r in rows
        if r["column_name"] not in UNDECLARED_COLUMNS
    }
    declared = {f.column: (f.sql_type, f.nullable) for f in LEAD_FIELDS}

    assert sorted(in_database.keys() - declared.keys()) == [], "columns missing from the table"
    assert sorted(declared.keys() - in_database.keys()) == [], "declared fields with no column"
    mismatched = {
        column: {"declared": declared[column], "database": in_database[column]}
        for column in declared.keys() & in_database.keys()
        if declared[column] != in_database[column]
    }
    assert mismatched == {}, "(udt_name, nullable) differ between the table and the database"


def test_every_lead_field_in_schema_graphql_comes_from_the_table_or_its_relations() -> None:
    lead = _object(_schema(), "Lead")
    values = [f for f in LEAD_FIELDS if f.exposed]
    expected = [f.api for f in values] + [r.api for r in RELATIONS]

    assert list(lead.fields) == expected
    for f in values:
        assert f.api is not None
        field = lead.fields[f.api]
        assert str(field.type) == _expected_graphql_type(f, nullable=f.nullable), f.api
        assert field.description == f.decl.description, f.api


def test_the_create_and_update_inputs_in_schema_graphql_are_the_tables_inputs() -> None:
    schema = _schema()
    for name, specs, create in (
        ("UpdateLeadInput", UPDATE_INPUTS, False),
        ("CreateLeadInput", CREATE_INPUTS, True),
    ):
        sdl = _input(schema, name)

        assert list(sdl.fields) == [f.input_name for f in specs], print_type(sdl)
        for f in specs:
            field = sdl.fields[f.input_name]
            assert str(field.type) == _expected_graphql_type(f, nullable=True), f.column
            assert field.description == (f.decl.input_description if create else None)
