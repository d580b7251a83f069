"""GraphQL reads: `leads` (paging, ordering, fields, filters, search), `lead`, `stages`,
`advisors`. Expected values come from rows inserted here or read back with SQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from uuid import UUID

import asyncpg
import pytest

from tests.support import Api, Tenant, error_codes

LEAD_SCALARS: Final = """
    id businessName contactFirstName contactLastName email phone industry
    monthlyRevenue requestedAmount source priority isDoNotCall dncReason dncAt
    tags customFields externalIds leadScore contactId lastContactedAt stageChangedAt
    convertedAt convertedAccountId convertedContactId importJobId createdBy createdAt updatedAt
"""

LEADS: Final = (
    """
query Leads($page: Int! = 1, $limit: Int! = 20, $search: String, $filter: LeadFilter) {
  leads(page: $page, limit: $limit, search: $search, filter: $filter) {
    total page limit hasMore
    nodes {"""
    + LEAD_SCALARS
    + """
      stage { id stageKey stageLabel color semanticSlot position }
      primaryAdvisor { id name email }
    }
  }
}
"""
)

LEAD: Final = (
    "query Lead($id: ID!) { lead(id: $id) {"
    + LEAD_SCALARS
    + " stage { id stageKey } primaryAdvisor { id name } } }"
)

INSERT_LEAD: Final = """
INSERT INTO leads
    (organization_id, business_name, contact_first_name, contact_last_name, email, stage_id)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""

ISO_UTC: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
NUMERIC: Final = re.compile(r"\d+(\.\d+)?")
DEFAULT_STAGES: Final = [
    ("new_lead", "New Lead", "new"),
    ("contacted", "Contacted", "working"),
    ("qualified", "Qualified", "working"),
    ("application", "Application", "working"),
    ("funded", "Funded", "won"),
    ("lost", "Lost", "lost"),
]
DEMO_ADVISORS: Final = {
    "Mike Johnson",
    "Sarah Chen",
    "David Okafor",
    "Elena Rossi",
    "James Patel",
}


async def leads(api: Api, tenant: Tenant, **variables: Any) -> dict[str, Any]:
    status, body = await api.graphql(tenant.read_key, LEADS, variables)
    assert status == 200, body
    assert "errors" not in body, body
    page: dict[str, Any] = body["data"]["leads"]
    return page


async def insert_lead(
    pool: asyncpg.Pool,
    tenant: Tenant,
    *,
    business_name: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    email: str | None = None,
) -> str:
    lead_id = await pool.fetchval(
        INSERT_LEAD,
        tenant.id,
        business_name,
        first_name,
        last_name,
        email,
        tenant.stage_ids[0],
    )
    return str(lead_id)


async def newest_first_ids(pool: asyncpg.Pool, tenant: Tenant) -> list[str]:
    rows = await pool.fetch(
        "SELECT id FROM leads WHERE organization_id = $1 ORDER BY created_at DESC, id DESC",
        tenant.id,
    )
    return [str(r["id"]) for r in rows]


async def ids_where(pool: asyncpg.Pool, tenant: Tenant, condition: str, value: object) -> set[str]:
    """Ids of the tenant's leads matching `condition` (a constant SQL fragment using $2)."""
    rows = await pool.fetch(
        f"SELECT id FROM leads WHERE organization_id = $1 AND {condition}",  # noqa: S608
        tenant.id,
        value,
    )
    return {str(r["id"]) for r in rows}


async def most_common(pool: asyncpg.Pool, tenant: Tenant, expression: str) -> Any:
    """The most frequent value of `expression` (a constant SQL fragment) among the leads."""
    return await pool.fetchval(
        f"SELECT v FROM leads, LATERAL {expression} AS x (v) "  # noqa: S608
        "WHERE organization_id = $1 AND v IS NOT NULL "
        "GROUP BY v ORDER BY count(*) DESC, v LIMIT 1",
        tenant.id,
    )


def parse_time(value: str) -> datetime:
    assert ISO_UTC.fullmatch(value), value
    return datetime.fromisoformat(value)


# ---- paging and ordering -------------------------------------------------------------------


