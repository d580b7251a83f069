"""Webhooks across real processes: `leadgate serve` gateways killed with SIGKILL and run side by
side on one database, and the `leadgate webhook` commands.

These run on a database of their own (created beside the session's on the same server): the
session `server` runs a dispatcher too, and on the shared database it would deliver what the
restarted gateway is meant to recover and join the dispatchers meant to be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import pytest

from leadgate.domain.webhooks import EVENT_TYPES
from tests.databases import migrated_pool, throwaway_database
from tests.processes import LEADGATE, free_port, leadgate
from tests.support import Api, Tenant, make_tenant
from tests.webhook_receiver import Received, Receiver, Reply

STARTUP_DEADLINE: Final = 30.0
SHUTDOWN_DEADLINE: Final = 15.0
LEASE_SECONDS: Final = 3.0

REDELIVER: Final = "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }"
CREATE_ENDPOINT: Final = """
mutation($url: String!, $types: [String!]!) {
  createWebhookEndpoint(url: $url, eventTypes: $types) { endpoint { id } secret }
}
"""


# --- a database, gateways and commands of our own -------------------------------------------


@pytest.fixture(scope="module")
async def process_database_url(server_url: str) -> AsyncIterator[str]:
    async with throwaway_database(server_url, "leadgate_webhook_processes") as url:
        yield url


@pytest.fixture(scope="module")
async def process_pool(process_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(process_database_url) as pool:
        yield pool


@pytest.fixture
async def process_tenant(process_pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(process_pool, name="Process Lending")


@pytest.fixture
def gateway_env(process_database_url: str, process_pool: asyncpg.Pool) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": process_database_url,
        "LEADGATE_ALLOW_INSECURE_WEBHOOKS": "1",
        "LEADGATE_WEBHOOK_RETRY_SCHEDULE": "0.2,0.4,0.8",
        "LEADGATE_WEBHOOK_LEASE": str(LEASE_SECONDS),
    }


@dataclass(frozen=True)
class Gateway:
    process: asyncio.subprocess.Process
    base: str
    log: Path

    async def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no settling of what is in flight."""
        self.process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.process.wait(), SHUTDOWN_DEADLINE) == -signal.SIGKILL


