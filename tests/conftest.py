"""A real PostgreSQL for the whole session (embedded, or DATABASE_URL), migrated once, and
the gateway served over real HTTP on loopback. Tests isolate by creating fresh organizations.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.embedded import embedded_database_url
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool
from leadgate.db.statements import StatementCounter
from tests.databases import create_database, drop_database
from tests.support import Api, Tenant, make_tenant


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LEADGATE_DATA_DIR for this session (the embedded server lives in its pg/)."""
    return tmp_path_factory.mktemp("leadgate")


@pytest.fixture(scope="session")
def server_url(data_dir: Path) -> str:
    """The PostgreSQL under test: DATABASE_URL's server, or the embedded one."""
    return os.environ.get("DATABASE_URL") or embedded_database_url(data_dir / "pg")


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database on that server for this session, dropped afterwards."""
    url = await create_database(server_url)
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    # Webhook receivers in tests listen on loopback over http, and retries must be quick.
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        allow_insecure_webhooks=True,
        webhook_retry_schedule=(0.2, 0.4, 0.8),
        webhook_lease_seconds=5.0,
        webhook_timeout_seconds=2.0,
        # CI runs the suite once through compiled query plans and once through strawberry.
        compiled_queries=os.environ.get("LEADGATE_COMPILED_QUERIES", "1") != "0",
    )


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def server(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture(scope="session")
def statements(server: TestServer) -> StatementCounter:
    return server.app[keys.STATEMENTS]


@pytest.fixture(scope="session")
async def api(server: TestServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/"))


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """A fresh organization with 30 demo leads."""
    return await make_tenant(pool, leads=30)


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, leads=30, name="Other Lending")
