"""A database that times out, or drops the connection, is a retryable SERVICE_UNAVAILABLE
(503, Retry-After) on both APIs: never INTERNAL, and never a query run twice."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from tests.support import Api, Tenant, bearer, error_codes, header

LIST = "{ leads(limit: 5) { total nodes { id businessName } } }"


@pytest.fixture(scope="module")
async def impatient(settings: Settings) -> AsyncIterator[tuple[Api, TestServer]]:
    """A gateway whose statements give up after 300 ms (and never wait on lock_timeout)."""
    quick = dataclasses.replace(
        settings, statement_timeout_ms=300, lock_timeout_ms=0, dispatcher_enabled=False
    )
    server = TestServer(create_app(quick), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/")), server
    await server.close()


@pytest.fixture
async def leads_locked(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """Every read of leads waits while this transaction holds the table."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")
        try:
            yield conn
        finally:
            await transaction.rollback()


async def warm(api: Api, tenant: Tenant) -> None:
    """Authenticate once, so the key is cached and needs no database during the test."""
    status, _ = await api.graphql(tenant.read_key, "{ stages { id } }")
    assert status == 200


async def test_a_statement_timeout_is_a_503_service_unavailable_with_retry_after(
    impatient: tuple[Api, TestServer], tenant: Tenant, leads_locked: asyncpg.Connection
) -> None:
    api, _ = impatient
    await warm(api, tenant)
    async with api.session.post(
        f"{api.base}/graphql", json={"query": LIST}, headers=bearer(tenant.read_key)
    ) as resp:
        body = await resp.json()
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
    assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
    assert "data" not in body


async def test_a_compiled_plan_failing_on_the_database_does_not_run_the_query_again(
    impatient: tuple[Api, TestServer], tenant: Tenant, leads_locked: asyncpg.Connection
) -> None:
    api, server = impatient
    await warm(api, tenant)
    counter = server.app[keys.STATEMENTS]
    before = counter.total

    status, body = await api.graphql(tenant.read_key, LIST)

    assert (status, error_codes(body)) == (503, ["SERVICE_UNAVAILABLE"])
    assert counter.total - before == 1


async def test_rest_answers_a_statement_timeout_with_503_in_its_envelope(
    impatient: tuple[Api, TestServer], tenant: Tenant, leads_locked: asyncpg.Connection
) -> None:
    api, _ = impatient
    await warm(api, tenant)

    status, body, headers = await api.rest("GET", "/v1/leads?limit=5", tenant.read_key)

    assert status == 503
    assert header(headers, "Retry-After") == "1"
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["meta"]["requestId"] == header(headers, "X-Request-Id")


async def test_a_connection_terminated_by_an_administrator_is_service_unavailable(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, leads_locked: asyncpg.Connection
) -> None:
    await warm(api, tenant)
    request = asyncio.create_task(api.graphql(tenant.read_key, LIST))
    async with pool.acquire() as conn:
        # The gateway's statement, waiting on the lock: terminated as an operator would.
        for _ in range(100):
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()"
            )
            if killed:
                break
            await asyncio.sleep(0.02)
    status, body = await request

    assert killed == 1
    assert (status, error_codes(body)) == (503, ["SERVICE_UNAVAILABLE"])


async def test_the_gateway_answers_normally_once_the_database_is_back(
    impatient: tuple[Api, TestServer], tenant: Tenant
) -> None:
    api, _ = impatient

    status, body = await api.graphql(tenant.read_key, LIST)

    assert status == 200
    assert body["data"]["leads"]["total"] == 30
