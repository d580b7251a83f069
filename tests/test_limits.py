"""Abuse limits: refused before any SQL, with QUERY_TOO_COMPLEX naming the limit, and every
response showing its cost."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from tests.support import Api, Tenant, error_codes, fewest_statements

ABUSIVE = (
    "{ leads(limit: 100) { nodes { history(limit: 100) { lead { history(limit: 100) "
    "{ id } } } } } }"
)


async def test_a_100000_token_document_is_refused_in_milliseconds_before_any_sql(
    api: Api, tenant: Tenant, statements: StatementCounter
) -> None:
    document = "{ stages { " + "id " * 100_000 + "} }"
    await api.graphql(tenant.read_key, "{ stages { id } }")  # the key, now cached
    started = time.perf_counter()

    status, body = await api.graphql(tenant.read_key, document)

    elapsed = time.perf_counter() - started
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "5000 tokens" in body["errors"][0]["message"]
    assert "data" not in body
    assert status == 200  # application/json: a refused document is still a GraphQL answer
    assert await fewest_statements(statements, lambda: api.graphql(tenant.read_key, document)) == 0
    # Over loopback, including the upload of the 300 KB body: far below what parsing it costs;
    # the bound is loose because a loaded CI machine shares its two cores.
    assert elapsed < 1.0, f"took {elapsed * 1000:.0f} ms"


async def test_a_query_over_the_cost_budget_is_refused_naming_its_cost_and_the_budget(
    api: Api, tenant: Tenant, statements: StatementCounter
) -> None:
    await api.graphql(tenant.read_key, "{ stages { id } }")  # the key, now cached
    _, body = await api.graphql(tenant.read_key, ABUSIVE)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    message = body["errors"][0]["message"]
    cost = body["extensions"]["cost"]
    assert cost["limit"] == 50_000
    assert cost["requested"] > 1_000_000
    assert str(cost["requested"]) in message and "50000" in message
    assert await fewest_statements(statements, lambda: api.graphql(tenant.read_key, ABUSIVE)) == 0


async def test_the_cost_multiplies_a_list_by_its_limit_given_as_a_variable(
    api: Api, tenant: Tenant
) -> None:
    query = "query($n: Int!) { leads(limit: $n) { nodes { id businessName } } }"

    _, small = await api.graphql(tenant.read_key, query, {"n": 2})
    _, large = await api.graphql(tenant.read_key, query, {"n": 100})

    # leads (1) + n × (nodes (1) + id (1) + businessName (1))
    assert small["extensions"]["cost"] == {"requested": 1 + 2 * 3, "limit": 50_000}
    assert large["extensions"]["cost"]["requested"] == 1 + 100 * 3


async def test_a_field_left_at_its_default_limit_costs_that_default(
    api: Api, tenant: Tenant
) -> None:
    _, body = await api.graphql(tenant.read_key, "{ leads { total } }")

    assert body["extensions"]["cost"]["requested"] == 1 + 20 * 1


async def test_every_answered_query_reports_its_cost(api: Api, tenant: Tenant) -> None:
    status, body = await api.graphql(tenant.read_key, "{ stages { id stageKey } }")

    assert status == 200
    assert body["extensions"]["cost"] == {"requested": 3, "limit": 50_000}


async def test_deep_nesting_is_refused_as_too_complex(api: Api, tenant: Tenant) -> None:
    deep = "{ leads { nodes { " + "history { lead { " * 6 + "id" + " } }" * 6 + " } } }"

    _, body = await api.graphql(tenant.read_key, deep)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "depth" in body["errors"][0]["message"]


async def test_too_many_aliases_are_refused_as_too_complex(api: Api, tenant: Tenant) -> None:
    aliased = "{ " + " ".join(f"a{i}: stages {{ id }}" for i in range(31)) + " }"

    _, body = await api.graphql(tenant.read_key, aliased)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]


@pytest.fixture(scope="module")
async def locked_down(settings: Settings) -> AsyncIterator[Api]:
    """A gateway with introspection and suggestions off, and a small budget."""
    strict = dataclasses.replace(
        settings, introspection=False, suggestions=False, max_cost=10, dispatcher_enabled=False
    )
    server = TestServer(create_app(strict), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    await server.close()


async def test_introspection_can_be_turned_off(locked_down: Api, tenant: Tenant) -> None:
    _, body = await locked_down.graphql(tenant.read_key, "{ __schema { types { name } } }")

    assert set(error_codes(body)) == {"VALIDATION_ERROR"}
    assert "introspection" in body["errors"][0]["message"].lower()


async def test_suggestions_can_be_turned_off(locked_down: Api, api: Api, tenant: Tenant) -> None:
    _, helpful = await api.graphql(tenant.read_key, "{ stages { stageKy } }")
    _, silent = await locked_down.graphql(tenant.read_key, "{ stages { stageKy } }")

    assert "Did you mean" in helpful["errors"][0]["message"]
    assert error_codes(silent) == ["VALIDATION_ERROR"]
    assert "Did you mean" not in silent["errors"][0]["message"]


async def test_the_cost_budget_is_a_setting(locked_down: Api, tenant: Tenant) -> None:
    _, body = await locked_down.graphql(tenant.read_key, "{ leads(limit: 20) { total } }")

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["extensions"]["cost"] == {"requested": 21, "limit": 10}
