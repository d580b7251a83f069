"""One organization's key never reaches another organization's data, through either API."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import asyncpg
import pytest

from tests.support import Api, Tenant, error_codes

LEADS: Final = """
query Leads($limit: Int! = 100, $search: String, $filter: LeadFilter) {
  leads(limit: $limit, search: $search, filter: $filter) {
    total nodes { id stage { id } primaryAdvisor { id } }
  }
}
"""
UNIQUE_NAME: Final = "Xylophonic Otterworks"


async def lead_ids(pool: asyncpg.Pool, tenant: Tenant) -> set[str]:
    rows = await pool.fetch("SELECT id FROM leads WHERE organization_id = $1", tenant.id)
    return {str(r["id"]) for r in rows}


async def leads_of(api: Api, key: str, **variables: Any) -> dict[str, Any]:
    status, body = await api.graphql(key, LEADS, variables)
    assert status == 200
    assert "errors" not in body, body
    page: dict[str, Any] = body["data"]["leads"]
    return page


async def insert_unique_lead(pool: asyncpg.Pool, tenant: Tenant) -> str:
    lead_id = await pool.fetchval(
        "INSERT INTO leads (organization_id, business_name, stage_id, primary_advisor_id) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        tenant.id,
        UNIQUE_NAME,
        tenant.stage_ids[0],
        tenant.advisor_ids[0],
    )
    return str(lead_id)


async def test_leads_lists_only_the_callers_organization(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    page = await leads_of(api, tenant.read_key)

    assert page["total"] == 30
    assert {n["id"] for n in page["nodes"]} == await lead_ids(pool, tenant)
    assert not {n["id"] for n in page["nodes"]} & await lead_ids(pool, other_tenant)


async def test_leads_nodes_point_only_at_the_callers_stages_and_advisors(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    page = await leads_of(api, tenant.read_key)

    stage_ids = {UUID(n["stage"]["id"]) for n in page["nodes"]}
    advisor_ids = {UUID(n["primaryAdvisor"]["id"]) for n in page["nodes"] if n["primaryAdvisor"]}
    assert stage_ids <= set(tenant.stage_ids)
    assert advisor_ids <= set(tenant.advisor_ids)


async def test_lead_of_another_organization_is_not_found(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_id = await insert_unique_lead(pool, other_tenant)

    _, body = await api.graphql(
        tenant.read_key, "query($id: ID!) { lead(id: $id) { id } }", {"id": foreign_id}
    )

    assert body["data"] == {"lead": None}
    assert error_codes(body) == ["NOT_FOUND"]


async def test_search_for_a_term_unique_to_another_organization_finds_nothing(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_id = await insert_unique_lead(pool, other_tenant)

    mine = await leads_of(api, tenant.read_key, search="xylophonic otterworks")
    theirs = await leads_of(api, other_tenant.read_key, search="xylophonic otterworks")

    assert (mine["total"], mine["nodes"]) == (0, [])
    assert [n["id"] for n in theirs["nodes"]] == [foreign_id]


@pytest.mark.parametrize("field", ["stageId", "advisorId"])
async def test_filter_by_another_organizations_id_returns_none_of_its_leads(
    api: Api, tenant: Tenant, other_tenant: Tenant, field: str
) -> None:
    foreign = other_tenant.stage_ids[0] if field == "stageId" else other_tenant.advisor_ids[0]

    page = await leads_of(api, tenant.read_key, filter={field: str(foreign)})

    assert (page["total"], page["nodes"]) == (0, [])


async def test_stages_are_only_the_callers(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    _, body = await api.graphql(tenant.read_key, "{ stages { id } }")

    assert [UUID(s["id"]) for s in body["data"]["stages"]] == tenant.stage_ids
    assert not {UUID(s["id"]) for s in body["data"]["stages"]} & set(other_tenant.stage_ids)


async def test_advisors_are_only_the_callers(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    _, body = await api.graphql(tenant.read_key, "{ advisors { id } }")

    assert {UUID(a["id"]) for a in body["data"]["advisors"]} == set(tenant.advisor_ids)


async def test_rest_list_shows_only_the_callers_organization(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    status, body, _ = await api.rest("GET", "/v1/leads?limit=100", tenant.read_key)

    assert status == 200
    assert body["meta"]["total"] == 30
    assert {i["id"] for i in body["data"]} == await lead_ids(pool, tenant)
    assert {UUID(i["attributes"]["stage"]["id"]) for i in body["data"]} <= set(tenant.stage_ids)


async def test_rest_search_for_a_term_unique_to_another_organization_finds_nothing(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    await insert_unique_lead(pool, other_tenant)

    status, body, _ = await api.rest("GET", "/v1/leads?search=xylophonic", tenant.read_key)

    assert status == 200
    assert (body["meta"]["total"], body["data"]) == (0, [])


async def test_rest_get_of_another_organizations_lead_is_not_found(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_id = await insert_unique_lead(pool, other_tenant)

    status, body, _ = await api.rest("GET", f"/v1/leads/{foreign_id}", tenant.read_key)

    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
    assert UNIQUE_NAME not in str(body)


async def test_the_owner_can_read_the_lead_another_organization_cannot(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    lead_id = await insert_unique_lead(pool, other_tenant)

    owner, _, _ = await api.rest("GET", f"/v1/leads/{lead_id}", other_tenant.read_key)
    stranger, _, _ = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)

    assert (owner, stranger) == (200, 404)
