"""`leadgate.client.verify_webhook` on real deliveries from the gateway, captured by
tests/webhook_receiver.py: the event comes back typed; a tampered body, a wrong secret or a
stale timestamp are refused; during a rotation's overlap either secret verifies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Final

import pytest
from aiohttp.test_utils import TestServer

from leadgate.client import AsyncClient, InvalidWebhook, LeadCreate, verify_webhook
from tests.support import Api, Tenant
from tests.test_import_events import imported
from tests.test_imports import csv_rows
from tests.test_webhooks import OpenReceiver, create_endpoint, receivers  # noqa: F401 - a fixture
from tests.webhook_receiver import Received, Receiver

CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } secret }
}
"""
ROTATE: Final = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }"
OTHER_SECRET: Final = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


@pytest.fixture
async def client(server: TestServer, tenant: Tenant) -> AsyncIterator[AsyncClient]:
    base = str(server.make_url("")).rstrip("/")
    async with AsyncClient(base, api_key=tenant.write_key) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


async def endpoint(client: AsyncClient, receiver: Receiver) -> tuple[str, str]:
    """A new endpoint to the receiver: its id and secret."""
    data = await client.graphql(CREATE_ENDPOINT, {"url": receiver.url})
    made = data["createWebhookEndpoint"]
    return made["endpoint"]["id"], made["secret"]


async def delivery_of(client: AsyncClient, receiver: Receiver, name: str) -> tuple[str, Received]:
    """Create a lead and wait for its lead.created delivery."""
    lead = await client.leads.create(LeadCreate(business_name=name))
    got = await receiver.wait_until(
        lambda requests: any(r.json["data"]["id"] == lead.id for r in requests),
        what=f"the delivery of {name}",
    )
    return lead.id, next(r for r in got if r.json["data"]["id"] == lead.id)


async def test_a_real_delivery_verifies_into_its_typed_event(
    client: AsyncClient, receiver: Receiver
) -> None:
    _, secret = await endpoint(client, receiver)
    lead_id, delivery = await delivery_of(client, receiver, "Hooked Bakery")
    event = verify_webhook(secret, delivery.headers, delivery.body)
    assert (event.id, event.type, event.lead_id) == (delivery.webhook_id, "lead.created", lead_id)
    assert event.lead is not None and event.lead.business_name == "Hooked Bakery"
    assert event.actor is not None and event.actor.type == "api_key"
    assert abs(event.occurred_at.timestamp() - time.time()) < 60


async def test_a_tampered_body_or_another_secret_is_refused(
    client: AsyncClient, receiver: Receiver
) -> None:
    _, secret = await endpoint(client, receiver)
    _, delivery = await delivery_of(client, receiver, "Tamper Bakery")
    with pytest.raises(InvalidWebhook):
        verify_webhook(secret, delivery.headers, delivery.body.replace(b"Tamper", b"Temper"))
    with pytest.raises(InvalidWebhook):
        verify_webhook(OTHER_SECRET, delivery.headers, delivery.body)


async def test_a_replayed_delivery_older_than_five_minutes_is_refused(
    client: AsyncClient, receiver: Receiver
) -> None:
    _, secret = await endpoint(client, receiver)
    _, delivery = await delivery_of(client, receiver, "Stale Bakery")
    stale = {**delivery.headers, "webhook-timestamp": str(int(time.time()) - 600)}
    with pytest.raises(InvalidWebhook):
        verify_webhook(secret, stale, delivery.body)


async def test_during_a_rotation_either_secret_verifies_the_two_signature_delivery(
    client: AsyncClient, receiver: Receiver
) -> None:
    endpoint_id, old = await endpoint(client, receiver)
    new = (await client.graphql(ROTATE, {"id": endpoint_id}))["rotateWebhookSecret"]["secret"]
    lead_id, delivery = await delivery_of(client, receiver, "Rotating Bakery")
    assert len(delivery.headers["webhook-signature"].split()) == 2
    for secrets in (old, new, [OTHER_SECRET, new]):
        assert verify_webhook(secrets, delivery.headers, delivery.body).lead_id == lead_id
    with pytest.raises(InvalidWebhook):
        verify_webhook([OTHER_SECRET], delivery.headers, delivery.body)


async def test_an_import_completed_delivery_verifies_into_an_event_about_no_lead(
    api: Api,
    tenant: Tenant,
    receivers: OpenReceiver,  # noqa: F811 - the fixture
) -> None:
    receiver = await receivers()
    _, secret = await create_endpoint(api, tenant, receiver.url, ["import.completed"])
    job = await imported(api, tenant, csv_rows(2))

    (delivered,) = await receiver.wait_for_count(1)
    event = verify_webhook(secret, delivered.headers, delivered.body)

    assert (event.type, event.lead_id, event.lead, event.sequence) == (
        "import.completed",
        None,
        None,
        None,
    )
    assert event.data["importJobId"] == job["id"]
    assert event.data["counts"]["created"] == 2
