"""Compiled query plans answer exactly as strawberry's executor does."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.db.statements import StatementCounter
from leadgate.domain.models import Principal
from leadgate.graphql.codegen import generate
from leadgate.graphql.schema import LeadgateSchema, RefusedResult, build_schema
from leadgate.graphql.view import LeadgateGraphQLView
from tests.graphql_context import make_context, principal_with_history
from tests.support import (
    EVENTS,
    Api,
    Tenant,
    create_lead,
    error_codes,
    fewest_statements,
    move_lead,
    ok,
)
from tests.ws_client import connect, subscribe

LEAD_FIELDS = """
  id businessName contactFirstName contactLastName email phone industry monthlyRevenue
  requestedAmount source priority isDoNotCall dncReason dncAt tags customFields externalIds
  leadScore contactId lastContactedAt stageChangedAt convertedAt convertedAccountId
  convertedContactId importJobId createdBy createdAt updatedAt
"""

QUERIES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "the list query": (
        "{ leads(limit: 20) { total page limit hasMore nodes {"
        + LEAD_FIELDS
        + " stage { id stageKey stageLabel color semanticSlot position }"
        " primaryAdvisor { id name email } } } }",
        None,
    ),
    "aliases, typename and fragments": (
        """
        query Page($limit: Int!, $search: String) {
          first: leads(limit: $limit, search: $search) { ...pageFields }
          second: leads(page: 2, limit: 3) { total nodes { ... on Lead { id __typename } } }
          __typename
        }
        fragment pageFields on LeadPage { total hasMore nodes { id name: businessName
          stage { stageKey } stage { stageLabel } primaryAdvisor { name } } }
        """,
        {"limit": 5, "search": "a"},
    ),
    "filters and enums": (
        "query($f: LeadFilter) { leads(limit: 50, filter: $f) { total nodes { id priority } } }",
        {"f": {"priority": "HIGH"}},
    ),
    "history and events": (
        "{ leads(limit: 3) { nodes { id history(limit: 2) { id type sequence data } } }"
        " events(limit: 5) { id type occurredAt lead { id stage { stageKey } } } }",
        None,
    ),
    "event actors": (
        "{ events(limit: 5) { id type actor { type id requestId } }"
        " leads(limit: 3) { nodes { id createdBy"
        " history(limit: 2) { id actor { type id requestId } } } } }",
        None,
    ),
    "history actors through a variable and an alias": (
        "query($l: Int!) { leads(limit: 2) { nodes { history(limit: $l) {"
        " who: actor { type requestId } actor { id __typename } } } } }",
        {"l": 3},
    ),
    "a connection forward": (
        """
        query($first: Int, $after: String) {
          leadsConnection(first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { id businessName stage { stageKey } primaryAdvisor { name } } }
          }
        }
        """,
        {"first": 4, "after": None},
    ),
    "a connection backward, filtered and searched": (
        """
        query($f: LeadFilter) {
          leadsConnection(last: 3, search: "a", filter: $f) {
            totalCount pageInfo { hasNextPage hasPreviousPage }
            edges { node { id priority history(limit: 1) { type } } }
          }
        }
        """,
        {"f": {"priority": "NORMAL"}},
    ),
    "a connection by updatedSince": (
        """
        query($since: DateTime) {
          leadsConnection(first: 5, updatedSince: $since) {
            totalCount edges { cursor node { id updatedAt } } pageInfo { endCursor }
          }
        }
        """,
        {"since": "2020-01-01T00:00:00Z"},
    ),
    "a malformed cursor": ('{ leadsConnection(after: "nope") { totalCount } }', None),
    "stages and advisors": ("{ stages { id stageKey position } advisors { id name } }", None),
    "an unknown lead": (
        '{ lead(id: "00000000-0000-0000-0000-000000000000") { id } stages { id } }',
        None,
    ),
    "a malformed argument": ("{ leads(limit: 0) { total } }", None),
    "a bad variable": ("query($l: Int!) { leads(limit: $l) { total } }", {"l": "x"}),
    "a directive": (
        "query($t: Boolean!) { stages { id stageKey @include(if: $t) } }",
        {"t": False},
    ),
}


def outcome(result: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    errors = [(e.message, (e.extensions or {}).get("code")) for e in result.errors or []]
    return result.data, errors


@pytest.fixture
async def principal(server: TestServer, tenant: Tenant, api: Api) -> Principal:
    return await principal_with_history(server, tenant, api, key=tenant.read_key)


@pytest.mark.parametrize("name", list(QUERIES))
async def test_a_compiled_plan_answers_exactly_as_strawberry(
    server: TestServer, principal: Principal, name: str
) -> None:
    query, variables = QUERIES[name]
    compiled, plain = build_schema(compiled=True), build_schema(compiled=False)

    fast = await compiled.execute(query, variables, make_context(server, principal, "compiled"))
    slow = await plain.execute(query, variables, make_context(server, principal, "compiled"))

    assert outcome(fast) == outcome(slow)
    # What succeeds is answered by the plan itself, not by a fallback to strawberry; what the
    # gate refuses reaches neither.
    assert isinstance(compiled, LeadgateSchema)
    ran_and_failed = bool(fast.errors) and not isinstance(fast, RefusedResult)
    assert compiled.fallbacks == (1 if ran_and_failed else 0)


@pytest.mark.parametrize(
    ("name", "compiles"),
    [
        ("the list query", True),
        ("aliases, typename and fragments", True),
        ("history and events", True),
        ("event actors", True),
        ("history actors through a variable and an alias", True),
        ("a malformed argument", True),
        ("a directive", False),
        ("a bad variable", True),
    ],
)
def test_plain_query_documents_compile_and_others_are_left_to_strawberry(
    name: str, compiles: bool
) -> None:
    schema = build_schema(compiled=True)
    assert isinstance(schema, LeadgateSchema)
    query, _ = QUERIES[name]

    assert (schema.plan(query, None) is not None) is compiles


def test_mutations_and_introspection_are_never_compiled() -> None:
    schema = build_schema(compiled=True)
    assert isinstance(schema, LeadgateSchema)

    assert schema.plan('mutation { deleteWebhookEndpoint(id: "x") }', None) is None
    assert schema.plan("{ __schema { queryType { name } } }", None) is None


def served_schema(app: web.Application) -> LeadgateSchema:
    """The schema behind an app's /graphql route."""
    for route in app.router.routes():
        view = route.handler
        if isinstance(view, LeadgateGraphQLView) and isinstance(view.schema, LeadgateSchema):
            return view.schema
    raise AssertionError("no GraphQL view")


