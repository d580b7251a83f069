"""SSRF: webhooks reach globally routable addresses only, and connect to the address vetted.

Host names resolve through `ScriptedResolver`, a resolver these tests control (given to the
gateway as `Settings.webhook_resolver`): it answers each name from a script, one answer per
lookup, so a name can answer a public address when the endpoint is created and an internal one
when a delivery connects (DNS rebinding).

These run on a database of their own, with gateways of their own (insecure webhooks off): the
session `server` runs a dispatcher with the system resolver, and on the shared database it
would try these endpoints' deliveries too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool
from leadgate.domain.webhooks import generate_secret
from leadgate.store import webhooks
from tests.databases import create_database, drop_database
from tests.support import Api, Tenant, error_codes, make_tenant, ok
from tests.webhook_receiver import Receiver

PUBLIC: Final = "93.184.216.34"
PUBLIC_V6: Final = "2606:2800:220:1:248:1893:25c8:1946"
DEADLINE: Final = 10.0

# (id, address, why it is refused): one of each class of address that is not globally routable.
NON_GLOBAL: Final = [
    ("private", "10.0.0.5", "a private address"),
    ("private-192.168", "192.168.1.20", "a private address"),
    ("cgnat", "100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("cloud-metadata", "169.254.169.254", "a link-local address"),
    ("cloud-metadata-ipv6", "fd00:ec2::254", "a private address"),
    ("ipv4-mapped-ipv6", "::ffff:10.0.0.1", "a private address"),
    ("unspecified", "0.0.0.0", "an unspecified address"),  # noqa: S104 - the refused target
    ("unspecified-ipv6", "::", "an unspecified address"),
    ("loopback", "127.0.0.1", "a loopback address"),
    ("loopback-ipv6", "::1", "a loopback address"),
    ("link-local-ipv6", "fe80::1", "a link-local address"),
    ("multicast", "224.0.0.251", "a multicast address"),
    ("6to4-of-private", "2002:a00:5::1", "a private address"),
    ("nat64-of-private", "64:ff9b::a00:5", "a private address"),
    ("documentation", "192.0.2.10", "a private address"),
    ("reserved", "240.0.0.1", "a private address"),
]
CLASS_IDS: Final = [c[0] for c in NON_GLOBAL]

CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } secret }
}
"""
ENDPOINTS: Final = "{ webhookEndpoints { id url } }"
SEND_TEST: Final = """
mutation($id: ID!) {
  sendTestWebhook(endpointId: $id) { delivered responseStatus error durationMs }
}
"""
CREATE_LEAD: Final = 'mutation { createLead(input: {businessName: "Rebind Bakery"}) { id } }'
DELIVERIES: Final = """
query($id: ID!) {
  webhookDeliveries(endpointId: $id) {
    nodes { status attempt attempts { responseStatus error } }
  }
}
"""


class ScriptedResolver(AbstractResolver):
    """Answers each host name from its script: the next answer per lookup, the last one
    repeated. A name without a script does not resolve. Counts lookups per name."""

    def __init__(self) -> None:
        self._scripts: dict[str, list[list[str]]] = {}
        self.lookups: collections.Counter[str] = collections.Counter()

    def script(self, host: str, *answers: list[str]) -> None:
        self._scripts[host] = list(answers)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups[host] += 1
        script = self._scripts.get(host)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} does not resolve")
        addresses = script.pop(0) if len(script) > 1 else script[0]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


class LoopbackListener:
    """A TCP listener on 127.0.0.1 that counts every connection made to it (a TLS handshake
    or an HTTP request would need one first)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> LoopbackListener:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# --- a database and gateways of our own -----------------------------------------------------


@pytest.fixture(scope="module")
async def ssrf_database_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, prefix="leadgate_webhook_ssrf")
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="module")
async def ssrf_pool(ssrf_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(database_url=ssrf_database_url))
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Api]:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


@pytest.fixture(scope="module")
def resolver() -> ScriptedResolver:
    return ScriptedResolver()


@pytest.fixture(scope="module")
async def gateway(
    settings: Settings, ssrf_database_url: str, ssrf_pool: asyncpg.Pool, resolver: ScriptedResolver
) -> AsyncIterator[Api]:
    """A gateway as in production (insecure webhooks off), with a dispatcher, one retry."""
    production_like = dataclasses.replace(
        settings,
        database_url=ssrf_database_url,
        allow_insecure_webhooks=False,
        webhook_resolver=resolver,
        webhook_retry_schedule=(0.1,),
    )
    async with serving(production_like) as api:
        yield api


@pytest.fixture(scope="module")
def insecure_resolver() -> ScriptedResolver:
    return ScriptedResolver()


@pytest.fixture(scope="module")
async def insecure_gateway(
    settings: Settings,
    ssrf_database_url: str,
    ssrf_pool: asyncpg.Pool,
    insecure_resolver: ScriptedResolver,
) -> AsyncIterator[Api]:
    """Local development: http and loopback allowed. No dispatcher (test sends only), so it
    never competes with `gateway`'s for deliveries."""
    development = dataclasses.replace(
        settings,
        database_url=ssrf_database_url,
        allow_insecure_webhooks=True,
        webhook_resolver=insecure_resolver,
        dispatcher_enabled=False,
    )
    async with serving(development) as api:
        yield api


