"""LEADGATE_READ_DATABASE_URL (issue 13 #4): top-level lead reads go to a replica, the rest to
the primary.

The "replica" is a second database on the same server holding a copy of the tenant's rows in
which every business name is prefixed, so a response says which database answered it. Only
what lead reads need is copied: API keys, idempotency and webhook rows stay on the primary,
so a request that authenticates at all proves auth read the primary.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.migrate import migrate
from tests.databases import create_database, drop_database
from tests.support import Api, Tenant, create_lead, make_tenant, ok

REPLICA_PREFIX: Final = "Replica "
# Tenant tables the replica does not need: lead reads never touch them.
NOT_COPIED: Final = frozenset(
    {"api_keys", "idempotency_keys", "webhook_endpoints", "webhook_deliveries", "webhook_attempts"}
)
_TENANT_TABLES: Final = """
SELECT c.table_name
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND c.column_name = 'organization_id'
  AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name
"""
# Generated columns cannot be copied in: the replica computes them again.
_COPIED_COLUMNS: Final = """
SELECT column_name
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'
ORDER BY ordinal_position
"""
_MARK_REPLICA: Final = """
UPDATE leads SET business_name = $2 || business_name WHERE organization_id = $1
"""

LEADS: Final = "{ leads(limit: 100) { total nodes { id businessName } } }"
CONNECTION: Final = "{ leadsConnection(first: 100) { edges { node { id businessName } } } }"
LEAD: Final = "query($id: ID!) { lead(id: $id) { id businessName } }"
MOVE: Final = """
mutation($id: ID!, $stage: ID!) {
  moveLead(id: $id, stageId: $stage) { id businessName history { type } }
}
"""


async def _copy_tenant(primary: asyncpg.Pool, replica: asyncpg.Connection, org: UUID) -> None:
    # Row order between tables does not matter with triggers (foreign keys) off.
    await replica.execute("SET session_replication_role = replica")
    async with primary.acquire() as conn:
        tables = ["organizations"] + [
            t for t in await conn.fetchval(f"SELECT array({_TENANT_TABLES})") if t not in NOT_COPIED
        ]
        for table in tables:
            key = "id" if table == "organizations" else "organization_id"
            columns = [r["column_name"] for r in await conn.fetch(_COPIED_COLUMNS, table)]
            listed = ", ".join(f'"{c}"' for c in columns)
            # COPY's text format: the rows move as PostgreSQL wrote them, no codecs between.
            rows = io.BytesIO()
            # Names from the catalog, never from input.
            copied = f'SELECT {listed} FROM "{table}" WHERE "{key}" = $1'  # noqa: S608
            await conn.copy_from_query(copied, org, output=rows)
            rows.seek(0)
            await replica.copy_to_table(table, source=rows, columns=columns)
    await replica.execute(_MARK_REPLICA, org, REPLICA_PREFIX)


@pytest.fixture(scope="module")
async def replica_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, "leadgate_replica")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="module")
async def replica_api(
    settings: Settings, pool: asyncpg.Pool, replica_url: str
) -> AsyncIterator[Api]:
    server = TestServer(
        create_app(dataclasses.replace(settings, read_database_url=replica_url)),
        host="127.0.0.1",
    )
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    await server.close()


@pytest.fixture
async def replicated(pool: asyncpg.Pool, replica_url: str) -> Tenant:
    """A tenant with 5 leads on the primary, copied to the replica with names prefixed."""
    tenant = await make_tenant(pool, leads=5)
    conn = await asyncpg.connect(replica_url)
    try:
        await _copy_tenant(pool, conn, tenant.id)
    finally:
        await conn.close()
    return tenant


async def _first_lead(api: Api, tenant: Tenant) -> dict[str, Any]:
    data = await ok(api, tenant.read_key, LEADS)
    lead: dict[str, Any] = data["leads"]["nodes"][0]
    return lead


async def test_the_leads_list_reads_the_replica(replica_api: Api, replicated: Tenant) -> None:
    data = await ok(replica_api, replicated.read_key, LEADS)

    names = [node["businessName"] for node in data["leads"]["nodes"]]
    assert len(names) == data["leads"]["total"] == 5
    assert all(name.startswith(REPLICA_PREFIX) for name in names), names


async def test_the_leads_connection_reads_the_replica(replica_api: Api, replicated: Tenant) -> None:
    data = await ok(replica_api, replicated.read_key, CONNECTION)

    names = [edge["node"]["businessName"] for edge in data["leadsConnection"]["edges"]]
    assert len(names) == 5
    assert all(name.startswith(REPLICA_PREFIX) for name in names), names


async def test_a_lead_by_id_reads_the_replica(replica_api: Api, replicated: Tenant) -> None:
    lead = await _first_lead(replica_api, replicated)

    data = await ok(replica_api, replicated.read_key, LEAD, {"id": lead["id"]})

    assert data["lead"]["businessName"].startswith(REPLICA_PREFIX)


async def test_rest_list_and_get_read_the_replica(replica_api: Api, replicated: Tenant) -> None:
    status, listed, _ = await replica_api.rest("GET", "/v1/leads", replicated.read_key)
    assert status == 200, listed
    first = listed["data"][0]

    status, got, _ = await replica_api.rest("GET", f"/v1/leads/{first['id']}", replicated.read_key)

    assert status == 200, got
    names = [doc["attributes"]["businessName"] for doc in listed["data"]]
    assert len(names) == 5 and all(name.startswith(REPLICA_PREFIX) for name in names), names
    assert got["data"]["attributes"]["businessName"].startswith(REPLICA_PREFIX)


async def test_a_write_and_its_payload_use_the_primary(
    replica_api: Api, replicated: Tenant, pool: asyncpg.Pool
) -> None:
    # A lead the replica has never seen: the write and its payload can only find it on the
    # primary (the payload's history through the loaders, which read the primary).
    lead_id = await create_lead(replica_api, replicated, "Primary Bakery")
    stage = str(replicated.stage_ids[1])

    data = await ok(replica_api, replicated.write_key, MOVE, {"id": lead_id, "stage": stage})

    moved = data["moveLead"]
    assert moved["businessName"] == "Primary Bakery"
    assert [event["type"] for event in moved["history"]] == ["lead.status_changed", "lead.created"]
    on_primary = await pool.fetchval("SELECT stage_id FROM leads WHERE id = $1", UUID(lead_id))
    assert str(on_primary) == stage


async def test_a_lead_written_on_the_primary_is_not_read_back_from_the_replica(
    replica_api: Api, replicated: Tenant
) -> None:
    created = await ok(
        replica_api,
        replicated.write_key,
        'mutation { createLead(input: {businessName: "Fresh Bakery"}) { id businessName } }',
    )
    lead_id = created["createLead"]["id"]
    assert created["createLead"]["businessName"] == "Fresh Bakery"

    status, body = await replica_api.graphql(replicated.read_key, LEAD, {"id": lead_id})

    # Nothing replicates in this test: the replica has never heard of it.
    assert status == 200
    assert body["data"] is None or body["data"]["lead"] is None, body


FEED: Final = """
{ events(types: ["lead.created"], limit: 100) { type lead { id businessName } } }
"""


async def test_the_events_feed_reads_the_primary(replica_api: Api, replicated: Tenant) -> None:
    lead_id = await create_lead(replica_api, replicated, "Feed Bakery")

    data = await ok(replica_api, replicated.read_key, FEED)

    # The new lead's event, and the lead itself, exist on the primary only.
    leads = {event["lead"]["id"]: event["lead"]["businessName"] for event in data["events"]}
    assert leads[lead_id] == "Feed Bakery"


async def test_the_read_pool_is_measured(replica_api: Api, replicated: Tenant) -> None:
    await ok(replica_api, replicated.read_key, LEADS)

    async with replica_api.session.get(f"{replica_api.base}/metrics") as response:
        text = await response.text()

    assert response.status == 200
    for name in (
        "leadgate_db_pool_size",
        "leadgate_db_read_pool_size",
        "leadgate_db_read_pool_idle",
    ):
        assert f"\n{name} " in text, name
    assert "\nleadgate_db_read_pool_acquire_wait_seconds_count " in text
