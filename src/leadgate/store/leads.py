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

# Every criterion of a lead list, with its placeholder's type: `($n IS NULL OR ...)` makes one
# statement for every combination, planned for the values at hand (the pool forces custom
# plans, so the planner drops the criteria not given and sees how rare a search term is). The
# search is a tsquery built from plain words only (tsquery() below). Rendered at import for each
# statement's parameters (_criteria), from these constants only, never user text.
_CRITERION_TYPES: Final = (
    ("org", "uuid"),
    ("search", "text"),
    ("stage", "uuid"),
    ("priority", "text"),
    ("advisor", "uuid"),
    ("tag", "text"),
    ("source", "text"),
    ("updated_since", "timestamptz"),
    ("archived", "boolean"),
    ("system", "text"),
    ("external_id", "text"),
)
_CRITERIA: Final = """l.organization_id = {org}
          AND ({search} IS NULL OR l.search @@ to_tsquery('simple', {search}))
          AND ({stage} IS NULL OR l.stage_id = {stage})
          AND ({priority} IS NULL OR l.priority = {priority})
          AND ({advisor} IS NULL OR l.primary_advisor_id = {advisor})
          AND ({tag} IS NULL OR l.tags @> ARRAY[{tag}])
          AND ({source} IS NULL OR l.source = {source})
          AND ({updated_since} IS NULL OR l.updated_at >= {updated_since})
          AND ({archived} OR l.archived_at IS NULL)
          AND ({system} IS NULL OR l.id = (
              SELECT e.lead_id
              FROM lead_external_ids AS e
              WHERE e.organization_id = {org} AND e.system = {system}
                AND e.external_id = {external_id}))"""


def _typed(placeholders: Mapping[str, str]) -> dict[str, str]:
    return {name: f"{placeholders[name]}::{kind}" for name, kind in _CRITERION_TYPES}


def _criteria(placeholders: Mapping[str, str]) -> str:
    """The criteria on `l` with these placeholders (`$n`, or NULL for one a statement lacks)."""
    return _CRITERIA.format_map(_typed(placeholders))


# The planner's estimate of the leads the criteria admit (planned_rows, sql/migrations/0013):
# the criteria on the elements of one text array, in _CRITERION_TYPES' order.
PLANNED: Final = "SELECT 1\nFROM leads AS l\nWHERE " + _criteria(
    {name: f"($1)[{i}]" for i, (name, _) in enumerate(_CRITERION_TYPES, 1)}
)

# Past LEADGATE_EXACT_TOTAL_LIMIT matches a total is an estimate; so it is, without counting,
# when the planner expects more than this many times the limit: collecting the matches from the
# GIN index costs in proportion to all of them (~15 ms for the 50,000 of a common word at 1 M
# leads), however few are counted. The margin absorbs the planner's usual errors (a word
# missing from its statistics is guessed at ~0.14 % of the leads: keystone751, 52 of 1 M, is
# planned at 1,367), so a total within the limit is counted unless the estimate is 10x off.
PLANNED_MARGIN: Final = 10


def _matches(p: Mapping[str, str], *, count_limit: str, count_unless_over: str) -> str:
    """The CTEs `m` and `c` of a list statement narrowed by criteria with parameters `p`.

    `m`: every lead the criteria admit, read on demand. `c`: organization_total, the
    organization's maintained total (sql/migrations/0002: its unarchived leads); planned, the
    planner's estimate of the matches; counted, the leads of `m` up to `count_limit`, or NULL
    when `planned` is over `count_unless_over`.
    """
    typed = _typed(p)
    params = ", ".join(f"{typed[n]}::text" for n, _ in _CRITERION_TYPES)
    planned = PLANNED.replace("'", "''")
    return f"""m AS MATERIALIZED (
    SELECT *
    FROM leads AS l
    WHERE {_criteria(p)}
), c AS (
    SELECT o.total AS organization_total, e.planned, CASE
        WHEN e.planned <= {count_unless_over}::bigint THEN (
            SELECT count(*)
            FROM (SELECT 1 FROM m LIMIT {count_limit}::bigint) AS x
        )
    END AS counted
    FROM (
        SELECT coalesce(max(t.total), 0) AS total
        FROM lead_counts AS t
        WHERE t.organization_id = {typed["org"]}
    ) AS o
    CROSS JOIN (SELECT planned_rows('{planned}', ARRAY[{params}]) AS planned) AS e
)"""  # noqa: S608 - joins constants only, never user text


def _maintained(org: str) -> str:
    """The CTE `c` of an unfiltered list: the maintained total, nothing planned or counted."""
    return f"""c AS (
    SELECT coalesce(max(t.total), 0) AS organization_total,
        NULL::bigint AS planned,
        NULL::bigint AS counted
    FROM lead_counts AS t
    WHERE t.organization_id = {org}::uuid
)"""  # noqa: S608 - joins constants only


