"""Logs: JSON lines with the request's fields, the request id in the access log in both
formats, and no secret (API key, webhook secret) in any log record or repr.

The access log is written by aiohttp per connection as configured when the connection was
accepted, so each test that reads it opens its own client session after turning it on.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.domain.webhooks import ClaimedDelivery
from leadgate.graphql.webhooks import WebhookEndpointWithSecret
from leadgate.logs import JsonFormatter, RequestFields, TextFormatter, configure
from leadgate.services import auth
from leadgate.services.webhooks import EndpointWithSecret
from tests.support import Api, Tenant, bearer, make_tenant
from tests.webhook_receiver import Receiver

LEADS: Final = "query Leads { leads(limit: 1) { total } }"
CREATE_ENDPOINT: Final = """
mutation($url: String!) {
  createWebhookEndpoint(url: $url, eventTypes: ["lead.created"]) { endpoint { id } secret }
}
"""
ROTATE_SECRET: Final = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }"
DELETE_ENDPOINT: Final = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }"
CREATE_LEAD: Final = 'mutation { createLead(input: {businessName: "Logged Loaves"}) { id } }'

Capture = Callable[[logging.Formatter], io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Formats the access log (and everything else) into a buffer while the test runs."""
    handlers: list[logging.Handler] = []
    access = logging.getLogger("aiohttp.access")
    level = access.level
    access.setLevel(logging.INFO)

    def start(formatter: logging.Formatter) -> io.StringIO:
        buffer = io.StringIO()
        handler = logging.StreamHandler(buffer)
        handler.addFilter(RequestFields())
        handler.setFormatter(formatter)
        logging.getLogger().addHandler(handler)
        handlers.append(handler)
        return buffer

    yield start
    for handler in handlers:
        logging.getLogger().removeHandler(handler)
    access.setLevel(level)


@pytest.fixture
async def fresh_api(server: TestServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session=session, base=str(server.make_url("")).rstrip("/"))


def request_id() -> str:
    return f"log-test-{uuid.uuid4()}"


async def test_json_access_lines_carry_the_request_fields(
    fresh_api: Api, tenant: Tenant, pool: asyncpg.Pool, capture: Capture
) -> None:
    buffer = capture(JsonFormatter())
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=False)
    rid = request_id()

    status, _ = await fresh_api.graphql(created.key, LEADS, headers={"X-Request-Id": rid})

    assert status == 200
    entries = [json.loads(line) for line in buffer.getvalue().splitlines()]
    (access,) = [
        e for e in entries if e.get("request_id") == rid and e["logger"] == "aiohttp.access"
    ]
    assert access["level"] == "INFO"
    assert access["organization"] == str(tenant.id)
    assert access["credential_id"] == f"api_key:{created.id}"
    assert access["operation_name"] == "Leads"
    assert access["status"] == 200
    assert access["duration_ms"] > 0
    assert "POST /graphql" in access["message"]
    assert datetime.fromisoformat(access["time"]).tzinfo is not None


async def test_text_access_lines_carry_the_request_id(
    fresh_api: Api, tenant: Tenant, capture: Capture
) -> None:
    buffer = capture(TextFormatter())
    rid = request_id()

    await fresh_api.rest("GET", "/v1/leads?limit=1", tenant.read_key, headers={"X-Request-Id": rid})

    (line,) = [line for line in buffer.getvalue().splitlines() if rid in line]
    assert f"aiohttp.access [{rid}]" in line
    assert "GET /v1/leads" in line


def test_a_record_outside_any_request_has_no_request_fields() -> None:
    record = logging.LogRecord("leadgate.test", logging.INFO, __file__, 1, "idle", None, None)
    RequestFields().filter(record)

    entry = json.loads(JsonFormatter().format(record))

    assert set(entry) == {"time", "level", "logger", "message"}
    assert "[-] idle" in TextFormatter().format(record)


async def test_no_log_record_carries_a_created_key_or_webhook_secret(
    fresh_api: Api, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = await make_tenant(pool, name="Secretive Lending")
    created = await auth.create_api_key(pool, organization_id=tenant.id, can_write=True)
    secrets = [tenant.write_key, tenant.read_key, created.key]
    async with Receiver(()) as receiver:
        _, body = await fresh_api.graphql(created.key, CREATE_ENDPOINT, {"url": receiver.url})
        endpoint = body["data"]["createWebhookEndpoint"]
        secrets.append(endpoint["secret"])
        variables = {"id": endpoint["endpoint"]["id"]}
        _, rotated = await fresh_api.graphql(created.key, ROTATE_SECRET, variables)
        secrets.append(rotated["data"]["rotateWebhookSecret"]["secret"])
        await fresh_api.graphql(created.key, CREATE_LEAD)
        await fresh_api.rest("GET", "/v1/leads?limit=1", created.key)
        # A well-formed key that is refused must not be echoed into a log either.
        refused = created.key[:-4] + "zzzz"
        secrets.append(refused)
        await fresh_api.rest("GET", "/v1/leads", refused)
        (delivered,) = await receiver.wait_for_count(1)
        await fresh_api.graphql(created.key, DELETE_ENDPOINT, variables)

    assert delivered.verifies(secrets[-2])
    assert any(r.name == "aiohttp.access" for r in caplog.records)
    logged = caplog.text + "".join(_everything(r) for r in caplog.records)
    leaked = [s for s in secrets if s in logged or s.removeprefix("whsec_") in logged]
    assert leaked == []


def _everything(record: logging.LogRecord) -> str:
    """A record as any handler could render it: its message, args and every extra field."""
    return record.getMessage() + repr(record.args) + repr(vars(record))


def test_objects_holding_a_secret_leave_it_out_of_their_repr() -> None:
    key = "lw_live_" + "k" * 32
    secret = "whsec_" + "s" * 32
    holders: list[Any] = [
        auth.CreatedKey(id=uuid.uuid4(), key=key),
        # No real Endpoint is needed: only the secret's absence from the repr is tested.
        EndpointWithSecret(endpoint=None, secret=secret),  # type: ignore[arg-type]
        WebhookEndpointWithSecret(endpoint=None, secret=secret),  # type: ignore[arg-type]
        ClaimedDelivery(
            organization_id=uuid.uuid4(),
            id=1,
            attempt=1,
            event_id=1,
            event_type="lead.created",
            event_sequence=1,
            event_payload={},
            event_created_at=datetime.now(UTC),
            endpoint_id=uuid.uuid4(),
            url="https://example.com/hook",
            secrets=(secret,),
            enabled=True,
            due_at=datetime.now(UTC),
        ),
    ]

    for holder in holders:
        assert key not in repr(holder) and secret not in repr(holder), type(holder).__name__


async def test_the_bearer_header_never_reaches_the_access_log(
    fresh_api: Api, tenant: Tenant, capture: Capture
) -> None:
    buffer = capture(TextFormatter())

    await fresh_api.rest("GET", "/v1/leads?limit=1", None, headers=bearer(tenant.read_key))

    assert "/v1/leads" in buffer.getvalue()
    assert tenant.read_key not in buffer.getvalue()


def test_serve_with_json_format_writes_one_object_per_line_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = []  # basicConfig leaves a configured root alone
    try:
        configure("json")
        logging.getLogger("leadgate.test").warning("first\nsecond")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "first\nsecond"
