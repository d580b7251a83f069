"""The Python SDK (leadgate.client) against the live test gateway: leads and events through
both clients, typed models and errors, and every lead by keyset cursors (REST and GraphQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Final, TypeVar

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.client import (
    AsyncClient,
    Client,
    Forbidden,
    Lead,
    LeadCreate,
    LeadPriority,
    LeadSource,
    LeadUpdate,
    NotFound,
    Unauthenticated,
    ValidationError,
)
from tests.support import REST_ATTRIBUTES, Api, Tenant

T = TypeVar("T")

LEAD: Final = "query($id: ID!) { lead(id: $id) { id businessName } }"
CONNECTION: Final = """
query($after: String) {
  leadsConnection(first: 7, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id } }
  }
}
"""


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def client(server: TestServer, tenant: Tenant) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url(server), api_key=tenant.write_key) as client:
        yield client


async def blocking(call: Callable[[], T]) -> T:
    """Run sync-client code off the event loop (the test server runs on this loop)."""
    return await asyncio.to_thread(call)


async def all_lead_ids(pool: asyncpg.Pool, tenant: Tenant) -> set[str]:
    rows = await pool.fetch("SELECT id FROM leads WHERE organization_id = $1", tenant.id)
    return {str(r["id"]) for r in rows}


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def model_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Lead)} - {"id"}


def test_the_lead_model_has_every_rest_attribute_of_the_spec() -> None:
    # The REST shape's stage is one object; the model keeps it whole as a Stage.
    assert {snake(a) for a in REST_ATTRIBUTES} <= model_fields()


async def test_the_lead_model_has_every_attribute_the_gateway_sends(
    api: Api, client: AsyncClient, tenant: Tenant
) -> None:
    lead = await client.leads.create(LeadCreate(business_name="Every Attribute"))
    status, body, _ = await api.rest("GET", f"/v1/leads/{lead.id}", tenant.read_key)
    assert status == 200
    assert {snake(a) for a in body["data"]["attributes"]} <= model_fields()


async def test_create_get_update_move_assign_through_the_async_client(
    client: AsyncClient, tenant: Tenant
) -> None:
    created = await client.leads.create(
        LeadCreate(
            business_name="SDK Bakery",
            email="Jane@SDK-Bakery.example",
            monthly_revenue="85000",
            source=LeadSource.API,
            priority=LeadPriority.HIGH,
            tags=("bread", "sdk"),
        )
    )
    assert (created.business_name, created.source, created.priority) == (
        "SDK Bakery",
        LeadSource.API,
        LeadPriority.HIGH,
    )
    assert created.tags == ("bread", "sdk") and created.monthly_revenue == "85000"
    assert isinstance(created.created_at, datetime) and created.created_at.tzinfo is not None
    assert created.stage.id == str(tenant.stage_ids[0])

    fetched = await client.leads.get(created.id)
    assert fetched == created

    updated = await client.leads.update(created.id, LeadUpdate(industry="Food", email=None))
    assert (updated.industry, updated.email, updated.business_name) == ("Food", None, "SDK Bakery")

    moved = await client.leads.move(created.id, str(tenant.stage_ids[2]))
    assert moved.stage.id == str(tenant.stage_ids[2])
    assert moved.stage_changed_at >= created.stage_changed_at

    assigned = await client.leads.assign(created.id, str(tenant.advisor_ids[0]))
    assert assigned.primary_advisor_id == str(tenant.advisor_ids[0])
    assert assigned.primary_advisor_name is not None
    unassigned = await client.leads.assign(created.id, None)
    assert unassigned.primary_advisor_id is None


async def test_create_get_update_move_through_the_sync_client(
    server: TestServer, tenant: Tenant
) -> None:
    def scenario() -> tuple[Lead, Lead, Lead]:
        with Client(base_url(server), api_key=tenant.write_key) as client:
            created = client.leads.create({"businessName": "Sync Bakery", "priority": "urgent"})
            updated = client.leads.update(created.id, {"phone": "555-0100"})
            moved = client.leads.move(created.id, str(tenant.stage_ids[1]))
            return created, updated, client.leads.get(moved.id)

    created, updated, fetched = await blocking(scenario)
    assert created.priority == LeadPriority.URGENT and updated.phone == "555-0100"
    assert fetched.stage.id == str(tenant.stage_ids[1]) and fetched.phone == "555-0100"


async def test_an_unknown_lead_raises_not_found_with_the_request_id(client: AsyncClient) -> None:
    with pytest.raises(NotFound) as raised:
        await client.leads.get(str(uuid.uuid4()))
    assert (raised.value.code, raised.value.status) == ("NOT_FOUND", 404)
    assert raised.value.request_id


async def test_invalid_input_raises_a_validation_error_naming_each_field(
    client: AsyncClient,
) -> None:
    with pytest.raises(ValidationError) as raised:
        await client.leads.create(LeadCreate(email="not an email", monthly_revenue="-1"))
    assert raised.value.status == 422
    assert {f.field for f in raised.value.fields} == {"email", "monthlyRevenue"}


async def test_a_read_only_key_raises_forbidden_on_a_write(
    server: TestServer, tenant: Tenant
) -> None:
    async with AsyncClient(base_url(server), api_key=tenant.read_key) as client:
        with pytest.raises(Forbidden):
            await client.leads.create(LeadCreate(business_name="Nope"))


async def test_an_unknown_key_raises_unauthenticated(server: TestServer) -> None:
    async with AsyncClient(base_url(server), api_key="lw_live_" + "x" * 32) as client:
        with pytest.raises(Unauthenticated) as raised:
            await client.leads.list()
    assert raised.value.status == 401


async def test_iterating_leads_follows_cursors_to_every_lead_once(
    client: AsyncClient, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    seen = [lead.id async for lead in client.leads.iterate(page_size=7)]
    assert len(seen) == len(set(seen))
    assert set(seen) == await all_lead_ids(pool, tenant)


async def test_a_scan_while_leads_are_created_sees_every_lead_that_existed_once(
    client: AsyncClient, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    before = await all_lead_ids(pool, tenant)
    seen: list[str] = []
    async for lead in client.leads.iterate(page_size=5):
        seen.append(lead.id)
        if len(seen) % 5 == 0:  # a new lead at the head of the order after every page
            await client.leads.create(LeadCreate(business_name=f"During scan {len(seen)}"))
    assert len(seen) == len(set(seen))
    assert set(seen) == before


async def test_the_sync_client_iterates_every_lead(
    server: TestServer, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    def scan() -> list[str]:
        with Client(base_url(server), api_key=tenant.read_key) as client:
            return [lead.id for lead in client.leads.iterate(page_size=8)]

    seen = await blocking(scan)
    assert sorted(seen) == sorted(await all_lead_ids(pool, tenant))


async def test_updated_since_iterates_exactly_the_changed_leads(
    client: AsyncClient, tenant: Tenant
) -> None:
    first = await client.leads.list(limit=3)
    since = max(lead.updated_at for lead in first.leads)
    changed = [first.leads[0].id, first.leads[2].id]
    for lead_id in changed:
        await client.leads.update(lead_id, LeadUpdate(industry=f"Changed {uuid.uuid4()}"))
    seen = [lead.id async for lead in client.leads.iterate(updated_since=since, page_size=1)]
    assert set(changed) <= set(seen)
    assert all(lead.updated_at >= since for lead in await _leads(client, seen))


async def _leads(client: AsyncClient, ids: list[str]) -> list[Lead]:
    return [await client.leads.get(i) for i in ids]


async def test_a_page_by_number_carries_the_cursor_of_the_next(client: AsyncClient) -> None:
    page = await client.leads.list(page=1, limit=10)
    assert (page.page, page.limit, page.total, page.has_more) == (1, 10, 30, True)
    assert page.next_cursor is not None and page.request_id
    following = await client.leads.list(cursor=page.next_cursor, limit=10)
    assert following.page is None
    assert not {lead.id for lead in page.leads} & {lead.id for lead in following.leads}


async def test_iterate_connection_walks_leads_connection_to_the_end(
    client: AsyncClient, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    nodes = [n async for n in client.iterate_connection(CONNECTION, connection="leadsConnection")]
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)) and set(ids) == await all_lead_ids(pool, tenant)


async def test_raw_graphql_returns_the_data(client: AsyncClient) -> None:
    lead = await client.leads.create(LeadCreate(business_name="Raw"))
    data = await client.graphql(LEAD, {"id": lead.id})
    assert data == {"lead": {"id": lead.id, "businessName": "Raw"}}


async def test_a_graphql_error_raises_its_code_with_the_partial_data(client: AsyncClient) -> None:
    with pytest.raises(NotFound) as raised:
        await client.graphql(LEAD, {"id": str(uuid.uuid4())})
    assert raised.value.data == {"lead": None}
    assert raised.value.request_id and len(raised.value.errors) == 1


async def test_stages_come_in_pipeline_order(client: AsyncClient, tenant: Tenant) -> None:
    stages = await client.stages()
    assert [s.id for s in stages] == [str(i) for i in tenant.stage_ids]
    assert [s.position for s in stages] == sorted(s.position or 0 for s in stages)


async def test_events_list_after_a_cursor(client: AsyncClient) -> None:
    created = await client.leads.create(LeadCreate(business_name="Evented"))
    start = (await client.events.list(limit=1000)).next_after
    await client.leads.move(created.id, (await client.stages())[1].id)
    page = await client.events.list(after=start)
    assert [(e.type, e.lead_id) for e in page.events] == [("lead.status_changed", created.id)]
    event = page.events[0]
    assert event.lead is not None and event.lead.id == created.id
    assert event.actor is not None and event.actor.type == "api_key"
    assert page.next_after == event.id
    assert [e.id async for e in client.events.iterate(after=start, page_size=1)] == [event.id]


async def test_the_sync_client_refuses_to_block_a_running_event_loop(server: TestServer) -> None:
    client = Client(base_url(server), api_key="lw_live_unused")
    try:
        with pytest.raises(RuntimeError, match="AsyncClient"):
            client.stages()
    finally:
        client.close()  # closing works from a running loop: it needs only the client's own
