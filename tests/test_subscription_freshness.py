"""What a WebSocket resolves is read afresh for each event and each operation, never through
loaders cached earlier on the same connection (issue 8 #13). Run under both executors:
LEADGATE_COMPILED_QUERIES=0 and =1."""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp
from aiohttp.test_utils import TestServer

from tests.support import Api, Tenant
from tests.test_subscriptions import first_lead, move, ws_url
from tests.ws_client import connect, subscribe

MOVES_WITH_HISTORY: Final = """
subscription($leadId: ID) {
  leadStageChanged(leadId: $leadId) { eventId lead { history(limit: 5) { id } } }
}
"""
HISTORY: Final = "query($id: ID!) { lead(id: $id) { history(limit: 5) { id } } }"


async def test_each_delivery_of_a_subscription_reads_the_leads_history_afresh(
    api: Api, server: TestServer, tenant: Tenant
) -> None:
    lead_id = await first_lead(api, tenant)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, MOVES_WITH_HISTORY, {"leadId": lead_id})
        await asyncio.sleep(0.2)  # registered (the protocol has no acknowledgement)
        await move(api, tenant, lead_id, 1)
        first = (await sub.next())["data"]["leadStageChanged"]
        await move(api, tenant, lead_id, 2)
        second = (await sub.next())["data"]["leadStageChanged"]
    assert first["lead"]["history"][0]["id"] == first["eventId"]
    history = [event["id"] for event in second["lead"]["history"]]
    assert history[:2] == [second["eventId"], first["eventId"]]


async def test_a_query_sent_twice_over_one_websocket_sees_the_write_between_them(
    api: Api, server: TestServer, tenant: Tenant
) -> None:
    lead_id = await first_lead(api, tenant)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        before = await (await subscribe(ws, HISTORY, {"id": lead_id}, op_id="a")).next()
        await move(api, tenant, lead_id, 3)
        after = await (await subscribe(ws, HISTORY, {"id": lead_id}, op_id="b")).next()
    ids_before = [e["id"] for e in before["data"]["lead"]["history"]]
    ids_after = [e["id"] for e in after["data"]["lead"]["history"]]
    assert ids_after[0] not in ids_before
    assert ids_after[1:] == ids_before[: len(ids_after) - 1]
