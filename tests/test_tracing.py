"""OpenTelemetry tracing (leadgate/tracing.py), recorded with the SDK's in-memory exporter.

The traced gateway here is its own app with its own TracerProvider, beside the session
server (which is not traced): spans of one never reach the other's exporter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

from leadgate import tracing
from leadgate.app import create_app
from leadgate.config import Settings
from tests.support import Api, Tenant, make_tenant
from tests.webhook_receiver import Receiver

LEADS: Final = "query Leads { leads(limit: 2) { total nodes { id stage { id } } } }"
CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } secret }
}
"""
SEND_TEST: Final = "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivered } }"
TRACE_ID: Final = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID: Final = "00f067aa0ba902b7"
TRACEPARENT: Final = f"00-{TRACE_ID}-{PARENT_ID}-01"
# A query string an endpoint's owner may use to authenticate us: no span may carry it.
URL_TOKEN: Final = "tok3n-in-the-query"


@dataclass(frozen=True)
class Traced:
    api: Api
    spans: InMemorySpanExporter

    async def finished(
        self, condition: Callable[[Sequence[ReadableSpan]], bool]
    ) -> list[ReadableSpan]:
        """The spans ended so far, once `condition` holds: statement spans are recorded by a
        callback asyncpg schedules, which may run just after the response was written."""
        async with asyncio.timeout(2):
            # The exporter signals nothing; a short poll is simpler than wrapping it.
            while not condition(spans := self.spans.get_finished_spans()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return list(spans)


@pytest.fixture(scope="module")
async def traced_server(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Traced]:
    app = create_app(dataclasses.replace(settings, dispatcher_enabled=False))
    exporter = InMemorySpanExporter()
    tracing.install(app, exporter=exporter)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Traced(Api(session, str(server.make_url("")).rstrip("/")), exporter)
    finally:
        await server.close()


@pytest.fixture
def traced(traced_server: Traced) -> Traced:
    traced_server.spans.clear()
    return traced_server


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool, name="Traced Lending")


def ids(span: ReadableSpan) -> SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def server_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is SpanKind.SERVER]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    span_id = ids(parent).span_id
    return [s for s in spans if s.parent is not None and s.parent.span_id == span_id]


def has_sql_child(spans: Sequence[ReadableSpan]) -> bool:
    return any(
        s.kind is SpanKind.CLIENT and s.attributes and "db.query.text" in s.attributes
        for s in spans
    )


async def test_a_graphql_request_is_a_server_span_named_after_its_operation_with_sql_children(
    traced: Traced, tenant: Tenant
) -> None:
    status, body = await traced.api.graphql(
        tenant.read_key, LEADS, headers={"X-Request-Id": "trace-test-0001"}
    )
    assert status == 200, body
    spans = await traced.finished(has_sql_child)
    [request] = server_spans(spans)
    assert request.name == "query Leads"
    assert request.parent is None
    assert dict(request.attributes or {}) == {
        "leadgate.api": "graphql",
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "leadgate.request_id": "trace-test-0001",
        "leadgate.organization_id": str(tenant.id),
        "graphql.operation.type": "query",
        "graphql.operation.name": "Leads",
    }
    statements = children(spans, request)
    assert statements, [s.name for s in spans]
    for statement in statements:
        attributes = statement.attributes or {}
        assert statement.kind is SpanKind.CLIENT
        assert attributes["db.system.name"] == "postgresql"
        assert str(attributes["db.query.text"]).split()[0].upper() == statement.name
        assert ids(statement).trace_id == ids(request).trace_id
    # The page's read: a SELECT, or the WITH a narrowed list's statement starts with.
    assert {"SELECT", "WITH"} & {s.name for s in statements}
    assert tenant.read_key not in "".join(s.to_json() for s in spans)


