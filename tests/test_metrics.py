"""/metrics: Prometheus text from the app's own registry, to loopback clients or by setting.

The session server is shared, so counters are compared before and after what a test does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Final
from unittest import mock

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer, make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.domain.errors import NotFound
from leadgate.graphql.schema import build_schema
from leadgate.metrics import metrics_handler
from tests.support import Api, Tenant, make_tenant
from tests.webhook_receiver import Receiver
from tests.ws_client import connect, subscribe

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

LEADS: Final = "query Leads { leads(limit: 1) { total } }"
CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } secret }
}
"""
DELETE_ENDPOINT: Final = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }"
STAGE_CHANGES: Final = "subscription { leadStageChanged { eventId } }"
CREATE_LEAD: Final = 'mutation { createLead(input: {businessName: "Metered Muffins"}) { id } }'


async def scrape(api: Api, headers: dict[str, str] | None = None) -> Samples:
    async with api.session.get(f"{api.base}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_graphql_query_is_counted_by_api_operation_type_and_status(
    api: Api, tenant: Tenant
) -> None:
    labels = {"api": "graphql", "operation": "query", "status": "200"}
    before = await scrape(api)

    status, _ = await api.graphql(tenant.read_key, LEADS)

    after = await scrape(api)
    assert status == 200
    assert value(after, "leadgate_http_requests_total", **labels) == (
        value(before, "leadgate_http_requests_total", **labels) + 1
    )
    count = "leadgate_http_request_duration_seconds_count"
    assert value(after, count, **labels) == value(before, count, **labels) + 1


async def test_a_rest_call_is_counted_with_its_status(api: Api, tenant: Tenant) -> None:
    labels = {"api": "rest", "operation": "query", "status": "404"}
    before = await scrape(api)

    status, _, _ = await api.rest(
        "GET", "/v1/leads/00000000-0000-0000-0000-000000000000", tenant.read_key
    )

    after = await scrape(api)
    assert status == 404
    assert value(after, "leadgate_http_requests_total", **labels) == (
        value(before, "leadgate_http_requests_total", **labels) + 1
    )


async def test_a_graphql_mutation_is_counted_as_a_mutation(api: Api, tenant: Tenant) -> None:
    labels = {"api": "graphql", "operation": "mutation", "status": "200"}
    before = await scrape(api)

    status, body = await api.graphql(tenant.write_key, CREATE_LEAD)

    after = await scrape(api)
    assert status == 200 and "errors" not in body, body
    assert value(after, "leadgate_http_requests_total", **labels) == (
        value(before, "leadgate_http_requests_total", **labels) + 1
    )


async def test_a_document_refused_before_execution_has_no_operation_type(api: Api) -> None:
    labels = {"api": "graphql", "operation": "none", "status": "401"}
    before = await scrape(api)

    status, _ = await api.graphql(None, LEADS)

    after = await scrape(api)
    assert status == 401
    assert value(after, "leadgate_http_requests_total", **labels) == (
        value(before, "leadgate_http_requests_total", **labels) + 1
    )


async def test_sql_statements_and_compiled_plans_are_counted(
    api: Api, tenant: Tenant, settings: Settings
) -> None:
    before = await scrape(api)

    await api.graphql(tenant.read_key, LEADS)

    after = await scrape(api)
    statements, hits = "leadgate_sql_statements_total", "leadgate_graphql_plan_hits_total"
    assert value(after, statements) > value(before, statements)
    # CI runs the suite once through compiled plans and once through strawberry only.
    expected_hits = 1 if settings.compiled_queries else 0
    assert value(after, hits) == value(before, hits) + expected_hits
    assert ("leadgate_graphql_plan_fallbacks_total", frozenset()) in after


async def test_pool_connections_subscriptions_and_reconnects_are_exposed(api: Api) -> None:
    samples = await scrape(api)

    assert value(samples, "leadgate_db_pool_size") >= 1
    for name in (
        "leadgate_db_pool_idle",
        "leadgate_websocket_connections",
        "leadgate_subscribers",
        "leadgate_listener_reconnects_total",
    ):
        assert (name, frozenset()) in samples, name


async def test_waiting_for_a_pool_connection_is_measured(api: Api, tenant: Tenant) -> None:
    name = "leadgate_db_pool_acquire_wait_seconds"
    before = await scrape(api)

    status, _ = await api.graphql(tenant.read_key, LEADS)

    after = await scrape(api)
    assert status == 200
    assert value(after, f"{name}_count") > value(before, f"{name}_count")
    assert value(after, f"{name}_sum") >= value(before, f"{name}_sum")


