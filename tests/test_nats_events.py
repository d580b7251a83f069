"""Events over NATS JetStream (LEADGATE_EVENT_BUS, events/nats_bus.py): the relay's visibility
rule with writers in flight in two organizations, and real `leadgate serve` gateways whose
subscribers get every event exactly once while the nats-server is stopped and restarted.

Each test starts a nats-server of its own (`-js`, a free port, a temp store); the machine's
own on 4222 is never touched. Gateways run on a database of their own (see
tests/test_webhook_processes.py for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final
from uuid import UUID

import aiohttp
import asyncpg
import nats
import pytest
from nats.aio.msg import Msg

from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool
from leadgate.events.nats_bus import COMMITTED_AFTER, Relay
from leadgate.store import events
from tests.databases import create_database, drop_database
from tests.processes import free_port
from tests.support import Api, Tenant, make_tenant
from tests.test_webhook_processes import create_leads, gateways
from tests.ws_client import Subscription, connect, subscribe

NATS_SERVER: Final = shutil.which("nats-server") or "/usr/sbin/nats-server"
GATEWAYS: Final = 3
CREATED: Final = """
subscription($after: ID) { leadEvents(types: ["lead.created"], after: $after) { id } }
"""


class NatsServer:
    """A nats-server with JetStream on a port and store of its own, stoppable mid-test."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._store = store
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            NATS_SERVER,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self._store),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                assert time.monotonic() < deadline, "nats-server never listened"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def bus_database_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, prefix="leadgate_nats_events")
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="module")
async def bus_pool(bus_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(database_url=bus_database_url))
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture
async def bus_tenant(bus_pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(bus_pool, leads=1, name="Bus Lending")


@pytest.fixture
async def other_bus_tenant(bus_pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(bus_pool, leads=1, name="Other Bus Lending")


# --- the relay's visibility rule ------------------------------------------------------------


async def a_lead(pool: asyncpg.Pool, tenant: Tenant) -> UUID:
    async with pool.acquire() as conn:
        lead_id: UUID = await conn.fetchval(
            "SELECT id FROM leads WHERE organization_id = $1 LIMIT 1", tenant.id
        )
    return lead_id


async def write_event(conn: asyncpg.Connection, tenant: Tenant, lead_id: UUID) -> int:
    sequence: int = await conn.fetchval(
        "SELECT coalesce(max(sequence), 0) + 1 FROM lead_events WHERE lead_id = $1", lead_id
    )
    return await write_event_at(conn, tenant, lead_id, sequence=sequence)


async def write_event_at(
    conn: asyncpg.Connection, tenant: Tenant, lead_id: UUID, *, sequence: int
) -> int:
    return await events.insert_event(
        conn,
        tenant.id,
        lead_id=lead_id,
        sequence=sequence,
        type="lead.updated",
        payload={},
        actor=None,
        notify=False,
    )


@contextlib.asynccontextmanager
async def relayed(
    database_url: str, server: NatsServer, *, relay: bool = True
) -> AsyncIterator[Callable[[int], Awaitable[list[int]]]]:
    """An in-process relay (unless `relay=False`) and a core NATS subscriber, which sees
    every publish, a repeated one too; yields `wait_for(n)`: the ids received after those
    already in the table, once there are n of them (or 10 s passed)."""
    # The stream is new: the relay first publishes what the table already holds.
    conn = await asyncpg.connect(database_url)
    try:
        before: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM lead_events")
    finally:
        await conn.close()
    relayer = Relay(database_url, server.url)
    task = asyncio.create_task(relayer.run()) if relay else None
    nc = await nats.connect(server.url)
    received: list[int] = []
    arrived = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        if (event_id := int(msg.data.decode())) > before:
            received.append(event_id)
            arrived.set()

    await nc.subscribe("leadgate.>", cb=on_message)

    async def wait_for(count: int) -> list[int]:
        deadline = time.monotonic() + 10
        while len(received) < count and (left := deadline - time.monotonic()) > 0:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)
        return list(received)

    try:
        if task is not None:
            await asyncio.wait_for(relayer.active.wait(), 10)
        yield wait_for
    finally:
        await nc.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_the_relay_holds_a_later_id_until_an_earlier_writer_in_another_org_commits(
    bus_database_url: str,
    bus_pool: asyncpg.Pool,
    bus_tenant: Tenant,
    other_bus_tenant: Tenant,
    nats_server: NatsServer,
) -> None:
    first_lead, second_lead = (
        await a_lead(bus_pool, bus_tenant),
        await a_lead(bus_pool, other_bus_tenant),
    )
    async with relayed(bus_database_url, nats_server) as wait_for:
        async with bus_pool.acquire() as slow, bus_pool.acquire() as quick:
            slow_tx = slow.transaction()
            await slow_tx.start()
            earlier = await write_event(slow, bus_tenant, first_lead)
            async with quick.transaction():
                later = await write_event(quick, other_bus_tenant, second_lead)
            assert earlier < later
            # The later id is committed, the earlier still in flight: nothing may go out.
            assert await wait_for_quiet(wait_for) == []
            await slow_tx.commit()
        assert await wait_for(2) == [earlier, later]


async def wait_for_quiet(wait_for: Callable[[int], Awaitable[list[int]]]) -> list[int]:
    await asyncio.sleep(0.5)
    return await wait_for(0)


async def test_the_relay_reads_events_after_an_id_through_an_index_not_a_table_scan(
    bus_pool: asyncpg.Pool,
) -> None:
    async with bus_pool.acquire() as conn, conn.transaction():
        # However few rows the test database holds: what matters is that an index can serve it.
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN {COMMITTED_AFTER}", 0, 100)
    plan = "\n".join(row[0] for row in rows)

    assert "lead_events_by_id" in plan, plan
    assert "Seq Scan" not in plan, plan


async def test_the_relay_moves_past_an_id_whose_writer_rolled_back(
    bus_database_url: str,
    bus_pool: asyncpg.Pool,
    bus_tenant: Tenant,
    other_bus_tenant: Tenant,
    nats_server: NatsServer,
) -> None:
    first_lead, second_lead = (
        await a_lead(bus_pool, bus_tenant),
        await a_lead(bus_pool, other_bus_tenant),
    )
    async with relayed(bus_database_url, nats_server) as wait_for:
        async with bus_pool.acquire() as failing, bus_pool.acquire() as quick:
            failing_tx = failing.transaction()
            await failing_tx.start()
            await write_event(failing, bus_tenant, first_lead)
            async with quick.transaction():
                later = await write_event(quick, other_bus_tenant, second_lead)
            await failing_tx.rollback()
        assert await wait_for(1) == [later]


async def test_concurrent_writers_in_two_organizations_are_published_once_in_id_order(
    bus_database_url: str,
    bus_pool: asyncpg.Pool,
    bus_tenant: Tenant,
    other_bus_tenant: Tenant,
    nats_server: NatsServer,
) -> None:
    leads = [(bus_tenant, await a_lead(bus_pool, bus_tenant))] + [
        (other_bus_tenant, await a_lead(bus_pool, other_bus_tenant))
    ]
    running = asyncio.Semaphore(8)

    async def one(i: int) -> int:
        tenant, lead_id = leads[i % 2]
        async with running, bus_pool.acquire() as conn, conn.transaction():
            event_id = await write_event_at(conn, tenant, lead_id, sequence=1000 + i)
            await asyncio.sleep(0.001 * (i % 7))  # commits land out of id order
            return event_id

    async with relayed(bus_database_url, nats_server) as wait_for:
        written = await asyncio.gather(*(one(i) for i in range(200)))
        received = await wait_for(len(written))
    assert received == sorted(written)


async def test_a_standby_relay_takes_over_from_the_stream_s_last_message(
    bus_database_url: str,
    bus_pool: asyncpg.Pool,
    bus_tenant: Tenant,
    nats_server: NatsServer,
) -> None:
    lead_id = await a_lead(bus_pool, bus_tenant)
    async with relayed(bus_database_url, nats_server) as wait_for:
        async with bus_pool.acquire() as conn:
            first = await write_event(conn, bus_tenant, lead_id)
        assert await wait_for(1) == [first]
        standby = Relay(bus_database_url, nats_server.url)
        task = asyncio.create_task(standby.run())
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(standby.active.wait(), 1.5)
        except BaseException:
            task.cancel()
            raise
    # The first relay is gone (its connection, and with it the lock): the standby resumes
    # after the stream's last message, publishing nothing twice.
    try:
        await asyncio.wait_for(standby.active.wait(), 5)
        async with relayed(bus_database_url, nats_server, relay=False) as wait_for:
            async with bus_pool.acquire() as conn:
                second = await write_event(conn, bus_tenant, lead_id)
            assert await wait_for(1) == [second]
            assert await wait_for_quiet(wait_for) == [second]
        assert standby.published == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- gateways, subscribers and a nats-server that goes away ---------------------------------


async def latest_id(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        latest: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM lead_events")
    return latest


async def created_ids(pool: asyncpg.Pool, tenant: Tenant) -> set[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id FROM lead_events WHERE organization_id = $1 AND type = 'lead.created'",
            tenant.id,
        )
    return {str(r["id"]) for r in rows}


async def collect(sub: Subscription, into: list[str], count: int) -> None:
    while len(into) < count:
        payload = await sub.next(wait=30)
        into.append(payload["data"]["leadEvents"]["id"])


async def writes_survive_an_outage(
    pool: asyncpg.Pool,
    database_url: str,
    tenant: Tenant,
    server: NatsServer,
    tmp_path: Path,
    *,
    outage: float,
) -> list[Counter[str]]:
    """Leads written over 3 gateways before, during and after a nats-server outage of
    `outage` seconds; what each gateway's subscriber received, counted."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LEADGATE_EVENT_BUS": server.url,
        "LEADGATE_DISPATCHER": "0",
    }
    names = [f"gateway{i}" for i in range(GATEWAYS)]
    per_phase = 20
    after = str(await latest_id(pool))
    async with (
        aiohttp.ClientSession() as session,
        gateways(session, env, tmp_path, *names) as started,
    ):
        apis = [Api(session, g.base) for g in started]
        received: list[list[str]] = [[] for _ in started]
        async with contextlib.AsyncExitStack() as stack:
            subs = []
            for g in started:
                url = g.base.replace("http://", "ws://") + "/graphql"
                ws = await stack.enter_async_context(connect(session, url, tenant.read_key))
                subs.append(await subscribe(ws, CREATED, {"after": after}))
            collectors = [
                asyncio.create_task(collect(sub, into, 3 * per_phase))
                for sub, into in zip(subs, received, strict=True)
            ]
            await create_leads(apis, tenant, per_phase)
            await server.stop()
            stopped = time.monotonic()
            await create_leads(apis, tenant, per_phase)
            await asyncio.sleep(max(0.0, outage - (time.monotonic() - stopped)))
            await server.start()
            await create_leads(apis, tenant, per_phase)
            await asyncio.wait_for(asyncio.gather(*collectors), 30)
            # Nothing more arrives late (a duplicate would).
            with contextlib.suppress(TimeoutError):
                extra = await subs[0].next(wait=0.5)
                received[0].append(extra["data"]["leadEvents"]["id"])
    expected = await created_ids(pool, tenant)
    assert len(expected) == 3 * per_phase
    for counted in (Counter(r) for r in received):
        assert set(counted) == expected
    return [Counter(r) for r in received]


async def test_every_gateway_subscriber_gets_each_event_once_across_a_nats_restart(
    bus_pool: asyncpg.Pool,
    bus_database_url: str,
    bus_tenant: Tenant,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    counts = await writes_survive_an_outage(
        bus_pool, bus_database_url, bus_tenant, nats_server, tmp_path, outage=0.0
    )
    assert [max(c.values()) for c in counts] == [1] * GATEWAYS


async def test_events_written_while_nats_is_down_for_10s_all_arrive_after_it_returns(
    bus_pool: asyncpg.Pool,
    bus_database_url: str,
    bus_tenant: Tenant,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    counts = await writes_survive_an_outage(
        bus_pool, bus_database_url, bus_tenant, nats_server, tmp_path, outage=10.0
    )
    assert [max(c.values()) for c in counts] == [1] * GATEWAYS
