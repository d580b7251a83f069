"""The round-trip budget: a page of leads with their stages and advisors costs a constant,
small number of SQL statements, whatever its size (no N+1)."""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import pytest

from leadgate.db.statements import StatementCounter
from tests.support import Api, Tenant, fewest_statements, make_tenant

STAGE: Final = "stage { id stageKey stageLabel color semanticSlot position }"
ADVISOR: Final = "primaryAdvisor { id name email }"
LEAD_FIELDS: Final = f"""
    id businessName contactFirstName contactLastName email phone industry
    monthlyRevenue requestedAmount source priority isDoNotCall dncReason dncAt
    tags customFields externalIds leadScore contactId lastContactedAt stageChangedAt
    convertedAt convertedAccountId convertedContactId importJobId createdBy createdAt updatedAt
    {STAGE} {ADVISOR}
"""
LEADS: Final = (
    f"query($limit: Int!) {{ leads(limit: $limit) {{ total nodes {{ {LEAD_FIELDS} }} }} }}"
)
LEAD: Final = f"query($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"
CONNECTION: Final = (
    "query($first: Int!, $after: String) { leadsConnection(first: $first, after: $after) {"
    f" totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}"
    f" edges {{ cursor node {{ {LEAD_FIELDS} }} }} }} }}"
)
BUDGET: Final = 3


@pytest.fixture(scope="module")
async def big_tenant(pool: asyncpg.Pool) -> Tenant:
    """More leads than the largest page; the newest has a stage and an advisor, so a page of
    one resolves both relations, as a page of 100 does."""
    tenant = await make_tenant(pool, leads=120)
    await pool.execute(
        "INSERT INTO leads (organization_id, business_name, stage_id, primary_advisor_id) "
        "VALUES ($1, 'Newest Advised LLC', $2, $3)",
        tenant.id,
        tenant.stage_ids[1],
        tenant.advisor_ids[0],
    )
    return tenant


async def graphql_cost(
    api: Api,
    statements: StatementCounter,
    key: str,
    query: str,
    variables: dict[str, Any],
) -> tuple[int, dict[str, Any]]:
    """Statements one request sends (read once its response is in) and its data."""
    # Warm-up: the API-key cache, and each pooled connection's prepared-type caches.
    await api.graphql(key, query, variables)
    data: dict[str, Any] = {}

    async def send() -> None:
        nonlocal data
        status, body = await api.graphql(key, query, variables)
        assert status == 200
        assert "errors" not in body, body
        data = body["data"]

    return await fewest_statements(statements, send), data


async def rest_cost(api: Api, statements: StatementCounter, key: str, path: str) -> int:
    await api.rest("GET", path, key)

    async def send() -> None:
        status, _, _ = await api.rest("GET", path, key)
        assert status == 200

    return await fewest_statements(statements, send)


async def test_a_full_page_of_100_leads_costs_as_many_statements_as_a_page_of_1(
    api: Api, statements: StatementCounter, big_tenant: Tenant
) -> None:
    one, small = await graphql_cost(api, statements, big_tenant.read_key, LEADS, {"limit": 1})
    hundred, large = await graphql_cost(api, statements, big_tenant.read_key, LEADS, {"limit": 100})

    # The measurement is only meaningful if both pages really resolve their relations.
    assert (len(small["leads"]["nodes"]), len(large["leads"]["nodes"])) == (1, 100)
    assert small["leads"]["nodes"][0]["primaryAdvisor"] is not None
    assert len({n["stage"]["id"] for n in large["leads"]["nodes"]}) > 1
    assert (
        len({n["primaryAdvisor"]["id"] for n in large["leads"]["nodes"] if n["primaryAdvisor"]}) > 1
    )
    assert one == hundred


async def test_a_full_page_of_100_leads_costs_at_most_three_statements(
    api: Api, statements: StatementCounter, big_tenant: Tenant
) -> None:
    cost, data = await graphql_cost(api, statements, big_tenant.read_key, LEADS, {"limit": 100})

    assert len(data["leads"]["nodes"]) == 100
    assert cost <= BUDGET


async def test_one_lead_with_stage_and_advisor_costs_at_most_three_statements(
    api: Api, pool: asyncpg.Pool, statements: StatementCounter, big_tenant: Tenant
) -> None:
    lead_id = await pool.fetchval(
        "SELECT id FROM leads WHERE organization_id = $1 AND primary_advisor_id IS NOT NULL "
        "LIMIT 1",
        big_tenant.id,
    )

    cost, data = await graphql_cost(
        api, statements, big_tenant.read_key, LEAD, {"id": str(lead_id)}
    )

    assert data["lead"]["primaryAdvisor"] is not None
    assert cost <= BUDGET


async def test_a_rest_page_of_100_leads_costs_as_many_statements_as_a_page_of_1(
    api: Api, statements: StatementCounter, big_tenant: Tenant
) -> None:
    one = await rest_cost(api, statements, big_tenant.read_key, "/v1/leads?limit=1")
    hundred = await rest_cost(api, statements, big_tenant.read_key, "/v1/leads?limit=100")

    assert one == hundred
    assert hundred <= BUDGET


async def test_a_connection_slice_of_100_costs_as_many_statements_as_a_slice_of_1(
    api: Api, statements: StatementCounter, big_tenant: Tenant
) -> None:
    key = big_tenant.read_key
    one, small = await graphql_cost(api, statements, key, CONNECTION, {"first": 1})
    after = small["leadsConnection"]["pageInfo"]["endCursor"]
    hundred, large = await graphql_cost(
        api, statements, key, CONNECTION, {"first": 100, "after": after}
    )

    edges = large["leadsConnection"]["edges"]
    assert small["leadsConnection"]["edges"][0]["node"]["primaryAdvisor"] is not None
    assert len(edges) == 100
    assert len({e["node"]["stage"]["id"] for e in edges}) > 1
    assert one == hundred
    assert hundred <= BUDGET


async def test_a_rest_cursor_page_of_100_costs_as_many_statements_as_a_page_of_1(
    api: Api, statements: StatementCounter, big_tenant: Tenant
) -> None:
    status, first, _ = await api.rest("GET", "/v1/leads?limit=1", big_tenant.read_key)
    assert status == 200
    cursor = first["meta"]["nextCursor"]
    one = await rest_cost(
        api, statements, big_tenant.read_key, f"/v1/leads?limit=1&cursor={cursor}"
    )
    hundred = await rest_cost(
        api, statements, big_tenant.read_key, f"/v1/leads?limit=100&cursor={cursor}"
    )

    assert one == hundred
    assert hundred <= BUDGET
