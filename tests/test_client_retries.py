"""The SDK's retries over real HTTP: a proxy in front of the gateway answers scripted 503, 429
and 409 IDEMPOTENCY_KEY_IN_USE refusals (some after the write reached the gateway), and the
SDK retries with the same idempotency key, honours Retry-After and stops when it should."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.client import (
    AsyncClient,
    Client,
    LeadCreate,
    LeadUpdate,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
)
from leadgate.client.retry import parse_retry_after
from tests.sdk_proxy import Fault, Proxy
from tests.support import Tenant

QUICK: Final = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
CREATE: Final = 'mutation { createLead(input: {businessName: "GraphQL retry"}) { id } }'


@pytest.fixture
async def proxy(server: TestServer) -> AsyncIterator[Proxy]:
    async with Proxy(str(server.make_url("")).rstrip("/")) as proxy:
        yield proxy


@pytest.fixture
async def client(proxy: Proxy, tenant: Tenant) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(proxy.url, api_key=tenant.write_key, retry=QUICK) as client:
        yield client


async def leads_named(pool: asyncpg.Pool, tenant: Tenant, name: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM leads WHERE organization_id = $1 AND business_name = $2",
        tenant.id,
        name,
    )
    return count


async def created_events(pool: asyncpg.Pool, tenant: Tenant, lead_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM lead_events WHERE organization_id = $1 AND lead_id = $2"
        " AND type = 'lead.created'",
        tenant.id,
        lead_id,
    )
    return count


async def test_a_write_whose_answer_was_lost_is_retried_with_its_key_and_happens_once(
    client: AsyncClient, proxy: Proxy, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    proxy.faults = [Fault(503, forward=True), Fault(503, forward=True)]
    lead = await client.leads.create(LeadCreate(business_name="Lost Answer Bakery"))
    attempts = proxy.seen_on("/v1/leads")
    assert [a.answered for a in attempts] == [503, 503, 201]
    keys = {a.headers["Idempotency-Key"] for a in attempts}
    assert len(keys) == 1 and len(keys.pop()) == 36  # one uuid4 for the whole call
    assert await leads_named(pool, tenant, "Lost Answer Bakery") == 1
    assert await created_events(pool, tenant, lead.id) == 1


async def test_each_call_gets_its_own_idempotency_key(client: AsyncClient, proxy: Proxy) -> None:
    await client.leads.create(LeadCreate(business_name="One"))
    await client.leads.create(LeadCreate(business_name="One"))
    keys = [a.headers["Idempotency-Key"] for a in proxy.seen_on("/v1/leads")]
    assert len(keys) == 2 and keys[0] != keys[1]


async def test_a_given_idempotency_key_is_sent_on_every_attempt(
    client: AsyncClient, proxy: Proxy
) -> None:
    lead = await client.leads.create(LeadCreate(business_name="Keyed"))
    proxy.faults = [Fault(409, "IDEMPOTENCY_KEY_IN_USE")]
    await client.leads.update(lead.id, LeadUpdate(industry="Retail"), idempotency_key="mine-1")
    attempts = proxy.seen_on(f"/v1/leads/{lead.id}")
    assert [(a.answered, a.headers["Idempotency-Key"]) for a in attempts] == [
        (409, "mine-1"),
        (200, "mine-1"),
    ]


async def test_a_429_is_retried_no_sooner_than_its_retry_after(
    client: AsyncClient, proxy: Proxy
) -> None:
    proxy.faults = [Fault(429, "RATE_LIMITED", retry_after="1")]
    await client.leads.list(limit=1)
    first, second = proxy.seen_on("/v1/leads")
    assert (first.answered, second.answered) == (429, 200)
    assert second.arrived - first.arrived >= 1.0


async def test_attempts_are_bounded_and_the_last_error_is_raised(
    client: AsyncClient, proxy: Proxy
) -> None:
    proxy.faults = [Fault(503)] * 6
    with pytest.raises(ServiceUnavailable) as raised:
        await client.leads.move("00000000-0000-4000-8000-000000000000", "x")
    assert raised.value.status == 503
    assert len(proxy.seen) == QUICK.max_attempts


async def test_a_retry_after_beyond_the_bound_raises_at_once(
    client: AsyncClient, proxy: Proxy
) -> None:
    proxy.faults = [Fault(429, "RATE_LIMITED", retry_after="120")]
    with pytest.raises(RateLimited) as raised:
        await client.leads.list()
    assert raised.value.retry_after == 120.0
    assert len(proxy.seen) == 1


async def test_the_sync_client_retries_a_lost_write_with_the_same_key(
    proxy: Proxy, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    def create() -> str:
        with Client(proxy.url, api_key=tenant.write_key, retry=QUICK) as client:
            return client.leads.create({"businessName": "Sync Lost Answer"}).id

    proxy.faults = [Fault(503, forward=True)]
    lead_id = await asyncio.to_thread(create)
    attempts = proxy.seen_on("/v1/leads")
    assert len({a.headers["Idempotency-Key"] for a in attempts}) == 1 and len(attempts) == 2
    assert await leads_named(pool, tenant, "Sync Lost Answer") == 1
    assert await created_events(pool, tenant, lead_id) == 1


async def test_a_graphql_mutation_without_a_key_is_not_retried_after_a_503(
    client: AsyncClient, proxy: Proxy
) -> None:
    proxy.faults = [Fault(503)]
    with pytest.raises(ServiceUnavailable):
        await client.graphql(CREATE)
    assert len(proxy.seen) == 1


async def test_a_graphql_mutation_with_a_key_is_retried_and_writes_once(
    client: AsyncClient, proxy: Proxy, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    proxy.faults = [Fault(503, forward=True)]
    data = await client.graphql(CREATE, idempotency_key="graphql-retry-1")
    assert [a.answered for a in proxy.seen] == [503, 200]
    assert await created_events(pool, tenant, data["createLead"]["id"]) == 1


async def test_a_graphql_query_is_retried_after_a_429(client: AsyncClient, proxy: Proxy) -> None:
    proxy.faults = [Fault(429, "RATE_LIMITED")]
    stages = await client.stages()
    assert len(stages) == 6 and [a.answered for a in proxy.seen] == [429, 200]


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=3.0)
    rng = random.Random(11)  # noqa: S311 - seeded, for a reproducible spread
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        waits = [policy.delay(attempt, None, rng=rng) for _ in range(200)]
        assert all(w is not None and 0.0 <= w <= ceiling for w in waits)
        assert max(w or 0.0 for w in waits) > ceiling * 0.9  # spread over the whole range
    assert policy.delay(10, None) is None


def test_a_retry_after_is_a_floor_under_the_jitter() -> None:
    policy = RetryPolicy(base_delay=0.01)
    assert policy.delay(1, 2.0) == 2.0


def test_retry_after_as_an_http_date_is_the_seconds_until_then() -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None
