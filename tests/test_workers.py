"""`leadgate serve --workers 2`: a supervisor and two gateway processes on one port.

Which worker answers a connection is the kernel's choice (they accept from one shared
socket), so a test that needs a given worker stops the others with SIGSTOP for the moment it
connects: a stopped process accepts nothing, and the running one takes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
import pytest

from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool
from tests.databases import create_database, drop_database
from tests.processes import LEADGATE, free_port
from tests.support import Api, Tenant, make_tenant, ok
from tests.test_subscriptions import MOVE, STAGE_CHANGES
from tests.test_webhook_processes import (
    assert_duplicates_are_the_same_message,
    create_endpoint,
    create_leads,
    event_ids,
    local_tcp_ports,
    wait_until_all_succeeded,
)
from tests.webhook_receiver import Receiver
from tests.ws_client import connect, subscribe

STARTUP_DEADLINE: Final = 30.0
SHUTDOWN_TIMEOUT: Final = 2.0
# The workers' shutdown bound, then the supervisor's grace for closing pools and exiting.
STOP_DEADLINE: Final = SHUTDOWN_TIMEOUT + 5.0
LEADS: Final = "{ leads(limit: 2) { total nodes { id } } }"


@dataclass(frozen=True)
class Service:
    """A running `leadgate serve --workers N`."""

    process: asyncio.subprocess.Process
    base: str
    log: Path

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"

    def workers(self) -> set[int]:
        """The supervisor's live children (Linux /proc)."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                # Fields after the parenthesised command: state, then the parent's pid.
                state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                if int(parent) == self.process.pid and state != "Z":
                    found.add(int(entry.name))
        return found

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def only(service: Service, pid: int) -> Iterator[None]:
    """While inside, every worker but `pid` is stopped: new connections reach `pid`."""
    others = service.workers() - {pid}
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGCONT)


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def healthz_status(base: str) -> int:
    """/healthz over a connection of its own (a pooled one may belong to another worker)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as resp:
        return resp.status


async def answers(service: Service, pid: int) -> None:
    """Wait until worker `pid`, alone, answers /healthz (it is started and serving)."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    with only(service, pid):
        while True:
            assert service.process.returncode is None, f"serve exited\n{service.logged()}"
            with contextlib.suppress(aiohttp.ClientConnectionError, TimeoutError):
                if await asyncio.wait_for(healthz_status(service.base), 2) == 200:
                    return
            assert time.monotonic() < deadline, f"{pid} never answered\n{service.logged()}"
            await asyncio.sleep(0.1)


async def wait_for_workers(service: Service, count: int) -> set[int]:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while len(pids := service.workers()) != count:
        assert service.process.returncode is None, f"serve exited\n{service.logged()}"
        assert time.monotonic() < deadline, f"workers: {pids}\n{service.logged()}"
        await asyncio.sleep(0.05)
    for pid in pids:
        await answers(service, pid)
    return pids


@contextlib.asynccontextmanager
async def supervised(
    env: dict[str, str], directory: Path, workers: int = 2
) -> AsyncIterator[Service]:
    """`leadgate serve --workers N` with every worker serving; stopped on the way out."""
    port, log = free_port(), directory / f"serve-{free_port()}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            env=env,
            cwd=directory,
            stdout=out,
            stderr=out,
        )
    service = Service(process, f"http://127.0.0.1:{port}", log)
    try:
        await wait_for_workers(service, workers)
        yield service
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_DEADLINE + 5)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- a database and a service of our own ----------------------------------------------------


@pytest.fixture(scope="module")
async def workers_database_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, prefix="leadgate_workers")
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="module")
async def workers_pool(workers_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(database_url=workers_database_url))
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture
async def workers_tenant(workers_pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(workers_pool, leads=3, name="Worker Lending")


@pytest.fixture(scope="module")
def workers_env(workers_database_url: str, workers_pool: asyncpg.Pool) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": workers_database_url,
        "LEADGATE_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        "LEADGATE_ALLOW_INSECURE_WEBHOOKS": "1",
        "LEADGATE_WEBHOOK_RETRY_SCHEDULE": "0.2,0.4,0.8",
        "LEADGATE_WEBHOOK_LEASE": "3",
    }


