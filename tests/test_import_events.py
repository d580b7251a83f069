"""import.completed and import.failed (issue 12 #3): an import's end is an organization event
(no lead, migration 0012), written with the job's final status in one transaction, sent to the
webhooks subscribed to it, announced like any event (NOTIFY, or the NATS relay), and never
carried by the lead feeds (subscriptions, `events`, GET /v1/events).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from leadgate.domain.import_files import ImportFormat
from leadgate.services.imports import Importer, ImportFile
from leadgate.services.lead_writes import WriteContext
from leadgate.store.events import NOTIFY_CHANNEL
from tests.support import EVENTS, Api, Tenant, create_lead, ok
from tests.test_erase import ERASE
from tests.test_imports import csv_rows, finished, operator, upload
from tests.test_nats_events import (  # noqa: F401 - the bus fixtures
    NatsServer,
    bus_database_url,
    bus_pool,
    bus_tenant,
    nats_server,
    relayed,
)
from tests.test_subscriptions import ws_url
from tests.test_webhooks import OpenReceiver, create_endpoint, receivers  # noqa: F401 - a fixture
from tests.ws_client import Subscription, connect, subscribe

LEAD_EVENTS: Final = """
subscription($types: [String!], $after: ID) {
  leadEvents(types: $types, after: $after) { id type sequence lead { id } }
}
"""
# A row the lead validator refuses (no such priority), after three it accepts.
REFUSED_ROW: Final = "Refused Row,refused@example.com,1000,,,sky-high\n"
DEADLINE: Final = 10.0


async def imported(api: Api, tenant: Tenant, content: str) -> dict[str, Any]:
    """The job of `content` uploaded through POST /v1/imports, once it has ended."""
    status, body, _ = await upload(api, tenant.write_key, content)
    assert status == 202, body
    return await finished(api, tenant.write_key, body["data"]["id"])


async def ends(pool: asyncpg.Pool, tenant: Tenant, job_id: str) -> list[asyncpg.Record]:
    """The job's import.completed / import.failed events."""
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT id, type, lead_id, sequence, payload FROM lead_events "
            "WHERE organization_id = $1 AND type LIKE 'import.%' "
            "AND payload ->> 'importJobId' = $2 ORDER BY id",
            tenant.id,
            job_id,
        )
    return rows


async def lead_event_ids(pool: asyncpg.Pool, tenant: Tenant, after: int) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id FROM lead_events WHERE organization_id = $1 AND id > $2 "
            "AND lead_id IS NOT NULL ORDER BY id",
            tenant.id,
            after,
        )
    return [r["id"] for r in rows]


async def latest_event_id(pool: asyncpg.Pool, tenant: Tenant) -> int:
    async with pool.acquire() as conn:
        latest: int = await conn.fetchval(
            "SELECT coalesce(max(id), 0) FROM lead_events WHERE organization_id = $1", tenant.id
        )
    return latest


def ended(job: dict[str, Any]) -> dict[str, Any]:
    """What import.completed's data must say about `job` (GET /v1/imports/{id})."""
    return {
        "importJobId": job["id"],
        "status": job["status"],
        "counts": job["counts"],
        "completedAt": job["completedAt"],
    }


async def next_event(sub: Subscription) -> dict[str, Any]:
    payload = await sub.next()
    assert "errors" not in payload, payload
    event: dict[str, Any] = payload["data"]["leadEvents"]
    return event


# --- webhooks -------------------------------------------------------------------------------


