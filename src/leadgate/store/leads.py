"""Leads: reads, and the row mapping every lead query shares."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.lead_fields import LEAD_FIELDS, FieldSpec
from leadgate.domain.models import (
    Advisor,
    Lead,
    LeadFilter,
    LeadPage,
    LeadQuery,
    LeadRecord,
    Stage,
)
from leadgate.domain.paging import Cursor, KeysetOrder, KeysetPage, KeysetQuery


def _selected(f: FieldSpec) -> str:
    # Amounts travel as text: PostgreSQL's own rendering of the numeric, exactly as stored.
    if f.python_type is str and f.sql_type != "text":
        return f"l.{f.column}::text AS {f.column}"
    return f"l.{f.column}"


# One column list for every statement that returns leads, so the mapping below always fits.
# Built once from the field table (constants only, never user text).
LEAD_COLUMNS: Final = "\n    " + ",\n    ".join(_selected(f) for f in LEAD_FIELDS) + "\n"

# Appended to a CTE named `l` that yields lead rows: the same columns plus stage and advisor.
WITH_RELATIONS: Final = (
    "SELECT"
    + LEAD_COLUMNS
    + """,
    l.event_sequence, s.stage_key, s.stage_label, s.color, s.semantic_slot, s.position,
    a.name AS advisor_name, a.email AS advisor_email
FROM l
JOIN pipeline_stages AS s
    ON s.organization_id = l.organization_id AND s.id = l.stage_id
LEFT JOIN advisors AS a
    ON a.organization_id = l.organization_id AND a.id = l.primary_advisor_id
"""
)

# The page and its total in one round trip, each lead with its stage and advisor (so neither
# needs a query of its own). The lateral join yields one all-NULL row (still carrying the
# total) when the page is empty. Optional filters are `($n IS NULL OR ...)`: one statement
# for every combination, planned for the values at hand (the pool forces custom plans, so the
# planner drops the filters not given and sees how rare a search term is). The search is a
# tsquery built from plain words only (tsquery() below).
LEADS_PAGE: Final = (
    """
SELECT c.total, p.*
FROM (
    -- Unfiltered, the organization's maintained total (sql/migrations/0002); filtered, a count.
    SELECT CASE
        WHEN $2::text IS NULL AND $3::uuid IS NULL AND $4::text IS NULL
             AND $5::uuid IS NULL AND $6::text IS NULL AND $7::text IS NULL
             AND NOT $10::boolean AND $11::text IS NULL
        THEN (SELECT coalesce(max(t.total), 0) FROM lead_counts AS t WHERE t.organization_id = $1)
        ELSE (
            SELECT count(*)
            FROM leads AS l
            WHERE l.organization_id = $1
              AND ($2::text IS NULL OR l.search @@ to_tsquery('simple', $2))
              AND ($3::uuid IS NULL OR l.stage_id = $3)
              AND ($4::text IS NULL OR l.priority = $4)
              AND ($5::uuid IS NULL OR l.primary_advisor_id = $5)
              AND ($6::text IS NULL OR l.tags @> ARRAY[$6::text])
              AND ($7::text IS NULL OR l.source = $7)
              AND ($10::boolean OR l.archived_at IS NULL)
              AND ($11::text IS NULL OR l.id = (
                  SELECT e.lead_id
                  FROM lead_external_ids AS e
                  WHERE e.organization_id = $1 AND e.system = $11 AND e.external_id = $12)))
    END AS total
) AS c
LEFT JOIN LATERAL (
    WITH l AS (
        SELECT *
        FROM leads AS l
        WHERE l.organization_id = $1
          AND ($2::text IS NULL OR l.search @@ to_tsquery('simple', $2))
          AND ($3::uuid IS NULL OR l.stage_id = $3)
          AND ($4::text IS NULL OR l.priority = $4)
          AND ($5::uuid IS NULL OR l.primary_advisor_id = $5)
          AND ($6::text IS NULL OR l.tags @> ARRAY[$6::text])
          AND ($7::text IS NULL OR l.source = $7)
          AND ($10::boolean OR l.archived_at IS NULL)
          AND ($11::text IS NULL OR l.id = (
              SELECT e.lead_id
              FROM lead_external_ids AS e
              WHERE e.organization_id = $1 AND e.system = $11 AND e.external_id = $12))
        ORDER BY l.created_at DESC, l.id DESC
        LIMIT $8
        OFFSET $9
    )
"""  # noqa: S608 - joins constants only, never user text
    + WITH_RELATIONS
    + """) AS p ON true
