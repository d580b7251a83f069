"""SIGTERM to a real `leadgate serve` with 50 open subscriptions, HTTP request loops, a write
held in flight by a row lock and a webhook delivery in flight (issue 8 #9).

One shutdown is run for the module (a process start costs seconds); each test asserts one of
its outcomes. It runs on a database of its own: the session's `server` runs a dispatcher that
would claim the delivery this gateway releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
import asyncpg
import orjson
import pytest

from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool
from tests.databases import create_database, drop_database
from tests.processes import LEADGATE, free_port
from tests.support import Api, Tenant, bearer, make_tenant
from tests.ws_client import connect, subscribe

SUBSCRIBERS: Final = 50
REQUEST_LOOPS: Final = 4
STARTUP_DEADLINE: Final = 30.0
EXIT_DEADLINE: Final = 15.0
# Held this long after SIGTERM, the locked write is provably in flight during the shutdown.
LOCK_HELD_AFTER_SIGNAL: Final = 0.5
# A request sent this long before SIGTERM has surely reached the server: it must succeed.
SURELY_SENT: Final = 0.1
RESUME: Final = re.compile(r'resume with after: "(\d+)"')

READ = "{ leads(limit: 5) { nodes { id stage { stageKey } } } }"
MOVE = "mutation($id: ID!, $stage: ID!) { moveLead(id: $id, stageId: $stage) { id } }"
CHANGES = "subscription { leadStageChanged { eventId } }"
CREATE_ENDPOINT = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } }
}
"""


@dataclass
class Outcome:
    started: float
    kind: Literal["ok", "failed", "not accepted"]
    detail: str = ""


@dataclass
class Closed:
    frames: list[dict[str, Any]]
    code: int | None
    reason: str


@dataclass
class Shutdown:
    """What one SIGTERM did, as the clients saw it."""

    signalled_at: float
    exit_seconds: float
    returncode: int
    delivered_event_id: str
    closes: list[Closed]
    requests: list[Outcome]
    locked_write: Outcome
    deliveries: list[asyncpg.Record]
    log: str = field(repr=False)


@pytest.fixture(scope="module")
async def shutdown_database_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, prefix="leadgate_shutdown")
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="module")
async def shutdown_pool(shutdown_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(database_url=shutdown_database_url))
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


async def request_loop(api: Api, key: str, until: asyncio.Event, out: list[Outcome]) -> None:
    """Reads back to back until the server refuses connections (or `until` is set)."""
    while not until.is_set():
        started = time.monotonic()
        try:
            async with api.session.post(
                f"{api.base}/graphql", json={"query": READ}, headers=bearer(key)
            ) as resp:
                body = await resp.json()
        except aiohttp.ClientConnectorError:
            out.append(Outcome(started, "not accepted", "refused"))
            return
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # Closed before any response: not accepted, unless sent well before the signal
            # (the tests decide with `started`).
            out.append(Outcome(started, "not accepted", repr(exc)))
            continue
        except aiohttp.ClientError as exc:  # a response that started and was cut off
            out.append(Outcome(started, "failed", repr(exc)))
            continue
        ok = resp.status == 200 and "errors" not in body
        out.append(Outcome(started, "ok" if ok else "failed", f"{resp.status} {body}"))


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> Closed:
    """The frames received until the server closed the socket, and how it closed it."""
    frames: list[dict[str, Any]] = []
    while True:
        message = await ws.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            frames.append(orjson.loads(message.data))
        elif message.type is aiohttp.WSMsgType.CLOSE:
            return Closed(frames, message.data, message.extra or "")
        else:  # dropped without a close frame: 1006
            return Closed(frames, ws.close_code, str(message.type))


async def locked_write(api: Api, tenant: Tenant, lead_id: str) -> Outcome:
    started = time.monotonic()
    try:
        status, body = await api.graphql(
            tenant.write_key, MOVE, {"id": lead_id, "stage": str(tenant.stage_ids[2])}
        )
    except aiohttp.ClientError as exc:
        return Outcome(started, "failed", repr(exc))
    return Outcome(started, "ok" if "errors" not in body else "failed", f"{status} {body}")


