"""Secret rotation with overlap (Standard Webhooks) and Retry-After given as an HTTP date.

After `rotateWebhookSecret`, `webhook-signature` carries two `v1,` entries, the new secret's
first, until the old secret's window ends (`webhook_secret_overlap_seconds`, 24 h by default,
stored with the endpoint); then only the new one. Signatures are checked here with a verifier
written from the Standard Webhooks text, not with leadgate's signer nor the shared receiver's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from tests.support import Api, Tenant, make_tenant, ok
from tests.webhook_receiver import Received, Receiver, Reply

SHORT_OVERLAP: Final = 1.0
DEFAULT_OVERLAP: Final = 24 * 3600.0
SCHEDULE_FIRST_RETRY: Final = 0.2  # the session server's webhook_retry_schedule[0]

CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) {
    endpoint { id previousSecretExpiresAt }
    secret
  }
}
"""
ROTATE: Final = """
mutation($id: ID!) {
  rotateWebhookSecret(id: $id) { endpoint { id previousSecretExpiresAt } secret }
}
"""
ENDPOINTS: Final = "{ webhookEndpoints { id previousSecretExpiresAt } }"
SEND_TEST: Final = "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivered error } }"
CREATE_LEAD: Final = 'mutation { createLead(input: {businessName: "Rotation Bakery"}) { id } }'


# --- an independent verifier ----------------------------------------------------------------