async def test_leads_are_listed_newest_first(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    page = await leads(api, tenant, limit=100)

    assert [n["id"] for n in page["nodes"]] == await newest_first_ids(pool, tenant)
    created = [parse_time(n["createdAt"]) for n in page["nodes"]]
    assert created == sorted(created, reverse=True)


async def test_a_lead_created_last_is_listed_first(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await insert_lead(pool, tenant, business_name="Latest Arrival LLC")

    page = await leads(api, tenant, limit=1)

    assert [n["id"] for n in page["nodes"]] == [lead_id]


async def test_pages_partition_the_leads_with_correct_totals_and_has_more(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    expected = await newest_first_ids(pool, tenant)
    assert len(expected) == 30

    seen: list[str] = []
    for number, (size, has_more) in enumerate(
        [(7, True), (7, True), (7, True), (7, True), (2, False)], start=1
    ):
        page = await leads(api, tenant, page=number, limit=7)
        assert (page["total"], page["page"], page["limit"]) == (30, number, 7)
        assert len(page["nodes"]) == size
        assert page["hasMore"] is has_more
        seen += [n["id"] for n in page["nodes"]]

    assert seen == expected


async def test_a_page_past_the_end_is_empty_but_keeps_the_total(api: Api, tenant: Tenant) -> None:
    page = await leads(api, tenant, page=4, limit=10)

    assert page == {"total": 30, "page": 4, "limit": 10, "hasMore": False, "nodes": []}


async def test_limit_defaults_to_20_and_page_to_1(api: Api, tenant: Tenant) -> None:
    status, body = await api.graphql(
        tenant.read_key, "{ leads { total page limit hasMore nodes { id } } }"
    )

    assert status == 200
    page = body["data"]["leads"]
    assert (page["total"], page["page"], page["limit"], page["hasMore"]) == (30, 1, 20, True)
    assert len(page["nodes"]) == 20


# ---- fields ----------------------------------------------------------------------------------


async def test_every_scalar_field_of_a_lead_resolves_to_its_stored_value(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    cest = timezone(timedelta(hours=2))
    contact_id = await pool.fetchval(
        "INSERT INTO contacts (organization_id, first_name) VALUES ($1, 'Jane') RETURNING id",
        tenant.id,
    )
    refs = {name: uuid.uuid4() for name in ("account", "contact", "import", "creator")}
    lead_id = await pool.fetchval(
        """
        INSERT INTO leads (
            organization_id, business_name, contact_first_name, contact_last_name, email,
            phone, industry, monthly_revenue, requested_amount, source, priority,
            is_do_not_call, dnc_reason, dnc_at, tags, custom_fields, external_ids, lead_score,
            stage_id, primary_advisor_id, contact_id, last_contacted_at, stage_changed_at,
            converted_at, converted_account_id, converted_contact_id, import_job_id,
            created_by, created_at, updated_at)
        VALUES ($1, 'Fieldcheck Bakery LLC', 'Jane', 'Doe', 'jane@fieldcheck.example',
            '555-0100', 'Food & Beverage', 85000.50, 250000, 'api', 'high',
            true, 'asked twice', $2, $3, $4, $5, 42,
            $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        RETURNING id
        """,
        tenant.id,
        datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
        ["technology", "high-value"],
        {"loanPurpose": "equipment", "employees": 12, "nested": {"ok": True}},
        {"crm": "SF-001"},
        tenant.stage_ids[2],
        tenant.advisor_ids[0],
        contact_id,
        datetime(2025, 1, 14, 8, 15, 30, tzinfo=cest),
        datetime(2025, 1, 15, 12, 30, tzinfo=cest),
        datetime(2025, 2, 1, 0, 0, tzinfo=UTC),
        refs["account"],
        refs["contact"],
        refs["import"],
        str(refs["creator"]),  # created_by is text: an API key id or a user's sub
        datetime(2025, 1, 10, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2025, 1, 16, 7, 0, tzinfo=UTC),
    )

    page = await leads(api, tenant, search="fieldcheck")
    [node] = page["nodes"]
    times = {
        k: parse_time(node.pop(k))
        for k in (
            "dncAt",
            "lastContactedAt",
            "stageChangedAt",
            "convertedAt",
            "createdAt",
            "updatedAt",
        )
    }
    node.pop("stage")
    node.pop("primaryAdvisor")

    assert node == {
        "id": str(lead_id),
        "businessName": "Fieldcheck Bakery LLC",
        "contactFirstName": "Jane",
        "contactLastName": "Doe",
        "email": "jane@fieldcheck.example",
        "phone": "555-0100",
        "industry": "Food & Beverage",
        "monthlyRevenue": "85000.50",
        "requestedAmount": "250000",
        "source": "API",
        "priority": "HIGH",
        "isDoNotCall": True,
        "dncReason": "asked twice",
        "tags": ["technology", "high-value"],
        "customFields": {"loanPurpose": "equipment", "employees": 12, "nested": {"ok": True}},
        "externalIds": {"crm": "SF-001"},
        "leadScore": 42,
        "contactId": str(contact_id),
        "convertedAccountId": str(refs["account"]),
        "convertedContactId": str(refs["contact"]),
        "importJobId": str(refs["import"]),
        "createdBy": str(refs["creator"]),
    }
    assert times == {
        "dncAt": datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
        "lastContactedAt": datetime(2025, 1, 14, 6, 15, 30, tzinfo=UTC),
        "stageChangedAt": datetime(2025, 1, 15, 10, 30, tzinfo=UTC),
        "convertedAt": datetime(2025, 2, 1, 0, 0, tzinfo=UTC),
        "createdAt": datetime(2025, 1, 11, 4, 59, 59, tzinfo=UTC),
        "updatedAt": datetime(2025, 1, 16, 7, 0, tzinfo=UTC),
    }


async def test_unset_optional_fields_resolve_to_null_and_empty_collections(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await insert_lead(pool, tenant, business_name="Barebones Holdings")

    [node] = (await leads(api, tenant, search="barebones"))["nodes"]

    assert node["id"] == lead_id
    nullable = [
        "contactFirstName",
        "contactLastName",
        "email",
        "phone",
        "industry",
        "monthlyRevenue",
        "requestedAmount",
        "dncReason",
        "dncAt",
        "leadScore",
        "contactId",
        "lastContactedAt",
        "convertedAt",
        "convertedAccountId",
        "convertedContactId",
        "importJobId",
        "createdBy",
        "primaryAdvisor",
    ]
    assert {k: node[k] for k in nullable} == dict.fromkeys(nullable)
    assert (node["tags"], node["customFields"], node["externalIds"]) == ([], {}, {})
    assert (node["source"], node["priority"], node["isDoNotCall"]) == ("MANUAL", "NORMAL", False)


async def test_amounts_are_numeric_strings_and_times_iso_8601_in_utc(
    api: Api, tenant: Tenant
) -> None:
    page = await leads(api, tenant, limit=100)

    for node in page["nodes"]:
        assert NUMERIC.fullmatch(node["monthlyRevenue"])
        assert NUMERIC.fullmatch(node["requestedAmount"])
        for key in ("stageChangedAt", "createdAt", "updatedAt"):
            parse_time(node[key])
        if node["lastContactedAt"] is not None:
            parse_time(node["lastContactedAt"])
        assert isinstance(node["tags"], list)
        assert all(isinstance(t, str) for t in node["tags"])
        assert isinstance(node["customFields"], dict)
        assert isinstance(node["externalIds"], dict)
        assert node["leadScore"] is None or isinstance(node["leadScore"], int)


async def test_stage_and_primary_advisor_resolve_to_the_rows_the_lead_points_at(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    rows = await pool.fetch(
        """
        SELECT l.id, s.id AS stage_id, s.stage_key, s.stage_label, s.color, s.semantic_slot,
               s.position, a.id AS advisor_id, a.name, a.email
        FROM leads AS l
        JOIN pipeline_stages AS s ON (s.organization_id, s.id) = (l.organization_id, l.stage_id)
        LEFT JOIN advisors AS a
            ON (a.organization_id, a.id) = (l.organization_id, l.primary_advisor_id)
        WHERE l.organization_id = $1
        """,
        tenant.id,
    )
    expected = {
        str(r["id"]): (
            {
                "id": str(r["stage_id"]),
                "stageKey": r["stage_key"],
                "stageLabel": r["stage_label"],
                "color": r["color"],
                "semanticSlot": r["semantic_slot"],
                "position": r["position"],
            },
            None
            if r["advisor_id"] is None
            else {"id": str(r["advisor_id"]), "name": r["name"], "email": r["email"]},
        )
        for r in rows
    }

    page = await leads(api, tenant, limit=100)

    actual = {n["id"]: (n["stage"], n["primaryAdvisor"]) for n in page["nodes"]}
    assert actual == expected
    # The demo data exercises both a set and an unset advisor.
    assert {a is None for _, a in actual.values()} == {True, False}


# ---- filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One LeadFilter criterion, its value picked from the tenant's data and checked with SQL."""

    name: str  # the LeadFilter field
    values: str  # a constant SQL fragment giving a lead's values for it (LATERAL)
    condition: str  # a constant SQL fragment holding for the leads with value $2
    as_input: Callable[[Any], str]  # the database value as the API spells it
    shown: Callable[[dict[str, Any]], list[Any]]  # what a node shows for it


CRITERIA: Final = [
    Criterion("stageId", "(SELECT stage_id)", "stage_id = $2", str, lambda n: [n["stage"]["id"]]),
    Criterion(
        "priority", "(SELECT priority)", "priority = $2", str.upper, lambda n: [n["priority"]]
    ),
    Criterion(
        "advisorId",
        "(SELECT primary_advisor_id)",
        "primary_advisor_id = $2",
        str,
        lambda n: [n["primaryAdvisor"]["id"]],
    ),
    Criterion("tag", "unnest(tags)", "$2 = ANY(tags)", str, lambda n: n["tags"]),
    Criterion("source", "(SELECT source)", "source = $2", str.upper, lambda n: [n["source"]]),
]


@pytest.mark.parametrize("criterion", CRITERIA, ids=[c.name for c in CRITERIA])
async def test_each_filter_criterion_returns_exactly_the_leads_matching_it(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, criterion: Criterion
) -> None:
    value = await most_common(pool, tenant, criterion.values)
    expected = await ids_where(pool, tenant, criterion.condition, value)
    assert 0 < len(expected) < 30  # the criterion really narrows the 30 demo leads

    wanted = criterion.as_input(value)

    page = await leads(api, tenant, limit=100, filter={criterion.name: wanted})

    assert page["total"] == len(expected)
    assert {n["id"] for n in page["nodes"]} == expected
    assert all(wanted in criterion.shown(n) for n in page["nodes"]), page


async def test_filter_criteria_combine_with_and(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    stage_id = await most_common(pool, tenant, "(SELECT stage_id)")
    priority = await most_common(pool, tenant, "(SELECT priority)")
    expected = await ids_where(pool, tenant, "stage_id = $2", stage_id) & await ids_where(
        pool, tenant, "priority = $2", priority
    )

    page = await leads(
        api,
        tenant,
        limit=100,
        filter={"stageId": str(stage_id), "priority": priority.upper()},
    )

    assert page["total"] == len(expected)
    assert {n["id"] for n in page["nodes"]} == expected


async def test_filter_by_a_stage_with_no_leads_returns_an_empty_page(
    api: Api, tenant: Tenant
) -> None:
    page = await leads(api, tenant, filter={"stageId": str(uuid.uuid4())})

    assert (page["total"], page["hasMore"], page["nodes"]) == (0, False, [])


# ---- search ----------------------------------------------------------------------------------


async def test_search_by_a_prefix_finds_business_names_starting_with_it(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await insert_lead(pool, tenant, business_name="Acme Freight Partners")
    expected = await ids_where(pool, tenant, "business_name ILIKE $2", "acme%")

    page = await leads(api, tenant, limit=100, search="acm")

    assert lead_id in {n["id"] for n in page["nodes"]}
    assert {n["id"] for n in page["nodes"]} == expected
    assert all(n["businessName"].startswith("Acme") for n in page["nodes"])


async def test_search_finds_a_lead_by_part_of_its_email_domain(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await insert_lead(
        pool, tenant, business_name="Plain Name Co", email="jane@zeta-widgets.com"
    )

    page = await leads(api, tenant, search="zeta")

    assert [n["id"] for n in page["nodes"]] == [lead_id]
    assert page["total"] == 1


@pytest.mark.parametrize("term", ["Xanthippe", "quillfeather", "QUILL", "xanth"])
async def test_search_finds_a_lead_by_contact_first_or_last_name(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, term: str
) -> None:
    lead_id = await insert_lead(
        pool,
        tenant,
        business_name="Nameless Ventures",
        first_name="Xanthippe",
        last_name="Quillfeather",
    )

    page = await leads(api, tenant, search=term)

    assert [n["id"] for n in page["nodes"]] == [lead_id]


async def test_search_with_several_words_requires_all_of_them(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    both = await insert_lead(pool, tenant, business_name="Zephyr Orchard Co")
    await insert_lead(pool, tenant, business_name="Zephyr Marble Ltd")
    await insert_lead(pool, tenant, business_name="Orchard Marble Inc")

    forward = await leads(api, tenant, search="zephyr orchard")
    backward = await leads(api, tenant, search="Orch Zeph")

    assert [n["id"] for n in forward["nodes"]] == [both]
    assert [n["id"] for n in backward["nodes"]] == [both]


async def test_search_finds_words_outside_ascii(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await insert_lead(
        pool, tenant, business_name="東京 Ramen Bar", last_name="Lüdenscheidt"
    )

    by_kanji = await leads(api, tenant, search="東京")
    by_umlaut = await leads(api, tenant, search="lüdensch")

    assert [n["id"] for n in by_kanji["nodes"]] == [lead_id]
    assert [n["id"] for n in by_umlaut["nodes"]] == [lead_id]


async def test_search_with_no_match_returns_an_empty_page(api: Api, tenant: Tenant) -> None:
    page = await leads(api, tenant, search="nosuchwordanywhere")

    assert (page["total"], page["hasMore"], page["nodes"]) == (0, False, [])


async def test_search_and_filter_combine(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    lead_id = await insert_lead(pool, tenant, business_name="Quokka Supplies")

    in_its_stage = await leads(
        api, tenant, search="quokka", filter={"stageId": str(tenant.stage_ids[0])}
    )
    in_another_stage = await leads(
        api, tenant, search="quokka", filter={"stageId": str(tenant.stage_ids[1])}
    )

    assert [n["id"] for n in in_its_stage["nodes"]] == [lead_id]
    assert in_another_stage["total"] == 0


# ---- lead(id) --------------------------------------------------------------------------------


async def test_lead_by_id_returns_that_lead(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    row = await pool.fetchrow(
        "SELECT id, business_name, stage_id, primary_advisor_id FROM leads "
        "WHERE organization_id = $1 AND primary_advisor_id IS NOT NULL LIMIT 1",
        tenant.id,
    )

    status, body = await api.graphql(tenant.read_key, LEAD, {"id": str(row["id"])})

    assert status == 200
    assert "errors" not in body
    lead = body["data"]["lead"]
    assert lead["id"] == str(row["id"])
    assert lead["businessName"] == row["business_name"]
    assert lead["stage"]["id"] == str(row["stage_id"])
    assert lead["primaryAdvisor"]["id"] == str(row["primary_advisor_id"])


async def test_lead_by_id_matches_the_same_lead_in_the_list(api: Api, tenant: Tenant) -> None:
    listed = (await leads(api, tenant, limit=1))["nodes"][0]

    _, body = await api.graphql(tenant.read_key, LEAD, {"id": listed["id"]})

    lead = body["data"]["lead"]
    assert {k: lead[k] for k in lead if k not in ("stage", "primaryAdvisor")} == {
        k: listed[k] for k in lead if k not in ("stage", "primaryAdvisor")
    }


@pytest.mark.parametrize(
    "lead_id",
    [str(uuid.uuid4()), "not-a-uuid", "", "x" * 1000],
    ids=["unknown-uuid", "malformed", "empty", "long"],
)
async def test_lead_of_an_unknown_or_malformed_id_is_null_with_not_found(
    api: Api, tenant: Tenant, lead_id: str
) -> None:
    status, body = await api.graphql(tenant.read_key, LEAD, {"id": lead_id})

    assert status == 200
    assert body["data"] == {"lead": None}
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["errors"][0]["path"] == ["lead"]


# ---- stages and advisors ---------------------------------------------------------------------


async def test_stages_are_the_default_pipeline_in_position_order(api: Api, tenant: Tenant) -> None:
    status, body = await api.graphql(
        tenant.read_key, "{ stages { id stageKey stageLabel color semanticSlot position } }"
    )

    assert status == 200
    stages = body["data"]["stages"]
    assert [(s["stageKey"], s["stageLabel"], s["semanticSlot"]) for s in stages] == DEFAULT_STAGES
    assert [UUID(s["id"]) for s in stages] == tenant.stage_ids
    positions = [s["position"] for s in stages]
    assert positions == sorted(positions)
    assert len(set(positions)) == 6
    assert all(re.fullmatch(r"#[0-9a-f]{6}", s["color"]) for s in stages)


async def test_advisors_are_the_five_demo_advisors(api: Api, tenant: Tenant) -> None:
    status, body = await api.graphql(tenant.read_key, "{ advisors { id name email } }")

    assert status == 200
    advisors = body["data"]["advisors"]
    assert {a["name"] for a in advisors} == DEMO_ADVISORS
    assert {UUID(a["id"]) for a in advisors} == set(tenant.advisor_ids)
    assert all(a["email"].endswith("@lender.example") for a in advisors)
