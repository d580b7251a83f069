"""Likely duplicates and merges (issue 12 #5): createLead reports leads with the same
normalised email or phone, refuses them on request, and mergeLeads folds one lead into
another atomically and idempotently."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import asyncpg
import pytest

from tests.support import Api, Tenant, error_codes, make_tenant, ok

CREATE: Final = """
mutation($input: CreateLeadInput!, $on: OnDuplicate! = REPORT) {
  createLead(input: $input, onDuplicate: $on) { id }
}
"""
MERGE: Final = """
mutation($primary: ID!, $duplicate: ID!, $key: String) {
  mergeLeads(primaryId: $primary, duplicateId: $duplicate, idempotencyKey: $key) {
    id industry phone externalIds mergedInto
  }
}
"""
CREATE_ENDPOINT: Final = """
mutation($url: String!, $types: [String!]!) {
  createWebhookEndpoint(url: $url, eventTypes: $types) { endpoint { id } }
}
"""


@pytest.fixture
async def org(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool)


def email() -> str:
    return f"jane.{uuid.uuid4().hex[:10]}@acme-lending.com"


def phone() -> str:
    return "+1 555 " + str(uuid.uuid4().int)[:7]


async def rest_create(
    api: Api, tenant: Tenant, body: dict[str, Any], query: str = ""
) -> tuple[int, Any]:
    status, answer, _ = await api.rest("POST", f"/v1/leads{query}", tenant.write_key, json=body)
    return status, answer


async def new_lead(api: Api, tenant: Tenant, body: dict[str, Any]) -> str:
    status, answer = await rest_create(api, tenant, body)
    assert status == 201, answer
    lead_id: str = answer["data"]["id"]
    return lead_id


async def merge_rest(
    api: Api, tenant: Tenant, primary: str, duplicate: str, key: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Idempotency-Key": key} if key else None
    return await api.rest(
        "POST",
        f"/v1/leads/{primary}/merge",
        tenant.write_key,
        json={"duplicateId": duplicate},
        headers=headers,
    )


async def events_of(pool: asyncpg.Pool, tenant: Tenant, lead_id: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT id, type, sequence, payload FROM lead_events"
            " WHERE organization_id = $1 AND lead_id = $2 ORDER BY id",
            tenant.id,
            uuid.UUID(lead_id),
        )
    return rows


async def test_a_create_lists_the_lead_with_the_same_normalised_email_in_meta_duplicates(
    api: Api, org: Tenant
) -> None:
    address = email()
    first = await new_lead(api, org, {"email": address})
    status, body = await rest_create(api, org, {"email": f"  {address.upper()} "})
    assert status == 201, body
    assert body["meta"]["duplicates"] == [{"id": first, "reason": "email"}]


async def test_a_create_lists_the_lead_with_the_same_phone_digits_in_extensions(
    api: Api, org: Tenant
) -> None:
    number = phone()
    first = await new_lead(api, org, {"phone": number})
    digits = "".join(c for c in number if c.isdigit())
    status, body = await api.graphql(
        org.write_key, CREATE, {"input": {"phone": f"({digits[:4]}) {digits[4:]}"}}
    )
    assert status == 200 and "errors" not in body, body
    assert body["extensions"]["duplicates"] == [{"id": first, "reason": "phone"}]


async def test_a_create_without_duplicates_reports_none(api: Api, org: Tenant) -> None:
    status, body = await rest_create(api, org, {"email": email(), "phone": phone()})
    assert (status, body["meta"]["duplicates"]) == (201, [])
    _, gql = await api.graphql(org.write_key, CREATE, {"input": {"email": email()}})
    assert "duplicates" not in gql.get("extensions", {})


async def test_reject_refuses_a_duplicate_with_duplicate_lead_naming_the_existing_lead(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    address = email()
    first = await new_lead(api, org, {"email": address})
    status, body = await rest_create(api, org, {"email": address}, "?onDuplicate=reject")
    assert (status, body["error"]["code"]) == (409, "DUPLICATE_LEAD")
    assert first in body["error"]["message"]
    _, gql = await api.graphql(org.write_key, CREATE, {"input": {"email": address}, "on": "REJECT"})
    assert error_codes(gql) == ["DUPLICATE_LEAD"]
    assert first in gql["errors"][0]["message"]
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1 AND email = $2",
            org.id,
            address,
        )
    assert count == 1


async def test_reject_creates_a_lead_that_has_no_duplicate(api: Api, org: Tenant) -> None:
    status, body = await rest_create(api, org, {"email": email()}, "?onDuplicate=reject")
    assert (status, body["meta"]["duplicates"]) == (201, [])
    status, body = await rest_create(api, org, {}, "?onDuplicate=maybe")
    assert (status, body["error"]["fields"][0]["field"]) == (422, "onDuplicate")


async def test_concurrent_rejecting_creates_of_one_email_make_one_lead(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    address = email()
    answers = await asyncio.gather(
        *(rest_create(api, org, {"email": address}, "?onDuplicate=reject") for _ in range(8))
    )
    assert sorted(status for status, _ in answers) == [201] + [409] * 7
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1 AND email = $2",
            org.id,
            address,
        )
    assert count == 1


async def test_another_organizations_leads_are_not_duplicates(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    other = await make_tenant(pool, name="Other Lending")
    address = email()
    await new_lead(api, other, {"email": address})
    status, body = await rest_create(api, org, {"email": address}, "?onDuplicate=reject")
    assert (status, body["meta"]["duplicates"]) == (201, [])


async def test_a_merge_fills_the_primarys_empty_fields_and_takes_the_external_ids(
    api: Api, org: Tenant
) -> None:
    primary = await new_lead(
        api, org, {"businessName": "Acme", "industry": "Bakery", "externalIds": {"hubspot": "h1"}}
    )
    duplicate = await new_lead(
        api,
        org,
        {
            "businessName": "ACME Inc",
            "industry": "Retail",
            "phone": "555 0100",
            "externalIds": {"hubspot": "h2", "sf": "s2"},
        },
    )
    status, body, _ = await merge_rest(api, org, primary, duplicate)
    assert status == 200, body
    merged = body["data"]
    assert merged["id"] == primary
    assert merged["attributes"]["businessName"] == "Acme"
    assert merged["attributes"]["industry"] == "Bakery"
    assert merged["attributes"]["phone"] == "555 0100"
    assert merged["attributes"]["externalIds"] == {"hubspot": "h1", "sf": "s2"}
    _, gone, _ = await api.rest("GET", f"/v1/leads/{duplicate}", org.read_key)
    assert gone["data"]["attributes"]["mergedInto"] == primary
    assert gone["data"]["attributes"]["archivedAt"] is not None
    assert gone["data"]["attributes"]["externalIds"] == {}
    _, found, _ = await api.rest("GET", "/v1/leads?externalId=sf:s2", org.read_key)
    assert [lead["id"] for lead in found["data"]] == [primary]


async def test_a_merge_records_lead_merged_on_both_leads_and_queues_its_webhooks(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    await ok(
        api,
        org.write_key,
        CREATE_ENDPOINT,
        {"url": "http://127.0.0.1:9/hook", "types": ["lead.merged"]},
    )
    primary = await new_lead(api, org, {"businessName": "Acme"})
    duplicate = await new_lead(api, org, {"industry": "Retail"})
    data = await ok(api, org.write_key, MERGE, {"primary": primary, "duplicate": duplicate})
    assert data["mergeLeads"]["industry"] == "Retail"
    assert data["mergeLeads"]["mergedInto"] is None
    on_primary = (await events_of(pool, org, primary))[-1]
    on_duplicate = (await events_of(pool, org, duplicate))[-1]
    assert (on_primary["type"], on_primary["sequence"]) == ("lead.merged", 2)
    assert (on_duplicate["type"], on_duplicate["sequence"]) == ("lead.merged", 2)
    assert on_primary["payload"]["duplicateId"] == duplicate
    assert on_primary["payload"]["filled"] == {"industry": "Retail"}
    assert on_duplicate["payload"]["primaryId"] == primary
    async with pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE organization_id = $1"
            " AND event_id = ANY ($2::bigint[])",
            org.id,
            [on_primary["id"], on_duplicate["id"]],
        )
    assert queued == 2


async def test_merging_again_is_a_no_op_answering_the_primary(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    primary = await new_lead(api, org, {})
    duplicate = await new_lead(api, org, {"industry": "Retail"})
    first = await merge_rest(api, org, primary, duplicate)
    again = await merge_rest(api, org, primary, duplicate)
    assert first[0] == again[0] == 200
    assert again[1]["data"] == first[1]["data"]
    assert [e["type"] for e in await events_of(pool, org, primary)] == [
        "lead.created",
        "lead.merged",
    ]


async def test_a_merge_key_is_replayed(api: Api, org: Tenant) -> None:
    primary = await new_lead(api, org, {})
    duplicate = await new_lead(api, org, {})
    key = f"merge-{uuid.uuid4()}"
    first = await merge_rest(api, org, primary, duplicate, key)
    again = await merge_rest(api, org, primary, duplicate, key)
    assert again[1] == first[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    third = await new_lead(api, org, {})
    status, body, _ = await merge_rest(api, org, primary, third, key)
    assert (status, body["error"]["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")


async def test_a_lead_merged_elsewhere_or_merged_with_itself_is_refused(
    api: Api, org: Tenant
) -> None:
    first, second, third = [await new_lead(api, org, {}) for _ in range(3)]
    status, body, _ = await merge_rest(api, org, first, first)
    assert (status, body["error"]["fields"][0]["field"]) == (422, "duplicateId")
    assert (await merge_rest(api, org, first, second))[0] == 200
    status, body, _ = await merge_rest(api, org, third, second)
    assert (status, body["error"]["fields"][0]["field"]) == (422, "duplicateId")
    status, body, _ = await merge_rest(api, org, second, third)
    assert (status, body["error"]["fields"][0]["field"]) == (422, "primaryId")


async def test_a_merged_lead_is_no_longer_reported_as_a_duplicate(api: Api, org: Tenant) -> None:
    address = email()
    primary = await new_lead(api, org, {"email": address})
    duplicate = await new_lead(api, org, {"email": address})
    assert (await merge_rest(api, org, primary, duplicate))[0] == 200
    _, body = await rest_create(api, org, {"email": address})
    assert body["meta"]["duplicates"] == [{"id": primary, "reason": "email"}]


async def test_merging_another_organizations_lead_is_not_found(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    other = await make_tenant(pool, name="Other Lending")
    mine = await new_lead(api, org, {})
    theirs = await new_lead(api, other, {})
    status, body, _ = await merge_rest(api, org, mine, theirs)
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    _, gql = await api.graphql(org.write_key, MERGE, {"primary": theirs, "duplicate": mine})
    assert error_codes(gql) == ["NOT_FOUND"]


async def test_merging_with_a_read_only_key_is_forbidden(api: Api, org: Tenant) -> None:
    primary = await new_lead(api, org, {})
    duplicate = await new_lead(api, org, {})
    status, body, _ = await api.rest(
        "POST", f"/v1/leads/{primary}/merge", org.read_key, json={"duplicateId": duplicate}
    )
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    _, gql = await api.graphql(org.read_key, MERGE, {"primary": primary, "duplicate": duplicate})
    assert error_codes(gql) == ["FORBIDDEN"]
