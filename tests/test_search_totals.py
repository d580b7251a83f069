"""Searched and filtered totals (issue 14 #4): exact up to LEADGATE_EXACT_TOTAL_LIMIT matches,
the planner's estimate past it, and `totalIsExact` (REST `meta.totalIsExact`) says which; the
pages themselves stay exact. A gateway of its own counts up to 5, so a dozen leads are past it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.client import AsyncClient
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from tests.support import Api, Tenant, fewest_statements, make_tenant, ok

LIMIT: Final = 5
# Past LIMIT, within it, and the rest of the organization's leads.
MANY: Final = 12
FEW: Final = 3
OTHERS: Final = 2
LEADS: Final = MANY + FEW + OTHERS

PAGE: Final = """
query($search: String, $page: Int!, $limit: Int!, $filter: LeadFilter) {
  leads(search: $search, page: $page, limit: $limit, filter: $filter) {
    total totalIsExact hasMore nodes { id businessName }
  }
}
"""
SLICE: Final = """
query($search: String, $first: Int!, $after: String) {
  leadsConnection(search: $search, first: $first, after: $after) {
    totalCount totalIsExact pageInfo { hasNextPage endCursor } edges { node { id } }
  }
}
"""


@dataclasses.dataclass(frozen=True)
class Gateway:
    api: Api
    base: str
    statements: StatementCounter


@pytest.fixture(scope="module")
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    counting = dataclasses.replace(settings, exact_total_limit=LIMIT, dispatcher_enabled=False)
    server = TestServer(create_app(counting), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        yield Gateway(Api(session=session, base=base), base, server.app[keys.STATEMENTS])
    await server.close()


async def add_leads(pool: asyncpg.Pool, tenant: Tenant, name: str, count: int) -> None:
    """`count` leads named `name 1`…, a second apart, `name 1` the newest."""
    await pool.execute(
        "INSERT INTO leads (organization_id, business_name, stage_id, created_at) "
        "SELECT $1, $2 || ' ' || n, $3, now() - make_interval(secs => n) "
        "FROM generate_series(1, $4) AS n",
        tenant.id,
        name,
        tenant.stage_ids[0],
        count,
    )


@pytest.fixture(scope="module")
async def searched(pool: asyncpg.Pool) -> Tenant:
    """MANY leads named Orbit…, FEW named Quasar…, OTHERS named Nebula…"""
    tenant = await make_tenant(pool, name="Search Totals")
    await add_leads(pool, tenant, "Orbit Foods", MANY)
    await add_leads(pool, tenant, "Quasar Labs", FEW)
    await add_leads(pool, tenant, "Nebula Inc", OTHERS)
    return tenant


async def leads_page(
    gateway: Gateway, tenant: Tenant, *, search: str | None, page: int = 1, limit: int = 2
) -> Any:
    variables = {"search": search, "page": page, "limit": limit}
    return (await ok(gateway.api, tenant.read_key, PAGE, variables))["leads"]


async def rest_meta(gateway: Gateway, tenant: Tenant, query: str) -> dict[str, Any]:
    status, body, _ = await gateway.api.rest("GET", f"/v1/leads?{query}", tenant.read_key)
    assert status == 200, body
    meta: dict[str, Any] = body["meta"]
    return meta


async def test_a_search_within_the_limit_has_an_exact_total(
    gateway: Gateway, searched: Tenant
) -> None:
    page = await leads_page(gateway, searched, search="quasar")

    # Two of the three on the page: the total comes from the count, not from the rows.
    assert (len(page["nodes"]), page["hasMore"]) == (2, True)
    assert (page["total"], page["totalIsExact"]) == (FEW, True)


async def test_a_search_past_the_limit_has_an_estimated_total(
    gateway: Gateway, searched: Tenant
) -> None:
    page = await leads_page(gateway, searched, search="orbit")

    assert page["totalIsExact"] is False
    # An estimate, yet within what is known: past the limit, at most the organization's leads.
    assert LIMIT < page["total"] <= LEADS
    assert (len(page["nodes"]), page["hasMore"]) == (2, True)


async def test_rest_says_whether_the_total_is_exact(gateway: Gateway, searched: Tenant) -> None:
    within = await rest_meta(gateway, searched, "search=quasar&limit=2")
    past = await rest_meta(gateway, searched, "search=orbit&limit=2")

    assert (within["total"], within["totalIsExact"]) == (FEW, True)
    assert past["totalIsExact"] is False
    assert LIMIT < past["total"] <= LEADS


async def test_pages_past_the_limit_list_every_match_once_in_order(
    gateway: Gateway, searched: Tenant
) -> None:
    pages = [await leads_page(gateway, searched, search="orbit", page=n) for n in range(1, 8)]

    names = [node["businessName"] for p in pages for node in p["nodes"]]
    assert names == [f"Orbit Foods {n}" for n in range(1, MANY + 1)]
    assert [p["hasMore"] for p in pages] == [True] * 5 + [False, False]


async def test_the_last_page_of_a_search_has_its_exact_total(
    gateway: Gateway, searched: Tenant
) -> None:
    last = await leads_page(gateway, searched, search="orbit", page=MANY // 2)

    assert (len(last["nodes"]), last["hasMore"]) == (2, False)
    assert (last["total"], last["totalIsExact"]) == (MANY, True)


async def test_a_search_answered_on_one_page_has_its_exact_total(
    gateway: Gateway, searched: Tenant
) -> None:
    page = await leads_page(gateway, searched, search="orbit", limit=20)

    assert (len(page["nodes"]), page["total"], page["totalIsExact"]) == (MANY, MANY, True)


async def test_a_filter_past_the_limit_has_an_estimated_total(
    gateway: Gateway, searched: Tenant
) -> None:
    variables = {"page": 1, "limit": 2, "filter": {"priority": "NORMAL"}}
    page = (await ok(gateway.api, searched.read_key, PAGE, variables))["leads"]

    assert page["totalIsExact"] is False
    assert LIMIT < page["total"] <= LEADS


async def test_an_unfiltered_total_past_the_limit_is_exact(
    gateway: Gateway, searched: Tenant
) -> None:
    page = await leads_page(gateway, searched, search=None)
    meta = await rest_meta(gateway, searched, "limit=2")

    assert (page["total"], page["totalIsExact"]) == (LEADS, True)
    assert (meta["total"], meta["totalIsExact"]) == (LEADS, True)


async def test_a_connection_says_whether_its_total_count_is_exact(
    gateway: Gateway, searched: Tenant
) -> None:
    key = searched.read_key
    within = await ok(gateway.api, key, SLICE, {"search": "quasar", "first": 2})
    past = await ok(gateway.api, key, SLICE, {"search": "orbit", "first": 2})
    whole = await ok(gateway.api, key, SLICE, {"search": "orbit", "first": 20})

    assert (within["leadsConnection"]["totalCount"], within["leadsConnection"]["totalIsExact"]) == (
        FEW,
        True,
    )
    assert past["leadsConnection"]["totalIsExact"] is False
    assert LIMIT < past["leadsConnection"]["totalCount"] <= LEADS
    assert (whole["leadsConnection"]["totalCount"], whole["leadsConnection"]["totalIsExact"]) == (
        MANY,
        True,
    )


async def test_a_connection_past_the_limit_reaches_every_match_once(
    gateway: Gateway, searched: Tenant
) -> None:
    seen: list[str] = []
    after = None
    while True:
        variables = {"search": "orbit", "first": 5, "after": after}
        connection = (await ok(gateway.api, searched.read_key, SLICE, variables))["leadsConnection"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert len(seen) == len(set(seen)) == MANY


async def test_a_rest_cursor_page_says_whether_its_total_is_exact(
    gateway: Gateway, searched: Tenant
) -> None:
    first = await rest_meta(gateway, searched, "search=orbit&limit=2")
    following = await rest_meta(
        gateway, searched, f"search=orbit&limit=2&cursor={first['nextCursor']}"
    )

    assert following["page"] is None
    assert following["totalIsExact"] is False
    assert LIMIT < following["total"] <= LEADS


async def test_totals_are_counted_and_bounded_within_the_organization(
    gateway: Gateway, pool: asyncpg.Pool, searched: Tenant
) -> None:
    other = await make_tenant(pool, name="Other Orbit")
    await add_leads(pool, other, "Orbit Freight", FEW)
    crowded = await make_tenant(pool, name="Crowded Orbit")
    await add_leads(pool, crowded, "Orbit Mart", 40)

    few = await leads_page(gateway, other, search="orbit")
    many = await leads_page(gateway, searched, search="orbit")

    assert (few["total"], few["totalIsExact"]) == (FEW, True)
    assert {n["businessName"] for n in few["nodes"]} <= {f"Orbit Freight {n}" for n in (1, 2, 3)}
    # The other organizations' 43 Orbits never reach this one's estimate.
    assert many["total"] <= LEADS


async def test_the_sdk_reads_whether_the_total_is_exact(gateway: Gateway, searched: Tenant) -> None:
    async with AsyncClient(gateway.base, api_key=searched.read_key) as client:
        within = await client.leads.list(search="quasar", limit=2)
        past = await client.leads.list(search="orbit", limit=2)

    assert (within.total, within.total_is_exact) == (FEW, True)
    assert past.total_is_exact is False


async def test_a_search_past_the_limit_costs_the_statements_of_an_unfiltered_page(
    gateway: Gateway, searched: Tenant
) -> None:
    async def send(search: str | None) -> int:
        async def one() -> None:
            await leads_page(gateway, searched, search=search)

        await one()
        return await fewest_statements(gateway.statements, one)

    assert await send("orbit") == await send("quasar") == await send(None) == 1


async def test_the_default_limit_counts_a_dozen_matches_exactly(
    api: Api, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(pool, name="Default Limit")
    await add_leads(pool, tenant, "Orbit Foods", MANY)

    page = (await ok(api, tenant.read_key, PAGE, {"search": "orbit", "page": 1, "limit": 2}))[
        "leads"
    ]

    assert (page["total"], page["totalIsExact"]) == (MANY, True)
