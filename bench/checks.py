"""Before the load: every target answers the same data; SQL statements per request."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from fixture import COMMON_TERM, NO_MATCH_TERM, Fixture, reset_moves
from stack import Database, Server
from workloads import (
    FLOOR,
    FLOOR_MAINTAINED,
    GATEWAY,
    POSTGRAPHILE,
    create_mutation,
    floor_create,
    lead_query,
    list_query,
    move_mutation,
    postgraphile_list_query,
    search_query,
)

if TYPE_CHECKING:
    import report

STATEMENT_SAMPLE: Final = 40


async def graphql(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str | None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.post(url, json=body, headers=headers) as response:
        text = await response.text()
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError:
        data = {"errors": ["not JSON"]}
    if response.status != 200 or data.get("errors"):
        raise RuntimeError(f"{url} answered {response.status}: {text[:500]}")
    return data


async def check_answers(
    http: aiohttp.ClientSession, servers: dict[str, Server], fixture: Fixture, run: report.Run
) -> None:
    """Every target answers the list query with the same total and the same 20 leads."""
    gateway = await graphql(
        http, servers[GATEWAY].base_url + "/graphql", list_query(20), fixture.key
    )
    floor = await graphql(http, servers[FLOOR].base_url + "/graphql", list_query(20), fixture.key)
    pgl = await graphql(
        http,
        servers[POSTGRAPHILE].base_url + "/graphql",
        postgraphile_list_query(fixture.org),
        None,
    )
    answers = {
        GATEWAY: (gateway["data"]["leads"]["total"], gateway["data"]["leads"]["nodes"]),
        FLOOR: (floor["data"]["leads"]["total"], floor["data"]["leads"]["nodes"]),
        POSTGRAPHILE: (pgl["data"]["allLeads"]["totalCount"], pgl["data"]["allLeads"]["nodes"]),
    }
    if fixture.maintained_total:
        url = servers[FLOOR].base_url + "/graphql-maintained-total"
        counted = (await graphql(http, url, list_query(20), fixture.key))["data"]["leads"]
        answers[FLOOR_MAINTAINED] = (counted["total"], counted["nodes"])
    shapes = {
        name: (total, [n["id"] for n in nodes], len(nodes[0]) if nodes else 0)
        for name, (total, nodes) in answers.items()
    }
    reference = shapes[GATEWAY]
    for name, shape in shapes.items():
        if shape != reference:
            raise RuntimeError(
                f"{name} answers differently from the gateway: {shape} vs {reference}"
            )
    run.response_bytes = {
        name: len(json.dumps(data, separators=(",", ":")))
        for name, data in ((GATEWAY, gateway), (FLOOR, floor), (POSTGRAPHILE, pgl))
    }
    run.notes.append(
        f"Every list target answered total={reference[0]:,} with the same 20 lead ids in "
        f"the same order and {reference[2]} fields per lead."
    )
    created = await graphql(
        http,
        servers[FLOOR].base_url + "/create",
        floor_create(f"check-{time.time_ns()}"),
        fixture.key,
    )
    if not created["data"]["createLead"]["id"]:
        raise RuntimeError(f"the floor's createLead answered {created}")
    for kind, term in (
        ("common", COMMON_TERM),
        ("rare", fixture.rare_term),
        ("none", NO_MATCH_TERM),
    ):
        found = await graphql(
            http, servers[GATEWAY].base_url + "/graphql", search_query(term), fixture.key
        )
        run.search_terms[kind] = (term, found["data"]["leads"]["total"])


async def statements(
    http: aiohttp.ClientSession, db: Database, servers: dict[str, Server], fixture: Fixture
) -> list[tuple[str, float]]:
    """SQL statements per request, from /metrics around a run of sequential requests."""
    gateway = servers[GATEWAY].base_url
    await reset_moves(db, fixture)

    async def total() -> int:
        async with http.get(gateway + "/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith("leadgate_sql_statements_total "):
                return int(float(line.split()[1]))
        raise RuntimeError("no leadgate_sql_statements_total in /metrics")

    stamp = time.strftime("%H%M%S")
    plans: list[tuple[str, list[dict[str, Any]], str]] = [
        ("list, limit 1", [list_query(1)] * STATEMENT_SAMPLE, fixture.key),
        ("list, limit 20", [list_query(20)] * STATEMENT_SAMPLE, fixture.key),
        ("list, limit 100", [list_query(100)] * STATEMENT_SAMPLE, fixture.key),
        ("lead(id)", [lead_query(i) for i in fixture.lookup_ids[:STATEMENT_SAMPLE]], fixture.key),
        ("search common", [search_query(COMMON_TERM)] * STATEMENT_SAMPLE, fixture.key),
        ("search rare", [search_query(fixture.rare_term)] * STATEMENT_SAMPLE, fixture.key),
        ("search none", [search_query(NO_MATCH_TERM)] * STATEMENT_SAMPLE, fixture.key),
        (
            "createLead",
            [create_mutation(f"stmt-{stamp}-{i}") for i in range(STATEMENT_SAMPLE)],
            fixture.write_key,
        ),
        (
            "moveLead",
            [
                move_mutation(fixture.statement_lead, fixture.stage_ids[1 + i % 2])
                for i in range(STATEMENT_SAMPLE)
            ],
            fixture.key,
        ),
    ]
    found = []
    for label, bodies, key in plans:
        # Warm the key cache and the statement caches (a fresh idempotency key: reusing the
        # first one would make a counted request a replay).
        warm = create_mutation(f"stmt-{stamp}-warm") if label == "createLead" else bodies[0]
        await graphql(http, gateway + "/graphql", warm, key)
        if label == "moveLead":
            await reset_moves(db, fixture)
        before = await total()
        for body in bodies:
            await graphql(http, gateway + "/graphql", body, key)
        await asyncio.sleep(0.3)  # anything the requests set off in the background
        found.append((label, (await total() - before) / len(bodies)))
    return found
