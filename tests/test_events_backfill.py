"""The events backfill: `events(after, types, limit)` over GraphQL and `GET /v1/events`, an
organization's own events after a cursor in id order, filtered by type, paged with a limit, and
a bad cursor, limit or type refused as a validation error."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.support import (
    EVENTS,
    Api,
    Tenant,
    create_lead,
    error_codes,
    history,
    make_tenant,
    move_lead,
    ok,
)


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """A fresh organization without leads: its only events are the ones a test makes."""
    return await make_tenant(pool, name="Backfill Lending")


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, name="Other Backfill Lending")


# --- helpers --------------------------------------------------------------------------------


async def make_events(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    """Two leads created and one moved: the tenant's three events, in id order."""
    first = await create_lead(api, tenant, "Alpha Ltd")
    second = await create_lead(api, tenant, "Beta Ltd")
    await move_lead(api, tenant, first, 3)
    found = await history(api, tenant, first) + await history(api, tenant, second)
    return sorted(found, key=lambda e: int(e["id"]))


# --- GraphQL --------------------------------------------------------------------------------


async def test_events_query_returns_the_organizations_events_after_the_cursor_in_id_order(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create_lead(api, other_tenant, "Interleaved Other")
    made = await make_events(api, tenant)
    await create_lead(api, other_tenant, "Later Other")

    everything = (await ok(api, tenant.read_key, EVENTS))["events"]
    after_first = (await ok(api, tenant.read_key, EVENTS, {"after": made[0]["id"]}))["events"]

    assert [e["id"] for e in everything] == [e["id"] for e in made]
    assert [e["type"] for e in everything] == [
        "lead.created",
        "lead.created",
        "lead.status_changed",
    ]
    assert [e["id"] for e in after_first] == [e["id"] for e in made[1:]]
    assert everything[2]["data"]["stage"]["stageKey"] == "application"


async def test_events_query_filters_by_type_and_limits(api: Api, tenant: Tenant) -> None:
    made = await make_events(api, tenant)

    moves = (await ok(api, tenant.read_key, EVENTS, {"types": ["lead.status_changed"]}))["events"]
    first_two = (await ok(api, tenant.read_key, EVENTS, {"limit": 2}))["events"]

    assert [e["id"] for e in moves] == [made[2]["id"]]
    assert [e["id"] for e in first_two] == [e["id"] for e in made[:2]]


# --- REST -----------------------------------------------------------------------------------


async def test_rest_events_return_the_organizations_events_after_the_cursor(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = await make_events(api, tenant)
    await create_lead(api, other_tenant, "Later Other")

    status, body, _ = await api.rest("GET", f"/v1/events?after={made[0]['id']}", tenant.read_key)

    assert status == 200, body
    assert [e["id"] for e in body["data"]] == [e["id"] for e in made[1:]]
    assert body["meta"]["nextAfter"] == made[2]["id"]
    created = body["data"][0]
    assert created["type"] == "lead.created"
    assert created["sequence"] == 1
    assert created["data"]["lead"]["attributes"]["businessName"] == "Beta Ltd"


async def test_rest_events_filter_by_type_and_page_with_limit(api: Api, tenant: Tenant) -> None:
    made = await make_events(api, tenant)

    _, moves, _ = await api.rest("GET", "/v1/events?types=lead.status_changed", tenant.read_key)
    _, page, _ = await api.rest("GET", "/v1/events?limit=2", tenant.read_key)
    _, rest, _ = await api.rest(
        "GET", f"/v1/events?limit=2&after={page['meta']['nextAfter']}", tenant.read_key
    )

    assert [e["id"] for e in moves["data"]] == [made[2]["id"]]
    assert [e["id"] for e in page["data"]] == [e["id"] for e in made[:2]]
    assert [e["id"] for e in rest["data"]] == [made[2]["id"]]


@pytest.mark.parametrize(
    "variables",
    [{"after": "abc"}, {"after": "-1"}, {"limit": 0}, {"limit": 1001}, {"types": ["lead.nope"]}],
    ids=["after-text", "after-negative", "limit-0", "limit-1001", "unknown-type"],
)
async def test_a_bad_events_cursor_or_limit_is_a_validation_error(
    api: Api, tenant: Tenant, variables: dict[str, Any]
) -> None:
    _, body = await api.graphql(tenant.read_key, EVENTS, variables)

    assert error_codes(body) == ["VALIDATION_ERROR"], body


@pytest.mark.parametrize(
    "query",
    ["after=abc", "after=-1", "limit=0", "limit=1001", "limit=ten", "types=lead.nope"],
)
async def test_a_bad_rest_events_cursor_or_limit_is_a_validation_error(
    api: Api, tenant: Tenant, query: str
) -> None:
    status, body, _ = await api.rest("GET", f"/v1/events?{query}", tenant.read_key)

    assert status == 422, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
