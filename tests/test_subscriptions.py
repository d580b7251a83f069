from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.support import Api, Tenant
from tests.ws_client import connect, subscribe

STAGE_CHANGES = """
subscription($leadId: ID, $after: ID) {
  leadStageChanged(leadId: $leadId, after: $after) {
    eventId lead { id businessName stage { stageKey } } fromStage { stageKey } toStage { stageKey }
    changedAt
  }
}
"""
MOVE = "mutation($id: ID!, $stage: ID!) { moveLead(id: $id, stageId: $stage) { id } }"


def ws_url(server: TestServer) -> str:
    return str(server.make_url("/graphql")).replace("http://", "ws://")


async def first_lead(api: Api, tenant: Tenant) -> str:
    _, body = await api.graphql(tenant.read_key, "{ leads(limit: 1) { nodes { id } } }")
    lead_id: str = body["data"]["leads"]["nodes"][0]["id"]
    return lead_id


async def move(api: Api, tenant: Tenant, lead_id: str, stage_index: int) -> None:
    _, body = await api.graphql(
        tenant.write_key, MOVE, {"id": lead_id, "stage": str(tenant.stage_ids[stage_index])}
    )
    assert "errors" not in body, body


async def test_a_subscriber_receives_a_stage_move(
    api: Api, server: TestServer, tenant: Tenant
) -> None:
    lead_id = await first_lead(api, tenant)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, STAGE_CHANGES)
        await asyncio.sleep(0.2)
        await move(api, tenant, lead_id, 5)
        change = (await sub.next())["data"]["leadStageChanged"]
    assert change["lead"]["id"] == lead_id
    assert change["toStage"]["stageKey"] == "lost"
    assert change["lead"]["stage"]["stageKey"] == "lost"


async def test_a_connection_without_a_valid_key_is_closed_with_4401(
    server: TestServer,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(server), protocols=["graphql-transport-ws"]) as ws,
    ):
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer x"}})
        message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 4401


@pytest.mark.parametrize("via_header", [True, False])
async def test_the_key_may_come_in_connection_init_or_the_upgrade_header(
    api: Api, server: TestServer, tenant: Tenant, via_header: bool
) -> None:
    lead_id = await first_lead(api, tenant)
    async with (
        aiohttp.ClientSession() as session,
        connect(
            session,
            ws_url(server),
            None if via_header else tenant.read_key,
            header_key=tenant.read_key if via_header else None,
        ) as ws,
    ):
        sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id})
        await asyncio.sleep(0.2)
        await move(api, tenant, lead_id, 2)
        change = (await sub.next())["data"]["leadStageChanged"]
    assert change["toStage"]["stageKey"] == "qualified"


async def test_a_subscriber_never_sees_another_organizations_moves(
    api: Api, server: TestServer, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await first_lead(api, other_tenant)
    mine = await first_lead(api, tenant)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, STAGE_CHANGES)
        await asyncio.sleep(0.2)
        await move(api, other_tenant, theirs, 3)
        await move(api, tenant, mine, 4)
        change = (await sub.next())["data"]["leadStageChanged"]
    assert change["lead"]["id"] == mine


async def test_resuming_after_an_event_replays_exactly_the_missed_moves_then_goes_live(
    api: Api, server: TestServer, tenant: Tenant
) -> None:
    lead_id = await first_lead(api, tenant)
    async with aiohttp.ClientSession() as session:
        async with connect(session, ws_url(server), tenant.read_key) as ws:
            sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id})
            await asyncio.sleep(0.2)
            await move(api, tenant, lead_id, 1)
            last_seen = (await sub.next())["data"]["leadStageChanged"]["eventId"]
        for i in range(10):
            await move(api, tenant, lead_id, 2 + i % 4)
        async with connect(session, ws_url(server), tenant.read_key) as ws:
            sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id, "after": last_seen})
            replayed = [(await sub.next())["data"]["leadStageChanged"] for _ in range(10)]
            await move(api, tenant, lead_id, 0)
            live = (await sub.next())["data"]["leadStageChanged"]
    ids = [int(c["eventId"]) for c in replayed]
    assert ids == sorted(ids) and len(set(ids)) == 10 and ids[0] > int(last_seen)
    assert [c["toStage"]["stageKey"] for c in replayed][:4] == [
        "qualified",
        "application",
        "funded",
        "lost",
    ]
    assert live["toStage"]["stageKey"] == "new_lead" and int(live["eventId"]) > ids[-1]