async def test_an_endpoint_subscribed_to_import_completed_gets_one_signed_delivery_with_the_counts(
    api: Api,
    tenant: Tenant,
    pool: asyncpg.Pool,
    receivers: OpenReceiver,  # noqa: F811 - the fixture
) -> None:
    receiver = await receivers()
    _, secret = await create_endpoint(api, tenant, receiver.url, ["import.completed"])

    job = await imported(api, tenant, csv_rows(3) + REFUSED_ROW)

    (event,) = await ends(pool, tenant, job["id"])
    (delivered,) = await receiver.wait_for_count(1)
    assert job["status"] == "completed"
    assert job["counts"] == {"total": 4, "created": 3, "updated": 0, "failed": 1}
    assert delivered.verifies(secret)
    assert delivered.webhook_id == str(event["id"])
    body = delivered.json
    assert (body["id"], body["type"], body["sequence"]) == (
        str(event["id"]),
        "import.completed",
        None,
    )
    assert body["data"] == ended(job)
    assert body["actor"]["type"] == "api_key"
    async with pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE organization_id = $1", tenant.id
        )
    assert queued == 1


async def test_an_endpoint_not_subscribed_to_import_completed_gets_only_the_lead_events(
    api: Api,
    tenant: Tenant,
    pool: asyncpg.Pool,
    receivers: OpenReceiver,  # noqa: F811 - the fixture
) -> None:
    receiver = await receivers()
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    job = await imported(api, tenant, csv_rows(2))

    assert len(await ends(pool, tenant, job["id"])) == 1
    async with pool.acquire() as conn:
        # Every delivery is queued in its event's transaction: all of them exist by now.
        queued = await conn.fetch(
            "SELECT e.type FROM webhook_deliveries AS d JOIN lead_events AS e "
            "ON e.organization_id = d.organization_id AND e.id = d.event_id "
            "WHERE d.organization_id = $1 AND d.endpoint_id = $2",
            tenant.id,
            UUID(endpoint_id),
        )
    assert [r["type"] for r in queued] == ["lead.created", "lead.created"]


# --- one transaction ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cancelled:
    """An import whose import.completed could not be written, and what was seen meanwhile."""

    job: dict[str, Any]
    status_while_waiting: str
    ends_while_waiting: int


