"""The gateway behind PgBouncer in transaction mode (issue 13 #2): reads, writes, an
idempotency race, subscriptions and webhooks, over real HTTP and WebSockets.

The PgBouncer is the test's own, on a free port, in front of the session's PostgreSQL, with
few server connections so that client connections really do share them. The gateway's pool
goes through it; LISTEN and the migration lock go to PostgreSQL directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import InvalidSetting, Settings
from leadgate.db.pool import create_pool
from tests.processes import free_port, leadgate
from tests.support import Api, Tenant, create_lead, make_tenant, ok
from tests.test_idempotency import CREATE, race_held_up, replayed
from tests.test_subscriptions import MOVE, STAGE_CHANGES
from tests.test_webhook_processes import create_endpoint
from tests.webhook_receiver import Receiver
from tests.ws_client import connect, subscribe

PGBOUNCER: Final = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Fewer server connections than the gateway's pool (10) has clients: they must be shared.
SERVER_CONNECTIONS: Final = 3
STATEMENT_TIMEOUT_MS: Final = 15_000
LOCK_TIMEOUT_MS: Final = 2_000
# A second name for the same database whose server connections get no settings.
BARE_ALIAS: Final = "bare"
LEADS: Final = "{ leads(limit: 50) { total nodes { id businessName } } }"
LEAD: Final = "query($id: ID!) { lead(id: $id) { id businessName stage { stageKey } } }"


@dataclass(frozen=True)
class Bouncer:
    url: str  # the session database, through PgBouncer
    bare_url: str  # the same, through PgBouncer without connect_query


def server_address(url: str) -> tuple[str, int]:
    """host (or unix socket directory) and port of a postgresql:// URL."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    port = int(query.get("port", [parts.port or 5432])[0])
    return host, port


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def write_config(directory: Path, host: str, port: int, database: str, listen_port: int) -> Path:
    target = f"host={host} port={port} dbname={database} user=postgres"
    settings = (
        f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}; SET lock_timeout = {LOCK_TIMEOUT_MS}"
    )
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"{database} = {target} connect_query='{settings}'\n"
        f"{BARE_ALIAS} = {target}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {listen_port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {SERVER_CONNECTIONS}\n"
        "max_client_conn = 500\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    for path in (directory, *directory.iterdir()):
        path.chmod(0o777 if path.is_dir() else 0o666)
    return ini


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tcp_address(server_url: str) -> AsyncIterator[tuple[str, int]]:
    """Where PgBouncer can reach the server: its TCP address, or for a unix socket (the
    embedded server's, in a directory only root may enter, and PgBouncer runs as nobody) a
    loopback port relayed to it."""
    host, port = server_address(server_url)
    if not host.startswith("/"):
        yield host, port
        return
    socket_path = f"{host}/.s.PGSQL.{port}"

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_unix_connection(socket_path)
        await asyncio.gather(
            _pipe(client_r, server_w), _pipe(server_r, client_w), return_exceptions=True
        )

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", relay_server.sockets[0].getsockname()[1]
    finally:
        relay_server.close()


@contextlib.asynccontextmanager
async def pgbouncer(server_url: str, database: str) -> AsyncIterator[Bouncer]:
    # Not pytest's tmp_path: its parents are private to root, and PgBouncer refuses to run as
    # root, so it runs as nobody and must be able to read (and log) here.
    directory = Path(tempfile.mkdtemp(prefix="leadgate-pgbouncer-"))
    listen_port = free_port()
    async with tcp_address(server_url) as (host, port):
        ini = write_config(directory, host, port, database, listen_port)
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = await asyncio.create_subprocess_exec(PGBOUNCER, *as_user, str(ini))
        try:
            url = f"postgresql://postgres@127.0.0.1:{listen_port}"
            yield Bouncer(url=f"{url}/{database}", bare_url=f"{url}/{BARE_ALIAS}")
        finally:
            process.send_signal(signal.SIGINT)  # "safe shutdown"
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
            shutil.rmtree(directory, ignore_errors=True)


