"""leadEvents: every event type of the pipeline, with leadStageChanged's guarantees (order,
filters, tenancy, resume with `after`), through both executors (compiled plans and
strawberry's own). What a subscriber must receive is read back from lead_events.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from tests.support import Api, Tenant, create_lead, ok
from tests.ws_client import Subscription, connect, subscribe

EVENTS: Final = """
subscription($types: [String!], $leadId: ID, $stageId: ID, $after: ID) {
  leadEvents(types: $types, leadId: $leadId, stageId: $stageId, after: $after) {
    id type sequence occurredAt data
    lead { id businessName stage { id } primaryAdvisor { id } }
  }
}
"""
UPDATE: Final = (
    "mutation($id: ID!, $name: String) { updateLead(id: $id, input: {businessName: $name}) { id } }"
)
MOVE: Final = "mutation($id: ID!, $stage: ID!) { moveLead(id: $id, stageId: $stage) { id } }"
ASSIGN: Final = (
    "mutation($id: ID!, $advisor: ID) { assignLead(id: $id, advisorId: $advisor) { id } }"
)
QUIET: Final = 0.3


@pytest.fixture(scope="module", params=[True, False], ids=["compiled", "strawberry"])
async def gateway(
    request: pytest.FixtureRequest, settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[str]:
    """The WebSocket URL of a gateway running one executor; writes go through the session's."""
    own = dataclasses.replace(settings, compiled_queries=request.param, dispatcher_enabled=False)
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/graphql")).replace("http://", "ws://")
    finally:
        await server.close()


async def latest_event_id(pool: asyncpg.Pool, org: UUID) -> int:
    latest: int = await pool.fetchval(
        "SELECT coalesce(max(id), 0) FROM lead_events WHERE organization_id = $1", org
    )
    return latest


async def events_after(pool: asyncpg.Pool, org: UUID, after: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT id, type, lead_id, payload FROM lead_events "
        "WHERE organization_id = $1 AND id > $2 ORDER BY id",
        org,
        after,
    )
    return rows


async def next_event(sub: Subscription, wait: float = 5.0) -> dict[str, Any]:
    payload = await sub.next(wait)
    assert "errors" not in payload, payload
    event: dict[str, Any] = payload["data"]["leadEvents"]
    return event


async def events_until_quiet(sub: Subscription, at_least: int) -> list[dict[str, Any]]:
    """Every event that arrives until `at_least` came and then nothing more for QUIET s."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.append(await next_event(sub, QUIET if len(events) >= at_least else 5.0))
        except TimeoutError:
            return events


async def replayed(
    ws: aiohttp.ClientWebSocketResponse, filters: dict[str, Any], after: int
) -> list[dict[str, Any]]:
    """What a subscription with `filters` replays after `after` (one at a time: the client
    drops other operations' messages)."""
    sub = await subscribe(ws, EVENTS, {**filters, "after": str(after)}, str(sorted(filters)))
    events = await events_until_quiet(sub, 1)
    await ws.send_json({"id": sub.op_id, "type": "complete"})
    return events


async def pipeline_of_writes(api: Api, tenant: Tenant, name: str = "Events Bakery") -> str:
    """One event of each type for a new lead: created, updated, status_changed, assigned."""
    lead_id = await create_lead(api, tenant, name)
    await ok(api, tenant.write_key, UPDATE, {"id": lead_id, "name": f"{name} & Sons"})
    await ok(api, tenant.write_key, MOVE, {"id": lead_id, "stage": str(tenant.stage_ids[2])})
    await ok(api, tenant.write_key, ASSIGN, {"id": lead_id, "advisor": str(tenant.advisor_ids[0])})
    return lead_id


async def test_every_event_type_is_delivered_live_in_order_with_its_data(
    api: Api, gateway: str, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant.id)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, gateway, tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, EVENTS)
        await asyncio.sleep(0.2)  # subscribed and live before the writes
        lead_id = await pipeline_of_writes(api, tenant)
        received = await events_until_quiet(sub, 4)

    rows = await events_after(pool, tenant.id, cursor)
    assert [int(e["id"]) for e in received] == [r["id"] for r in rows]
    assert [e["type"] for e in received] == [
        "lead.created",
        "lead.updated",
        "lead.status_changed",
        "lead.assigned",
    ]
    assert [e["sequence"] for e in received] == [1, 2, 3, 4]
    created, updated, moved, assigned = received
    assert updated["data"]["changes"] == {
        "businessName": {"from": "Events Bakery", "to": "Events Bakery & Sons"}
    }
    assert moved["data"]["stage"]["id"] == str(tenant.stage_ids[2])
    assert moved["data"]["previousStage"]["id"] == str(tenant.stage_ids[0])
    assert assigned["data"]["advisorId"] == str(tenant.advisor_ids[0])
    # `data.lead` is the lead as its event left it; `lead` the lead when it was delivered.
    assert created["data"]["lead"]["attributes"]["businessName"] == "Events Bakery"
    assert {e["lead"]["id"] for e in received} == {lead_id}
    assert assigned["lead"]["primaryAdvisor"] == {"id": str(tenant.advisor_ids[0])}
    assert assigned["lead"]["stage"] == {"id": str(tenant.stage_ids[2])}