async def blocked_by(pool: asyncpg.Pool, holder_pid: int) -> int:
    """The backend waiting on a lock `holder_pid` holds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        waiting: int | None = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", holder_pid
        )
        if waiting is not None:
            return waiting
        assert time.monotonic() < deadline, "the import's completion never waited"
        await asyncio.sleep(0.02)


async def completion_cancelled(
    api: Api, pool: asyncpg.Pool, tenant: Tenant, *, failed_to: str | None = None
) -> Cancelled:
    """Import two rows while the one endpoint subscribed to import.completed is locked: the
    completion's delivery (a foreign key to the endpoint) waits in the event's statement,
    after the job's status was written; that statement is then cancelled. `failed_to`: a URL
    subscribed to import.failed."""
    locked_id, _ = await create_endpoint(
        api, tenant, "http://127.0.0.1:9/hook", ["import.completed"]
    )
    if failed_to is not None:
        await create_endpoint(api, tenant, failed_to, ["import.failed"])
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "SELECT 1 FROM webhook_endpoints WHERE organization_id = $1 AND id = $2 FOR UPDATE",
            tenant.id,
            UUID(locked_id),
        )
        status, body, _ = await upload(api, tenant.write_key, csv_rows(2))
        assert status == 202, body
        job_id = body["data"]["id"]
        waiting = await blocked_by(pool, holder.get_server_pid())
        _, seen, _ = await api.rest("GET", f"/v1/imports/{job_id}", tenant.write_key)
        ends_seen = len(await ends(pool, tenant, job_id))
        await pool.execute("SELECT pg_cancel_backend($1)", waiting)
        # Ended while the lock is still held: import.failed needs nothing of that endpoint.
        job = await finished(api, tenant.write_key, job_id)
    return Cancelled(job, seen["data"]["status"], ends_seen)


async def test_the_job_is_completed_exactly_when_its_import_completed_event_is_written(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cancelled = await completion_cancelled(api, pool, tenant)

    # Waiting inside the event's statement, the job's completed status was not visible either.
    assert (cancelled.status_while_waiting, cancelled.ends_while_waiting) == ("running", 0)
    # Cancelled, both rolled back; the run then ended the job as failed, with its own event.
    assert (cancelled.job["status"], cancelled.job["failure"]) == ("failed", "QueryCanceledError")
    found = await ends(pool, tenant, cancelled.job["id"])
    assert [(e["type"], e["lead_id"], e["sequence"]) for e in found] == [
        ("import.failed", None, None)
    ]


async def test_a_failed_job_sends_import_failed_with_its_failure(
    api: Api,
    tenant: Tenant,
    pool: asyncpg.Pool,
    receivers: OpenReceiver,  # noqa: F811 - the fixture
) -> None:
    receiver = await receivers()

    cancelled = await completion_cancelled(api, pool, tenant, failed_to=receiver.url)

    (delivered,) = await receiver.wait_for_count(1)
    assert delivered.json["type"] == "import.failed"
    assert delivered.json["data"] == {**ended(cancelled.job), "failure": "QueryCanceledError"}


# --- announced like any event ---------------------------------------------------------------


@dataclass(frozen=True)
class Listening:
    """A LISTEN connection on the events channel and what it heard ("<organization>:<id>")."""

    conn: asyncpg.Connection
    heard: asyncio.Queue[str]

    async def caught_up(self) -> None:
        """After a round trip: PostgreSQL sends what was notified before it answers."""
        await self.conn.execute("SELECT 1")
        await asyncio.sleep(0)  # the listener's callbacks run before this resumes


@contextlib.asynccontextmanager
async def listening(database_url: str) -> AsyncIterator[Listening]:
    conn = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
    try:
        yield Listening(conn, heard)
    finally:
        await conn.close()


async def test_import_completed_is_notified_with_its_id(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, database_url: str
) -> None:
    async with listening(database_url) as listener:
        job = await imported(api, tenant, csv_rows(2))
        (event,) = await ends(pool, tenant, job["id"])
        await listener.caught_up()
    heard = [listener.heard.get_nowait() for _ in range(listener.heard.qsize())]

    assert f"{tenant.id}:{event['id']}" in heard


async def test_with_an_event_bus_import_completed_is_relayed_and_not_notified(
    bus_database_url: str,  # noqa: F811 - the fixture
    bus_pool: asyncpg.Pool,  # noqa: F811
    bus_tenant: Tenant,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
) -> None:
    importer = Importer(bus_pool, idempotency_ttl_seconds=60, notify=False)
    ctx = WriteContext(principal=operator(bus_tenant.id), request_id="test")
    upload_file = ImportFile(csv_rows(2).encode(), ImportFormat.CSV)
    wait_for: Callable[[int], Awaitable[list[int]]]
    async with (
        relayed(bus_database_url, nats_server) as wait_for,
        listening(bus_database_url) as listener,
    ):
        cursor = await latest_event_id(bus_pool, bus_tenant)
        job = await importer.import_now(ctx, upload_file)
        (event,) = await ends(bus_pool, bus_tenant, str(job.id))
        created = await lead_event_ids(bus_pool, bus_tenant, cursor)
        relayed_ids = await wait_for(3)
        await listener.caught_up()

    assert relayed_ids == [*created, event["id"]]
    assert listener.heard.empty()


# --- the lead feeds -------------------------------------------------------------------------


async def test_a_live_lead_events_subscription_gets_the_imported_leads_but_not_the_completion(
    api: Api, server: TestServer, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, LEAD_EVENTS)
        before = await create_lead(api, tenant, "Before Import Ltd")
        assert (await next_event(sub))["lead"]["id"] == before  # live
        cursor = await latest_event_id(pool, tenant)
        job = await imported(api, tenant, csv_rows(3))
        after = await create_lead(api, tenant, "After Import Ltd")
        received = [await next_event(sub) for _ in range(4)]

    (completion,) = await ends(pool, tenant, job["id"])
    assert [int(e["id"]) for e in received] == await lead_event_ids(pool, tenant, cursor)
    assert [e["type"] for e in received] == ["lead.created"] * 4
    assert received[-1]["lead"]["id"] == after
    # The feed stepped over the completion's id and carried on.
    assert int(received[2]["id"]) < completion["id"] < int(received[3]["id"])


async def test_resuming_lead_events_after_an_import_replays_its_leads_without_the_completion(
    api: Api, server: TestServer, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant)
    await imported(api, tenant, csv_rows(3))
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, LEAD_EVENTS, {"after": str(cursor)})
        replayed = [await next_event(sub) for _ in range(3)]
        live_id = await create_lead(api, tenant, "Live Ltd")
        live = await next_event(sub)

    assert [int(e["id"]) for e in replayed] == (await lead_event_ids(pool, tenant, cursor))[:3]
    assert [e["sequence"] for e in replayed] == [1, 1, 1]
    assert (live["type"], live["lead"]["id"]) == ("lead.created", live_id)


async def test_the_events_backfill_lists_the_imported_leads_but_not_the_completion(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    cursor = await latest_event_id(pool, tenant)
    await imported(api, tenant, csv_rows(2))

    status, body, _ = await api.rest("GET", f"/v1/events?after={cursor}", tenant.read_key)
    graphql = await ok(api, tenant.read_key, EVENTS, {"after": str(cursor)})

    assert status == 200, body
    assert [e["type"] for e in body["data"]] == ["lead.created", "lead.created"]
    assert all(e["leadId"] is not None and e["sequence"] == 1 for e in body["data"])
    assert [e["id"] for e in graphql["events"]] == [e["id"] for e in body["data"]]


async def test_asking_a_lead_feed_for_import_completed_is_a_validation_error_naming_it(
    api: Api, server: TestServer, tenant: Tenant
) -> None:
    rest_status, rest, _ = await api.rest(
        "GET", "/v1/events?types=import.completed", tenant.read_key
    )
    _, graphql = await api.graphql(tenant.read_key, EVENTS, {"types": ["import.completed"]})
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
    ):
        await subscribe(ws, LEAD_EVENTS, {"types": ["lead.created", "import.completed"]})
        message = await asyncio.wait_for(ws.receive_json(), 5)
    subscription = message["payload"]["errors"] if message["type"] == "next" else message["payload"]

    refusals = [
        (rest["error"]["code"], rest["error"]["fields"][0]),
        (
            graphql["errors"][0]["extensions"]["code"],
            graphql["errors"][0]["extensions"]["fields"][0],
        ),
        (subscription[0]["extensions"]["code"], subscription[0]["extensions"]["fields"][0]),
    ]
    assert rest_status == 422
    for code, field in refusals:
        assert (code, field["field"]) == ("VALIDATION_ERROR", "types")
        assert field["message"].startswith("import.completed is an organization event")


async def test_erasing_an_imported_lead_leaves_the_import_completed_event_alone(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    await create_endpoint(api, tenant, "http://127.0.0.1:9/hook", ["import.completed"])
    job = await imported(api, tenant, csv_rows(2))
    (before,) = await ends(pool, tenant, job["id"])
    async with pool.acquire() as conn:
        lead_id = await conn.fetchval(
            "SELECT id FROM leads WHERE organization_id = $1 AND import_job_id = $2 LIMIT 1",
            tenant.id,
            UUID(job["id"]),
        )

    await ok(api, tenant.write_key, ERASE, {"id": str(lead_id)})

    (after,) = await ends(pool, tenant, job["id"])
    assert after["payload"] == before["payload"]
    async with pool.acquire() as conn:
        error = await conn.fetchval(
            "SELECT error FROM webhook_deliveries WHERE organization_id = $1 AND event_id = $2",
            tenant.id,
            before["id"],
        )
    assert not (error or "").startswith("cancelled")