@pytest.fixture
async def tenant(ssrf_pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(ssrf_pool, name="SSRF Lending")


# --- helpers --------------------------------------------------------------------------------


def unique_host(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}.example.test"


def url_of(address: str, path: str = "/hook") -> str:
    return f"https://[{address}]{path}" if ":" in address else f"https://{address}{path}"


async def create_endpoint(api: Api, tenant: Tenant, url: str) -> str:
    data = await ok(api, tenant.write_key, CREATE_ENDPOINT, {"url": url})
    endpoint_id: str = data["createWebhookEndpoint"]["endpoint"]["id"]
    return endpoint_id


async def refused_creation(api: Api, tenant: Tenant, url: str) -> str:
    """Creating an endpoint for `url` is a validation error on `url`: its message."""
    _, body = await api.graphql(tenant.write_key, CREATE_ENDPOINT, {"url": url})
    assert error_codes(body) == ["VALIDATION_ERROR"], body
    (field,) = body["errors"][0]["extensions"]["fields"]
    assert field["field"] == "url"
    assert (await ok(api, tenant.write_key, ENDPOINTS))["webhookEndpoints"] == []
    message: str = field["message"]
    return message


async def send_test(api: Api, tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    data = await ok(api, tenant.write_key, SEND_TEST, {"id": endpoint_id})
    result: dict[str, Any] = data["sendTestWebhook"]
    return result


async def stored_endpoint(pool: asyncpg.Pool, tenant: Tenant, url: str) -> str:
    """An endpoint written straight to the table, as one stored before the rule would be."""
    async with pool.acquire() as conn:
        endpoint = await webhooks.insert_endpoint(
            conn, tenant.id, url=url, secret=generate_secret(), event_types=["lead.created"]
        )
    return str(endpoint.id)


async def settled_delivery(
    api: Api, tenant: Tenant, endpoint_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        data = await ok(api, tenant.write_key, DELIVERIES, {"id": endpoint_id})
        nodes = data["webhookDeliveries"]["nodes"]
        if nodes and done(nodes[0]):
            found: dict[str, Any] = nodes[0]
            return found
        assert time.monotonic() < deadline, f"no settled delivery in {DEADLINE}s: {nodes}"
        await asyncio.sleep(0.05)


# --- at creation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "reason"), [c[1:] for c in NON_GLOBAL], ids=CLASS_IDS)
async def test_an_ip_literal_that_is_not_globally_routable_is_refused_at_creation(
    gateway: Api, tenant: Tenant, resolver: ScriptedResolver, address: str, reason: str
) -> None:
    lookups = sum(resolver.lookups.values())

    message = await refused_creation(gateway, tenant, url_of(address))

    assert message.startswith("is not allowed: ") and message.endswith(f" is {reason}"), message
    assert sum(resolver.lookups.values()) == lookups  # a literal is judged without DNS


@pytest.mark.parametrize(("address", "reason"), [c[1:] for c in NON_GLOBAL], ids=CLASS_IDS)
async def test_a_host_resolving_to_an_address_that_is_not_globally_routable_is_refused_at_creation(
    gateway: Api, tenant: Tenant, resolver: ScriptedResolver, address: str, reason: str
) -> None:
    host = unique_host("internal")
    resolver.script(host, [address])

    message = await refused_creation(gateway, tenant, f"https://{host}/hook")

    assert message == f"is not allowed: {host} resolves to {reason}"
    assert resolver.lookups[host] == 1


async def test_a_host_with_one_private_address_among_public_ones_is_refused_at_creation(
    gateway: Api, tenant: Tenant, resolver: ScriptedResolver
) -> None:
    host = unique_host("mixed")
    resolver.script(host, [PUBLIC, "10.0.0.5", PUBLIC_V6])

    message = await refused_creation(gateway, tenant, f"https://{host}/hook")

    assert message == f"is not allowed: {host} resolves to a private address"


async def test_a_host_resolving_to_public_addresses_only_is_accepted(
    gateway: Api, tenant: Tenant, resolver: ScriptedResolver
) -> None:
    host = unique_host("public")
    resolver.script(host, [PUBLIC, PUBLIC_V6])

    endpoint_id = await create_endpoint(gateway, tenant, f"https://{host}/hook")

    listed = (await ok(gateway, tenant.write_key, ENDPOINTS))["webhookEndpoints"]
    assert listed == [{"id": endpoint_id, "url": f"https://{host}/hook"}]
    assert resolver.lookups[host] == 1  # creation vets through the resolver the sender uses


# --- at send --------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "reason"), [c[1:] for c in NON_GLOBAL], ids=CLASS_IDS)
async def test_a_host_that_resolves_to_a_non_global_address_at_send_time_is_refused(
    gateway: Api, tenant: Tenant, resolver: ScriptedResolver, address: str, reason: str
) -> None:
    host = unique_host("rebind")
    resolver.script(host, [PUBLIC], [address])  # public when created, internal when sent
    endpoint_id = await create_endpoint(gateway, tenant, f"https://{host}/hook")

    result = await send_test(gateway, tenant, endpoint_id)

    assert result["delivered"] is False
    assert result["responseStatus"] is None
    assert result["error"] == f"refused: {host} resolves to {reason}"
    assert resolver.lookups[host] == 2  # one at creation, one for the send: none in between


@pytest.mark.parametrize(("address", "reason"), [c[1:] for c in NON_GLOBAL], ids=CLASS_IDS)
async def test_a_stored_ip_literal_that_is_not_globally_routable_is_refused_at_send_time(
    gateway: Api,
    tenant: Tenant,
    ssrf_pool: asyncpg.Pool,
    resolver: ScriptedResolver,
    address: str,
    reason: str,
) -> None:
    endpoint_id = await stored_endpoint(ssrf_pool, tenant, url_of(address))
    lookups = sum(resolver.lookups.values())

    result = await send_test(gateway, tenant, endpoint_id)

    assert result["delivered"] is False
    assert result["responseStatus"] is None
    assert result["error"].startswith("refused: ") and result["error"].endswith(f" is {reason}")
    assert sum(resolver.lookups.values()) == lookups


async def test_a_rebinding_answer_never_gets_a_connection_to_the_internal_host(
    gateway: Api, tenant: Tenant, resolver: ScriptedResolver
) -> None:
    async with LoopbackListener() as internal:
        host = unique_host("rebind")
        resolver.script(host, [PUBLIC], ["127.0.0.1"])
        endpoint_id = await create_endpoint(gateway, tenant, f"https://{host}:{internal.port}/hook")

        await ok(gateway, tenant.write_key, CREATE_LEAD)
        delivery = await settled_delivery(
            gateway, tenant, endpoint_id, lambda d: d["status"] == "failed"
        )
        tested = await send_test(gateway, tenant, endpoint_id)

    refused = f"refused: {host} resolves to a loopback address"
    assert delivery["attempts"] == [{"responseStatus": None, "error": refused}] * 2
    assert tested["error"] == refused
    assert internal.connections == 0
    # One lookup at creation, then exactly one per connection attempt: what was vetted is what
    # the connection would have used.
    assert resolver.lookups[host] == 1 + 2 + 1


# --- local development ----------------------------------------------------------------------


async def test_with_insecure_webhooks_allowed_a_host_resolving_to_loopback_gets_the_webhook(
    insecure_gateway: Api, tenant: Tenant, insecure_resolver: ScriptedResolver
) -> None:
    host = unique_host("dev")
    insecure_resolver.script(host, ["127.0.0.1"])
    async with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", host)
        endpoint_id = await create_endpoint(insecure_gateway, tenant, url)

        result = await send_test(insecure_gateway, tenant, endpoint_id)

        assert result["delivered"] is True, result
        assert [r.json["type"] for r in receiver.requests] == ["webhook.test"]
    assert insecure_resolver.lookups[host] == 2


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "100.64.0.1", "169.254.169.254", "fd00:ec2::254"], ids=str
)
async def test_with_insecure_webhooks_allowed_other_internal_addresses_are_still_refused(
    insecure_gateway: Api, tenant: Tenant, insecure_resolver: ScriptedResolver, address: str
) -> None:
    host = unique_host("dev-internal")
    insecure_resolver.script(host, [address])

    message = await refused_creation(insecure_gateway, tenant, f"http://{host}/hook")

    assert message.startswith(f"is not allowed: {host} resolves to "), message
