"""Webhooks in one process: endpoint management, signed deliveries, retries with backoff,
Retry-After, 410, redelivery, test sends and secret rotation (the events backfill is
tests/test_events_backfill.py).

The session `server` runs the dispatcher with the test Settings: http to loopback allowed,
retry schedule (0.2, 0.4, 0.8) s (four attempts), lease 5 s, timeout 2 s. Every delivery goes
to a real receiver on loopback (tests/webhook_receiver.py) that checks signatures with the
documented algorithm, independently of leadgate's code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

import asyncpg
import pytest

from tests.support import (
    EVENTS,
    Api,
    Tenant,
    create_lead,
    error_codes,
    history,
    make_tenant,
    move_lead,
    ok,
)
from tests.webhook_receiver import Receiver, Reply

ALL_TYPES: Final = ["lead.created", "lead.updated", "lead.status_changed", "lead.assigned"]
SCHEDULE: Final = (0.2, 0.4, 0.8)  # the session server's webhook_retry_schedule
DEADLINE: Final = 10.0
# How late a due retry may be sent: claiming and posting on loopback take milliseconds.
DISPATCH_SLACK: Final = 0.3

CREATE_ENDPOINT: Final = """
mutation($url: String!, $types: [String!]!) {
  createWebhookEndpoint(url: $url, eventTypes: $types) {
    endpoint { id url eventTypes enabled }
    secret
  }
}
"""
UPDATE_ENDPOINT: Final = """
mutation($id: ID!, $url: String, $types: [String!], $enabled: Boolean) {
  updateWebhookEndpoint(id: $id, url: $url, eventTypes: $types, enabled: $enabled) {
    id url eventTypes enabled disabledReason
  }
}
"""
DELETE_ENDPOINT: Final = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }"
ROTATE_SECRET: Final = """
mutation($id: ID!) { rotateWebhookSecret(id: $id) { endpoint { id url } secret } }
"""
ENDPOINTS: Final = "{ webhookEndpoints { id url eventTypes enabled disabledReason } }"
DELIVERIES: Final = """
query($endpointId: ID, $status: String) {
  webhookDeliveries(endpointId: $endpointId, status: $status, limit: 100) {
    total
    nodes {
      id eventId endpointId eventType status attempt
      attempts { attempt responseStatus error durationMs }
    }
  }
}
"""
REDELIVER: Final = "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id eventId status } }"
SEND_TEST: Final = """
mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivered responseStatus error } }
"""
UPDATE_LEAD: Final = """
mutation($id: ID!, $name: String!) { updateLead(id: $id, input: {businessName: $name}) { id } }
"""


UNSETTLED: Final = """
SELECT count(*)
FROM webhook_deliveries AS d
JOIN webhook_endpoints AS w ON w.organization_id = d.organization_id AND w.id = d.endpoint_id
WHERE w.url = ANY ($1::text[])
  AND d.status = 'pending'
"""


class OpenReceiver(Protocol):
    def __call__(
        self,
        replies: Sequence[int | Reply] = (),
        *,
        default: int | Reply = 200,
        delay: float = 0.0,
    ) -> Awaitable[Receiver]: ...


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """A fresh organization without leads: its only events are the ones a test makes."""
    return await make_tenant(pool, name="Webhook Lending")


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, name="Other Webhook Lending")


@pytest.fixture
async def receivers(pool: asyncpg.Pool) -> AsyncIterator[OpenReceiver]:
    """Opens receivers for a test; afterwards removes every endpoint aimed at them, so a
    retry left pending cannot reach a later test's receiver on a reused port."""
    opened: list[Receiver] = []
    async with contextlib.AsyncExitStack() as stack:

        async def open_receiver(
            replies: Sequence[int | Reply] = (),
            *,
            default: int | Reply = 200,
            delay: float = 0.0,
        ) -> Receiver:
            receiver = Receiver(replies, default=default, delay=delay)
            opened.append(await stack.enter_async_context(receiver))
            return receiver

        yield open_receiver
        urls = [r.url for r in opened]
        # Let sends in flight settle first: deleting their endpoint under them would only
        # make the dispatcher log a failed round.
        async with pool.acquire() as conn:
            for _ in range(200):  # at most 10 s
                if not await conn.fetchval(UNSETTLED, urls):
                    break
                await asyncio.sleep(0.05)
            await conn.execute("DELETE FROM webhook_endpoints WHERE url = ANY ($1::text[])", urls)