def v1_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """Standard Webhooks: base64 HMAC-SHA256 over "msg_id.timestamp.payload", keyed with the
    base64-decoded part of the secret after "whsec_"."""
    key = base64.b64decode(secret[len("whsec_") :], validate=True)
    content = b".".join([headers["webhook-id"].encode(), headers["webhook-timestamp"].encode()])
    mac = hmac.new(key, content + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def signature_entries(request: Received) -> list[str]:
    """The signatures of a `webhook-signature` header ("v1,<sig> v1,<sig>"), version checked."""
    entries = []
    for entry in request.headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        assert version == "v1", request.headers["webhook-signature"]
        entries.append(signature)
    return entries


def signed_by(request: Received, secrets: Sequence[str]) -> list[bool]:
    """For each signature entry in order, whether it is `secrets[i]`'s."""
    entries = signature_entries(request)
    assert len(entries) == len(secrets), request.headers["webhook-signature"]
    return [
        hmac.compare_digest(entry, v1_signature(secret, dict(request.headers), request.body))
        for entry, secret in zip(entries, secrets, strict=True)
    ]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """A fresh organization without leads: its only events are the ones a test makes."""
    return await make_tenant(pool, name="Rotation Lending")


@pytest.fixture
async def receiver(pool: asyncpg.Pool) -> AsyncIterator[Receiver]:
    """A receiver on loopback; afterwards the endpoints aimed at it are removed, so nothing
    left pending reaches a later test's receiver on a reused port."""
    async with Receiver() as opened:
        yield opened
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE url = $1", opened.url)


@pytest.fixture(scope="module")
async def short_overlap(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    """A second gateway on the session database whose rotations overlap SHORT_OVERLAP s. No
    dispatcher: the session server's delivers, which shows the window is the endpoint's,
    stored, not a process setting."""
    short = dataclasses.replace(
        settings, webhook_secret_overlap_seconds=SHORT_OVERLAP, dispatcher_enabled=False
    )
    server = TestServer(create_app(short), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


# --- helpers --------------------------------------------------------------------------------


async def create_endpoint(api: Api, tenant: Tenant, url: str) -> tuple[str, str]:
    created = (await ok(api, tenant.write_key, CREATE_ENDPOINT, {"url": url}))[
        "createWebhookEndpoint"
    ]
    assert created["endpoint"]["previousSecretExpiresAt"] is None
    return created["endpoint"]["id"], created["secret"]


async def rotate(api: Api, tenant: Tenant, endpoint_id: str) -> tuple[str, datetime]:
    """The new secret, and when the replaced one stops signing."""
    rotated = (await ok(api, tenant.write_key, ROTATE, {"id": endpoint_id}))["rotateWebhookSecret"]
    expires = datetime.fromisoformat(rotated["endpoint"]["previousSecretExpiresAt"])
    return rotated["secret"], expires


async def delivered_lead(api: Api, tenant: Tenant, receiver: Receiver) -> Received:
    """Create a lead; the lead.created request the receiver gets for it."""
    before = len(receiver.requests)
    await ok(api, tenant.write_key, CREATE_LEAD)
    return (await receiver.wait_for_count(before + 1))[before]


# --- rotation -------------------------------------------------------------------------------


async def test_during_the_overlap_a_delivery_is_signed_with_the_new_secret_then_the_old(
    api: Api, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id, old = await create_endpoint(api, tenant, receiver.url)
    new, _ = await rotate(api, tenant, endpoint_id)

    request = await delivered_lead(api, tenant, receiver)

    assert signed_by(request, [new, old]) == [True, True]
    assert signed_by(request, [old, new]) == [False, False]  # the new secret's entry is first


async def test_rotation_reports_when_the_previous_secret_stops_signing(
    api: Api, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url)
    rotated_at = datetime.now(UTC)

    _, expires = await rotate(api, tenant, endpoint_id)

    assert abs((expires - rotated_at).total_seconds() - DEFAULT_OVERLAP) < 5
    (listed,) = (await ok(api, tenant.write_key, ENDPOINTS))["webhookEndpoints"]
    assert datetime.fromisoformat(listed["previousSecretExpiresAt"]) == expires


async def test_after_the_overlap_only_the_new_secret_signs(
    api: Api, short_overlap: Api, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id, old = await create_endpoint(api, tenant, receiver.url)
    new, expires = await rotate(short_overlap, tenant, endpoint_id)
    assert (await ok(short_overlap, tenant.write_key, SEND_TEST, {"id": endpoint_id}))[
        "sendTestWebhook"
    ]["delivered"]
    (during,) = receiver.requests
    assert signed_by(during, [new, old]) == [True, True]

    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    after = await delivered_lead(api, tenant, receiver)

    assert signed_by(after, [new]) == [True]
    (listed,) = (await ok(api, tenant.write_key, ENDPOINTS))["webhookEndpoints"]
    assert listed["previousSecretExpiresAt"] is None


async def test_a_second_rotation_keeps_only_the_secret_it_replaces_beside_the_new_one(
    api: Api, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id, first = await create_endpoint(api, tenant, receiver.url)
    second, _ = await rotate(api, tenant, endpoint_id)
    third, _ = await rotate(api, tenant, endpoint_id)

    request = await delivered_lead(api, tenant, receiver)

    assert signed_by(request, [third, second]) == [True, True]
    assert first not in (second, third)
    assert not any(
        hmac.compare_digest(entry, v1_signature(first, dict(request.headers), request.body))
        for entry in signature_entries(request)
    )


def test_the_overlap_is_24_hours_unless_leadgate_webhook_secret_overlap_says_otherwise() -> None:
    assert Settings.from_env({}).webhook_secret_overlap_seconds == DEFAULT_OVERLAP
    configured = Settings.from_env({"LEADGATE_WEBHOOK_SECRET_OVERLAP": "3600"})
    assert configured.webhook_secret_overlap_seconds == 3600.0


# --- Retry-After as an HTTP date -------------------------------------------------------------


@contextlib.asynccontextmanager
async def replying(pool: asyncpg.Pool, replies: Sequence[int | Reply]) -> AsyncIterator[Receiver]:
    async with Receiver(replies) as opened:
        yield opened
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE url = $1", opened.url)


def monotonic_of(when: datetime) -> float:
    return time.monotonic() + (when - datetime.now(UTC)).total_seconds()


async def first_two(
    api: Api, tenant: Tenant, receiver: Receiver, send: Callable[[], Awaitable[Any]]
) -> tuple[Received, Received]:
    await create_endpoint(api, tenant, receiver.url)
    await send()
    first, second = await receiver.wait_for_count(2)
    assert first.webhook_id == second.webhook_id
    return first, second


async def test_retry_after_as_an_http_date_postpones_the_retry_until_that_time(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    # A whole second (HTTP dates have no fractions) 1 to 2 s ahead: well past the 0.2 s the
    # schedule would wait.
    now = datetime.now(UTC)
    retry_at = now.replace(microsecond=0) + timedelta(seconds=2)
    date = format_datetime(retry_at, usegmt=True)  # e.g. "Wed, 21 Oct 2026 07:28:00 GMT"
    async with replying(pool, [Reply(503, {"Retry-After": date}), 200]) as receiver:
        first, second = await first_two(
            api, tenant, receiver, lambda: ok(api, tenant.write_key, CREATE_LEAD)
        )

    target = monotonic_of(retry_at)
    assert second.arrived >= target - 0.05, (date, second.arrived - target)
    assert second.arrived - target < 0.5  # and not much later
    assert second.arrived - first.arrived > 2 * SCHEDULE_FIRST_RETRY


async def test_retry_after_as_a_past_http_date_leaves_the_schedule_to_decide(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    async with replying(pool, [Reply(503, {"Retry-After": past}), 200]) as receiver:
        first, second = await first_two(
            api, tenant, receiver, lambda: ok(api, tenant.write_key, CREATE_LEAD)
        )

    assert second.arrived - first.arrived < 2 * SCHEDULE_FIRST_RETRY + 0.2