# What an unfiltered list shows: the organization's unarchived leads.
_UNFILTERED: Final = """l.organization_id = $1::uuid
          AND l.archived_at IS NULL"""


def _rows(
    criteria: str, *, order: str, tail: str, count_limit: str | None, bounds: str = ""
) -> str:
    """The CTE `l` of a list statement: the leads the criteria admit (and `bounds`, keyset
    cursors) in `order`, then `tail` (LIMIT and OFFSET).

    Narrowed (`count_limit` given), two ways of which one runs: when the count stopped short of
    `count_limit` it read every match, and they are sorted from `m` (for a search, a scan of
    the GIN index); otherwise the order's index is walked past the leads that do not match.
    Walking for a rare word the planner overestimates would read nearly every lead.
    """
    if count_limit is None:
        return f"""l AS (
        SELECT *
        FROM leads AS l
        WHERE {criteria}{bounds}
        ORDER BY {order}
        {tail}
    )"""  # noqa: S608 - joins constants only
    return f"""l AS ((
        SELECT *
        FROM m AS l
        WHERE c.counted < {count_limit}{bounds}
        ORDER BY {order}
        {tail}
    ) UNION ALL (
        SELECT *
        FROM leads AS l
        WHERE (c.counted IS NULL OR c.counted >= {count_limit})
          AND {criteria}{bounds}
        ORDER BY {order}
        {tail}
    ))"""  # noqa: S608 - joins constants only


_PAGE_PARAMETERS: Final = {
    "org": "$1",
    "search": "$2",
    "stage": "$3",
    "priority": "$4",
    "advisor": "$5",
    "tag": "$6",
    "source": "$7",
    # An offset page has no updatedSince (leadsConnection and cursor pages have).
    "updated_since": "NULL",
    "archived": "$10",
    "system": "$11",
    "external_id": "$12",
}
_NEWEST_FIRST: Final = "l.created_at DESC, l.id DESC"


def _page_statement(*, narrowed: bool) -> str:
    """A page (one row more than asked: it says whether more follow) and its totals in one round
    trip, each lead with its stage and advisor (so neither needs a query of its own).

    Unfiltered: $1 organization, $2 page size plus one, $3 offset. Narrowed: $1-$7 and
    $10-$12 the criteria (_PAGE_PARAMETERS), $8 and $9 as $2 and $3, $13 the count limit
    (LEADGATE_EXACT_TOTAL_LIMIT + 1), $14 the estimate past which nothing is counted. The
    lateral join yields one all-NULL row (still carrying the totals) when the page is empty.
    Built at import from these constants only.
    """
    if narrowed:
        ctes = _matches(_PAGE_PARAMETERS, count_limit="$13", count_unless_over="$14")
        rows = _rows(
            _criteria(_PAGE_PARAMETERS),
            order=_NEWEST_FIRST,
            tail="LIMIT $8\n        OFFSET $9",
            count_limit="$13",
        )
    else:
        ctes = _maintained("$1")
        rows = _rows(
            _UNFILTERED, order=_NEWEST_FIRST, tail="LIMIT $2\n        OFFSET $3", count_limit=None
        )
    return (
        f"""
WITH {ctes}
SELECT c.organization_total, c.planned, c.counted, p.*
FROM c
LEFT JOIN LATERAL (
    WITH {rows}
"""  # noqa: S608 - joins constants only, never user text
        + WITH_RELATIONS
        + """) AS p ON true
ORDER BY p.created_at DESC, p.id DESC
"""
    )


LEADS_PAGE: Final = _page_statement(narrowed=False)
NARROWED_PAGE: Final = _page_statement(narrowed=True)


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
    """The external id criterion's parameters (NARROWED_PAGE $11/$12, keyset $15/$16)."""
    return [None, None] if f.external_id is None else list(f.external_id)


def _narrows(criteria: Sequence[object], f: LeadFilter) -> bool:
    """Whether anything but the organization (criteria[0]) narrows the list."""
    given = any(c is not None for c in criteria[1:])
    return given or f.include_archived or f.external_id is not None


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


def _count_limits(exact_limit: int) -> list[object]:
    """The count's parameters: count one lead past the limit, and nothing past the margin."""
    return [exact_limit + 1, exact_limit * PLANNED_MARGIN]