@pytest.fixture(scope="module")
async def compiled_gateway(settings: Settings) -> AsyncIterator[tuple[Api, LeadgateSchema]]:
    """A gateway of its own that runs plans (whatever LEADGATE_COMPILED_QUERIES says), so a
    plan broken here is seen by no other test."""
    quick = dataclasses.replace(settings, compiled_queries=True, dispatcher_enabled=False)
    server = TestServer(create_app(quick), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield (
            Api(session=session, base=str(server.make_url("")).rstrip("/")),
            served_schema(server.app),
        )
    await server.close()


async def test_a_bug_in_a_plan_is_answered_as_internal_and_not_hidden_by_a_rerun(
    compiled_gateway: tuple[Api, LeadgateSchema], tenant: Tenant
) -> None:
    api, schema = compiled_gateway
    document = "{ stages { id stageKey } }"
    plan = schema.plan(document, None)
    assert plan is not None
    # Code that reads an attribute a stage has not: a bug of the plan, not a resolver's error,
    # so no Fallback; strawberry would have answered this document correctly.
    (stages,) = plan.root.fields
    assert stages.selection is not None
    stages.selection.fields[0].attribute = "no_such_attribute"
    plan.code = generate(plan.schema, plan.root, subscription=False)
    fallbacks, hits = schema.fallbacks, schema.plan_hits

    status, body = await api.graphql(tenant.read_key, document)

    assert (status, error_codes(body)) == (500, ["INTERNAL"])
    assert "data" not in body
    assert (schema.fallbacks, schema.plan_hits) == (fallbacks, hits)


async def test_an_event_is_completed_and_encoded_once_for_every_subscriber_of_a_document(
    compiled_gateway: tuple[Api, LeadgateSchema], tenant: Tenant
) -> None:
    api, schema = compiled_gateway
    document = (
        "subscription($after: ID) { leadStageChanged(after: $after) "
        "{ eventId lead { id businessName } toStage { stageKey } } }"
    )
    lead_id = await create_lead(api, tenant, "Shared Frames Bakery")
    (created,) = (await ok(api, tenant.read_key, EVENTS, {"types": ["lead.created"]}))["events"][
        -1:
    ]
    # From `after` the subscribers replay the move whenever each was registered: no race.
    variables = {"after": created["id"]}
    plan = schema.plan(document, None)
    assert plan is not None
    before = plan.completions
    url = f"{api.base}/graphql"

    async with contextlib.AsyncExitStack() as sockets:
        subscriptions = []
        for n in range(3):
            ws = await sockets.enter_async_context(connect(api.session, url, tenant.read_key))
            subscriptions.append((ws, await subscribe(ws, document, variables, op_id=f"s{n}")))
        await move_lead(api, tenant, lead_id, 3)
        frames = [await next_frame(ws) for ws, _ in subscriptions]

    payloads = {frame[frame.index('"payload":') :] for frame in frames}
    assert len(payloads) == 1  # byte for byte the same payload on every socket
    assert json.loads(frames[0])["payload"]["data"]["leadStageChanged"]["lead"]["id"] == lead_id
    assert plan.completions - before == 1


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> str:
    """The next `next` frame's text, as the gateway sent it."""
    while True:
        text = await asyncio.wait_for(ws.receive_str(), 5)
        if json.loads(text)["type"] == "next":
            return text


EVENT_LEADS = """
query($limit: Int!) {
  events(limit: $limit) {
    id lead { id stage { stageKey } primaryAdvisor { name } history(limit: 1) { type } }
  }
}
"""


async def test_the_leads_of_events_with_their_stages_advisors_and_histories_are_batched(
    api: Api, statements: StatementCounter, tenant: Tenant
) -> None:
    # Events' leads come through loaders, and so do their stages, advisors and histories:
    # however many events, one batched statement per loader (resolvers that wait are awaited
    # together, so sibling loads batch).
    for n in range(5):
        await ok(
            api,
            tenant.write_key,
            "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }",
            {
                "input": {
                    "businessName": f"Batched Bakery {n}",
                    "assignToAdvisorId": str(tenant.advisor_ids[n % len(tenant.advisor_ids)]),
                    "stageId": str(tenant.stage_ids[n % 2]),
                }
            },
        )

    async def cost(limit: int) -> int:
        data = await ok(api, tenant.read_key, EVENT_LEADS, {"limit": limit})
        assert len(data["events"]) == limit
        assert all(e["lead"]["primaryAdvisor"] is not None for e in data["events"])

        async def send() -> None:
            await ok(api, tenant.read_key, EVENT_LEADS, {"limit": limit})

        return await fewest_statements(statements, send)

    assert await cost(1) == await cost(5)