ORDER BY p.created_at DESC, p.id DESC
"""
)


LEADS_BY_ID: Final = (  # noqa: S608 - joins constants only
    "SELECT"
    + LEAD_COLUMNS
    + "FROM leads AS l\nWHERE l.organization_id = $1\n  AND l.id = ANY($2::uuid[])"
)


def _decoder(f: FieldSpec) -> Callable[[Any], Any] | None:
    if f.enum is not None:
        return f.enum
    # asyncpg gives arrays as lists already; a list keeps the record's type honest anyway.
    return list if f.python_type == list[str] else None


# Every column's value in table order (the order of Lead's attributes), and the few to decode:
# positional, because this runs for every lead of every page.
_VALUES: Final = operator.itemgetter(*(f.column for f in LEAD_FIELDS))
_DECODERS: Final = tuple(
    (i, decode) for i, f in enumerate(LEAD_FIELDS) if (decode := _decoder(f)) is not None
)


def lead_from_row(row: asyncpg.Record) -> Lead:
    values = list(_VALUES(row))
    for i, decode in _DECODERS:
        if values[i] is not None:
            values[i] = decode(values[i])
    return Lead(*values)


# The longest prefix indexed by search_prefixes (sql/migrations/0001_initial.sql).
MAX_INDEXED_PREFIX: Final = 20


def tsquery(terms: Sequence[str]) -> str | None:
    """Every term as an indexed word or prefix: `'acm' & 'jan'`.

    Terms hold only letters and digits (domain.paging.search_terms), so quoting them is safe:
    this is a parameter value, never SQL. A one-letter term is the one true prefix search.
    """
    parts = [f"'{t[:MAX_INDEXED_PREFIX]}'" if len(t) > 1 else f"'{t}':*" for t in terms]
    return " & ".join(parts) or None


def _page_args(organization_id: UUID, query: LeadQuery) -> list[object]:
    f = query.filter
    return [
        organization_id,
        tsquery(query.search_terms),
        f.stage_id,
        f.priority.value if f.priority else None,
        f.advisor_id,
        f.tag,
        f.source.value if f.source else None,
    ]


def _external_key(f: LeadFilter) -> list[object]:
    """The external id criterion's parameters (LEADS_PAGE $11/$12, keyset $15/$16)."""
    return [None, None] if f.external_id is None else list(f.external_id)


def record_from_row(row: asyncpg.Record) -> LeadRecord:
    lead = lead_from_row(row)
    stage = Stage(
        id=lead.stage_id,
        stage_key=row["stage_key"],
        stage_label=row["stage_label"],
        color=row["color"],
        semantic_slot=row["semantic_slot"],
        position=row["position"],
    )
    advisor = (
        Advisor(id=lead.primary_advisor_id, name=row["advisor_name"], email=row["advisor_email"])
        if lead.primary_advisor_id is not None
        else None
    )
    return LeadRecord(lead=lead, stage=stage, advisor=advisor, sequence=row["event_sequence"])


async def leads_page(conn: asyncpg.Connection, organization_id: UUID, query: LeadQuery) -> LeadPage:
    rows = await conn.fetch(
        LEADS_PAGE,
        *_page_args(organization_id, query),
        query.limit,
        query.offset,
        query.filter.include_archived,
        *_external_key(query.filter),
    )
    return LeadPage(
        records=[record_from_row(r) for r in rows if r["id"] is not None],
        total=rows[0]["total"],
        page=query.page,
        limit=query.limit,
    )


async def leads_by_id(
    conn: asyncpg.Connection, organization_id: UUID, ids: Sequence[UUID]
) -> dict[UUID, Lead]:
    rows = await conn.fetch(LEADS_BY_ID, organization_id, list(ids))
    return {r["id"]: lead_from_row(r) for r in rows}


