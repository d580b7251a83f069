"""The maintained lead total (sql/migrations/0002) always equals a count of the leads."""

from __future__ import annotations

import asyncio

import asyncpg

from leadgate.services import demo_data
from tests.support import Api, Tenant

TOTAL = "{ leads(limit: 1) { total } }"
CREATE = 'mutation { createLead(input: { businessName: "Counted Co" }) { id } }'


async def counted(pool: asyncpg.Pool, tenant: Tenant) -> int:
    async with pool.acquire() as conn:
        total: int = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1", tenant.id
        )
    return total


async def test_the_unfiltered_total_follows_bulk_and_concurrent_creates(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await demo_data.add_demo_leads(pool, tenant.id, 250, seed=3)
    await asyncio.gather(*(api.graphql(tenant.write_key, CREATE) for _ in range(12)))

    _, body = await api.graphql(tenant.read_key, TOTAL)

    assert body["data"]["leads"]["total"] == await counted(pool, tenant) == 30 + 250 + 12


async def test_a_filtered_total_is_counted(api: Api, pool: asyncpg.Pool, tenant: Tenant) -> None:
    await api.graphql(tenant.write_key, CREATE)

    _, body = await api.graphql(tenant.read_key, '{ leads(search: "counted") { total } }')

    assert body["data"]["leads"]["total"] == 1


async def test_deleting_leads_lowers_the_total(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM leads WHERE id IN (SELECT id FROM leads WHERE organization_id = $1 "
            "LIMIT 7)",
            tenant.id,
        )

    _, body = await api.graphql(tenant.read_key, TOTAL)

    assert body["data"]["leads"]["total"] == await counted(pool, tenant) == 23