async def test_types_lead_and_stage_filters_each_narrow_the_stream(
    api: Api, gateway: str, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant.id)
    watched_stage = str(tenant.stage_ids[2])
    async with (
        aiohttp.ClientSession() as session,
        connect(session, gateway, tenant.read_key) as ws,
    ):
        first = await pipeline_of_writes(api, tenant, "First Bakery")
        await pipeline_of_writes(api, tenant, "Second Bakery")
        # Replayed from the cursor: each subscription sees the same history, filtered.
        typed = await replayed(ws, {"types": ["lead.updated", "lead.assigned"]}, cursor)
        leads = await replayed(ws, {"leadId": first}, cursor)
        staged = await replayed(ws, {"stageId": watched_stage}, cursor)

    rows = await events_after(pool, tenant.id, cursor)
    assert [int(e["id"]) for e in typed] == [
        r["id"] for r in rows if r["type"] in ("lead.updated", "lead.assigned")
    ]
    assert [int(e["id"]) for e in leads] == [r["id"] for r in rows if str(r["lead_id"]) == first]
    # Into the stage (the move) and what happened there afterwards (the assignment).
    assert [(e["lead"]["businessName"], e["type"]) for e in staged] == [
        ("First Bakery & Sons", "lead.status_changed"),
        ("First Bakery & Sons", "lead.assigned"),
        ("Second Bakery & Sons", "lead.status_changed"),
        ("Second Bakery & Sons", "lead.assigned"),
    ]


async def test_a_subscriber_never_sees_another_organizations_events(
    api: Api, gateway: str, tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        connect(session, gateway, tenant.read_key) as ws,
    ):
        live = await subscribe(ws, EVENTS)
        await asyncio.sleep(0.2)
        await pipeline_of_writes(api, other_tenant, "Elsewhere Ltd")
        mine = await create_lead(api, tenant, "Mine Ltd")
        first_live = await next_event(live)
        await ws.send_json({"id": live.op_id, "type": "complete"})
        history = await replayed(ws, {}, 0)

    assert first_live["lead"]["id"] == mine
    own = [r["id"] for r in await events_after(pool, tenant.id, 0)]
    assert [int(e["id"]) for e in history] == own


async def test_resuming_after_an_event_replays_exactly_the_missed_events_then_goes_live(
    api: Api, gateway: str, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant.id)
    lead_id = await pipeline_of_writes(api, tenant)
    rows = await events_after(pool, tenant.id, cursor)
    resume_after = rows[1]["id"]  # seen: created and updated
    async with (
        aiohttp.ClientSession() as session,
        connect(session, gateway, tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, EVENTS, {"after": str(resume_after)})
        missed = [await next_event(sub), await next_event(sub)]
        await ok(api, tenant.write_key, UPDATE, {"id": lead_id, "name": "Live Bakery"})
        live = await events_until_quiet(sub, 1)

    assert [int(e["id"]) for e in missed] == [rows[2]["id"], rows[3]["id"]]
    assert [e["type"] for e in live] == ["lead.updated"]
    assert int(live[0]["id"]) == await latest_event_id(pool, tenant.id)


@pytest.mark.parametrize("types", [[], ["lead.deleted"]])
async def test_unknown_or_no_event_types_are_a_validation_error(
    gateway: str, tenant: Tenant, types: list[str]
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        connect(session, gateway, tenant.read_key) as ws,
    ):
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": EVENTS, "variables": {"types": types}},
            }
        )
        message = await asyncio.wait_for(ws.receive_json(), 5)

    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "VALIDATION_ERROR", message
    assert errors[0]["extensions"]["fields"][0]["field"] == "types"