@contextlib.asynccontextmanager
async def silent_receiver() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A webhook URL that accepts requests and never answers: a delivery to it stays in
    flight until its sender goes away. The event is set when the first request arrives."""
    arrived = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the sender closes
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", arrived
    finally:
        server.close()
        await server.wait_closed()


def read(log: Path) -> str:
    return log.read_text()


async def wait_until_healthy(
    session: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process, log: Path
) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        assert process.returncode is None, f"serve exited\n{read(log)}"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        assert time.monotonic() < deadline, f"/healthz never answered\n{read(log)}"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def shutdown(
    shutdown_database_url: str,
    shutdown_pool: asyncpg.Pool,
    tmp_path_factory: pytest.TempPathFactory,
) -> Shutdown:
    pool = shutdown_pool
    tenant = await make_tenant(pool, leads=5, name="Shutdown Lending")
    directory = tmp_path_factory.mktemp("shutdown")
    log = directory / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": shutdown_database_url,
        "LEADGATE_DATA_DIR": str(directory / "data"),
        "LEADGATE_ALLOW_INSECURE_WEBHOOKS": "1",
        "LEADGATE_LOCK_TIMEOUT_MS": "10000",
    }
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "serve",
            "--port",
            str(port),
            env=env,
            cwd=directory,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        return await _shut_down(pool, tenant, process, base, log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _shut_down(
    pool: asyncpg.Pool,
    tenant: Tenant,
    process: asyncio.subprocess.Process,
    base: str,
    log: Path,
) -> Shutdown:
    ws_url = base.replace("http://", "ws://") + "/graphql"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        silent_receiver() as (hook_url, hook_called),  # the delivery is in flight at SIGTERM
        contextlib.AsyncExitStack() as stack,
    ):
        await wait_until_healthy(session, base, process, log)
        api = Api(session=session, base=base)
        status, body = await api.graphql(tenant.write_key, CREATE_ENDPOINT, {"url": hook_url})
        assert "errors" not in body, body
        status, body, _ = await api.rest(
            "POST", "/v1/leads", tenant.write_key, json={"businessName": "Hooked"}
        )
        assert status == 201, body
        await asyncio.wait_for(hook_called.wait(), 10)
        _, body = await api.graphql(tenant.read_key, "{ leads(limit: 2) { nodes { id } } }")
        moved, locked = (n["id"] for n in body["data"]["leads"]["nodes"])

        sockets = [
            await stack.enter_async_context(connect(session, ws_url, tenant.read_key))
            for _ in range(SUBSCRIBERS)
        ]
        subscriptions = [await subscribe(ws, CHANGES) for ws in sockets]
        await asyncio.sleep(0.5)  # all registered (the protocol has no acknowledgement)
        _, body = await api.graphql(
            tenant.write_key, MOVE, {"id": moved, "stage": str(tenant.stage_ids[1])}
        )
        assert "errors" not in body, body
        delivered = {(await s.next())["data"]["leadStageChanged"]["eventId"] for s in subscriptions}
        (delivered_event_id,) = delivered
        closes = [asyncio.create_task(until_closed(ws)) for ws in sockets]

        stop_loops = asyncio.Event()
        requests: list[Outcome] = []
        loop_sessions = [
            await stack.enter_async_context(aiohttp.ClientSession()) for _ in range(REQUEST_LOOPS)
        ]
        loops = [
            asyncio.create_task(request_loop(Api(s, base), tenant.read_key, stop_loops, requests))
            for s in loop_sessions
        ]
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM leads WHERE id = $1 FOR UPDATE", locked)
            write = asyncio.create_task(locked_write(api, tenant, locked))
            await asyncio.sleep(0.5)  # the write waits on the row lock; the loops are running
            assert not write.done(), write
            signalled_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(LOCK_HELD_AFTER_SIGNAL)
        returncode = await asyncio.wait_for(process.wait(), EXIT_DEADLINE + 5)
        exit_seconds = time.monotonic() - signalled_at
        stop_loops.set()
        await asyncio.gather(*loops)
        locked_outcome = await write
        closed = await asyncio.wait_for(asyncio.gather(*closes), 5)
    async with pool.acquire() as conn:
        deliveries = await conn.fetch(
            "SELECT attempt, status, leased_until, next_attempt_at <= now() AS due"
            " FROM webhook_deliveries WHERE organization_id = $1",
            tenant.id,
        )
    return Shutdown(
        signalled_at=signalled_at,
        exit_seconds=exit_seconds,
        returncode=returncode,
        delivered_event_id=delivered_event_id,
        closes=closed,
        requests=requests,
        locked_write=locked_outcome,
        deliveries=deliveries,
        log=read(log),
    )


def cursor_in(text: str) -> str | None:
    found = RESUME.search(text)
    return found.group(1) if found else None


async def test_every_websocket_is_closed_with_1001_naming_the_cursor_to_resume_from(
    shutdown: Shutdown,
) -> None:
    assert len(shutdown.closes) == SUBSCRIBERS
    assert {c.code for c in shutdown.closes} == {1001}
    assert {c.reason for c in shutdown.closes} == {
        f'server shutting down; resume with after: "{shutdown.delivered_event_id}"'
    }


async def test_each_subscription_gets_a_final_error_naming_its_cursor(
    shutdown: Shutdown,
) -> None:
    for closed in shutdown.closes:
        (frame,) = closed.frames
        (error,) = frame["payload"]
        assert (frame["id"], frame["type"]) == ("1", "error")
        assert error["extensions"] == {
            "code": "SERVICE_UNAVAILABLE",
            "after": shutdown.delivered_event_id,
        }
        assert cursor_in(error["message"]) == shutdown.delivered_event_id


async def test_a_request_in_flight_at_sigterm_finishes(shutdown: Shutdown) -> None:
    assert shutdown.locked_write.kind == "ok", shutdown.locked_write
    assert shutdown.locked_write.started < shutdown.signalled_at


async def test_no_request_the_server_accepted_fails(shutdown: Shutdown) -> None:
    sent_before = [r for r in shutdown.requests if r.started < shutdown.signalled_at - SURELY_SENT]
    assert len(sent_before) > REQUEST_LOOPS  # the loops were busy when the signal came
    assert [r for r in sent_before if r.kind != "ok"] == []
    assert [r for r in shutdown.requests if r.kind == "failed"] == []


async def test_the_process_exits_cleanly_within_15_seconds(shutdown: Shutdown) -> None:
    print(f"shutdown with {SUBSCRIBERS} subscriptions took {shutdown.exit_seconds:.2f}s")
    assert shutdown.returncode == 0, shutdown.log
    assert shutdown.exit_seconds < EXIT_DEADLINE
    assert "Traceback" not in shutdown.log, shutdown.log


async def test_claimed_webhook_deliveries_are_due_again_at_once(shutdown: Shutdown) -> None:
    (delivery,) = shutdown.deliveries
    assert dict(delivery) == {"attempt": 0, "status": "pending", "leased_until": None, "due": True}