def _total(
    row: asyncpg.Record, *, exact_limit: int, seen: int, complete: bool, bounded: bool
) -> tuple[int, bool]:
    """The total of a list statement's row (its CTE `c`) and whether it is exact.

    Exact: the maintained total of an unfiltered list, a count within `exact_limit`, or, when
    the answer holds every match (`complete`), the `seen` matches themselves. Otherwise the
    planner's estimate, kept within what the answer proves: at least the `seen` matches (those
    before and on the page, plus one when more follow) and past the limit when the count got
    there, at most the organization's unarchived leads when archived ones are left out
    (`bounded`).
    """
    counted, planned = row["counted"], row["planned"]
    if planned is None:
        return row["organization_total"], True
    if counted is not None and counted <= exact_limit:
        return counted, True
    if complete:
        return seen, True
    floor = max(seen, exact_limit + 1 if counted is not None else 0)
    ceiling = row["organization_total"] if bounded else planned
    return max(floor, min(planned, ceiling)), False


def page_statement(
    organization_id: UUID, query: LeadQuery, *, exact_limit: int
) -> tuple[str, list[object]]:
    """The statement of a page and its arguments (bench/search.py EXPLAINs them)."""
    criteria = _page_args(organization_id, query)
    if not _narrows(criteria, query.filter):
        return LEADS_PAGE, [organization_id, query.limit + 1, query.offset]
    return NARROWED_PAGE, [
        *criteria,
        query.limit + 1,
        query.offset,
        query.filter.include_archived,
        *_external_key(query.filter),
        *_count_limits(exact_limit),
    ]