# --- helpers --------------------------------------------------------------------------------


async def create_endpoint(
    api: Api, tenant: Tenant, url: str, types: Sequence[str] = ALL_TYPES
) -> tuple[str, str]:
    """A new endpoint of `tenant`: (id, secret)."""
    data = await ok(api, tenant.write_key, CREATE_ENDPOINT, {"url": url, "types": list(types)})
    created = data["createWebhookEndpoint"]
    return created["endpoint"]["id"], created["secret"]


async def deliveries(api: Api, tenant: Tenant, endpoint_id: str | None) -> dict[str, Any]:
    data = await ok(api, tenant.write_key, DELIVERIES, {"endpointId": endpoint_id})
    page: dict[str, Any] = data["webhookDeliveries"]
    return page


async def endpoints(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await ok(api, tenant.write_key, ENDPOINTS))["webhookEndpoints"]
    return found


async def wait_for_delivery(
    api: Api,
    tenant: Tenant,
    endpoint_id: str,
    condition: Callable[[dict[str, Any]], bool],
    *,
    within: float = DEADLINE,
) -> dict[str, Any]:
    """The endpoint's newest delivery, once `condition` holds for it."""
    deadline = time.monotonic() + within
    while True:
        nodes = (await deliveries(api, tenant, endpoint_id))["nodes"]
        if nodes and condition(nodes[0]):
            found: dict[str, Any] = nodes[0]
            return found
        assert time.monotonic() < deadline, f"no delivery met the condition in {within}s: {nodes}"
        await asyncio.sleep(0.05)


