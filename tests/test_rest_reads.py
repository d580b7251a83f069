"""The REST mirror's reads, field for field as spec/leads-api.md shows them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import pytest

from tests.support import REST_ATTRIBUTES, Api, Tenant, header

STAGE_KEYS: Final = frozenset({"id", "stageKey", "stageLabel", "color", "semanticSlot"})
SOURCES: Final = frozenset({"manual", "csv_import", "api", "web_form", "referral", "dialer"})
PRIORITIES: Final = frozenset({"low", "normal", "high", "urgent"})
ISO_UTC: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


async def newest_first_ids(pool: asyncpg.Pool, tenant: Tenant) -> list[str]:
    rows = await pool.fetch(
        "SELECT id FROM leads WHERE organization_id = $1 ORDER BY created_at DESC, id DESC",
        tenant.id,
    )
    return [str(r["id"]) for r in rows]


async def list_leads(api: Api, tenant: Tenant, query: str = "") -> dict[str, Any]:
    status, body, _ = await api.rest("GET", f"/v1/leads{query}", tenant.read_key)
    assert status == 200, body
    return body


async def test_list_items_are_leads_with_exactly_the_specs_attributes(
    api: Api, tenant: Tenant
) -> None:
    body = await list_leads(api, tenant, "?limit=100")

    assert set(body) == {"data", "meta"}
    assert len(body["data"]) == 30
    for item in body["data"]:
        assert set(item) == {"id", "type", "attributes"}
        assert item["type"] == "lead"
        uuid.UUID(item["id"])
        assert set(item["attributes"]) == REST_ATTRIBUTES
        assert set(item["attributes"]["stage"]) == STAGE_KEYS


async def test_source_and_priority_are_lower_case_values(api: Api, tenant: Tenant) -> None:
    body = await list_leads(api, tenant, "?limit=100")

    assert {i["attributes"]["source"] for i in body["data"]} <= SOURCES
    assert {i["attributes"]["priority"] for i in body["data"]} <= PRIORITIES


async def test_list_meta_has_paging_and_the_request_id_of_the_header(
    api: Api, tenant: Tenant
) -> None:
    status, body, headers = await api.rest("GET", "/v1/leads", tenant.read_key)

    assert status == 200
    meta = body["meta"]
    assert set(meta) == {
        "total",
        "totalIsExact",
        "page",
        "limit",
        "hasMore",
        "nextCursor",
        "requestId",
    }
    assert (meta["total"], meta["totalIsExact"], meta["page"]) == (30, True, 1)
    assert (meta["limit"], meta["hasMore"]) == (20, True)
    assert len(body["data"]) == 20
    assert meta["requestId"]
    assert header(headers, "X-Request-Id") == meta["requestId"]


async def test_a_well_formed_client_request_id_is_echoed(api: Api, tenant: Tenant) -> None:
    status, body, headers = await api.rest(
        "GET", "/v1/leads?limit=1", tenant.read_key, headers={"X-Request-Id": "trace-12345678"}
    )

    assert status == 200
    assert body["meta"]["requestId"] == "trace-12345678"
    assert header(headers, "X-Request-Id") == "trace-12345678"


async def test_list_is_newest_first(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    body = await list_leads(api, tenant, "?limit=100")

    assert [i["id"] for i in body["data"]] == await newest_first_ids(pool, tenant)


async def test_page_and_limit_select_the_right_slice(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    expected = await newest_first_ids(pool, tenant)

    second = await list_leads(api, tenant, "?page=2&limit=7")
    last = await list_leads(api, tenant, "?page=5&limit=7")

    assert [i["id"] for i in second["data"]] == expected[7:14]
    assert {k: second["meta"][k] for k in ("total", "page", "limit", "hasMore")} == {
        "total": 30,
        "page": 2,
        "limit": 7,
        "hasMore": True,
    }
    assert [i["id"] for i in last["data"]] == expected[28:]
    assert (last["meta"]["page"], last["meta"]["hasMore"]) == (5, False)


async def test_search_narrows_the_list(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    lead_id = await pool.fetchval(
        "INSERT INTO leads (organization_id, business_name, email, stage_id) "
        "VALUES ($1, 'Plain Name Co', 'jane@zeta-widgets.com', $2) RETURNING id",
        tenant.id,
        tenant.stage_ids[0],
    )

    body = await list_leads(api, tenant, "?search=zeta")

    assert [i["id"] for i in body["data"]] == [str(lead_id)]
    assert (body["meta"]["total"], body["meta"]["hasMore"]) == (1, False)


async def test_get_lead_renders_every_attribute_field_for_field(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    contact_id = await pool.fetchval(
        "INSERT INTO contacts (organization_id, first_name) VALUES ($1, 'Jane') RETURNING id",
        tenant.id,
    )
    refs = {name: uuid.uuid4() for name in ("account", "contact", "import", "creator")}
    moments = [datetime(2025, 1, day, 10, 30, tzinfo=UTC) for day in range(10, 16)]
    stage = await pool.fetchrow(
        "SELECT id, stage_key, stage_label, color, semantic_slot FROM pipeline_stages "
        "WHERE organization_id = $1 AND id = $2",
        tenant.id,
        tenant.stage_ids[0],
    )
    advisor_name = await pool.fetchval(
        "SELECT name FROM advisors WHERE organization_id = $1 AND id = $2",
        tenant.id,
        tenant.advisor_ids[0],
    )
    lead_id = await pool.fetchval(
        """
        INSERT INTO leads (
            organization_id, business_name, contact_first_name, contact_last_name, email,
            phone, industry, monthly_revenue, requested_amount, source, priority,
            is_do_not_call, dnc_reason, dnc_at, tags, custom_fields, external_ids, lead_score,
            stage_id, primary_advisor_id, contact_id, last_contacted_at, stage_changed_at,
            converted_at, converted_account_id, converted_contact_id, import_job_id,
            created_by, created_at, updated_at)
        VALUES ($1, 'Acme Corp', 'Jane', 'Doe', 'jane@acme.com', '555-0100', 'Technology',
            85000, 250000, 'web_form', 'urgent', true, 'requested', $2, $3, $4, $5, 77,
            $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        RETURNING id
        """,
        tenant.id,
        moments[0],
        ["technology", "high-value"],
        {"loanPurpose": "equipment"},
        {"crm": "SF-001"},
        tenant.stage_ids[0],
        tenant.advisor_ids[0],
        contact_id,
        moments[1],
        moments[2],
        moments[3],
        refs["account"],
        refs["contact"],
        refs["import"],
        str(refs["creator"]),  # created_by is text: an API key id or a user's sub
        moments[4],
        moments[5],
    )

    status, body, headers = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)

    assert status == 200
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"requestId": header(headers, "X-Request-Id")}
    assert (body["data"]["id"], body["data"]["type"]) == (str(lead_id), "lead")
    attributes = body["data"]["attributes"]
    times = {
        k: attributes.pop(k)
        for k in (
            "dncAt",
            "lastContactedAt",
            "stageChangedAt",
            "convertedAt",
            "createdAt",
            "updatedAt",
        )
    }
    assert all(ISO_UTC.fullmatch(v) for v in times.values()), times
    assert {k: datetime.fromisoformat(v) for k, v in times.items()} == {
        "dncAt": moments[0],
        "lastContactedAt": moments[1],
        "stageChangedAt": moments[2],
        "convertedAt": moments[3],
        "createdAt": moments[4],
        "updatedAt": moments[5],
    }
    assert attributes == {
        "businessName": "Acme Corp",
        "contactFirstName": "Jane",
        "contactLastName": "Doe",
        "email": "jane@acme.com",
        "phone": "555-0100",
        "industry": "Technology",
        "monthlyRevenue": "85000",
        "requestedAmount": "250000",
        "source": "web_form",
        "priority": "urgent",
        "isDoNotCall": True,
        "dncReason": "requested",
        "tags": ["technology", "high-value"],
        "customFields": {"loanPurpose": "equipment"},
        "externalIds": {"crm": "SF-001"},
        "leadScore": 77,
        "stage": {
            "id": str(stage["id"]),
            "stageKey": stage["stage_key"],
            "stageLabel": stage["stage_label"],
            "color": stage["color"],
            "semanticSlot": stage["semantic_slot"],
        },
        "primaryAdvisorId": str(tenant.advisor_ids[0]),
        "primaryAdvisorName": advisor_name,
        "contactId": str(contact_id),
        "convertedAccountId": str(refs["account"]),
        "convertedContactId": str(refs["contact"]),
        "importJobId": str(refs["import"]),
        "mergedInto": None,
        "createdBy": str(refs["creator"]),
        "archivedAt": None,
    }


async def test_get_lead_with_unset_fields_renders_them_as_null(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    lead_id = await pool.fetchval(
        "INSERT INTO leads (organization_id, stage_id) VALUES ($1, $2) RETURNING id",
        tenant.id,
        tenant.stage_ids[0],
    )

    status, body, _ = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)

    assert status == 200
    attributes = body["data"]["attributes"]
    assert set(attributes) == REST_ATTRIBUTES
    nulls = REST_ATTRIBUTES - {
        "source",
        "priority",
        "isDoNotCall",
        "tags",
        "customFields",
        "externalIds",
        "stage",
        "stageChangedAt",
        "createdAt",
        "updatedAt",
    }
    assert {k: attributes[k] for k in nulls} == dict.fromkeys(nulls)
    assert (attributes["source"], attributes["priority"]) == ("manual", "normal")
    assert (attributes["tags"], attributes["customFields"], attributes["externalIds"]) == (
        [],
        {},
        {},
    )


async def test_get_lead_agrees_with_the_list_item(api: Api, tenant: Tenant) -> None:
    listed = (await list_leads(api, tenant, "?limit=1"))["data"][0]

    status, body, _ = await api.rest("GET", f"/v1/leads/{listed['id']}", tenant.read_key)

    assert status == 200
    assert body["data"] == listed


def assert_not_found_envelope(status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    assert status == 404
    assert set(body) == {"error", "meta"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "NOT_FOUND"
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["meta"] == {"requestId": header(headers, "X-Request-Id")}


@pytest.mark.parametrize(
    "lead_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 200], ids=["unknown", "malformed", "long"]
)
async def test_get_lead_of_an_unknown_or_malformed_id_is_a_404_envelope(
    api: Api, tenant: Tenant, lead_id: str
) -> None:
    status, body, headers = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)

    assert_not_found_envelope(status, body, headers)


async def test_get_lead_of_another_organization_is_a_404_envelope(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_id = await pool.fetchval(
        "SELECT id FROM leads WHERE organization_id = $1 LIMIT 1", other_tenant.id
    )

    status, body, headers = await api.rest("GET", f"/v1/leads/{foreign_id}", tenant.read_key)

    assert_not_found_envelope(status, body, headers)


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/leads/abc/extra", "/v1/"])
async def test_an_unknown_route_under_v1_is_a_404_envelope(
    api: Api, tenant: Tenant, path: str
) -> None:
    status, body, headers = await api.rest("GET", path, tenant.read_key)

    assert_not_found_envelope(status, body, headers)