@pytest.fixture(scope="module")
async def service(
    workers_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    async with supervised(workers_env, tmp_path_factory.mktemp("workers")) as running:
        yield running


# --- the tests ------------------------------------------------------------------------------


async def test_each_of_two_workers_answers_requests_on_the_one_port(
    service: Service, workers_tenant: Tenant
) -> None:
    pids = service.workers()
    assert len(pids) == 2
    for pid in pids:
        with only(service, pid):
            async with aiohttp.ClientSession() as session:
                data = await ok(Api(session, service.base), workers_tenant.read_key, LEADS)
        assert data["leads"]["total"] == 3


async def test_a_subscription_on_one_worker_receives_a_move_made_through_the_other(
    service: Service, workers_tenant: Tenant
) -> None:
    subscriber, mover = sorted(service.workers())
    async with contextlib.AsyncExitStack() as stack:
        ws_session = await stack.enter_async_context(aiohttp.ClientSession())
        with only(service, subscriber):
            page = await ok(Api(ws_session, service.base), workers_tenant.read_key, LEADS)
            lead_id = page["leads"]["nodes"][0]["id"]
            ws = await stack.enter_async_context(
                connect(ws_session, service.ws, workers_tenant.read_key)
            )
            sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id})
            await asyncio.sleep(0.2)  # the subscription is registered before the move
        with only(service, mover):
            async with aiohttp.ClientSession() as session:
                stage = str(workers_tenant.stage_ids[5])
                await ok(
                    Api(session, service.base),
                    workers_tenant.write_key,
                    MOVE,
                    {"id": lead_id, "stage": stage},
                )
        change = (await sub.next())["data"]["leadStageChanged"]
    assert change["lead"]["id"] == lead_id
    assert change["toStage"]["stageKey"] == "lost"


async def test_a_killed_worker_is_replaced_while_the_other_keeps_answering(
    service: Service,
) -> None:
    before = service.workers()
    victim = min(before)

    os.kill(victim, signal.SIGKILL)

    assert await healthz_status(service.base) == 200
    deadline = time.monotonic() + 5
    while len(now := service.workers()) != 2 or victim in now:
        assert time.monotonic() < deadline, f"workers: {now}\n{service.logged()}"
        assert await healthz_status(service.base) == 200
        await asyncio.sleep(0.05)
    (replacement,) = now - before
    await answers(service, replacement)
    assert "replacing it" in service.logged()


async def test_sigterm_to_the_supervisor_stops_every_worker_within_the_shutdown_bound(
    workers_env: dict[str, str], workers_tenant: Tenant, tmp_path: Path
) -> None:
    async with supervised(workers_env, tmp_path) as running:
        pids = running.workers()
        async with (
            aiohttp.ClientSession() as session,
            connect(session, running.ws, workers_tenant.read_key) as ws,
        ):
            started = time.monotonic()
            running.process.send_signal(signal.SIGTERM)
            closed = await asyncio.wait_for(ws.receive(), STOP_DEADLINE)
            code = await asyncio.wait_for(running.process.wait(), STOP_DEADLINE)
            took = time.monotonic() - started
    assert closed.type == aiohttp.WSMsgType.CLOSE
    assert closed.data == 1001
    assert code == 0, running.logged()
    assert took < STOP_DEADLINE
    assert not any(exists(pid) for pid in pids)


async def test_two_workers_dispatch_every_webhook_once_between_them(
    service: Service, workers_pool: asyncpg.Pool, workers_tenant: Tenant
) -> None:
    events = 100
    async with aiohttp.ClientSession() as session, Receiver(delay=0.05) as receiver:
        api = Api(session=session, base=service.base)
        secret = await create_endpoint(api, workers_tenant, receiver.url)

        await create_leads([api], workers_tenant, events)

        await wait_until_all_succeeded(workers_pool, workers_tenant, events, within=30)
        ports = {pid: local_tcp_ports(pid) for pid in service.workers()}

    expected = await event_ids(workers_pool, workers_tenant)
    assert receiver.overlaps == [], "one webhook-id was being delivered twice at once"
    duplicates = {i: n for i, n in Counter(receiver.ids()).items() if n > 1}
    assert duplicates == {}, f"{len(receiver.requests)} deliveries for {events} events"
    assert set(receiver.ids()) == expected
    assert_duplicates_are_the_same_message(receiver.requests, secret)
    senders = Counter(
        pid for r in receiver.requests for pid, owned in ports.items() if r.peer_port in owned
    )
    assert len(senders) == 2, f"deliveries per worker: {dict(senders)}"
