"""`leadgate serve --workers 2`: a supervisor and two gateway processes on one port.

Which worker answers a connection is the kernel's choice (they accept from one shared
socket), so a test that needs a given worker stops the others with SIGSTOP for the moment it
connects: a stopped process accepts nothing, and the running one takes the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
import pytest

from leadgate import supervisor
from tests.databases import migrated_pool, throwaway_database
from tests.processes import LEADGATE, free_port, leadgate
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
    """Whether `pid` runs (a zombie nobody reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def exists_path(path: Path) -> bool:
    return path.exists()


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


async def wait_for_replacement(
    service: Service, before: set[int], gone: int, *, answering: bool = False
) -> int:
    """The worker started in place of `gone`, once it serves (within a few seconds)."""
    deadline = time.monotonic() + 5
    while len(now := service.workers()) != len(before) or gone in now:
        assert time.monotonic() < deadline, f"workers: {now}\n{service.logged()}"
        if answering:  # the others answer meanwhile
            assert await healthz_status(service.base) == 200
        await asyncio.sleep(0.05)
    (replacement,) = now - before
    await answers(service, replacement)
    return replacement


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
    async with throwaway_database(server_url, "leadgate_workers") as url:
        yield url


@pytest.fixture(scope="module")
async def workers_pool(workers_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(workers_database_url) as pool:
        yield pool


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
    await wait_for_replacement(service, before, victim, answering=True)
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


async def test_workers_stop_when_the_supervisor_is_killed(
    workers_env: dict[str, str], tmp_path: Path
) -> None:
    async with supervised(workers_env, tmp_path) as running:
        pids = running.workers()

        running.process.send_signal(signal.SIGKILL)
        await running.process.wait()

        deadline = time.monotonic() + STOP_DEADLINE
        while any(exists(pid) for pid in pids):
            assert time.monotonic() < deadline, f"orphaned workers\n{running.logged()}"
            await asyncio.sleep(0.05)


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


async def test_after_a_worker_is_killed_mid_delivery_every_webhook_event_is_delivered(
    service: Service, workers_pool: asyncpg.Pool, workers_tenant: Tenant
) -> None:
    events = 20
    # Slow: deliveries are in flight when the kill comes.
    async with aiohttp.ClientSession() as session, Receiver(delay=1.5) as receiver:
        api = Api(session=session, base=service.base)
        secret = await create_endpoint(api, workers_tenant, receiver.url)
        await create_leads([api], workers_tenant, events)
        first = (await receiver.wait_for_count(1))[0]
        sender = next(pid for pid in service.workers() if first.peer_port in local_tcp_ports(pid))

        os.kill(sender, signal.SIGKILL)
        killed_at = time.monotonic()

        await wait_until_all_succeeded(workers_pool, workers_tenant, events, within=30)
    assert set(receiver.ids()) == await event_ids(workers_pool, workers_tenant)
    assert_duplicates_are_the_same_message(receiver.requests, secret)
    resent = {r.webhook_id for r in receiver.requests if r.arrived > killed_at}
    before = {r.webhook_id for r in receiver.requests if r.arrived < killed_at}
    assert before & resent, "no delivery in flight at the kill was sent again"


async def test_with_the_embedded_server_workers_leave_it_running_and_the_supervisor_stops_it(
    tmp_path: Path,
) -> None:
    # Not under pytest's tmp_path: the embedded server runs as another user, and each pytest
    # session that starts on this machine makes /tmp/pytest-of-<user> private again.
    data_dir = Path(tempfile.mkdtemp(prefix="leadgate-workers-")) / "data"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"LEADGATE_DATA_DIR": str(data_dir), "LEADGATE_SHUTDOWN_TIMEOUT": "1"}
    postmaster = data_dir / "pg" / "postmaster.pid"
    async with supervised(env, tmp_path) as running:
        before = running.workers()
        os.kill(min(before), signal.SIGTERM)  # a worker's own orderly exit
        await wait_for_replacement(running, before, min(before))

        org = (await leadgate("org", "create", "Embedded Lending", env=env)).ok()

        running.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(running.process.wait(), STOP_DEADLINE) == 0
    assert org.stdout.strip()
    assert not exists_path(postmaster), "the embedded server outlived the supervisor"
    shutil.rmtree(data_dir.parent, ignore_errors=True)


async def test_a_worker_that_keeps_dying_is_restarted_with_a_growing_backoff(
    tmp_path: Path,
) -> None:
    # A supervisor whose worker exits at once, run for 2.4 s: 0.5 s doubling allows starts
    # at 0, 0.5, 1.5 s; without a backoff it would be hundreds.
    script = (
        "import logging, os, signal, threading\n"
        "from leadgate import supervisor\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "threading.Timer(2.4, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"
        "sock = supervisor.listen('127.0.0.1', 0)\n"
        "raise SystemExit(supervisor.Supervisor(1, sock, lambda s: os._exit(3), 1.0).run())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE, cwd=tmp_path
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 15)

    log = stderr.decode()
    assert process.returncode == 0, log
    assert log.count("started (pid") == 3, log
    assert "exited with 3" in log
    assert "replacing it in 1.0s" in log


def test_workers_is_a_count_of_at_least_one_or_auto() -> None:
    assert supervisor.worker_count("3") == 3
    assert supervisor.worker_count("auto") == (os.cpu_count() or 1)
    for bad in ("0", "-1", "many"):
        with pytest.raises(argparse.ArgumentTypeError):
            supervisor.worker_count(bad)