LEAD_RECORD: Final = (
    """
WITH l AS (
    SELECT *
    FROM leads
    WHERE organization_id = $1
      AND id = $2
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)


async def lead_record(
    conn: asyncpg.Connection, organization_id: UUID, lead_id: UUID
) -> LeadRecord | None:
    row = await conn.fetchrow(LEAD_RECORD, organization_id, lead_id)
    return record_from_row(row) if row is not None else None


LEAD_RECORDS: Final = (
    """
WITH l AS (
    SELECT leads.*
    FROM leads
    JOIN unnest($1::uuid[], $2::uuid[]) AS wanted (organization_id, id)
        USING (organization_id, id)
)
"""  # noqa: S608 - joins constants only
    + WITH_RELATIONS
)


async def lead_records(
    conn: asyncpg.Connection, keys: list[tuple[UUID, UUID]]
) -> dict[UUID, LeadRecord]:
    """Leads of any organizations by (organization, id): for routing events to subscribers."""
    rows = await conn.fetch(LEAD_RECORDS, [k[0] for k in keys], [k[1] for k in keys])
    return {r["id"]: record_from_row(r) for r in rows}


async def copy_leads(conn: asyncpg.Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Bulk-insert rows given by column (COPY: the fast path for demo data).

    Every row names the same columns; the others take their defaults.
    """
    if not rows:
        return
    unknown = set(rows[0]) - _COLUMN_NAMES
    if unknown:
        raise ValueError(f"not lead columns: {sorted(unknown)}")
    columns = [f.column for f in LEAD_FIELDS if f.column in rows[0]]
    records = [tuple(row[c] for c in columns) for row in rows]
    await conn.copy_records_to_table("leads", records=records, columns=columns)


_COLUMN_NAMES: Final = frozenset(f.column for f in LEAD_FIELDS)


# --- keyset slices (issue 11 #2) ---------------------------------------------------------------
#
# One statement per order and direction, each with the same parameters: $1 organization,
# $2-$7 the criteria of LEADS_PAGE, $8 updatedSince, $9/$10 the `after` key, $11/$12 the
# `before` key, $13 the slice size plus one (the extra row says whether more follow), $14
# whether archived leads are included (LEADS_PAGE: $10). The
# total (maintained when nothing narrows the list), whether rows lie beyond the cursor the
# slice starts from, and the slice itself come from one snapshot in one round trip. Row
# comparisons `(created_at, id) < ($9, $10)` walk the index from the cursor on (leads_newest;
# leads_updated in sql/migrations/0008_lead_keyset_indexes.sql), however deep the scan.

_KEYSET_CRITERIA: Final = """l.organization_id = $1
          AND ($2::text IS NULL OR l.search @@ to_tsquery('simple', $2))
          AND ($3::uuid IS NULL OR l.stage_id = $3)
          AND ($4::text IS NULL OR l.priority = $4)
          AND ($5::uuid IS NULL OR l.primary_advisor_id = $5)
          AND ($6::text IS NULL OR l.tags @> ARRAY[$6::text])
          AND ($7::text IS NULL OR l.source = $7)
          AND ($8::timestamptz IS NULL OR l.updated_at >= $8)
          AND ($14::boolean OR l.archived_at IS NULL)
          AND ($15::text IS NULL OR l.id = (
              SELECT e.lead_id
              FROM lead_external_ids AS e
              WHERE e.organization_id = $1 AND e.system = $15 AND e.external_id = $16))"""


def _keyset_statement(column: str, *, ascending: bool, backward: bool) -> str:
    """The slice of the order on (column, id), `ascending` or not, read forward from `after`
    or `backward` from `before`. Built at import from these constants only."""
    key = f"(l.{column}, l.id)"
    follows, precedes = (">", "<") if ascending else ("<", ">")
    natural = "ASC" if ascending else "DESC"
    reverse = "DESC" if ascending else "ASC"
    # Reading backward walks the order in reverse from `before`; the outer ORDER BY restores it.
    walk = reverse if backward else natural
    # Rows on the far side of the cursor the slice starts from (hasPreviousPage going forward,
    # hasNextPage going backward): the cursor's own row counts. Nearest first with LIMIT 1, so
    # the index answers from the cursor (an EXISTS would be planned as a scan of the table).
    at, row_id, far_side = ("$11", "$12", follows) if backward else ("$9", "$10", precedes)
    toward = natural if backward else reverse
    beyond = f"""{at}::timestamptz IS NOT NULL AND coalesce((
        SELECT true
        FROM leads AS l
        WHERE {_KEYSET_CRITERIA}
          AND {key} {far_side}= ({at}::timestamptz, {row_id}::uuid)
        ORDER BY l.{column} {toward}, l.id {toward}
        LIMIT 1
    ), false)"""  # noqa: S608 - joins constants only
    return (
        f"""
SELECT c.total, c.beyond, p.*
FROM (
    SELECT CASE
        WHEN $2::text IS NULL AND $3::uuid IS NULL AND $4::text IS NULL
             AND $5::uuid IS NULL AND $6::text IS NULL AND $7::text IS NULL
             AND $8::timestamptz IS NULL AND NOT $14::boolean AND $15::text IS NULL
        THEN (SELECT coalesce(max(t.total), 0) FROM lead_counts AS t WHERE t.organization_id = $1)
        ELSE (SELECT count(*) FROM leads AS l WHERE {_KEYSET_CRITERIA})
    END AS total,
    ({beyond}) AS beyond
) AS c
LEFT JOIN LATERAL (
    WITH l AS (
        SELECT *
        FROM leads AS l
        WHERE {_KEYSET_CRITERIA}
          AND ($9::timestamptz IS NULL OR {key} {follows} ($9::timestamptz, $10::uuid))
          AND ($11::timestamptz IS NULL OR {key} {precedes} ($11::timestamptz, $12::uuid))
        ORDER BY l.{column} {walk}, l.id {walk}
        LIMIT $13
    )
"""  # noqa: S608 - joins constants only, never user text
        + WITH_RELATIONS
        + f""") AS p ON true
ORDER BY p.{column} {natural}, p.id {natural}
"""
    )


NEWEST_AFTER: Final = _keyset_statement("created_at", ascending=False, backward=False)
NEWEST_BEFORE: Final = _keyset_statement("created_at", ascending=False, backward=True)
UPDATED_AFTER: Final = _keyset_statement("updated_at", ascending=True, backward=False)
UPDATED_BEFORE: Final = _keyset_statement("updated_at", ascending=True, backward=True)
_KEYSET_STATEMENTS: Final = {
    (KeysetOrder.NEWEST, False): NEWEST_AFTER,
    (KeysetOrder.NEWEST, True): NEWEST_BEFORE,
    (KeysetOrder.UPDATED, False): UPDATED_AFTER,
    (KeysetOrder.UPDATED, True): UPDATED_BEFORE,
}


def _key(cursor: Cursor | None) -> list[object]:
    return [None, None] if cursor is None else [cursor.at, cursor.id]


async def leads_slice(
    conn: asyncpg.Connection, organization_id: UUID, query: KeysetQuery
) -> KeysetPage:
    f = query.filter
    criteria = [
        organization_id,
        tsquery(query.search_terms),
        f.stage_id,
        f.priority.value if f.priority else None,
        f.advisor_id,
        f.tag,
        f.source.value if f.source else None,
        query.updated_since,
    ]
    rows = await conn.fetch(
        _KEYSET_STATEMENTS[query.order, query.backward],
        *criteria,
        *_key(query.after),
        *_key(query.before),
        query.size + 1,
        f.include_archived,
        *_external_key(f),
    )
    records = [record_from_row(r) for r in rows if r["id"] is not None]
    more = len(records) > query.size
    if more:
        # The extra row is the one farthest from the cursor: last in order, or first backward.
        records = records[1:] if query.backward else records[:-1]
    beyond = bool(rows[0]["beyond"])
    return KeysetPage(
        records=records,
        total=rows[0]["total"],
        order=query.order,
        has_next=beyond if query.backward else more,
        has_previous=more if query.backward else beyond,
    )