async def leads_page(
    conn: asyncpg.Connection, organization_id: UUID, query: LeadQuery, *, exact_limit: int
) -> LeadPage:
    """A page of leads; its total is exact up to `exact_limit` (LEADGATE_EXACT_TOTAL_LIMIT)."""
    statement, arguments = page_statement(organization_id, query, exact_limit=exact_limit)
    rows = await conn.fetch(statement, *arguments)
    records = [record_from_row(r) for r in rows if r["id"] is not None]
    more = len(records) > query.limit
    shown = records[: query.limit]
    total, exact = _total(
        rows[0],
        exact_limit=exact_limit,
        seen=query.offset + len(shown) + more,
        complete=not more and (bool(shown) or query.offset == 0),
        bounded=not query.filter.include_archived,
    )
    return LeadPage(
        records=shown,
        total=total,
        total_is_exact=exact,
        page=query.page,
        limit=query.limit,
        has_more=more,
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
# One statement per order and direction, each narrowed or not (as pages are: _page_statement).
# Narrowed: $1 organization, $2-$7 the criteria of NARROWED_PAGE, $8 updatedSince, $9/$10 the
# `after` key, $11/$12 the `before` key, $13 the slice size plus one (the extra row says
# whether more follow), $14 whether archived leads are included, $15/$16 the external id,
# $17/$18 the count's limits. Unfiltered: $1 organization, $2/$3 `after`, $4/$5 `before`, $6
# the size plus one. The totals, whether rows lie beyond the cursor the slice starts from, and
# the slice itself come from one snapshot in one round trip. Row comparisons
# `(created_at, id) < ($9, $10)` walk the index from the cursor on (leads_newest;
# leads_updated in sql/migrations/0008_lead_keyset_indexes.sql), however deep the scan.

_SLICE_PARAMETERS: Final = {
    **_PAGE_PARAMETERS,
    "updated_since": "$8",
    "archived": "$14",
    "system": "$15",
    "external_id": "$16",
}
# (after at, after id, before at, before id, size): narrowed, unfiltered.
_SLICE_KEYS: Final = {
    True: ("$9", "$10", "$11", "$12", "$13"),
    False: ("$2", "$3", "$4", "$5", "$6"),
}


def _keyset_statement(column: str, *, ascending: bool, backward: bool, narrowed: bool) -> str:
    """The slice of the order on (column, id), `ascending` or not, read forward from `after`
    or `backward` from `before`. Built at import from these constants only."""
    after_at, after_id, before_at, before_id, size = _SLICE_KEYS[narrowed]
    key = f"(l.{column}, l.id)"
    follows, precedes = (">", "<") if ascending else ("<", ">")
    natural = "ASC" if ascending else "DESC"
    reverse = "DESC" if ascending else "ASC"
    # Reading backward walks the order in reverse from `before`; the outer ORDER BY restores it.
    walk = reverse if backward else natural
    bounds = f"""
          AND ({after_at}::timestamptz IS NULL
               OR {key} {follows} ({after_at}::timestamptz, {after_id}::uuid))
          AND ({before_at}::timestamptz IS NULL
               OR {key} {precedes} ({before_at}::timestamptz, {before_id}::uuid))"""
    # Rows on the far side of the cursor the slice starts from (hasPreviousPage going forward,
    # hasNextPage going backward): the cursor's own row counts. Nearest first with LIMIT 1, so
    # the index answers from the cursor (an EXISTS would be planned as a scan of the table);
    # from `m` when it holds every match (_rows).
    at, row_id, far_side = (
        (before_at, before_id, follows) if backward else (after_at, after_id, precedes)
    )
    toward = natural if backward else reverse
    far = f"{key} {far_side}= ({at}::timestamptz, {row_id}::uuid)"
    criteria = _criteria(_SLICE_PARAMETERS) if narrowed else _UNFILTERED
    walked = f"""(
            SELECT true
            FROM leads AS l
            WHERE {criteria}
              AND {far}
            ORDER BY l.{column} {toward}, l.id {toward}
            LIMIT 1
        )"""  # noqa: S608 - joins constants only
    if narrowed:
        ctes = _matches(_SLICE_PARAMETERS, count_limit="$17", count_unless_over="$18")
        beyond = f"""CASE
        WHEN c.counted < $17 THEN (SELECT true FROM m AS l WHERE {far} LIMIT 1)
        ELSE {walked}
    END"""  # noqa: S608 - joins constants only
    else:
        ctes, beyond = _maintained("$1"), walked
    rows = _rows(
        criteria,
        order=f"l.{column} {walk}, l.id {walk}",
        tail=f"LIMIT {size}",
        count_limit="$17" if narrowed else None,
        bounds=bounds,
    )
    return (
        f"""
WITH {ctes}
SELECT c.organization_total, c.planned, c.counted, b.beyond, p.*
FROM c
CROSS JOIN LATERAL (
    SELECT {at}::timestamptz IS NOT NULL AND coalesce({beyond}, false) AS beyond
) AS b
LEFT JOIN LATERAL (
    WITH {rows}
"""  # noqa: S608 - joins constants only, never user text
        + WITH_RELATIONS
        + f""") AS p ON true
ORDER BY p.{column} {natural}, p.id {natural}
"""
    )


NEWEST_AFTER: Final = _keyset_statement(
    "created_at", ascending=False, backward=False, narrowed=False
)
NEWEST_BEFORE: Final = _keyset_statement(
    "created_at", ascending=False, backward=True, narrowed=False
)
NARROWED_NEWEST_AFTER: Final = _keyset_statement(
    "created_at", ascending=False, backward=False, narrowed=True
)
NARROWED_NEWEST_BEFORE: Final = _keyset_statement(
    "created_at", ascending=False, backward=True, narrowed=True
)
# updatedSince narrows the list: the updated order has no unfiltered statement.
UPDATED_AFTER: Final = _keyset_statement(
    "updated_at", ascending=True, backward=False, narrowed=True
)
UPDATED_BEFORE: Final = _keyset_statement(
    "updated_at", ascending=True, backward=True, narrowed=True
)
_NARROWED_SLICES: Final = {
    (KeysetOrder.NEWEST, False): NARROWED_NEWEST_AFTER,
    (KeysetOrder.NEWEST, True): NARROWED_NEWEST_BEFORE,
    (KeysetOrder.UPDATED, False): UPDATED_AFTER,
    (KeysetOrder.UPDATED, True): UPDATED_BEFORE,
}
_UNFILTERED_SLICES: Final = {False: NEWEST_AFTER, True: NEWEST_BEFORE}


def _key(cursor: Cursor | None) -> list[object]:
    return [None, None] if cursor is None else [cursor.at, cursor.id]


async def leads_slice(
    conn: asyncpg.Connection, organization_id: UUID, query: KeysetQuery, *, exact_limit: int
) -> KeysetPage:
    """A keyset slice; its total is exact up to `exact_limit` (LEADGATE_EXACT_TOTAL_LIMIT)."""
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
    keys = [*_key(query.after), *_key(query.before)]
    if _narrows(criteria, f):
        rows = await conn.fetch(
            _NARROWED_SLICES[query.order, query.backward],
            *criteria,
            *keys,
            query.size + 1,
            f.include_archived,
            *_external_key(f),
            *_count_limits(exact_limit),
        )
    else:
        statement = _UNFILTERED_SLICES[query.backward]
        rows = await conn.fetch(statement, organization_id, *keys, query.size + 1)
    records = [record_from_row(r) for r in rows if r["id"] is not None]
    more = len(records) > query.size
    if more:
        # The extra row is the one farthest from the cursor: last in order, or first backward.
        records = records[1:] if query.backward else records[:-1]
    beyond = bool(rows[0]["beyond"])
    total, exact = _total(
        rows[0],
        exact_limit=exact_limit,
        seen=len(records) + more + beyond,
        # Without a cursor, a slice with nothing more holds every match.
        complete=query.after is None and query.before is None and not more,
        bounded=not f.include_archived,
    )
    return KeysetPage(
        records=records,
        total=total,
        total_is_exact=exact,
        order=query.order,
        has_next=beyond if query.backward else more,
        has_previous=more if query.backward else beyond,
    )