async def wait_for_endpoint(
    api: Api, tenant: Tenant, endpoint_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        (endpoint,) = [e for e in await endpoints(api, tenant) if e["id"] == endpoint_id]
        if condition(endpoint):
            return endpoint
        assert time.monotonic() < deadline, f"endpoint never met the condition: {endpoint}"
        await asyncio.sleep(0.05)


def gaps(arrivals: Sequence[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]


# --- endpoints ------------------------------------------------------------------------------


async def test_creating_an_endpoint_returns_its_whsec_secret(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()

    data = await ok(
        api, tenant.write_key, CREATE_ENDPOINT, {"url": receiver.url, "types": ["lead.created"]}
    )

    created = data["createWebhookEndpoint"]
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"), validate=True)) >= 24
    endpoint = created["endpoint"]
    assert endpoint["url"] == receiver.url
    assert endpoint["eventTypes"] == ["lead.created"]
    assert endpoint["enabled"] is True


async def test_the_secret_is_shown_only_at_creation(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, secret = await create_endpoint(api, tenant, receiver.url)

    listed = await endpoints(api, tenant)
    _, asking_for_secret = await api.graphql(tenant.write_key, "{ webhookEndpoints { secret } }")

    assert [e["id"] for e in listed] == [endpoint_id]
    assert secret not in str(listed)
    assert asking_for_secret.get("data") is None
    assert "secret" in asking_for_secret["errors"][0]["message"]


async def endpoint_with_delivery(api: Api, tenant: Tenant, url: str) -> tuple[str, str]:
    """An endpoint of `tenant` with one delivery (made in the event's transaction)."""
    endpoint_id, _ = await create_endpoint(api, tenant, url)
    await create_lead(api, tenant)
    (delivery,) = (await deliveries(api, tenant, endpoint_id))["nodes"]
    return endpoint_id, delivery["id"]


def operation(
    name: str, endpoint_id: str, delivery_id: str, url: str
) -> tuple[str, dict[str, Any]]:
    """Each webhook query and mutation, aimed at this endpoint and delivery."""
    by_name: dict[str, tuple[str, dict[str, Any]]] = {
        "webhookEndpoints": (ENDPOINTS, {}),
        "webhookDeliveries": (DELIVERIES, {"endpointId": endpoint_id}),
        "createWebhookEndpoint": (CREATE_ENDPOINT, {"url": url, "types": ["lead.created"]}),
        "updateWebhookEndpoint": (UPDATE_ENDPOINT, {"id": endpoint_id, "enabled": False}),
        "deleteWebhookEndpoint": (DELETE_ENDPOINT, {"id": endpoint_id}),
        "rotateWebhookSecret": (ROTATE_SECRET, {"id": endpoint_id}),
        "redeliverWebhook": (REDELIVER, {"id": delivery_id}),
        "sendTestWebhook": (SEND_TEST, {"id": endpoint_id}),
    }
    return by_name[name]


@pytest.mark.parametrize(
    "name",
    [
        "webhookEndpoints",
        "webhookDeliveries",
        "createWebhookEndpoint",
        "updateWebhookEndpoint",
        "deleteWebhookEndpoint",
        "rotateWebhookSecret",
        "redeliverWebhook",
        "sendTestWebhook",
    ],
)
async def test_a_read_only_key_is_forbidden_every_webhook_operation(
    api: Api, tenant: Tenant, receivers: OpenReceiver, name: str
) -> None:
    receiver = await receivers()
    endpoint_id, delivery_id = await endpoint_with_delivery(api, tenant, receiver.url)
    before = await endpoints(api, tenant)
    query, variables = operation(name, endpoint_id, delivery_id, receiver.url)

    _, body = await api.graphql(tenant.read_key, query, variables)

    assert error_codes(body) == ["FORBIDDEN"], body
    assert body.get("data") is None
    assert await endpoints(api, tenant) == before
    assert all(r.json["type"] != "webhook.test" for r in receiver.requests)


@pytest.mark.parametrize(
    "types",
    [[], ["lead.deleted"], ["lead.created", "lead.nope"], ["LEAD.CREATED"]],
    ids=["none", "unknown", "one-unknown", "wrong-case"],
)
async def test_unknown_event_types_are_a_validation_error(
    api: Api, tenant: Tenant, receivers: OpenReceiver, types: list[str]
) -> None:
    receiver = await receivers()

    _, body = await api.graphql(
        tenant.write_key, CREATE_ENDPOINT, {"url": receiver.url, "types": types}
    )

    assert error_codes(body) == ["VALIDATION_ERROR"], body
    assert await endpoints(api, tenant) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "https:///hook",
        "http://",
        "example.com/hook",
        "https://user:password@example.com/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
    ],
    ids=["ftp", "no-host", "nothing", "no-scheme", "credentials", "private", "link-local"],
)
async def test_a_url_that_is_no_webhook_target_is_a_validation_error(
    api: Api, tenant: Tenant, url: str
) -> None:
    _, body = await api.graphql(
        tenant.write_key, CREATE_ENDPOINT, {"url": url, "types": ["lead.created"]}
    )

    assert error_codes(body) == ["VALIDATION_ERROR"], body
    assert await endpoints(api, tenant) == []


async def test_http_to_loopback_is_accepted_when_insecure_webhooks_are_allowed(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    assert receiver.url.startswith("http://127.0.0.1:")

    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url)

    (listed,) = await endpoints(api, tenant)
    assert listed["id"] == endpoint_id
    assert listed["url"] == receiver.url
    assert listed["enabled"] is True


async def test_updating_an_endpoint_to_a_bad_url_is_a_validation_error(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url)

    _, body = await api.graphql(
        tenant.write_key, UPDATE_ENDPOINT, {"id": endpoint_id, "url": "ftp://example.com/x"}
    )

    assert error_codes(body) == ["VALIDATION_ERROR"], body
    assert [e["url"] for e in await endpoints(api, tenant)] == [receiver.url]


@pytest.mark.parametrize(
    "name",
    [
        "updateWebhookEndpoint",
        "deleteWebhookEndpoint",
        "rotateWebhookSecret",
        "sendTestWebhook",
        "redeliverWebhook",
    ],
)
async def test_another_organizations_endpoint_and_delivery_are_not_found(
    api: Api, tenant: Tenant, other_tenant: Tenant, receivers: OpenReceiver, name: str
) -> None:
    receiver = await receivers()
    endpoint_id, delivery_id = await endpoint_with_delivery(api, tenant, receiver.url)
    before = await endpoints(api, tenant)
    query, variables = operation(name, endpoint_id, delivery_id, receiver.url)

    _, body = await api.graphql(other_tenant.write_key, query, variables)

    assert error_codes(body) == ["NOT_FOUND"], body
    assert await endpoints(api, tenant) == before
    assert all(r.json["type"] != "webhook.test" for r in receiver.requests)


async def test_another_organizations_endpoints_and_deliveries_are_not_listed(
    api: Api, tenant: Tenant, other_tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, _ = await endpoint_with_delivery(api, tenant, receiver.url)

    assert await endpoints(api, other_tenant) == []
    assert (await deliveries(api, other_tenant, None))["total"] == 0
    assert (await deliveries(api, other_tenant, endpoint_id))["total"] == 0


async def test_webhook_deliveries_filter_by_status(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    failing = await receivers(default=500)
    working = await receivers()
    failing_id, _ = await create_endpoint(api, tenant, failing.url, ["lead.created"])
    working_id, _ = await create_endpoint(api, tenant, working.url, ["lead.created"])
    await create_lead(api, tenant)
    await wait_for_delivery(api, tenant, failing_id, lambda d: d["status"] == "failed")
    await wait_for_delivery(api, tenant, working_id, lambda d: d["status"] == "succeeded")

    failed = await ok(api, tenant.write_key, DELIVERIES, {"status": "failed"})
    succeeded = await ok(api, tenant.write_key, DELIVERIES, {"status": "succeeded"})

    assert [n["endpointId"] for n in failed["webhookDeliveries"]["nodes"]] == [failing_id]
    assert [n["endpointId"] for n in succeeded["webhookDeliveries"]["nodes"]] == [working_id]


@pytest.mark.parametrize(
    "arguments",
    ['status: "done"', "limit: 0", "limit: 101", "page: 0", 'endpointId: "nope"'],
)
async def test_bad_webhook_deliveries_arguments_are_a_validation_error(
    api: Api, tenant: Tenant, arguments: str
) -> None:
    _, body = await api.graphql(
        tenant.write_key, f"{{ webhookDeliveries({arguments}) {{ total }} }}"
    )

    assert error_codes(body) == ["VALIDATION_ERROR"], body


# --- deliveries -----------------------------------------------------------------------------


async def test_a_lead_created_webhook_is_signed_and_identified_by_the_event_id(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    _, secret = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    lead_id = await create_lead(api, tenant, "Signed Sandwiches")

    (request,) = await receiver.wait_for_count(1)
    (event,) = await history(api, tenant, lead_id)
    (listed,) = (await ok(api, tenant.read_key, EVENTS))["events"]
    assert request.webhook_id == event["id"] == listed["id"]
    assert request.verifies(secret)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) <= 60
    assert request.headers["content-type"].startswith("application/json")


async def test_a_lead_created_body_carries_the_lead_in_the_rest_shape(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    lead_id = await create_lead(api, tenant, "Shape Shop")

    (request,) = await receiver.wait_for_count(1)
    body = request.json
    assert set(body) == {"id", "type", "timestamp", "sequence", "actor", "data"}
    assert body["id"] == request.webhook_id
    assert body["type"] == "lead.created"
    assert body["sequence"] == 1
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    data = body["data"]
    assert data["id"] == lead_id
    assert data["type"] == "lead"
    assert data["attributes"]["businessName"] == "Shape Shop"
    assert data["attributes"]["stage"]["id"] == str(tenant.stage_ids[0])
    status, rest, _ = await api.rest("GET", f"/v1/leads/{lead_id}", tenant.read_key)
    assert status == 200
    assert data["attributes"].keys() == rest["data"]["attributes"].keys()


async def test_a_status_change_webhook_carries_the_previous_and_the_new_stage(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    _, secret = await create_endpoint(api, tenant, receiver.url, ["lead.status_changed"])
    lead_id = await create_lead(api, tenant, "Moving Co")

    await move_lead(api, tenant, lead_id, 2)

    (request,) = await receiver.wait_for_count(1)
    created, moved = await history(api, tenant, lead_id)
    body = request.json
    assert request.verifies(secret)
    assert request.webhook_id == body["id"] == moved["id"]
    assert body["type"] == "lead.status_changed"
    assert body["sequence"] == moved["sequence"] == 2
    assert body["data"]["id"] == lead_id
    assert body["data"]["type"] == "lead"
    assert body["data"]["attributes"]["businessName"] == "Moving Co"
    assert body["data"]["previousStage"]["id"] == str(tenant.stage_ids[0])
    assert body["data"]["previousStage"]["stageKey"] == "new_lead"
    assert body["data"]["stage"]["id"] == str(tenant.stage_ids[2])
    assert body["data"]["stage"]["stageKey"] == "qualified"
    assert body["data"]["attributes"]["stage"]["stageKey"] == "qualified"


async def test_only_subscribed_event_types_are_delivered(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.status_changed"])
    lead_id = await create_lead(api, tenant)
    await ok(api, tenant.write_key, UPDATE_LEAD, {"id": lead_id, "name": "Renamed Ltd"})

    await move_lead(api, tenant, lead_id, 1)

    await receiver.wait_for_count(1)
    moved = (await history(api, tenant, lead_id))[-1]
    page = await deliveries(api, tenant, endpoint_id)
    assert [(n["eventId"], n["eventType"]) for n in page["nodes"]] == [
        (moved["id"], "lead.status_changed")
    ]
    assert [r.json["type"] for r in receiver.requests] == ["lead.status_changed"]


async def test_another_organizations_events_never_reach_this_organizations_endpoint(
    api: Api, tenant: Tenant, other_tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, secret = await create_endpoint(api, tenant, receiver.url)
    theirs = await create_lead(api, other_tenant, "Not Yours Inc")
    await move_lead(api, other_tenant, theirs, 3)

    mine = await create_lead(api, tenant, "Mine Ltd")

    (request,) = await receiver.wait_for_count(1)
    (event,) = await history(api, tenant, mine)
    assert request.webhook_id == event["id"]
    assert request.json["data"]["id"] == mine
    assert request.verifies(secret)
    assert (await deliveries(api, tenant, endpoint_id))["total"] == 1


# --- retries --------------------------------------------------------------------------------


async def test_a_failing_receiver_gets_the_event_again_with_growing_gaps_until_it_succeeds(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers([500, 500, 200])
    endpoint_id, secret = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    await create_lead(api, tenant)

    requests = await receiver.wait_for_count(3)
    assert len({r.webhook_id for r in requests}) == 1
    assert all(r.verifies(secret) for r in requests)
    measured = gaps([r.arrived for r in requests])
    # Each wait is its schedule step (0.2 s, then 0.4 s) with ±20 % jitter, plus a little for
    # the round trip; the second is longer than the first.
    for gap, step in zip(measured, SCHEDULE, strict=False):
        assert 0.8 * step <= gap <= 1.2 * step + DISPATCH_SLACK, (measured, SCHEDULE)
    assert measured[1] > measured[0], measured


async def test_a_delivery_retried_to_success_records_every_attempt(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers([500, 500, 200])
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    await create_lead(api, tenant)

    delivery = await wait_for_delivery(api, tenant, endpoint_id, lambda d: d["status"] != "pending")
    assert delivery["status"] == "succeeded"
    assert delivery["attempt"] == 3
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    assert [a["responseStatus"] for a in delivery["attempts"]] == [500, 500, 200]
    assert delivery["eventId"] == receiver.requests[0].webhook_id
    assert len(receiver.requests) == 3


async def test_a_delivery_is_failed_once_the_retry_schedule_is_exhausted(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers(default=500)
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    await create_lead(api, tenant)

    delivery = await wait_for_delivery(api, tenant, endpoint_id, lambda d: d["status"] != "pending")
    attempts = len(SCHEDULE) + 1
    assert delivery["status"] == "failed"
    assert delivery["attempt"] == attempts
    assert [a["responseStatus"] for a in delivery["attempts"]] == [500] * attempts
    assert len(receiver.requests) == attempts
    assert len(set(receiver.ids())) == 1


async def test_retry_after_postpones_the_next_attempt_beyond_the_schedule(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers([Reply(503, {"Retry-After": "2"}), 200])
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    await create_lead(api, tenant)

    first, second = await receiver.wait_for_count(2)
    assert first.webhook_id == second.webhook_id
    assert second.arrived - first.arrived >= 1.95  # Retry-After: 2, not the 0.2 s of the schedule
    delivery = await wait_for_delivery(api, tenant, endpoint_id, lambda d: d["status"] != "pending")
    assert [a["responseStatus"] for a in delivery["attempts"]] == [503, 200]
    assert delivery["status"] == "succeeded"


async def test_a_410_disables_the_endpoint_and_its_delivery_is_not_retried(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    gone = await receivers(default=410)
    endpoint_id, _ = await create_endpoint(api, tenant, gone.url, ["lead.created"])

    await create_lead(api, tenant)

    endpoint = await wait_for_endpoint(api, tenant, endpoint_id, lambda e: not e["enabled"])
    assert endpoint["disabledReason"]
    delivery = await wait_for_delivery(api, tenant, endpoint_id, lambda d: d["status"] != "pending")
    assert delivery["status"] == "failed"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [410]
    assert len(gone.requests) == 1


async def test_a_disabled_endpoint_receives_no_further_events(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    gone = await receivers(default=410)
    sentinel = await receivers()
    gone_id, _ = await create_endpoint(api, tenant, gone.url, ["lead.created"])
    await create_endpoint(api, tenant, sentinel.url, ["lead.created"])
    await create_lead(api, tenant, "First Ltd")
    await wait_for_endpoint(api, tenant, gone_id, lambda e: not e["enabled"])

    later = await create_lead(api, tenant, "Later Ltd")

    # The sentinel endpoint of the same organization shows the later event was dispatched.
    await sentinel.wait_until(
        lambda got: any(r.json["data"]["id"] == later for r in got), what="the later event"
    )
    assert len(gone.requests) == 1
    assert (await deliveries(api, tenant, gone_id))["total"] == 1


async def test_a_receiver_slower_than_the_timeout_gets_the_event_again(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    # The session server gives up on a request after 2 s.
    receiver = await receivers([Reply(200, delay=2.5), 200])
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    await create_lead(api, tenant)

    delivery = await wait_for_delivery(
        api, tenant, endpoint_id, lambda d: d["status"] != "pending", within=15
    )
    timed_out, succeeded = delivery["attempts"]
    assert timed_out["responseStatus"] is None
    assert "timed out" in timed_out["error"]
    assert timed_out["durationMs"] >= 1900
    assert succeeded["responseStatus"] == 200
    assert delivery["status"] == "succeeded"
    assert len(set(receiver.ids())) == 1


async def test_re_enabling_a_disabled_endpoint_clears_the_reason_and_resumes_deliveries(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers([410])
    endpoint_id, secret = await create_endpoint(api, tenant, receiver.url, ["lead.created"])
    await create_lead(api, tenant, "Gone Ltd")
    await wait_for_endpoint(api, tenant, endpoint_id, lambda e: not e["enabled"])

    data = await ok(api, tenant.write_key, UPDATE_ENDPOINT, {"id": endpoint_id, "enabled": True})
    back = await create_lead(api, tenant, "Back Ltd")

    assert data["updateWebhookEndpoint"]["enabled"] is True
    assert data["updateWebhookEndpoint"]["disabledReason"] is None
    _, again = await receiver.wait_for_count(2)
    assert again.json["data"]["id"] == back
    assert again.verifies(secret)


# --- redelivery, test sends, rotation ------------------------------------------------------


async def test_redelivering_a_succeeded_delivery_sends_it_again_with_the_same_webhook_id(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, secret = await create_endpoint(api, tenant, receiver.url, ["lead.created"])
    await create_lead(api, tenant)
    delivery = await wait_for_delivery(
        api, tenant, endpoint_id, lambda d: d["status"] == "succeeded"
    )

    data = await ok(api, tenant.write_key, REDELIVER, {"id": delivery["id"]})

    assert data["redeliverWebhook"]["id"] == delivery["id"]
    first, again = await receiver.wait_for_count(2)
    assert again.webhook_id == first.webhook_id == delivery["eventId"]
    assert again.json == first.json
    assert again.verifies(secret)
    redelivered = await wait_for_delivery(
        api, tenant, endpoint_id, lambda d: d["status"] == "succeeded" and d["attempt"] == 2
    )
    assert [a["responseStatus"] for a in redelivered["attempts"]] == [200, 200]


async def test_redelivering_a_delivery_while_it_is_being_sent_sends_it_again_afterwards(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers([Reply(200, delay=1.0)])
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])
    await create_lead(api, tenant)
    await receiver.wait_for_count(1)
    (delivery,) = (await deliveries(api, tenant, endpoint_id))["nodes"]

    await ok(api, tenant.write_key, REDELIVER, {"id": delivery["id"]})

    first, again = await receiver.wait_for_count(2, within=DEADLINE)
    assert again.webhook_id == first.webhook_id
    assert receiver.overlaps == [], "the redelivery was sent while the first send was running"


@pytest.mark.parametrize(("answer", "delivered"), [(202, True), (500, False)])
async def test_send_test_webhook_reports_the_receivers_answer(
    api: Api, tenant: Tenant, receivers: OpenReceiver, answer: int, delivered: bool
) -> None:
    receiver = await receivers([answer])
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url)

    data = await ok(api, tenant.write_key, SEND_TEST, {"id": endpoint_id})

    result = data["sendTestWebhook"]
    assert result["delivered"] is delivered
    assert result["responseStatus"] == answer
    assert len(receiver.requests) == 1


async def test_send_test_webhook_sends_a_signed_webhook_test_event(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, secret = await create_endpoint(api, tenant, receiver.url)

    await ok(api, tenant.write_key, SEND_TEST, {"id": endpoint_id})

    (request,) = receiver.requests
    assert request.verifies(secret)
    assert request.json["type"] == "webhook.test"
    assert request.json["id"] == request.webhook_id
    assert request.json["data"] == {"endpointId": endpoint_id}
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) <= 60


async def test_after_rotating_the_secret_deliveries_verify_with_the_new_secret(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    endpoint_id, old_secret = await create_endpoint(api, tenant, receiver.url, ["lead.created"])

    data = await ok(api, tenant.write_key, ROTATE_SECRET, {"id": endpoint_id})
    await create_lead(api, tenant)

    new_secret = data["rotateWebhookSecret"]["secret"]
    assert data["rotateWebhookSecret"]["endpoint"]["id"] == endpoint_id
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    (request,) = await receiver.wait_for_count(1)
    assert request.verifies(new_secret)  # the old one too, for a while: test_webhook_rotation


async def test_a_deleted_endpoint_is_gone_and_gets_no_further_events(
    api: Api, tenant: Tenant, receivers: OpenReceiver
) -> None:
    receiver = await receivers()
    sentinel = await receivers()
    endpoint_id, _ = await create_endpoint(api, tenant, receiver.url, ["lead.created"])
    await create_endpoint(api, tenant, sentinel.url, ["lead.created"])

    data = await ok(api, tenant.write_key, DELETE_ENDPOINT, {"id": endpoint_id})
    lead_id = await create_lead(api, tenant)

    assert data["deleteWebhookEndpoint"] is True
    assert [e["url"] for e in await endpoints(api, tenant)] == [sentinel.url]
    await sentinel.wait_until(lambda got: any(r.json["data"]["id"] == lead_id for r in got))
    assert receiver.requests == []
