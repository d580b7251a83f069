"""`client.lead_events(after=…)` over graphql-transport-ws against the live gateway: events in
order, resumed with the last event id when the server closes for shutdown (1001 naming the
cursor) or a node drops the socket, with nothing missed or repeated; 4401 raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.client import (
    AsyncClient,
    Client,
    Event,
    LeadCreate,
    RetryPolicy,
    Unauthenticated,
    ValidationError,
)
from tests.sdk_proxy import Proxy
from tests.support import Tenant

WITHIN: Final = 5.0
# Reconnections come quickly in tests, and survive the proxy refusing them for a while.
RECONNECT: Final = RetryPolicy(max_attempts=100, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def proxy(server: TestServer) -> AsyncIterator[Proxy]:
    async with Proxy(str(server.make_url("")).rstrip("/")) as proxy:
        yield proxy


@pytest.fixture
async def client(proxy: Proxy, tenant: Tenant) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(proxy.url, api_key=tenant.write_key, reconnect=RECONNECT) as client:
        yield client


async def cursor_now(client: AsyncClient) -> str:
    """The organization's latest event id ("0" before its first): subscribing after it
    replays exactly what follows, whenever the iterator connects (at its first step)."""
    last = "0"
    async for event in client.events.iterate():
        last = event.id
    return last


async def next_event(events: AsyncGenerator[Event, None]) -> Event:
    async with asyncio.timeout(WITHIN):
        return await anext(events)


async def test_events_after_the_cursor_arrive_in_order(client: AsyncClient) -> None:
    start = await cursor_now(client)
    events = client.lead_events(after=start)
    first = await client.leads.create(LeadCreate(business_name="Streamed One"))
    second = await client.leads.create(LeadCreate(business_name="Streamed Two"))
    got = [await next_event(events), await next_event(events)]
    await events.aclose()
    assert [(e.type, e.lead_id) for e in got] == [
        ("lead.created", first.id),
        ("lead.created", second.id),
    ]
    assert int(got[0].id) < int(got[1].id)
    assert got[0].lead is not None and got[0].lead.business_name == "Streamed One"


async def test_a_shutdown_close_is_resumed_with_after_and_misses_nothing(
    client: AsyncClient, proxy: Proxy, server: TestServer, tenant: Tenant
) -> None:
    start = await cursor_now(client)
    events = client.lead_events(after=start)
    before = await client.leads.create(LeadCreate(business_name="Before Shutdown"))
    assert (await next_event(events)).lead_id == before.id
    # The server's own shutdown path: an error naming the cursor, then 1001 naming it too.
    proxy.refuse_websockets = True
    mine = [
        c
        for c in server.app[keys.CONNECTIONS].connections()
        if c.context.authorization == f"Bearer {tenant.write_key}"
    ]
    assert len(mine) == 1
    await mine[0].go_away()
    during = await client.leads.create(LeadCreate(business_name="During Shutdown"))
    proxy.refuse_websockets = False
    after = await client.leads.create(LeadCreate(business_name="After Shutdown"))
    got = [await next_event(events), await next_event(events)]
    await events.aclose()
    assert [e.lead_id for e in got] == [during.id, after.id]
    assert proxy.websocket_upgrades >= 2


async def test_with_no_cursor_yet_a_1001_resumes_from_the_cursor_its_reason_names(
    client: AsyncClient, proxy: Proxy
) -> None:
    start = await cursor_now(client)
    written = await client.leads.create(LeadCreate(business_name="Named By The Close"))
    # A live subscription (no after) whose first connection closes for shutdown naming `start`:
    # only by resuming from it does the lead written before the subscription show up.
    proxy.farewell_after_ack = (1001, f'server shutting down; resume with after: "{start}"')
    events = client.lead_events()
    event = await next_event(events)
    await events.aclose()
    assert (event.type, event.lead_id) == ("lead.created", written.id)
    assert proxy.websocket_upgrades == 2


async def test_a_dropped_socket_is_resumed_with_after_and_misses_nothing(
    client: AsyncClient, proxy: Proxy
) -> None:
    start = await cursor_now(client)
    events = client.lead_events(after=start, types=["lead.created"])
    first = await client.leads.create(LeadCreate(business_name="Before Drop"))
    assert (await next_event(events)).lead_id == first.id
    proxy.refuse_websockets = True
    assert await proxy.drop_websockets() == 1
    missed = [await client.leads.create(LeadCreate(business_name=f"Missed {i}")) for i in range(3)]
    proxy.refuse_websockets = False
    got = [await next_event(events) for _ in missed]
    await events.aclose()
    assert [e.lead_id for e in got] == [lead.id for lead in missed]


async def test_an_invalid_key_raises_unauthenticated_without_retrying(
    proxy: Proxy,
) -> None:
    async with AsyncClient(proxy.url, api_key="lw_live_" + "0" * 32, reconnect=RECONNECT) as c:
        with pytest.raises(Unauthenticated):
            await next_event(c.lead_events())
    assert proxy.websocket_upgrades == 1


async def test_a_4401_while_streaming_raises_unauthenticated(
    client: AsyncClient, proxy: Proxy
) -> None:
    start = await cursor_now(client)
    events = client.lead_events(after=start)
    lead = await client.leads.create(LeadCreate(business_name="Revoked Soon"))
    assert (await next_event(events)).lead_id == lead.id
    # What the gateway sends when the key is revoked while the socket is open.
    await proxy.drop_websockets(4401, b"credential revoked")
    with pytest.raises(Unauthenticated) as raised:
        await next_event(events)
    assert "credential revoked" in raised.value.message
    assert proxy.websocket_upgrades == 1


async def test_the_sync_client_iterates_events(
    server: TestServer, client: AsyncClient, tenant: Tenant
) -> None:
    start = await cursor_now(client)
    lead = await client.leads.create(LeadCreate(business_name="Sync Streamed"))

    def first_event() -> Event:
        with Client(str(server.make_url("")), api_key=tenant.read_key) as sync:
            events = sync.lead_events(after=start)
            try:
                return next(events)
            finally:
                events.close()

    event = await asyncio.wait_for(asyncio.to_thread(first_event), WITHIN)
    assert (event.type, event.lead_id) == ("lead.created", lead.id)


async def test_the_request_timeout_does_not_cut_a_quiet_subscription(
    proxy: Proxy, tenant: Tenant
) -> None:
    async with AsyncClient(proxy.url, api_key=tenant.write_key, timeout=0.5) as client:
        events = client.lead_events(after=await cursor_now(client))
        waiting = asyncio.create_task(next_event(events))
        await asyncio.sleep(1.0)  # twice the request timeout, with nothing to deliver
        lead = await client.leads.create(LeadCreate(business_name="After A Quiet Second"))
        assert (await waiting).lead_id == lead.id
        await events.aclose()
    assert proxy.websocket_upgrades == 1


async def test_a_subscription_the_gateway_refuses_raises_its_error(
    client: AsyncClient, proxy: Proxy
) -> None:
    with pytest.raises(ValidationError):
        await next_event(client.lead_events(types=["lead.exploded"]))
    assert proxy.websocket_upgrades == 1
