"""CORS for browser apps on other origins (cors.py): an exact allow-list for /graphql and /v1,
preflights answered before authentication, headers on every response (errors included),
`Vary: Origin` always, and WebSocket handshakes held to the same list.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import InvalidSetting, Settings
from leadgate.cors import CorsPolicy
from tests.support import Tenant, bearer

APP: Final = "https://app.example.com"
EVIL: Final = "https://evil.example"
QUERY: Final = {"query": "{ stages { id } }"}
EXPOSED: Final = {
    "x-request-id",
    "idempotent-replayed",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
}


@pytest.fixture(scope="module")
async def gateway(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A gateway whose allow-list is APP; its base URL."""
    own = dataclasses.replace(settings, cors_origins=(APP,), dispatcher_enabled=False)
    server = TestServer(create_app(own), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


def listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/graphql", {"get", "post", "options"}), ("/v1/leads/x/move", {"post", "options"})],
)
async def test_a_preflight_from_an_allowed_origin_names_the_routes_methods_and_headers(
    gateway: str, http: aiohttp.ClientSession, path: str, methods: set[str]
) -> None:
    async with http.options(f"{gateway}{path}", headers=preflight(APP)) as resp:
        assert resp.status == 204, await resp.text()
        headers = resp.headers

    assert headers["Access-Control-Allow-Origin"] == APP
    assert listed(headers["Access-Control-Allow-Methods"]) == methods
    assert {"authorization", "content-type", "idempotency-key"} <= listed(
        headers["Access-Control-Allow-Headers"]
    )
    assert "origin" in listed(headers["Vary"])
    # Bearer tokens, not cookies: never credentials mode.
    assert "Access-Control-Allow-Credentials" not in headers


def error_code(body: dict[str, Any]) -> str:
    """The code in either envelope: GraphQL's `errors` or REST's `error`."""
    code: str = (
        body["errors"][0]["extensions"]["code"] if "errors" in body else body["error"]["code"]
    )
    return code


@pytest.mark.parametrize("path", ["/graphql", "/v1/leads"])
async def test_a_preflight_from_another_origin_is_refused_403_in_the_apis_envelope(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.options(f"{gateway}{path}", headers=preflight(EVIL)) as resp:
        status, body, headers = resp.status, await resp.json(), resp.headers

    assert status == 403
    assert error_code(body) == "FORBIDDEN"
    assert ("errors" in body) == (path == "/graphql")
    assert "Access-Control-Allow-Origin" not in headers
    assert "X-Request-Id" in headers


async def test_a_response_to_an_allowed_origin_exposes_the_headers_a_client_reads(
    gateway: str, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    headers = {"Origin": APP, **bearer(tenant.read_key)}
    async with http.post(f"{gateway}/graphql", json=QUERY, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        answered = resp.headers

    assert answered["Access-Control-Allow-Origin"] == APP
    assert listed(answered["Access-Control-Expose-Headers"]) == EXPOSED
    assert "origin" in listed(answered["Vary"])
    assert "Access-Control-Allow-Credentials" not in answered


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/graphql"), ("GET", "/v1/leads"), ("GET", "/v1/nowhere")]
)
async def test_error_responses_carry_the_cors_headers_too(
    gateway: str, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    # No credential: 401 (and 404 for no route), which the browser app must be able to read.
    async with http.request(method, f"{gateway}{path}", json=QUERY, headers={"Origin": APP}) as r:
        status, headers = r.status, r.headers

    assert status in (401, 404)
    assert headers["Access-Control-Allow-Origin"] == APP
    assert "x-request-id" in listed(headers["Access-Control-Expose-Headers"])
    assert "origin" in listed(headers["Vary"])


@pytest.mark.parametrize("origin", [EVIL, None])
async def test_another_origin_or_none_gets_no_cors_headers_but_vary_origin(
    gateway: str, http: aiohttp.ClientSession, tenant: Tenant, origin: str | None
) -> None:
    headers = {**bearer(tenant.read_key), **({"Origin": origin} if origin else {})}
    async with http.post(f"{gateway}/graphql", json=QUERY, headers=headers) as resp:
        assert resp.status == 200
        answered = resp.headers

    assert not [name for name in answered if name.lower().startswith("access-control-")]
    # A cache must not hand this answer to an allowed origin's page, nor the reverse.
    assert "origin" in listed(answered["Vary"])


async def test_a_websocket_upgrade_from_another_origin_is_refused(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    url = gateway.replace("http://", "ws://") + "/graphql"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, protocols=["graphql-transport-ws"], headers={"Origin": EVIL})

    assert refused.value.status == 403


@pytest.mark.parametrize("origin", [APP, None])
async def test_a_websocket_from_an_allowed_origin_or_without_one_is_served(
    gateway: str, http: aiohttp.ClientSession, tenant: Tenant, origin: str | None
) -> None:
    url = gateway.replace("http://", "ws://") + "/graphql"
    headers = {"Origin": origin} if origin else {}
    async with http.ws_connect(url, protocols=["graphql-transport-ws"], headers=headers) as ws:
        await ws.send_json({"type": "connection_init", "payload": bearer(tenant.read_key)})
        ack = await asyncio.wait_for(ws.receive_json(), 5)

    assert ack["type"] == "connection_ack"


def test_under_demo_any_loopback_origin_is_allowed_and_nothing_else() -> None:
    demo = CorsPolicy(loopback=True)

    assert demo.allows("http://localhost:8081")
    assert demo.allows("http://127.0.0.1:5173")
    assert demo.allows("http://[::1]:3000")
    assert not demo.allows("https://localhost.evil.example")
    assert not demo.allows("null")
    assert not CorsPolicy().allows("http://localhost:8081")


def test_the_allow_list_comes_from_leadgate_cors_origins_as_exact_origins() -> None:
    settings = Settings.from_env(
        {"LEADGATE_CORS_ORIGINS": "https://App.Example.com:443, http://localhost:8081"}
    )
    policy = CorsPolicy.from_settings(settings)

    assert settings.cors_origins == ("https://app.example.com", "http://localhost:8081")
    assert policy.allows(APP)
    assert not policy.allows("https://app.example.com:8443")
    assert not policy.allows("http://localhost:8082")
    with pytest.raises(InvalidSetting, match="LEADGATE_CORS_ORIGINS"):
        Settings.from_env({"LEADGATE_CORS_ORIGINS": "https://app.example.com/board"})


async def test_an_sse_stream_to_an_allowed_origin_carries_the_cors_headers(
    gateway: str, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    headers = {"Origin": APP, "Accept": "text/event-stream", **bearer(tenant.read_key)}
    async with http.post(f"{gateway}/graphql", json=QUERY, headers=headers) as resp:
        assert resp.status == 200
        answered, body = resp.headers, await resp.text()

    assert answered["Content-Type"].startswith("text/event-stream")
    assert answered["Access-Control-Allow-Origin"] == APP
    assert "origin" in listed(answered["Vary"])
    assert "event: complete" in body


async def test_a_websocket_from_the_gateways_own_origin_is_served(
    gateway: str, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    # GraphiQL, served by the gateway itself, subscribes from the gateway's origin.
    url = gateway.replace("http://", "ws://") + "/graphql"
    headers = {"Origin": gateway}
    async with http.ws_connect(url, protocols=["graphql-transport-ws"], headers=headers) as ws:
        await ws.send_json({"type": "connection_init", "payload": bearer(tenant.read_key)})
        ack = await asyncio.wait_for(ws.receive_json(), 5)

    assert ack["type"] == "connection_ack"
