"""Before the load: every target answers the same data; SQL statements per request."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from fixture import COMMON_TERM, NO_MATCH_TERM, Fixture, reset_moves
from loadgen import Case
from stack import Database, Server
from workloads import (
    FLOOR,
    GATEWAY,
    LIST,
    LIST_NO_TOTAL,
    POSTGRAPHILE,
    POSTGRAPHILE5,
    create_mutation,
    floor_create,
    lead_query,
    list_query,
    move_mutation,
    search_query,
)

if TYPE_CHECKING:
    import report

STATEMENT_SAMPLE: Final = 40
# The list query's order in PostGraphile's schema (its amber preset, in version 5, drops
# orderBy values of columns that no index covers).
POSTGRAPHILE_ORDER: Final = ("CREATED_AT_DESC", "ID_DESC")
ORDER_BY_VALUES: Final = {
    "query": '{ __type(name: "Query") { fields { name args { name type { ...Unwrapped } } } } } '
    "fragment Unwrapped on __Type { enumValues { name } ofType { enumValues { name } "
    "ofType { enumValues { name } } } }"
}


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


async def check_postgraphile_order(http: aiohttp.ClientSession, name: str, url: str) -> None:
    """`allLeads` of this PostGraphile's schema can order as the list query does."""
    fields = (await graphql(http, url, ORDER_BY_VALUES, None))["data"]["__type"]["fields"]
    values: list[str] = []
    for field in fields:
        for arg in field["args"] if field["name"] == "allLeads" else []:
            kind = arg["type"] if arg["name"] == "orderBy" else None
            while kind is not None and kind["enumValues"] is None:
                kind = kind.get("ofType")
            values += [v["name"] for v in kind["enumValues"]] if kind else []
    if not set(POSTGRAPHILE_ORDER) <= set(values):
        raise RuntimeError(
            f"{name}'s allLeads cannot order by {', '.join(POSTGRAPHILE_ORDER)} (its orderBy "
            f"values: {values or 'none'}): its preset hides orderBy on columns no index covers; "
            "index them in the bench fixture"
        )


async def check_answers(
    http: aiohttp.ClientSession,
    servers: dict[str, Server],
    fixture: Fixture,
    run: report.Run,
    cases: list[Case],
) -> None:
    """Every list case (the body wrk sends, to its URL) answers the same 20 lead ids in the
    same order with the same fields, and the same total where it asks for one."""
    for name in (POSTGRAPHILE, POSTGRAPHILE5):
        await check_postgraphile_order(http, name, servers[name].base_url + "/graphql")
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    for case in cases:
        if case.workload in (LIST, LIST_NO_TOTAL):
            body = json.loads(await asyncio.to_thread(Path(case.args[0]).read_text))
            key = case.args[1].removeprefix("Bearer ") or None
            answers[case.workload, case.target] = await graphql(http, case.url, body, key)
    shapes: dict[tuple[str, str], tuple[int | None, list[str], int]] = {}
    for (workload, name), data in answers.items():
        page = data["data"]["leads" if "leads" in data["data"] else "allLeads"]
        nodes = page["nodes"]
        total = page.get("total", page.get("totalCount"))
        shapes[workload, name] = (total, [n["id"] for n in nodes], len(nodes[0]) if nodes else 0)
    reference = shapes[LIST, GATEWAY]
    for (workload, name), shape in shapes.items():
        expected = reference if workload == LIST else (None, *reference[1:])
        if shape != expected:
            raise RuntimeError(
                f"{workload} / {name} answers differently from the gateway: (total, ids, "
                f"fields per lead) {shape} vs {expected}"
            )
    run.response_bytes = {
        name: len(json.dumps(answers[LIST, name], separators=(",", ":")))
        for name in (GATEWAY, FLOOR, POSTGRAPHILE, POSTGRAPHILE5)
    }
    run.notes.append(
        f"Every list target answered the same 20 lead ids in the same order with "
        f"{reference[2]} fields per lead, and total={reference[0]:,} where the query asks for "
        f"it; {POSTGRAPHILE} and {POSTGRAPHILE5} both offer {' and '.join(POSTGRAPHILE_ORDER)}."
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