async def wait_until_healthy(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        assert gateway.process.returncode is None, f"serve exited\n{gateway.log.read_text()}"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.get(f"{gateway.base}/healthz") as resp:
                if resp.status == 200:
                    return
        assert time.monotonic() < deadline, f"/healthz never answered\n{gateway.log.read_text()}"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def gateways(
    session: aiohttp.ClientSession, env: Mapping[str, str], directory: Path, *names: str
) -> AsyncIterator[list[Gateway]]:
    """One healthy `leadgate serve` per name, each on a free port, started side by side;
    stopped on the way out (SIGTERM, then SIGKILL) unless already dead."""
    started: list[Gateway] = []
    with contextlib.ExitStack() as logs:
        try:
            for name in names:
                port, log = free_port(), directory / f"{name}.log"
                log_file = logs.enter_context(log.open("wb"))
                process = await asyncio.create_subprocess_exec(
                    str(LEADGATE),
                    "serve",
                    "--port",
                    str(port),
                    env=dict(env),
                    cwd=directory,
                    stdout=log_file,
                    stderr=log_file,
                )
                started.append(Gateway(process, f"http://127.0.0.1:{port}", log))
            await asyncio.gather(*(wait_until_healthy(session, g) for g in started))
            yield started
        finally:
            await asyncio.gather(*(stop(g.process) for g in started))


@contextlib.asynccontextmanager
async def gateway(
    session: aiohttp.ClientSession, env: Mapping[str, str], directory: Path, name: str
) -> AsyncIterator[Gateway]:
    async with gateways(session, env, directory, name) as (one,):
        yield one


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()


# --- helpers --------------------------------------------------------------------------------


async def create_endpoint(api: Api, tenant: Tenant, url: str) -> str:
    """A lead.created endpoint of `tenant`; its secret."""
    status, body = await api.graphql(
        tenant.write_key, CREATE_ENDPOINT, {"url": url, "types": ["lead.created"]}
    )
    assert status == 200, body
    assert "errors" not in body, body
    secret: str = body["data"]["createWebhookEndpoint"]["secret"]
    return secret


async def create_leads(apis: list[Api], tenant: Tenant, count: int) -> None:
    """`count` leads over REST, spread over the gateways, a few at a time."""
    running = asyncio.Semaphore(10)

    async def one(i: int) -> None:
        async with running:
            status, body, _ = await apis[i % len(apis)].rest(
                "POST", "/v1/leads", tenant.write_key, json={"businessName": f"Lead {i}"}
            )
        assert status == 201, body

    await asyncio.gather(*(one(i) for i in range(count)))


async def event_ids(pool: asyncpg.Pool, tenant: Tenant) -> set[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id FROM lead_events WHERE organization_id = $1", tenant.id)
    return {str(r["id"]) for r in rows}


async def delivery_statuses(pool: asyncpg.Pool, tenant: Tenant) -> Counter[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT status FROM webhook_deliveries WHERE organization_id = $1", tenant.id
        )
    return Counter(r["status"] for r in rows)


async def wait_until_all_succeeded(
    pool: asyncpg.Pool, tenant: Tenant, count: int, *, within: float
) -> None:
    deadline = time.monotonic() + within
    while (statuses := await delivery_statuses(pool, tenant)) != {"succeeded": count}:
        assert time.monotonic() < deadline, f"deliveries after {within}s: {dict(statuses)}"
        await asyncio.sleep(0.1)


def assert_duplicates_are_the_same_message(requests: list[Received], secret: str) -> None:
    """Every request is signed, names its event in body and header alike, and any request
    repeated for a webhook-id carries the same event."""
    by_id: dict[str, list[Received]] = {}
    for request in requests:
        assert request.verifies(secret), request.headers
        assert request.json["id"] == request.webhook_id
        by_id.setdefault(request.webhook_id, []).append(request)
    for copies in by_id.values():
        assert all(copy.json == copies[0].json for copy in copies), [c.json for c in copies]


def local_tcp_ports(pid: int) -> set[int]:
    """The local ports of `pid`'s TCP sockets (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# --- kill -9 --------------------------------------------------------------------------------


async def test_after_a_gateway_is_killed_mid_delivery_a_restarted_one_delivers_every_event(
    process_pool: asyncpg.Pool,
    process_tenant: Tenant,
    gateway_env: dict[str, str],
    tmp_path: Path,
) -> None:
    events = 20
    async with (
        aiohttp.ClientSession() as session,
        Receiver(delay=1.5) as receiver,  # slow: deliveries are in flight when the kill comes
    ):
        async with gateway(session, gateway_env, tmp_path, "first") as first:
            api = Api(session=session, base=first.base)
            secret = await create_endpoint(api, process_tenant, receiver.url)
            await create_leads([api], process_tenant, events)
            await receiver.wait_for_count(1)
            await first.kill()
        killed_at = time.monotonic()
        async with process_pool.acquire() as conn:
            in_flight = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries"
                " WHERE organization_id = $1 AND status = 'pending' AND attempt > 0",
                process_tenant.id,
            )
        assert in_flight >= 1, "the kill came after every claimed delivery was settled"

        async with gateway(session, gateway_env, tmp_path, "second"):
            await wait_until_all_succeeded(process_pool, process_tenant, events, within=30)

        expected = await event_ids(process_pool, process_tenant)
        assert len(expected) == events
        assert set(receiver.ids()) == expected
        assert_duplicates_are_the_same_message(receiver.requests, secret)
        resent = {r.webhook_id for r in receiver.requests if r.arrived > killed_at}
        before = {r.webhook_id for r in receiver.requests if r.arrived < killed_at}
        assert before & resent, "no delivery in flight at the kill was sent again"


# --- two dispatchers ------------------------------------------------------------------------


async def test_two_dispatcher_processes_deliver_every_event_once_and_never_concurrently(
    process_pool: asyncpg.Pool,
    process_tenant: Tenant,
    gateway_env: dict[str, str],
    tmp_path: Path,
) -> None:
    events = 200
    async with (
        aiohttp.ClientSession() as session,
        Receiver(delay=0.05) as receiver,
        gateways(session, gateway_env, tmp_path, "one", "two") as (one, two),
    ):
        apis = [Api(session=session, base=g.base) for g in (one, two)]
        secret = await create_endpoint(apis[0], process_tenant, receiver.url)

        await create_leads(apis, process_tenant, events)

        await wait_until_all_succeeded(process_pool, process_tenant, events, within=30)
        ports = {g.process.pid: local_tcp_ports(g.process.pid) for g in (one, two)}

    expected = await event_ids(process_pool, process_tenant)
    assert receiver.overlaps == [], "one webhook-id was being delivered twice at once"
    duplicates = {i: n for i, n in Counter(receiver.ids()).items() if n > 1}
    assert duplicates == {}, f"{len(receiver.requests)} deliveries for {events} events"
    assert set(receiver.ids()) == expected
    assert_duplicates_are_the_same_message(receiver.requests, secret)
    senders = Counter(
        pid for r in receiver.requests for pid, owned in ports.items() if r.peer_port in owned
    )
    assert len(senders) == 2, f"deliveries per gateway process: {dict(senders)}"


async def test_redelivering_through_one_gateway_while_another_sends_never_overlaps(
    process_pool: asyncpg.Pool,
    process_tenant: Tenant,
    gateway_env: dict[str, str],
    tmp_path: Path,
) -> None:
    hold = 2.0  # the first send is held this long; the lease (3 s) outlasts it
    async with (
        aiohttp.ClientSession() as session,
        Receiver([Reply(200, delay=hold)]) as receiver,
        gateways(session, gateway_env, tmp_path, "one", "two") as (one, two),
    ):
        secret = await create_endpoint(
            Api(session=session, base=one.base), process_tenant, receiver.url
        )
        await create_leads([Api(session=session, base=one.base)], process_tenant, 1)
        await receiver.wait_for_count(1)
        async with process_pool.acquire() as conn:
            delivery_id = await conn.fetchval(
                "SELECT id FROM webhook_deliveries WHERE organization_id = $1", process_tenant.id
            )

        status, body = await Api(session=session, base=two.base).graphql(
            process_tenant.write_key, REDELIVER, {"id": str(delivery_id)}
        )

        assert status == 200, body
        assert "errors" not in body, body
        first, again = await receiver.wait_for_count(2, within=15)
    assert receiver.overlaps == [], "the redelivery was sent while the first send was held"
    assert again.arrived >= first.arrived + hold
    assert again.webhook_id == first.webhook_id
    assert again.verifies(secret)


# --- the `leadgate webhook` commands --------------------------------------------------------


async def webhook_add(env: Mapping[str, str], tenant: Tenant, *args: str) -> dict[str, Any]:
    result = await leadgate("webhook", "add", "--org", str(tenant.id), *args, "--json", env=env)
    record: dict[str, Any] = json.loads(result.ok().stdout)
    return record


async def stored_endpoints(pool: asyncpg.Pool, tenant: Tenant) -> list[tuple[str, str, str]]:
    """(id, url, secret) of the tenant's endpoints, as the database has them."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, url, secret FROM webhook_endpoints WHERE organization_id = $1", tenant.id
        )
    return [(str(r["id"]), r["url"], r["secret"]) for r in rows]


async def test_webhook_add_prints_the_endpoint_and_its_secret_as_json(
    gateway_env: dict[str, str], process_tenant: Tenant, process_pool: asyncpg.Pool
) -> None:
    record = await webhook_add(
        gateway_env, process_tenant, "http://127.0.0.1:9/hook", "--events", "lead.created"
    )

    assert set(record) == {"id", "url", "eventTypes", "secret"}
    assert record["url"] == "http://127.0.0.1:9/hook"
    assert record["eventTypes"] == ["lead.created"]
    assert record["secret"].startswith("whsec_")
    assert await stored_endpoints(process_pool, process_tenant) == [
        (record["id"], record["url"], record["secret"])
    ]


async def test_webhook_list_shows_the_endpoints_without_secrets(
    gateway_env: dict[str, str], process_tenant: Tenant
) -> None:
    added = await webhook_add(gateway_env, process_tenant, "http://127.0.0.1:9/listed")
    org = str(process_tenant.id)

    text, as_json = await asyncio.gather(
        leadgate("webhook", "list", "--org", org, env=gateway_env),
        leadgate("webhook", "list", "--org", org, "--json", env=gateway_env),
    )

    (line,) = text.ok().stdout.splitlines()
    assert line.split()[:2] == [added["id"], added["url"]]
    assert line.split()[-1] == "enabled"
    assert added["secret"] not in text.stdout + as_json.ok().stdout
    # Without --events an endpoint gets every event type.
    assert json.loads(as_json.stdout) == [
        {
            "id": added["id"],
            "url": added["url"],
            "eventTypes": list(EVENT_TYPES),
            "enabled": True,
        }
    ]


async def test_webhook_rm_removes_the_endpoint(
    gateway_env: dict[str, str], process_tenant: Tenant, process_pool: asyncpg.Pool
) -> None:
    added = await webhook_add(gateway_env, process_tenant, "http://127.0.0.1:9/removed")

    removed = await leadgate(
        "webhook", "rm", "--org", str(process_tenant.id), added["id"], env=gateway_env
    )

    assert removed.ok().stdout.strip() == f"removed {added['id']}"
    assert await stored_endpoints(process_pool, process_tenant) == []


async def test_webhook_commands_for_another_organization_neither_see_nor_remove_it(
    gateway_env: dict[str, str], process_tenant: Tenant, process_pool: asyncpg.Pool
) -> None:
    added = await webhook_add(gateway_env, process_tenant, "http://127.0.0.1:9/mine")
    other = await make_tenant(process_pool, name="Other Process Lending")

    listed, removed = await asyncio.gather(
        leadgate("webhook", "list", "--org", str(other.id), "--json", env=gateway_env),
        leadgate("webhook", "rm", "--org", str(other.id), added["id"], env=gateway_env),
    )

    assert json.loads(listed.ok().stdout) == []
    assert removed.returncode == 1
    assert removed.stderr.startswith("error: "), removed.stderr
    assert "Traceback" not in removed.stderr
    assert [e[0] for e in await stored_endpoints(process_pool, process_tenant)] == [added["id"]]


async def test_webhook_add_refuses_plain_http_unless_insecure_webhooks_are_allowed(
    gateway_env: dict[str, str], process_tenant: Tenant, process_pool: asyncpg.Pool
) -> None:
    env = {k: v for k, v in gateway_env.items() if k != "LEADGATE_ALLOW_INSECURE_WEBHOOKS"}

    result = await leadgate(
        "webhook", "add", "--org", str(process_tenant.id), "http://127.0.0.1:9/hook", env=env
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: "), result.stderr
    assert "https" in result.stderr
    assert "Traceback" not in result.stderr
    assert await stored_endpoints(process_pool, process_tenant) == []