async def test_an_event_fanned_out_to_a_subscriber_records_its_lag(
    api: Api, tenant: Tenant
) -> None:
    name = "leadgate_subscription_lag_seconds_count"
    before = value(await scrape(api), name)
    _, created = await api.graphql(tenant.write_key, CREATE_LEAD)
    lead_id = created["data"]["createLead"]["id"]

    async with connect(api.session, f"{api.base}/graphql", tenant.read_key) as ws:
        await subscribe(ws, STAGE_CHANGES)
        status, _ = await api.graphql(
            tenant.write_key,
            "mutation($id: ID!, $s: ID!) { moveLead(id: $id, stageId: $s) { id } }",
            {"id": lead_id, "s": str(tenant.stage_ids[1])},
        )
        assert status == 200
        await until(api, lambda now: value(now, name) >= before + 1, "no lag was recorded")


async def until(api: Api, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrapes until `check` holds: the server settles a closed WebSocket on its own time."""
    deadline = time.monotonic() + 5
    while not check(samples := await scrape(api)):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)
    return samples


async def test_an_open_subscription_is_counted_as_a_connection_and_a_subscriber(
    api: Api, tenant: Tenant
) -> None:
    before = await scrape(api)
    connections, subscribers = "leadgate_websocket_connections", "leadgate_subscribers"

    async with connect(api.session, f"{api.base}/graphql", tenant.read_key) as ws:
        await subscribe(ws, STAGE_CHANGES)
        during = await until(
            api,
            lambda now: value(now, subscribers) == value(before, subscribers) + 1,
            "the subscriber was never counted",
        )

    assert value(during, connections) == value(before, connections) + 1
    await until(
        api,
        lambda now: (
            value(now, connections) == value(before, connections)
            and value(now, subscribers) == value(before, subscribers)
        ),
        "the closed connection is still counted",
    )


async def test_a_closed_websocket_is_counted_as_a_subscription_request(
    api: Api, tenant: Tenant
) -> None:
    labels = {"api": "graphql", "operation": "subscription", "status": "101"}
    requests = "leadgate_http_requests_total"
    before = value(await scrape(api), requests, **labels)

    async with connect(api.session, f"{api.base}/graphql", tenant.read_key):
        pass

    await until(
        api,
        # At least: the previous test's WebSocket may be settled only now.
        lambda now: value(now, requests, **labels) >= before + 1,
        "the WebSocket request was never counted",
    )


async def test_a_delivered_webhook_is_counted_with_its_lag(api: Api, pool: asyncpg.Pool) -> None:
    tenant = await make_tenant(pool, name="Metered Lending")
    attempts, lag = "leadgate_webhook_attempts_total", "leadgate_webhook_delivery_lag_seconds_count"
    before = await scrape(api)
    async with Receiver(()) as receiver:
        _, created = await api.graphql(tenant.write_key, CREATE_ENDPOINT, {"url": receiver.url})
        endpoint_id = created["data"]["createWebhookEndpoint"]["endpoint"]["id"]
        await api.graphql(tenant.write_key, CREATE_LEAD)
        await receiver.wait_for_count(1)
        # At least: the shared server's dispatcher may settle another test's retry meanwhile.
        after = await until(
            api,
            lambda now: (
                value(now, attempts, outcome="succeeded")
                >= value(before, attempts, outcome="succeeded") + 1
            ),
            "the attempt was never counted",
        )
        await api.graphql(tenant.write_key, DELETE_ENDPOINT, {"id": endpoint_id})
    assert value(after, lag) >= value(before, lag) + 1


async def test_a_forwarded_request_is_refused_in_the_envelope(api: Api) -> None:
    async with api.session.get(
        f"{api.base}/metrics", headers={"X-Forwarded-For": "203.0.113.7"}
    ) as response:
        body = await response.json()

    assert response.status == 404
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_client_on_another_address_is_refused(server: TestServer) -> None:
    transport = mock.Mock()
    transport.get_extra_info.return_value = ("203.0.113.7", 40_000)
    request = make_mocked_request("GET", "/metrics", app=server.app, transport=transport)

    with pytest.raises(NotFound):
        await metrics_handler(request)


@pytest.fixture
async def public_api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    public = dataclasses.replace(settings, metrics_public=True, dispatcher_enabled=False)
    server = TestServer(create_app(public), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def test_metrics_public_serves_any_client(public_api: Api, tenant: Tenant) -> None:
    await public_api.graphql(tenant.read_key, LEADS)

    samples = await scrape(public_api, headers={"X-Forwarded-For": "203.0.113.7"})

    labels = {"api": "graphql", "operation": "query", "status": "200"}
    assert value(samples, "leadgate_http_requests_total", **labels) == 1


def test_a_fallback_is_counted_every_time_and_logged_once_per_document(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = build_schema()
    caplog.set_level(logging.WARNING, logger="leadgate.graphql.schema")

    for _ in range(3):
        schema._fell_back("{ stages { id } }", ValueError("the plan broke"))
    schema._fell_back("{ advisors { id } }", KeyError("name"))

    assert schema.fallbacks == 4
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "ValueError: the plan broke" in messages[0]