async def wait_until_accepting(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            conn = await asyncpg.connect(url, statement_cache_size=0)
        except (OSError, asyncpg.PostgresError):
            assert time.monotonic() < deadline, "PgBouncer never accepted a connection"
            await asyncio.sleep(0.05)
            continue
        await conn.close()
        return


# --- PgBouncer, and a gateway behind it -----------------------------------------------------


@pytest.fixture(scope="module")
async def bouncer(server_url: str, database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Bouncer]:
    """PgBouncer in front of the session database (migrated by `pool`)."""
    async with pgbouncer(server_url, database_name(database_url)) as running:
        await wait_until_accepting(running.url)
        yield running


@pytest.fixture(scope="module")
def pooled_settings(settings: Settings, bouncer: Bouncer) -> Settings:
    return replace(settings, database_url=bouncer.url, direct_database_url=settings.database_url)


@pytest.fixture(scope="module")
async def pooled_server(pooled_settings: Settings) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(pooled_settings), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def pooled(pooled_server: TestServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(pooled_server.make_url("")).rstrip("/"))


@pytest.fixture
async def direct(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to PostgreSQL itself."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        conn.terminate()


@pytest.fixture
async def bounced_tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, leads=5, name="Pooled Lending")


# --- the subset -----------------------------------------------------------------------------


async def test_a_hundred_concurrent_reads_through_pgbouncer_all_answer(
    pooled: Api, bounced_tenant: Tenant
) -> None:
    # Many clients over three server connections: a named prepared statement would land on
    # a server connection that never saw it ("prepared statement ... does not exist").
    answers = await asyncio.gather(
        *(ok(pooled, bounced_tenant.read_key, LEADS) for _ in range(100))
    )
    assert {a["leads"]["total"] for a in answers} == {5}


async def test_a_lead_written_through_pgbouncer_reads_back(
    pooled: Api, bounced_tenant: Tenant
) -> None:
    lead_id = await create_lead(pooled, bounced_tenant, "Pooled Bakery")
    stage = str(bounced_tenant.stage_ids[2])
    await ok(pooled, bounced_tenant.write_key, MOVE, {"id": lead_id, "stage": stage})

    lead = (await ok(pooled, bounced_tenant.read_key, LEAD, {"id": lead_id}))["lead"]

    assert lead["businessName"] == "Pooled Bakery"
    assert lead["stage"]["stageKey"] != "new"


async def test_fifty_concurrent_creates_with_one_key_through_pgbouncer_make_one_lead(
    pooled: Api, bounced_tenant: Tenant, pool: asyncpg.Pool, direct: asyncpg.Connection
) -> None:
    variables = {"input": {"businessName": "Raced Bakery"}, "key": f"pooled-{uuid.uuid4()}"}

    answers = await race_held_up(
        pool,
        direct,
        lambda: asyncio.gather(
            *(pooled.graphql(bounced_tenant.write_key, CREATE, variables) for _ in range(50))
        ),
    )

    ids, fresh = set(), 0
    for status, body in answers:
        assert status == 200, body
        if "errors" in body:
            assert [e["extensions"]["code"] for e in body["errors"]] == [
                "IDEMPOTENCY_KEY_IN_USE"
            ], body
            continue
        ids.add(body["data"]["createLead"]["id"])
        fresh += not replayed(body)
    assert len(ids) == 1
    assert fresh == 1
    count = await direct.fetchval(
        "SELECT count(*) FROM leads WHERE organization_id = $1 AND business_name = $2",
        bounced_tenant.id,
        "Raced Bakery",
    )
    assert count == 1


async def test_a_subscriber_behind_pgbouncer_receives_a_move(
    pooled: Api, pooled_server: TestServer, bounced_tenant: Tenant
) -> None:
    lead_id = (await ok(pooled, bounced_tenant.read_key, LEADS))["leads"]["nodes"][0]["id"]
    ws_url = str(pooled_server.make_url("/graphql")).replace("http://", "ws://")
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url, bounced_tenant.read_key) as ws,
    ):
        sub = await subscribe(ws, STAGE_CHANGES, {"leadId": lead_id})
        await asyncio.sleep(0.2)
        stage = str(bounced_tenant.stage_ids[5])
        await ok(pooled, bounced_tenant.write_key, MOVE, {"id": lead_id, "stage": stage})
        change = (await sub.next())["data"]["leadStageChanged"]
    assert change["lead"]["id"] == lead_id
    assert change["toStage"]["stageKey"] == "lost"


async def test_a_webhook_is_delivered_by_a_gateway_behind_pgbouncer(
    pooled: Api, bounced_tenant: Tenant
) -> None:
    async with Receiver() as receiver:
        secret = await create_endpoint(pooled, bounced_tenant, receiver.url)

        lead_id = await create_lead(pooled, bounced_tenant, "Hooked Bakery")

        (request,) = await receiver.wait_for_count(1)
    assert request.verifies(secret)
    assert request.json["type"] == "lead.created"
    assert request.json["data"]["id"] == lead_id


async def test_the_timeouts_hold_on_pgbouncers_server_connections(
    pooled_settings: Settings,
) -> None:
    pooled_pool = await create_pool(pooled_settings)
    try:
        rows = await pooled_pool.fetch(
            "SELECT name, setting FROM pg_settings"
            " WHERE name IN ('statement_timeout', 'lock_timeout')"
        )
    finally:
        await pooled_pool.close()
    assert {r["name"]: int(r["setting"]) for r in rows} == {
        "statement_timeout": STATEMENT_TIMEOUT_MS,
        "lock_timeout": LOCK_TIMEOUT_MS,
    }


async def test_a_pool_behind_a_pooler_without_the_timeouts_warns_naming_them(
    pooled_settings: Settings, bouncer: Bouncer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="leadgate.db.pool"):
        bare = await create_pool(replace(pooled_settings, database_url=bouncer.bare_url))
        await bare.close()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "statement_timeout" in warned
    assert "lock_timeout" in warned


async def test_migrate_behind_a_pooler_takes_its_lock_on_the_direct_connection(
    pooled_settings: Settings,
) -> None:
    assert pooled_settings.direct_database_url is not None
    env = {
        **os.environ,
        # Nothing listens there: the migration must not need the pooler at all.
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        "LEADGATE_DIRECT_DATABASE_URL": pooled_settings.direct_database_url,
    }

    result = (await leadgate("migrate", "--json", env=env)).ok()

    assert result.stdout.strip() == '{"applied": []}'


def test_pooler_mode_without_a_direct_url_is_refused() -> None:
    env = {"DATABASE_URL": "postgresql://app@pgbouncer:6432/leadgate", "LEADGATE_PGBOUNCER": "1"}

    with pytest.raises(InvalidSetting, match="LEADGATE_DIRECT_DATABASE_URL"):
        Settings.from_env(env)


def test_a_direct_url_turns_pooler_mode_on_unless_it_is_turned_off() -> None:
    env = {
        "DATABASE_URL": "postgresql://app@pgbouncer:6432/leadgate",
        "LEADGATE_DIRECT_DATABASE_URL": "postgresql://app@db:5432/leadgate",
    }

    assert Settings.from_env(env).behind_pooler
    assert not Settings.from_env({**env, "LEADGATE_PGBOUNCER": "0"}).behind_pooler
    assert not Settings.from_env({"DATABASE_URL": env["DATABASE_URL"]}).behind_pooler
