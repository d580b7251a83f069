"""Keyset cursors (issue 11 #2): leadsConnection and GET /v1/leads?cursor= page on
(createdAt, id) newest first, or with updatedSince on (updatedAt, id) oldest change first, and a
scan sees every lead that existed when it started exactly once, however many are written
meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import asyncpg
import pytest

from tests.support import Api, Tenant, create_lead, error_codes, ok

JS_DIR: Final = Path(__file__).with_name("js")
NPM_DEADLINE: Final = 180.0
NODE_DEADLINE: Final = 30.0
WRITERS: Final = 4

CONNECTION: Final = """
query($first: Int, $after: String, $last: Int, $before: String, $search: String,
      $filter: LeadFilter, $since: DateTime) {
  leadsConnection(first: $first, after: $after, last: $last, before: $before,
                  search: $search, filter: $filter, updatedSince: $since) {
    edges { cursor node { id updatedAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    totalCount
  }
}
"""
UPDATE: Final = """
mutation($id: ID!, $industry: String) { updateLead(id: $id, input: {industry: $industry}) { id } }
"""


async def update(api: Api, tenant: Tenant, lead_id: str) -> None:
    """A real change (a new industry each time), so the lead's updatedAt moves."""
    await ok(api, tenant.write_key, UPDATE, {"id": lead_id, "industry": f"Synced {uuid.uuid4()}"})


async def connection(api: Api, tenant: Tenant, **variables: Any) -> dict[str, Any]:
    data = await ok(api, tenant.read_key, CONNECTION, variables)
    page: dict[str, Any] = data["leadsConnection"]
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in page["edges"]]


async def newest_first(pool: asyncpg.Pool, tenant: Tenant) -> list[str]:
    rows = await pool.fetch(
        "SELECT id FROM leads WHERE organization_id = $1 ORDER BY created_at DESC, id DESC",
        tenant.id,
    )
    return [str(r["id"]) for r in rows]


async def add_leads_sharing_one_created_at(pool: asyncpg.Pool, tenant: Tenant, n: int) -> None:
    """One statement: every lead gets the same created_at (now()), so only the id orders them."""
    await pool.execute(
        "INSERT INTO leads (organization_id, business_name, stage_id) "
        "SELECT $1, 'Twin ' || i, $2 FROM generate_series(1, $3) AS i",
        tenant.id,
        tenant.stage_ids[0],
        n,
    )


async def test_paging_forward_lists_every_lead_newest_first_ties_broken_by_id(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await add_leads_sharing_one_created_at(pool, tenant, 12)
    seen: list[str] = []
    page = await connection(api, tenant, first=7)
    first_page_info = page["pageInfo"]
    seen += ids(page)
    while page["pageInfo"]["hasNextPage"]:
        page = await connection(api, tenant, first=7, after=page["pageInfo"]["endCursor"])
        assert page["pageInfo"]["hasPreviousPage"] is True
        seen += ids(page)

    assert seen == await newest_first(pool, tenant)
    assert len(seen) == 42
    assert first_page_info["hasPreviousPage"] is False
    assert page["totalCount"] == 42


async def test_paging_backward_with_last_and_before_lists_the_same_order(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await add_leads_sharing_one_created_at(pool, tenant, 5)
    pages: list[list[str]] = []
    page = await connection(api, tenant, last=8)
    pages.append(ids(page))
    while page["pageInfo"]["hasPreviousPage"]:
        page = await connection(api, tenant, last=8, before=page["pageInfo"]["startCursor"])
        assert page["pageInfo"]["hasNextPage"] is True
        pages.append(ids(page))

    assert [i for p in reversed(pages) for i in p] == await newest_first(pool, tenant)
    assert [len(p) for p in pages] == [8, 8, 8, 8, 3]


async def test_each_edge_cursor_continues_right_after_its_lead(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    everything = await newest_first(pool, tenant)
    page = await connection(api, tenant, first=10)

    middle = page["edges"][4]["cursor"]
    after = await connection(api, tenant, first=3, after=middle)
    before = await connection(api, tenant, last=3, before=middle)

    assert ids(after) == everything[5:8]
    assert ids(before) == everything[1:4]
    assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]


async def test_the_default_slice_is_20_and_sizes_outside_1_to_100_are_refused(
    api: Api, tenant: Tenant
) -> None:
    page = await connection(api, tenant)
    refused = [
        (await api.graphql(tenant.read_key, CONNECTION, variables))[1]
        for variables in ({"first": 0}, {"first": 101}, {"last": 0})
    ]

    assert len(page["edges"]) == 20
    assert [error_codes(body) for body in refused] == [["VALIDATION_ERROR"]] * 3
    assert [body["errors"][0]["message"] for body in refused] == [
        "first: must be between 1 and 100",
        "first: must be between 1 and 100",
        "last: must be between 1 and 100",
    ]


async def test_first_and_last_together_are_refused(api: Api, tenant: Tenant) -> None:
    _, body = await api.graphql(tenant.read_key, CONNECTION, {"first": 5, "last": 5})

    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["message"].startswith("last: cannot be given with first")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "W10",
        "WzEsImMiLDEsIngiXQ",
        "a" * 500,
        "WzIsImMiLDAsIjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJd",
    ],
)
async def test_a_malformed_cursor_is_a_validation_error_naming_the_argument(
    api: Api, tenant: Tenant, cursor: str
) -> None:
    # W10 is [], the next is [1,"c",1,"x"] (no UUID), the last a version-2 cursor.
    _, after = await api.graphql(tenant.read_key, CONNECTION, {"after": cursor})
    _, before = await api.graphql(tenant.read_key, CONNECTION, {"before": cursor, "last": 2})
    status, rest, _ = await api.rest(
        "GET", "/v1/leads?" + urlencode({"cursor": cursor}), tenant.read_key
    )

    assert error_codes(after) == error_codes(before) == ["VALIDATION_ERROR"]
    assert after["errors"][0]["message"] == "after: must be a cursor this API returned"
    assert before["errors"][0]["message"] == "before: must be a cursor this API returned"
    assert status == 422
    assert rest["error"]["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in rest["error"]["fields"]] == ["cursor"]


async def test_a_cursor_from_one_order_is_refused_in_the_other(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    since = await database_now(pool)
    await update(api, tenant, (await newest_first(pool, tenant))[0])
    newest = (await connection(api, tenant, first=1))["pageInfo"]["endCursor"]
    changed = (await connection(api, tenant, first=1, since=since))["pageInfo"]["endCursor"]

    _, newest_in_sync = await api.graphql(
        tenant.read_key, CONNECTION, {"after": newest, "since": since}
    )
    _, sync_in_newest = await api.graphql(tenant.read_key, CONNECTION, {"after": changed})

    assert error_codes(newest_in_sync) == error_codes(sync_in_newest) == ["VALIDATION_ERROR"]
    assert newest_in_sync["errors"][0]["message"].startswith("after: is a cursor of another order")
    assert sync_in_newest["errors"][0]["message"].startswith("after: is a cursor of another order")


async def test_search_and_filter_narrow_the_connection_and_its_total_count(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await add_leads_sharing_one_created_at(pool, tenant, 9)
    stage = str(tenant.stage_ids[0])
    expected = [
        str(r["id"])
        for r in await pool.fetch(
            "SELECT id FROM leads WHERE organization_id = $1 AND business_name LIKE 'Twin %' "
            "AND stage_id = $2 ORDER BY created_at DESC, id DESC",
            tenant.id,
            tenant.stage_ids[0],
        )
    ]

    first = await connection(api, tenant, first=5, search="twin", filter={"stageId": stage})
    rest = await connection(
        api,
        tenant,
        first=5,
        after=first["pageInfo"]["endCursor"],
        search="twin",
        filter={"stageId": stage},
    )

    assert ids(first) + ids(rest) == expected
    assert first["totalCount"] == rest["totalCount"] == 9
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_the_total_count_without_criteria_is_the_maintained_total_not_a_count(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await create_lead(api, tenant)
    counted = len(await newest_first(pool, tenant))
    # Skew this organization's maintained total (sql/migrations/0002) to see which one answers.
    await pool.execute(
        "UPDATE lead_counts SET total = total + 1000 WHERE organization_id = $1", tenant.id
    )
    try:
        unfiltered = await connection(api, tenant, first=1)
        searched = await connection(api, tenant, first=1, search="test bakery")
    finally:
        await pool.execute(
            "UPDATE lead_counts SET total = total - 1000 WHERE organization_id = $1", tenant.id
        )

    assert counted == 31
    assert unfiltered["totalCount"] == counted + 1000
    assert searched["totalCount"] == 1


# --- updatedSince --------------------------------------------------------------------------


async def database_now(pool: asyncpg.Pool) -> str:
    """The database's clock (updated_at comes from it), as a DateTime argument."""
    moment: datetime = await pool.fetchval("SELECT clock_timestamp()")
    return moment.isoformat()


async def test_updated_since_returns_exactly_the_changed_leads_oldest_change_first(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    leads = await newest_first(pool, tenant)
    since = await database_now(pool)
    changed = [leads[7], leads[2], leads[20], leads[11], leads[0]]
    for lead_id in changed:
        await update(api, tenant, lead_id)

    first = await connection(api, tenant, first=3, since=since)
    rest = await connection(api, tenant, first=3, since=since, after=first["pageInfo"]["endCursor"])
    status, body, _ = await api.rest(
        "GET", "/v1/leads?" + urlencode({"updatedSince": since, "limit": 100}), tenant.read_key
    )

    assert ids(first) + ids(rest) == changed
    assert first["totalCount"] == 5
    assert (first["pageInfo"]["hasNextPage"], rest["pageInfo"]["hasNextPage"]) == (True, False)
    assert status == 200
    assert [lead["id"] for lead in body["data"]] == changed
    assert body["meta"]["total"] == 5
    assert body["meta"]["nextCursor"] is None


async def test_an_incremental_sync_resumes_from_its_cursor_and_sees_a_lead_changed_again(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    leads = await newest_first(pool, tenant)
    since = await database_now(pool)
    for lead_id in leads[:3]:
        await update(api, tenant, lead_id)
    synced = await connection(api, tenant, first=100, since=since)
    await update(api, tenant, leads[0])
    await update(api, tenant, leads[5])

    later = await connection(
        api, tenant, first=100, since=since, after=synced["pageInfo"]["endCursor"]
    )

    assert ids(synced) == leads[:3]
    assert ids(later) == [leads[0], leads[5]]


async def test_updated_since_without_an_offset_or_not_a_date_is_refused(
    api: Api, tenant: Tenant
) -> None:
    _, naive = await api.graphql(tenant.read_key, CONNECTION, {"since": "2025-01-01T00:00:00"})
    status, rest, _ = await api.rest("GET", "/v1/leads?updatedSince=yesterday", tenant.read_key)

    # The DateTime scalar refuses it before the resolver runs.
    assert error_codes(naive) == ["VALIDATION_ERROR"]
    assert "must carry an offset" in naive["errors"][0]["message"]
    assert status == 422
    assert [f["field"] for f in rest["error"]["fields"]] == ["updatedSince"]


# --- REST ----------------------------------------------------------------------------------


async def rest_page(api: Api, tenant: Tenant, **params: Any) -> dict[str, Any]:
    status, body, _ = await api.rest("GET", "/v1/leads?" + urlencode(params), tenant.read_key)
    assert status == 200, body
    return body


async def test_rest_pages_carry_a_next_cursor_that_continues_the_list(
    api: Api, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    await add_leads_sharing_one_created_at(pool, tenant, 4)
    body = await rest_page(api, tenant, limit=8)
    seen = [lead["id"] for lead in body["data"]]
    first_meta = body["meta"]
    while body["meta"]["nextCursor"] is not None:
        body = await rest_page(api, tenant, limit=8, cursor=body["meta"]["nextCursor"])
        seen += [lead["id"] for lead in body["data"]]

    assert seen == await newest_first(pool, tenant)
    assert (first_meta["page"], first_meta["limit"], first_meta["hasMore"]) == (1, 8, True)
    assert body["meta"]["page"] is None
    assert body["meta"]["hasMore"] is False
    assert body["meta"]["total"] == 34


async def test_rest_refuses_a_cursor_with_a_page_number(api: Api, tenant: Tenant) -> None:
    cursor = (await rest_page(api, tenant, limit=2))["meta"]["nextCursor"]

    status, body, _ = await api.rest(
        "GET", "/v1/leads?" + urlencode({"cursor": cursor, "page": 2}), tenant.read_key
    )

    assert status == 422
    assert [f["field"] for f in body["error"]["fields"]] == ["page"]


# --- a scan while writers insert -----------------------------------------------------------

Scan = Callable[[Api, Tenant, Callable[[], Awaitable[None]]], Awaitable[list[str]]]


async def graphql_scan(
    api: Api, tenant: Tenant, between: Callable[[], Awaitable[None]]
) -> list[str]:
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await connection(api, tenant, first=5, after=after)
        seen += ids(page)
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]
        await between()


async def rest_scan(api: Api, tenant: Tenant, between: Callable[[], Awaitable[None]]) -> list[str]:
    params: dict[str, Any] = {"limit": 5}
    seen: list[str] = []
    while True:
        body = await rest_page(api, tenant, **params)
        seen += [lead["id"] for lead in body["data"]]
        if body["meta"]["nextCursor"] is None:
            return seen
        params = {"limit": 5, "cursor": body["meta"]["nextCursor"]}
        await between()


@pytest.mark.parametrize("scan", [graphql_scan, rest_scan], ids=["graphql", "rest"])
async def test_a_scan_while_4_writers_insert_sees_every_existing_lead_exactly_once(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, scan: Scan
) -> None:
    await add_leads_sharing_one_created_at(pool, tenant, 10)
    existing = await newest_first(pool, tenant)
    written: list[str] = []
    progress = asyncio.Condition()
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        while not stop.is_set():
            lead_id = await create_lead(api, tenant, f"Concurrent {n}")
            async with progress:
                written.append(lead_id)
                progress.notify_all()

    async def between_pages() -> None:
        # Every page boundary sees new leads land (at the head of the newest-first order,
        # where an offset page would shift every later page by as many rows).
        async with progress:
            target = len(written) + WRITERS
            await progress.wait_for(lambda: len(written) >= target)

    writers = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    try:
        seen = await scan(api, tenant, between_pages)
    finally:
        stop.set()
        await asyncio.gather(*writers)

    known = set(existing)
    old = [i for i in seen if i in known]
    assert old == existing  # every lead that existed, once each, in order
    assert len(seen) == len(set(seen))  # no lead twice, new ones included
    assert len(written) >= WRITERS * (len(existing) // 5 - 1)


# --- Apollo Client in Node ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def relay_script() -> Path:
    """tests/js/relay.mjs, with its pinned npm packages installed on first use."""
    npm = shutil.which("npm")
    assert shutil.which("node") and npm, "these tests need Node.js and npm on PATH"
    if not (JS_DIR / "node_modules" / "@apollo" / "client").is_dir():
        process = await asyncio.create_subprocess_exec(
            npm,
            "ci",
            "--no-audit",
            "--no-fund",
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), NPM_DEADLINE)
        assert process.returncode == 0, output.decode()
    return JS_DIR / "relay.mjs"


async def test_apollo_relay_style_pagination_merges_every_page_into_the_database_s_list(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, relay_script: Path
) -> None:
    await add_leads_sharing_one_created_at(pool, tenant, 6)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(relay_script),
        f"{api.base}/graphql",
        "7",
        env={**os.environ, "LEADGATE_API_KEY": tenant.read_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_DEADLINE)
    assert process.returncode == 0, stderr.decode()

    result = json.loads(stdout)
    assert result["ids"] == await newest_first(pool, tenant)
    assert result["pages"] == 6  # 36 leads, 7 a page
    assert result["totalCount"] == 36
