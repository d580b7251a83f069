"""The round trips of a create (issue 14 #5): BEGIN; one statement that claims the idempotency
key, queues behind the creates of the same email or phone, finds the likely duplicates and
inserts the lead; one that records the event with its webhook deliveries and NOTIFY and stores
the response under the key; COMMIT. The raw-SQL floor of the same transaction sends one more
(bench/floor.py: BEGIN, claim, insert, event, COMMIT). BEGIN and COMMIT count as statements."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from leadgate.store import lead_writes
from tests.support import Api, Tenant, fewest_statements, make_tenant

# The bench's createLead (bench/workloads.py): a fresh key each time, one email for all.
CREATE: Final = """
mutation($input: CreateLeadInput!, $key: String) {
  createLead(input: $input, idempotencyKey: $key) { id businessName stage { stageKey } }
}
"""
INPUT: Final = {
    "businessName": "Round Trip Bakery LLC",
    "contactFirstName": "Jane",
    "contactLastName": "Doe",
    "email": "jane.doe@round-trip.example",
    "monthlyRevenue": "85000",
    "source": "API",
    "priority": "HIGH",
    "tags": ["bench"],
}
CREATE_STATEMENTS: Final = 4

_keys = itertools.count()


@pytest.fixture(scope="module")
async def quiet(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestServer]:
    """A gateway of its own without a webhook dispatcher: the session's wakes on each event a
    create announces, and its query would count with the create's."""
    app = create_app(dataclasses.replace(settings, dispatcher_enabled=False))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture(scope="module")
async def api(quiet: TestServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(quiet.make_url("")).rstrip("/"))


@pytest.fixture(scope="module")
def statements(quiet: TestServer) -> StatementCounter:
    return quiet.app[keys.STATEMENTS]


@pytest.fixture
async def org(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool)


def fresh_key() -> str:
    return f"round-trip-{uuid.uuid4().hex[:8]}-{next(_keys)}"


async def graphql_create(api: Api, org: Tenant, input_: dict[str, Any], key: str | None) -> Any:
    status, body = await api.graphql(org.write_key, CREATE, {"input": input_, "key": key})
    assert status == 200 and "errors" not in body, body
    return body


async def test_a_create_with_a_key_and_an_email_others_share_costs_four_statements(
    api: Api, statements: StatementCounter, org: Tenant
) -> None:
    await graphql_create(api, org, INPUT, fresh_key())
    answers = []

    async def send() -> None:
        answers.append(await graphql_create(api, org, INPUT, fresh_key()))

    cost = await fewest_statements(statements, send)

    assert all(body["extensions"]["duplicates"] for body in answers)  # the search ran
    assert cost == CREATE_STATEMENTS


async def test_a_create_without_a_key_or_an_email_costs_four_statements(
    api: Api, statements: StatementCounter, org: Tenant
) -> None:
    bare = {"businessName": "Round Trip Bakery LLC"}

    async def send() -> None:
        await graphql_create(api, org, bare, None)

    assert await fewest_statements(statements, send) == CREATE_STATEMENTS


async def test_a_rest_create_with_a_key_costs_four_statements(
    api: Api, statements: StatementCounter, org: Tenant
) -> None:
    body = {"businessName": "Round Trip Bakery LLC", "email": INPUT["email"], "source": "api"}

    async def send() -> None:
        headers = {"Idempotency-Key": fresh_key()}
        status, answer, _ = await api.rest(
            "POST", "/v1/leads", org.write_key, json=body, headers=headers
        )
        assert status == 201, answer

    assert await fewest_statements(statements, send) == CREATE_STATEMENTS


async def test_a_replayed_create_reads_what_it_stored_and_the_lead_in_five_statements(
    api: Api, statements: StatementCounter, org: Tenant
) -> None:
    key = fresh_key()
    first = await graphql_create(api, org, INPUT, key)

    async def send() -> None:
        replay = await graphql_create(api, org, INPUT, key)
        assert replay["extensions"]["idempotentReplayed"] is True
        assert replay["data"] == first["data"]

    # BEGIN, the create statement (its claim refused), the stored response, the lead, COMMIT.
    assert await fewest_statements(statements, send) == 5


async def test_a_create_naming_a_stage_checks_it_after_the_claim_in_six_statements(
    api: Api, statements: StatementCounter, org: Tenant
) -> None:
    staged = {**INPUT, "stageId": str(org.stage_ids[1])}

    async def send() -> None:
        await graphql_create(api, org, staged, fresh_key())

    # BEGIN, the claim, the references, the create statement, the event, COMMIT: the claim
    # comes first so that a retry is answered its replay even if the stage is gone since.
    assert await fewest_statements(statements, send) == 6


async def test_a_creates_statements_are_planned_once_per_connection_not_on_every_create(
    api: Api, quiet: TestServer, org: Tenant
) -> None:
    for _ in range(12):
        await graphql_create(api, org, INPUT, fresh_key())

    # The pool hands out its most recently used connection: the one that ran them. Its first
    # five runs of a statement are planned for their values, then the generic plan serves.
    async with quiet.app[keys.POOL].acquire() as conn:
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            lead_writes.CREATE_LEAD,
        )
    assert plans is not None
    assert plans["generic_plans"] > plans["custom_plans"]