async def test_a_rest_request_span_is_named_after_its_route(traced: Traced, tenant: Tenant) -> None:
    status, _, _ = await traced.api.rest("GET", "/v1/leads?limit=1", tenant.read_key)
    assert status == 200
    [request] = server_spans(await traced.finished(lambda got: bool(server_spans(got))))
    assert request.name == "GET /v1/leads"
    attributes = request.attributes or {}
    assert attributes["http.route"] == "/v1/leads"
    assert attributes["leadgate.api"] == "rest"
    assert attributes["http.response.status_code"] == 200


async def test_an_incoming_traceparent_is_the_parent_of_the_request_span(
    traced: Traced, tenant: Tenant
) -> None:
    status, _ = await traced.api.graphql(
        tenant.read_key, LEADS, headers={"traceparent": TRACEPARENT}
    )
    assert status == 200
    spans = await traced.finished(has_sql_child)
    [request] = server_spans(spans)
    assert request.parent is not None and request.parent.is_remote
    assert request.parent.span_id == int(PARENT_ID, 16)
    assert {ids(s).trace_id for s in spans} == {int(TRACE_ID, 16)}


async def test_a_webhook_send_carries_the_traceparent_of_its_recorded_span(
    traced: Traced, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    async with Receiver() as receiver:
        url = f"{receiver.url}?token={URL_TOKEN}"
        try:
            status, body = await traced.api.graphql(tenant.write_key, CREATE_ENDPOINT, {"url": url})
            assert status == 200, body
            endpoint_id = body["data"]["createWebhookEndpoint"]["endpoint"]["id"]
            traced.spans.clear()
            status, body = await traced.api.graphql(
                tenant.write_key,
                SEND_TEST,
                {"id": endpoint_id},
                headers={"traceparent": TRACEPARENT},
            )
            assert body["data"]["sendTestWebhook"]["delivered"] is True, body
            [received] = await receiver.wait_for_count(1)
        finally:
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM webhook_endpoints WHERE url = $1", url)
    version, trace_id, span_id, _flags = received.headers["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    spans = await traced.finished(lambda got: bool(server_spans(got)))
    [send] = [s for s in spans if f"{ids(s).span_id:016x}" == span_id]
    assert send.kind is SpanKind.CLIENT and send.name == "POST"
    [request] = server_spans(spans)
    assert send in children(spans, request)
    assert request.name == "mutation"
    assert URL_TOKEN not in "".join(s.to_json() for s in spans)


OTLP_ENDPOINT: Final = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.mark.parametrize(
    ("setting", "environ", "on"),
    [
        (None, {}, False),
        (None, OTLP_ENDPOINT, True),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        (True, {}, True),
        (True, {"OTEL_SDK_DISABLED": "true"}, False),
        (False, OTLP_ENDPOINT, False),
    ],
)
def test_tracing_is_on_with_an_otlp_endpoint_or_leadgate_tracing(
    setting: bool | None, environ: dict[str, str], on: bool
) -> None:
    assert tracing.enabled(setting, environ) is on


# Run in a fresh interpreter where importing opentelemetry fails, as without the extra.
UNTRACED: Final = """
import asyncio, sys
sys.modules["opentelemetry"] = None
import aiohttp
from aiohttp.test_utils import TestServer
from leadgate import keys, tracing
from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter

async def main() -> None:
    app = create_app(Settings(database_url=sys.argv[1], dispatcher_enabled=False))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                server.make_url("/graphql"),
                json={"query": "query Leads { leads(limit: 1) { total } }"},
                headers={"Authorization": "Bearer " + sys.argv[2], "traceparent": sys.argv[3]},
            ) as response:
                assert response.status == 200, response.status
        assert tracing.TRACING not in app
        assert type(app[keys.STATEMENTS]) is StatementCounter
    finally:
        await server.close()
    loaded = [name for name, module in sys.modules.items()
              if name.startswith("opentelemetry") and module is not None]
    assert not loaded, loaded

asyncio.run(main())
"""


async def test_with_tracing_off_nothing_is_traced_and_opentelemetry_is_not_imported(
    database_url: str, tenant: Tenant
) -> None:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OTEL_") and name != "LEADGATE_TRACING"
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        UNTRACED,
        database_url,
        tenant.read_key,
        TRACEPARENT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, (out + err).decode()
