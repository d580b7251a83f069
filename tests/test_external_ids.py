"""External ids (issue 12 #4): writable, unique per organization and system, upserted in one
atomic step, looked up on both APIs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import asyncpg
import pytest

from leadgate.domain.errors import DuplicateLead, ValidationFailed
from leadgate.services.lead_matching import upsert_by_external_id
from tests.support import Api, Tenant, error_codes, make_tenant, ok

CREATE: Final = """
mutation($input: CreateLeadInput!) { createLead(input: $input) { id externalIds } }
"""
UPDATE: Final = """
mutation($id: ID!, $input: UpdateLeadInput!) {
  updateLead(id: $id, input: $input) { id externalIds }
}
"""
UPSERT: Final = """
mutation($system: String!, $ext: String!, $input: CreateLeadInput!, $key: String) {
  upsertLead(externalId: {system: $system, id: $ext}, input: $input, idempotencyKey: $key) {
    id businessName externalIds
  }
}
"""
BY_EXTERNAL_ID: Final = """
query($system: String!, $ext: String!) {
  leads(filter: {externalId: {system: $system, id: $ext}}) { total nodes { id } }
  leadsConnection(filter: {externalId: {system: $system, id: $ext}}) {
    totalCount edges { node { id } }
  }
}
"""


@pytest.fixture
async def org(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool)


def ext() -> str:
    """An external id no other test uses."""
    return f"ext-{uuid.uuid4().hex[:12]}"


async def rest_create(api: Api, tenant: Tenant, body: dict[str, Any]) -> tuple[int, Any]:
    status, answer, _ = await api.rest("POST", "/v1/leads", tenant.write_key, json=body)
    return status, answer


async def listed(api: Api, tenant: Tenant, system: str, external_id: str) -> list[str]:
    path = f"/v1/leads?externalId={system}:{external_id}"
    status, body, _ = await api.rest("GET", path, tenant.read_key)
    assert status == 200, body
    return [lead["id"] for lead in body["data"]]


async def upsert_rest(
    api: Api, tenant: Tenant, system: str, external_id: str, body: dict[str, Any]
) -> tuple[int, Any]:
    path = f"/v1/leads/by-external-id/{system}/{external_id}"
    status, answer, _ = await api.rest("PUT", path, tenant.write_key, json=body)
    return status, answer


async def lead_count(pool: asyncpg.Pool, tenant: Tenant, system: str, external_id: str) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1 AND external_ids ->> $2 = $3",
            tenant.id,
            system,
            external_id,
        )
    return count


async def test_external_ids_given_at_create_find_the_lead_over_rest(api: Api, org: Tenant) -> None:
    hubspot, salesforce = ext(), ext()
    status, body = await rest_create(
        api, org, {"businessName": "Acme", "externalIds": {"hubspot": hubspot, "sf": salesforce}}
    )
    assert status == 201, body
    lead_id = body["data"]["id"]
    assert body["data"]["attributes"]["externalIds"] == {"hubspot": hubspot, "sf": salesforce}
    assert await listed(api, org, "hubspot", hubspot) == [lead_id]
    assert await listed(api, org, "sf", salesforce) == [lead_id]
    assert await listed(api, org, "hubspot", salesforce) == []


async def test_leads_and_leads_connection_filter_by_external_id(api: Api, org: Tenant) -> None:
    hubspot = ext()
    data = await ok(
        api,
        org.write_key,
        CREATE,
        {"input": {"businessName": "A", "externalIds": {"hubspot": hubspot}}},
    )
    await ok(api, org.write_key, CREATE, {"input": {"businessName": "B"}})
    lead_id = data["createLead"]["id"]
    found = await ok(api, org.read_key, BY_EXTERNAL_ID, {"system": "hubspot", "ext": hubspot})
    assert found["leads"] == {"total": 1, "nodes": [{"id": lead_id}]}
    assert found["leadsConnection"] == {"totalCount": 1, "edges": [{"node": {"id": lead_id}}]}


async def test_an_external_id_another_lead_holds_is_duplicate_lead(api: Api, org: Tenant) -> None:
    hubspot = ext()
    _, first = await rest_create(api, org, {"externalIds": {"hubspot": hubspot}})
    status, body = await rest_create(api, org, {"externalIds": {"hubspot": hubspot}})
    assert status == 409
    assert body["error"]["code"] == "DUPLICATE_LEAD"
    assert first["data"]["id"] in body["error"]["message"]
    _, other, _ = await api.rest("POST", "/v1/leads", org.write_key, json={})
    status, gql = await api.graphql(
        org.write_key,
        UPDATE,
        {"id": other["data"]["id"], "input": {"externalIds": {"hubspot": hubspot}}},
    )
    assert error_codes(gql) == ["DUPLICATE_LEAD"]
    assert await listed(api, org, "hubspot", hubspot) == [first["data"]["id"]]


async def test_updating_external_ids_replaces_them_and_frees_the_old_ones(
    api: Api, org: Tenant
) -> None:
    old, new = ext(), ext()
    _, body = await rest_create(api, org, {"externalIds": {"hubspot": old}})
    lead_id = body["data"]["id"]
    path = f"/v1/leads/{lead_id}"
    status, updated, _ = await api.rest(
        "PATCH", path, org.write_key, json={"externalIds": {"hubspot": new}}
    )
    assert status == 200, updated
    assert await listed(api, org, "hubspot", old) == []
    assert await listed(api, org, "hubspot", new) == [lead_id]
    status, _ = await rest_create(api, org, {"externalIds": {"hubspot": old}})
    assert status == 201


@pytest.mark.parametrize(
    "external_ids",
    [
        {"HubSpot": "1"},
        {"1hubspot": "1"},
        {"a" * 33: "1"},
        {"hubspot": ""},
        {"hubspot": "x" * 256},
        {"hubspot": 123},
        {"hubspot": "bad\nid"},
        ["hubspot", "1"],
        None,
    ],
)
async def test_malformed_external_ids_are_validation_errors_on_both_apis(
    api: Api, org: Tenant, external_ids: object
) -> None:
    status, body = await rest_create(api, org, {"externalIds": external_ids})
    assert status == 422, body
    assert body["error"]["fields"][0]["field"].startswith("externalIds")
    _, gql = await api.graphql(org.write_key, CREATE, {"input": {"externalIds": external_ids}})
    assert error_codes(gql) == ["VALIDATION_ERROR"]


async def test_a_malformed_external_id_filter_is_a_validation_error(api: Api, org: Tenant) -> None:
    status, body, _ = await api.rest("GET", "/v1/leads?externalId=hubspot", org.read_key)
    assert status == 422
    assert body["error"]["fields"][0]["field"] == "externalId"
    _, gql = await api.graphql(org.read_key, BY_EXTERNAL_ID, {"system": "Bad", "ext": "1"})
    assert "VALIDATION_ERROR" in error_codes(gql)


async def test_put_by_external_id_creates_then_updates_one_lead(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    hubspot = ext()
    status, created = await upsert_rest(api, org, "hubspot", hubspot, {"businessName": "First"})
    assert status == 201, created
    status, updated = await upsert_rest(api, org, "hubspot", hubspot, {"businessName": "Second"})
    assert status == 200, updated
    assert updated["data"]["id"] == created["data"]["id"]
    assert updated["data"]["attributes"]["businessName"] == "Second"
    assert updated["data"]["attributes"]["externalIds"] == {"hubspot": hubspot}
    async with pool.acquire() as conn:
        types = await conn.fetch(
            "SELECT type FROM lead_events WHERE organization_id = $1 AND lead_id = $2 ORDER BY id",
            org.id,
            uuid.UUID(created["data"]["id"]),
        )
    assert [r["type"] for r in types] == ["lead.created", "lead.updated"]


async def test_an_id_with_a_slash_or_space_is_percent_encoded_in_the_path(
    api: Api, org: Tenant
) -> None:
    encoded = f"{ext()}%2Fpart%20two"
    status, body = await upsert_rest(api, org, "hubspot", encoded, {})
    assert status == 201, body
    decoded = encoded.replace("%2F", "/").replace("%20", " ")
    assert body["data"]["attributes"]["externalIds"] == {"hubspot": decoded}
    assert await listed(api, org, "hubspot", encoded) == [body["data"]["id"]]


async def test_upsert_lead_creates_then_updates_and_keeps_other_external_ids(
    api: Api, org: Tenant
) -> None:
    hubspot, salesforce = ext(), ext()
    first = await ok(
        api,
        org.write_key,
        UPSERT,
        {
            "system": "hubspot",
            "ext": hubspot,
            "input": {"businessName": "A", "externalIds": {"sf": salesforce}},
        },
    )
    second = await ok(
        api,
        org.write_key,
        UPSERT,
        {"system": "hubspot", "ext": hubspot, "input": {"businessName": "B"}},
    )
    assert second["upsertLead"]["id"] == first["upsertLead"]["id"]
    assert second["upsertLead"]["businessName"] == "B"
    assert second["upsertLead"]["externalIds"] == {"hubspot": hubspot, "sf": salesforce}


async def test_concurrent_upserts_of_one_external_id_give_exactly_one_lead(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    hubspot = ext()

    async def rest(i: int) -> int:
        status, _ = await upsert_rest(api, org, "hubspot", hubspot, {"industry": f"r{i}"})
        return status

    async def graphql(i: int) -> int:
        variables = {"system": "hubspot", "ext": hubspot, "input": {"industry": f"g{i}"}}
        status, body = await api.graphql(org.write_key, UPSERT, variables)
        assert "errors" not in body, body
        return status

    statuses = await asyncio.gather(*(rest(i) for i in range(6)), *(graphql(i) for i in range(6)))
    assert sorted(s for s in statuses[:6]) in ([200] * 6, [200] * 5 + [201])
    assert all(s == 200 for s in statuses[6:])
    assert await lead_count(pool, org, "hubspot", hubspot) == 1
    assert len(await listed(api, org, "hubspot", hubspot)) == 1


async def test_an_upsert_key_is_replayed_without_a_second_write(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    hubspot = ext()
    path = f"/v1/leads/by-external-id/hubspot/{hubspot}"
    headers = {"Idempotency-Key": f"k-{hubspot}"}
    body = {"businessName": "Once"}
    first = await api.rest("PUT", path, org.write_key, json=body, headers=headers)
    again = await api.rest("PUT", path, org.write_key, json=body, headers=headers)
    assert first[0] == again[0] == 201
    assert again[1] == first[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    async with pool.acquire() as conn:
        events = await conn.fetchval(
            "SELECT count(*) FROM lead_events WHERE organization_id = $1 AND lead_id = $2",
            org.id,
            uuid.UUID(first[1]["data"]["id"]),
        )
    assert events == 1


async def test_upserts_with_a_read_only_key_are_forbidden(api: Api, org: Tenant) -> None:
    path = f"/v1/leads/by-external-id/hubspot/{ext()}"
    status, body, _ = await api.rest("PUT", path, org.read_key, json={})
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    _, gql = await api.graphql(
        org.read_key, UPSERT, {"system": "hubspot", "ext": ext(), "input": {}}
    )
    assert error_codes(gql) == ["FORBIDDEN"]


async def test_another_organizations_external_ids_are_invisible(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    other = await make_tenant(pool, name="Other Lending")
    hubspot = ext()
    _, theirs = await rest_create(api, other, {"externalIds": {"hubspot": hubspot}})
    assert await listed(api, org, "hubspot", hubspot) == []
    status, mine = await upsert_rest(api, org, "hubspot", hubspot, {"businessName": "Mine"})
    assert status == 201
    assert mine["data"]["id"] != theirs["data"]["id"]
    assert await listed(api, other, "hubspot", hubspot) == [theirs["data"]["id"]]


async def test_an_upsert_naming_another_id_for_its_system_is_a_validation_error(
    api: Api, org: Tenant
) -> None:
    status, body = await upsert_rest(api, org, "hubspot", ext(), {"externalIds": {"hubspot": "2"}})
    assert status == 422
    assert body["error"]["fields"][0]["field"] == "externalIds.hubspot"
    status, body = await upsert_rest(api, org, "Bad", "1", {})
    assert (status, body["error"]["fields"][0]["field"]) == (422, "externalId")


async def test_upsert_by_external_id_runs_in_the_callers_transaction(
    org: Tenant, pool: asyncpg.Pool
) -> None:
    hubspot = ext()
    async with pool.acquire() as conn, conn.transaction():
        created = await upsert_by_external_id(
            conn,
            org.id,
            system="hubspot",
            external_id=hubspot,
            fields={"businessName": "X"},
            actor=None,
        )
        updated = await upsert_by_external_id(
            conn,
            org.id,
            system="hubspot",
            external_id=hubspot,
            fields={"industry": "Y"},
            actor=None,
        )
        unchanged = await upsert_by_external_id(
            conn,
            org.id,
            system="hubspot",
            external_id=hubspot,
            fields={"industry": "Y"},
            actor=None,
        )
        with pytest.raises(ValidationFailed):
            await upsert_by_external_id(
                conn, org.id, system="hubspot", external_id="", fields={}, actor=None
            )
    assert (created.created, updated.created) == (True, False)
    assert updated.record.lead.id == created.record.lead.id
    assert created.event_id is not None and updated.event_id is not None
    assert unchanged.event_id is None
    async with pool.acquire() as conn, conn.transaction():
        await upsert_by_external_id(
            conn,
            org.id,
            system="sf",
            external_id=hubspot,
            fields={"externalIds": {"hubspot": ext()}},
            actor=None,
        )
        with pytest.raises(DuplicateLead):
            await upsert_by_external_id(
                conn,
                org.id,
                system="other",
                external_id=hubspot,
                fields={"externalIds": {"hubspot": hubspot}},
                actor=None,
            )
