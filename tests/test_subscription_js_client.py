"""Subscribers on one gateway process hear moves made on another, and speak only the safe
protocol: the JS `graphql-ws` client (run with Node) and the Python client of ws_client.py
against the session's gateway, with moves made through REST on a `leadgate serve` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from tests.processes import LEADGATE, free_port
from tests.support import Tenant, bearer
from tests.ws_client import connect, subscribe

JS_DIR: Final = Path(__file__).with_name("js")
CHANGES: Final = """
subscription($after: ID) {
  leadStageChanged(after: $after) {
    eventId lead { id stage { id } } fromStage { id } toStage { id }
  }
}
"""
STARTUP_DEADLINE: Final = 45.0
SHUTDOWN_DEADLINE: Final = 15.0
NPM_DEADLINE: Final = 180.0
RECEIVE_DEADLINE: Final = 10.0


def ws_url(server: TestServer) -> str:
    return str(server.make_url("/graphql")).replace("http://", "ws://")


@pytest.fixture(scope="session")
async def js_client() -> Path:
    """tests/js/subscribe.mjs, with its pinned npm packages installed on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "these tests need Node.js and npm on PATH"
    if not (JS_DIR / "node_modules" / "graphql-ws").is_dir():
        process = await asyncio.create_subprocess_exec(
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), NPM_DEADLINE)
        assert process.returncode == 0, output.decode()
    return JS_DIR / "subscribe.mjs"


@dataclass(frozen=True)
class OtherProcess:
    """A `leadgate serve` process on the session's database."""

    base: str
    log: Path


@pytest.fixture(scope="module")
async def other_process(
    database_url: str, pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OtherProcess]:
    workdir = tmp_path_factory.mktemp("gateway-b")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        # The legacy protocol is enabled here only, to show that the setting turns it on.
        "LEADGATE_GRAPHQL_WS_LEGACY": "1",
        "LEADGATE_DISPATCHER": "0",
    }
    log = workdir / "serve.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            "serve",
            "--port",
            str(port),
            env=env,
            cwd=workdir,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        gateway = OtherProcess(base=f"http://127.0.0.1:{port}", log=log)
        await wait_until_healthy(gateway, process)
        yield gateway
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), SHUTDOWN_DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_healthy(gateway: OtherProcess, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.returncode is None, f"serve exited\n{gateway.log.read_text()}"
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{gateway.base}/healthz") as resp:
                    if resp.status == 200:
                        return
            assert time.monotonic() < deadline, f"no /healthz\n{gateway.log.read_text()}"
            await asyncio.sleep(0.1)


@dataclass
class NodeSubscriber:
    process: asyncio.subprocess.Process

    async def next(self) -> dict[str, Any]:
        """The next payload the JS client printed."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), RECEIVE_DEADLINE)
        if not line:
            assert self.process.stderr is not None
            stderr = await self.process.stderr.read()
            raise AssertionError(f"the JS client stopped early:\n{stderr.decode()}")
        payload: dict[str, Any] = json.loads(line)
        return payload


@contextlib.asynccontextmanager
async def node_subscriber(
    script: Path, url: str, key: str, count: int, variables: dict[str, Any]
) -> AsyncIterator[NodeSubscriber]:
    """The JS client, subscribed; it exits by itself after `count` payloads."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        url,
        str(count),
        CHANGES,
        json.dumps(variables),
        env={**os.environ, "LEADGATE_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeSubscriber(process)
        await asyncio.wait_for(process.wait(), RECEIVE_DEADLINE)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()


async def rest_move(base: str, tenant: Tenant, lead_id: str, stage: UUID) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/v1/leads/{lead_id}/move",
            json={"stageId": str(stage)},
            headers=bearer(tenant.write_key),
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_js_and_python_subscribers_receive_a_rest_move_made_on_another_process(
    server: TestServer,
    tenant: Tenant,
    pool: asyncpg.Pool,
    other_process: OtherProcess,
    js_client: Path,
) -> None:
    lead = await pool.fetchrow(
        "SELECT id, stage_id FROM leads WHERE organization_id = $1 LIMIT 1", tenant.id
    )
    lead_id = str(lead["id"])
    first, second = [s for s in tenant.stage_ids if s != lead["stage_id"]][:2]
    cursor = await pool.fetchval(
        "SELECT coalesce(max(id), 0) FROM lead_events WHERE organization_id = $1", tenant.id
    )
    variables = {"after": str(cursor)}
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_url(server), tenant.read_key) as ws,
        node_subscriber(js_client, ws_url(server), tenant.read_key, 2, variables) as js,
    ):
        python = await subscribe(ws, CHANGES, variables)
        received: dict[str, list[dict[str, Any]]] = {"js": [], "python": []}
        for stage in (first, second):
            # After the first move reached both, both are live: the second can only come
            # through this process's LISTEN, from the other process's NOTIFY.
            await rest_move(other_process.base, tenant, lead_id, stage)
            received["js"].append((await js.next())["data"]["leadStageChanged"])
            received["python"].append((await python.next())["data"]["leadStageChanged"])

    events = await pool.fetch(
        "SELECT id FROM lead_events WHERE organization_id = $1 AND id > $2 ORDER BY id",
        tenant.id,
        cursor,
    )
    expected = [
        {
            "eventId": str(event["id"]),
            "lead": {"id": lead_id, "stage": {"id": str(to)}},
            "fromStage": {"id": str(before)},
            "toStage": {"id": str(to)},
        }
        for event, before, to in zip(
            events, (lead["stage_id"], first), (first, second), strict=True
        )
    ]
    # The lead is as it is now, when the event is delivered: after each move, its new stage.
    assert received["js"] == expected
    assert received["python"] == expected


async def test_the_legacy_graphql_ws_protocol_is_refused_by_default(
    server: TestServer, tenant: Tenant
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(server), protocols=["graphql-ws"]) as ws,
    ):
        await ws.send_json({"type": "connection_init", "payload": bearer(tenant.read_key)})
        message = await asyncio.wait_for(ws.receive(), 5)

    assert ws.protocol is None
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 4406


async def test_the_legacy_protocol_when_enabled_starts_nothing_before_connection_init(
    other_process: OtherProcess, tenant: Tenant
) -> None:
    url = other_process.base.replace("http://", "ws://") + "/graphql"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=["graphql-ws"], headers=bearer(tenant.read_key)) as ws,
    ):
        # The auth bypass of old strawberry releases: `start` without `connection_init`.
        await ws.send_json({"type": "start", "id": "1", "payload": {"query": CHANGES}})
        message = await asyncio.wait_for(ws.receive(), 5)

    assert ws.protocol == "graphql-ws"
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 4401
