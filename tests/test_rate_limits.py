"""Rate limits (issue 11 #3, README "Rate limits"): token buckets per credential and per
organization, cost-weighted for GraphQL, the IETF RateLimit header fields, 429 RATE_LIMITED
with Retry-After on GraphQL, REST and WebSocket subscribes, per-key `--rate`, and buckets
shared by two `leadgate serve` processes through a redis-server of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate import keys
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from leadgate.domain.rate_limits import Rate
from leadgate.services.rate_limits import RateLimiter
from tests.processes import free_port, leadgate
from tests.support import Api, Tenant, bearer, header, make_tenant
from tests.test_webhook_processes import gateways
from tests.ws_client import connect

# The in-process gateway: a credential may spend 50 points at once, its organization 80;
# both refill 1 point a second (slow enough for a test to drain them on purpose).
CREDENTIAL: Final = Rate(1, 50)
ORGANIZATION: Final = Rate(1, 80)
CHEAP: Final = "{ stages { id } }"
# Costs (graphql/gate.py): 2, 43 (1 + 14 × 3), 501 (over any bucket here).
EXPENSIVE: Final = "{ leads(limit: 14) { nodes { id businessName } } }"
TOO_EXPENSIVE: Final = "{ leads(limit: 100) { nodes { id businessName email phone } } }"
SUBSCRIBE: Final = "subscription { leadStageChanged { eventId } }"
# The measured-rate runs: RATE points a second after a bucket of BURST, for RUN seconds.
RATE: Final = 40.0
BURST: Final = 10.0
RUN_SECONDS: Final = 2.0
TOLERANCE: Final = 0.10
REDIS_SERVER: Final = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass(frozen=True)
class Gateway:
    api: Api
    statements: StatementCounter
    limiter: RateLimiter


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(dataclasses.replace(settings, dispatcher_enabled=False))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session=session, base=str(server.make_url("")).rstrip("/"))
            yield Gateway(api, app[keys.STATEMENTS], app[keys.RATE_LIMITER])
    finally:
        await server.close()


@pytest.fixture(scope="module")
async def limited(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    changed = dataclasses.replace(
        settings, rate_per_credential=CREDENTIAL, rate_per_organization=ORGANIZATION
    )
    async with gateway(changed) as running:
        yield running


@pytest.fixture
async def org(pool: asyncpg.Pool) -> Tenant:
    """A fresh organization, so fresh buckets (no demo leads: costs do not depend on rows)."""
    return await make_tenant(pool, name="Rate Lending")


async def post(
    api: Api, key: str, query: str, *, accept: str = "application/json"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with api.session.post(
        f"{api.base}/graphql",
        json={"query": query},
        headers={**bearer(key), "Accept": accept},
    ) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


def limits(headers: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """The RateLimit field as {policy: {r, t}} (a Structured Fields list of items)."""
    return _items(header(dict(headers), "RateLimit") or "")


def policies(headers: Mapping[str, str]) -> dict[str, dict[str, int]]:
    return _items(header(dict(headers), "RateLimit-Policy") or "")


def _items(field: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for member in filter(None, (part.strip() for part in field.split(","))):
        name, *params = member.split(";")
        assert re.fullmatch(r'"[a-z]+"', name), member
        found[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return found


def cost(body: dict[str, Any]) -> int:
    requested: int = body["extensions"]["cost"]["requested"]
    return requested


# --- headers -------------------------------------------------------------------------------


async def test_a_rest_response_carries_the_ietf_ratelimit_fields(
    limited: Gateway, org: Tenant
) -> None:
    status, body, headers = await limited.api.rest("GET", "/v1/leads", org.read_key)

    assert status == 200, body
    assert header(headers, "RateLimit-Policy") == (
        '"credential";q=50;w=50, "organization";q=80;w=80'
    )
    assert header(headers, "RateLimit") == '"credential";r=49;t=1, "organization";r=79;t=1'


async def test_a_graphql_operation_debits_its_cost_not_one(limited: Gateway, org: Tenant) -> None:
    status, body, headers = await post(limited.api, org.read_key, CHEAP)

    assert status == 200, body
    spent = cost(body)
    assert spent > 1
    assert limits(headers)["credential"]["r"] == 50 - spent
    assert limits(headers)["organization"]["r"] == 80 - spent
    assert policies(headers)["credential"] == {"q": 50, "w": 50}


async def test_an_expensive_query_drains_more_than_a_cheap_one(
    limited: Gateway, org: Tenant
) -> None:
    _, cheap, after_cheap = await post(limited.api, org.read_key, CHEAP)
    _, expensive, after_expensive = await post(limited.api, org.read_key, EXPENSIVE)

    assert cost(expensive) > 5 * cost(cheap)
    drained = limits(after_cheap)["credential"]["r"] - limits(after_expensive)["credential"]["r"]
    # Within the point a second that refills meanwhile.
    assert cost(expensive) - 1 <= drained <= cost(expensive)


# --- over the limit ------------------------------------------------------------------------


async def test_graphql_over_the_limit_is_429_rate_limited_with_retry_after_and_no_sql(
    limited: Gateway, org: Tenant
) -> None:
    status, body, _ = await post(limited.api, org.read_key, EXPENSIVE)
    assert status == 200, body
    before = limited.statements.total

    status, body, headers = await post(limited.api, org.read_key, EXPENSIVE)

    assert status == 429, body
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = int(header(headers, "Retry-After") or "0")
    # 50 - 43 (and a little refill) left: the other 36 points arrive in about 36 s.
    needed = cost(body) - limits(headers)["credential"]["r"]
    assert retry_after in (needed - 1, needed, needed + 1)
    assert error["extensions"]["retryAfter"] == retry_after
    assert limited.statements.total == before


async def test_graphql_over_the_limit_is_429_under_graphql_response_json_too(
    limited: Gateway, org: Tenant
) -> None:
    await post(limited.api, org.read_key, EXPENSIVE)

    status, body, headers = await post(
        limited.api, org.read_key, EXPENSIVE, accept="application/graphql-response+json"
    )

    assert status == 429, body
    assert header(headers, "Retry-After") is not None
    assert header(headers, "RateLimit") is not None


async def test_rest_over_the_limit_is_429_rate_limited_with_retry_after(
    limited: Gateway, org: Tenant
) -> None:
    for _ in range(2):  # 2 × 21 points, then 1: what is left, REST requests spend
        await post(limited.api, org.read_key, "{ leads(limit: 10) { nodes { id } } }")
    left = limits((await post(limited.api, org.read_key, "{ __typename }"))[2])["credential"]
    # What is left, and what refills meanwhile (a point a second), is spent one REST request
    # at a time; the request after is refused.
    answered = [await limited.api.rest("GET", "/v1/leads", org.read_key)]
    while answered[-1][0] == 200 and len(answered) <= left["r"] + 2:
        answered.append(await limited.api.rest("GET", "/v1/leads", org.read_key))
    status, body, headers = answered[-1]

    assert status == 429, body
    assert len(answered) - 1 in range(left["r"], left["r"] + 2)
    assert body["error"]["code"] == "RATE_LIMITED"
    assert body["meta"]["requestId"]
    assert header(headers, "Retry-After") == "1"
    assert limits(headers)["credential"]["r"] == 0


async def test_a_query_costlier_than_the_bucket_is_query_too_complex_not_a_wait(
    limited: Gateway, org: Tenant
) -> None:
    status, body, headers = await post(limited.api, org.read_key, TOO_EXPENSIVE)

    assert status == 200, body  # a document error, as GraphQL-over-HTTP answers them
    assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_COMPLEX"]
    assert "50 points" in body["errors"][0]["message"]
    assert header(headers, "Retry-After") is None


async def test_the_organization_limit_is_shared_by_all_its_keys(
    limited: Gateway, org: Tenant
) -> None:
    status, first, _ = await post(limited.api, org.write_key, EXPENSIVE)
    assert status == 200, first

    status, body, headers = await post(limited.api, org.read_key, EXPENSIVE)

    # The read key's own bucket is full (50), the organization's is not (80 - 43).
    assert status == 429, body
    assert "organization" in body["errors"][0]["message"]
    assert "credential" not in body["errors"][0]["message"]
    assert limits(headers)["credential"]["r"] == 50
    assert limits(headers)["organization"]["r"] < cost(first)


async def test_an_unauthenticated_request_debits_nothing_and_shows_no_fields(
    limited: Gateway,
) -> None:
    status, _, headers = await limited.api.rest("GET", "/v1/leads", None)

    assert status == 401
    assert header(headers, "RateLimit") is None


# --- a key's own rate ------------------------------------------------------------------------


async def test_api_key_create_rate_overrides_the_default_for_that_key(
    limited: Gateway, org: Tenant, database_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    created = await leadgate(
        "api-key", "create", "--org", str(org.id), "--rate", "0.5,5", "--json", env=env
    )
    key = json.loads(created.ok().stdout)["key"]

    statuses = [(await limited.api.rest("GET", "/v1/leads", key))[0] for _ in range(6)]
    _, _, headers = await limited.api.rest("GET", "/v1/leads", org.read_key)
    _, _, own = await limited.api.rest("GET", "/v1/leads", key)

    assert statuses == [200] * 5 + [429]
    assert policies(own)["credential"] == {"q": 5, "w": 10}
    assert policies(headers)["credential"] == {"q": 50, "w": 50}  # the other key: the default


async def test_api_key_create_refuses_a_rate_that_is_not_one(
    org: Tenant, database_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = await leadgate("api-key", "create", "--org", str(org.id), "--rate", "0", env=env)

    assert result.returncode == 2
    assert "--rate" in result.stderr


# --- WebSocket -----------------------------------------------------------------------------


async def test_a_subscribe_over_the_limit_gets_a_rate_limited_error_and_the_socket_stays_open(
    limited: Gateway, org: Tenant
) -> None:
    await post(limited.api, org.read_key, EXPENSIVE)  # 43 of 50
    await post(limited.api, org.read_key, "{ leads(limit: 3) { nodes { id } } }")  # 7 more
    # Nothing left; the subscription costs 2.
    url = limited.api.base.replace("http://", "ws://") + "/graphql"

    async with connect(limited.api.session, url, org.read_key) as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        frame = await asyncio.wait_for(ws.receive_json(), 5)
        await ws.send_json({"type": "ping"})
        pong = await asyncio.wait_for(ws.receive_json(), 5)

    assert frame["type"] == "error", frame
    assert frame["id"] == "1"
    [error] = frame["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] >= 1
    assert pong["type"] == "pong"


# --- the measured rate, one process --------------------------------------------------------


async def hammer(apis: list[Api], key: str, seconds: float) -> tuple[Counter[int], float]:
    """REST requests (1 point each) from 4 clients spread over `apis` for `seconds`: the
    statuses, and the seconds from the first answer 200 to the last one.

    The window opens at the first 200, not at the first request: the bucket starts filling when
    the server takes its first debit, and a loaded machine may take a while to get there."""
    statuses: Counter[int] = Counter()
    start = time.monotonic()
    answered: list[float] = []

    async def client(index: int) -> None:
        turn = index
        while time.monotonic() - start < seconds:
            api = apis[turn % len(apis)]
            turn += 1
            async with api.session.get(f"{api.base}/v1/events?limit=1", headers=bearer(key)) as r:
                await r.read()
                statuses[r.status] += 1
                if r.status == 200:
                    answered.append(time.monotonic())
                else:
                    assert r.status == 429, r.status
                    assert r.headers["Retry-After"] == "1"

    await asyncio.gather(*(client(i) for i in range(4)))
    return statuses, max(answered) - min(answered)


def assert_configured_rate(statuses: Counter[int], elapsed: float) -> float:
    """The rate the 200s arrived at, after the burst, within TOLERANCE of RATE."""
    assert statuses[429] > statuses[200], statuses  # the clients asked far more than RATE
    measured = (statuses[200] - BURST) / elapsed
    assert abs(measured - RATE) <= TOLERANCE * RATE, (measured, statuses, elapsed)
    return measured


async def test_requests_are_admitted_at_the_configured_rate(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(pool, name="Measured Lending")
    rate = Rate(RATE, BURST)
    async with gateway(dataclasses.replace(settings, rate_per_credential=rate)) as running:
        statuses, elapsed = await hammer([running.api], tenant.read_key, RUN_SECONDS)

    measured = assert_configured_rate(statuses, elapsed)
    print(f"one process: {measured:.1f}/s admitted of {RATE:g}/s configured, {statuses}")


async def test_redis_unreachable_fails_open_to_per_process_buckets(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(pool, name="Redis-less Lending")
    changed = dataclasses.replace(
        settings,
        rate_per_credential=Rate(1, 3),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    async with gateway(changed) as running:
        statuses = [
            (await running.api.rest("GET", "/v1/leads", tenant.read_key))[0] for _ in range(4)
        ]
        failures = running.limiter.store_failures
        async with running.api.session.get(f"{running.api.base}/metrics") as resp:
            scraped = await resp.text()

    assert statuses == [200, 200, 200, 429]  # served, and still limited, by this process
    assert failures >= 1
    assert re.search(r"^leadgate_rate_limit_store_failures_total [1-9]", scraped, re.M)
    assert 'leadgate_rate_limited_total{policy="credential"} 1.0' in scraped


# --- shared: two processes, one Redis ------------------------------------------------------


@pytest.fixture(scope="module")
async def redis_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A redis-server of this module's own on a free port (never the machine's 6379)."""
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = await asyncio.create_subprocess_exec(
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _until_redis_answers(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        await process.wait()


async def _until_redis_answers(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PING\r\n")
            answer = await reader.readline()
            writer.close()
            if answer == b"+PONG\r\n":
                return
        assert time.monotonic() < deadline, "redis-server never answered"
        await asyncio.sleep(0.05)


async def test_two_processes_with_redis_share_one_bucket_at_the_configured_rate(
    database_url: str, redis_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant = await make_tenant(pool, name="Shared Lending")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LEADGATE_DISPATCHER": "0",
        "LEADGATE_REDIS_URL": redis_url,
        "LEADGATE_RATE_PER_CREDENTIAL": f"{RATE:g},{BURST:g}",
    }
    async with (
        aiohttp.ClientSession() as session,
        gateways(session, env, tmp_path, "a", "b") as (a, b),
    ):
        apis = [Api(session=session, base=a.base), Api(session=session, base=b.base)]
        for api in apis:  # each process has validated the key once: no SQL in the run
            await api.rest("GET", "/v1/events?limit=1", tenant.read_key)
        await asyncio.sleep(2 / RATE)  # and the bucket is full again
        statuses, elapsed = await hammer(apis, tenant.read_key, RUN_SECONDS)
        _, _, headers = await apis[1].rest("GET", "/v1/events?limit=1", tenant.read_key)

    # Per process the two would admit twice the rate; shared, they admit it once.
    measured = assert_configured_rate(statuses, elapsed)
    assert policies(headers)["credential"] == {"q": int(BURST), "w": 1}
    print(f"two processes + Redis: {measured:.1f}/s admitted of {RATE:g}/s configured, {statuses}")
